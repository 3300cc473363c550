package archtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The house's size rules: no non-test Go file over 700 lines, and
// cmd/parley (flags, environment, wiring, signals) under 1,200 lines.
func TestFilesStaySmall(t *testing.T) {
	const maxFile, maxCmd = 700, 1200
	cmd := 0
	err := filepath.WalkDir(root(t), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n := bytes.Count(b, []byte("\n"))
		rel, _ := filepath.Rel(root(t), p)
		if n > maxFile {
			t.Errorf("%s has %d lines, more than %d: split it by concern", rel, n, maxFile)
		}
		if filepath.Dir(rel) == filepath.Join("cmd", "parley") {
			cmd += n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cmd >= maxCmd {
		t.Errorf("cmd/parley has %d lines of non-test code, want under %d: move logic into a library", cmd, maxCmd)
	}
}
