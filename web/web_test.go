package web

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/parley/parley/web/internal/jsconst"
)

// TestWireGenUpToDate regenerates static/js/wire.gen.js in memory from the Go
// constants and fails when the committed file differs: a Go constant changed
// without `go generate ./web/`, or the file was edited by hand.
func TestWireGenUpToDate(t *testing.T) {
	want, err := jsconst.Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(jsconst.Path)
	if err != nil {
		t.Fatalf("web/%s: %v: run go generate ./web/", jsconst.Path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("web/%s is stale: run go generate ./web/\n%s", jsconst.Path, lineDiff(string(got), string(want)))
	}
}

// TestWireGenServed: the generated module is embedded and served with the
// page's other modules.
func TestWireGenServed(t *testing.T) {
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest("GET", "/js/wire.gen.js", nil))
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != 200 || !strings.HasPrefix(string(body), jsconst.Header+"\n") {
		t.Fatalf("GET /js/wire.gen.js: %d, %.80q", w.Code, body)
	}
	if ct := w.Result().Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("GET /js/wire.gen.js: Content-Type %q", ct)
	}
}

// lineDiff lists the lines only the committed file has (-) and those only the
// generated one has (+), each in file order.
func lineDiff(got, want string) string {
	only := func(a, b string) []string {
		n := map[string]int{}
		for _, l := range strings.Split(b, "\n") {
			n[l]++
		}
		var out []string
		for _, l := range strings.Split(a, "\n") {
			if n[l] > 0 {
				n[l]--
				continue
			}
			out = append(out, l)
		}
		return out
	}
	var b strings.Builder
	for _, l := range only(got, want) {
		fmt.Fprintf(&b, "-\t%s\n", l)
	}
	for _, l := range only(want, got) {
		fmt.Fprintf(&b, "+\t%s\n", l)
	}
	return b.String()
}
