package web

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"regexp"
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

// TestSecurityHeaders: every answer of the handler, a 404 too, carries the
// page's security headers; /favicon.ico is the SVG icon; directories other
// than / are not listed.
func TestSecurityHeaders(t *testing.T) {
	for _, tt := range []struct {
		path string
		code int
		typ  string
	}{
		{"/", 200, "text/html"},
		{"/js/app.js", 200, "text/javascript"},
		{"/style.css", 200, "text/css"},
		{"/favicon.svg", 200, "image/svg+xml"},
		{"/favicon.ico", 200, "image/svg+xml"},
		{"/js/", 404, ""},
		{"/nope", 404, ""},
	} {
		w := httptest.NewRecorder()
		Handler().ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
		h := w.Result().Header
		if w.Code != tt.code || !strings.HasPrefix(h.Get("Content-Type"), tt.typ) {
			t.Errorf("GET %s: %d %q, want %d %s", tt.path, w.Code, h.Get("Content-Type"), tt.code, tt.typ)
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", tt.path, k, got, want)
			}
		}
	}
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(CSP, d) {
			t.Errorf("the CSP lacks %q: %s", d, CSP)
		}
	}
	if strings.Contains(CSP, "unsafe-") {
		t.Errorf("the CSP allows something unsafe: %s", CSP)
	}
}

// TestNoInlineCode: the page holds no inline script, style or event
// handler, which its CSP would block.
func TestNoInlineCode(t *testing.T) {
	b, err := fs.ReadFile(static, "static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>`), regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`javascript:`),
	} {
		for _, m := range re.FindAllString(page, -1) {
			if strings.HasPrefix(m, "<script") && strings.Contains(m, ` src="`) {
				continue
			}
			t.Errorf("index.html has inline code the CSP blocks: %q", m)
		}
	}
	// Nor do the modules write any.
	js, _ := fs.Glob(static, "static/js/*.js")
	for _, f := range js {
		src, _ := fs.ReadFile(static, f)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", `setAttribute("style"`, `setAttribute("on`} {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s uses %s", f, bad)
			}
		}
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
