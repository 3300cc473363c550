package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd unit in deploy/ starts `parley supernode` with flags this binary
// accepts, and (where systemd-analyze exists) systemd accepts the unit.
func TestSystemdUnit(t *testing.T) {
	unit := filepath.Join("..", "..", "deploy", "parley-supernode.service")
	b, err := os.ReadFile(unit)
	must(t, err)
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var execStart string
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
	}
	args := strings.Fields(strings.ReplaceAll(execStart, "${PARLEY_PUBLIC_ADDR}", "198.51.100.7"))
	if len(args) < 2 || args[0] != "/usr/local/bin/parley" || args[1] != "supernode" {
		t.Fatalf("ExecStart = %q, want /usr/local/bin/parley supernode ...", execStart)
	}
	// -h after the unit's flags: flag parsing reaches it only if every flag
	// before it is known.
	help, errOut, code := runParley(t, nil, append(args[1:], "-h")...)
	if code != 0 || !strings.Contains(help, "usage: parley supernode") {
		t.Fatalf("the unit's flags: exit %d\n%s%s", code, help, errOut)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: the unit's syntax is not checked")
		return
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "parley-supernode.service"),
		[]byte(strings.ReplaceAll(string(b), "/usr/local/bin/parley", parleyBin)), 0o644))
	out, err := exec.Command("systemd-analyze", "verify", filepath.Join(dir, "parley-supernode.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
