package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parley/parley/web/internal/icons"
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
		{"/manifest.webmanifest", 200, "application/manifest+json"},
		{"/sw.js", 200, "text/javascript"},
		{"/icons/icon-192.png", 200, "image/png"},
		{"/icons/ringing.svg", 200, "image/svg+xml"},
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
	// Nor do the modules (and the service worker) write any.
	js, _ := fs.Glob(static, "static/js/*.js")
	sw, _ := fs.Glob(static, "static/*.js")
	js = append(js, sw...)
	for _, f := range js {
		src, _ := fs.ReadFile(static, f)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", `setAttribute("style"`, `setAttribute("on`} {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s uses %s", f, bad)
			}
		}
	}
}

// TestIconsUpToDate: the committed app icons are what package icons draws
// (pixel for pixel: PNG encoders may change their bytes).
func TestIconsUpToDate(t *testing.T) {
	for _, f := range icons.Files {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatalf("web/%s: %v: run go generate ./web/", f.Path, err)
		}
		got, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("web/%s: %v", f.Path, err)
		}
		want := icons.Render(f.Size, f.Maskable)
		if got.Bounds() != want.Bounds() {
			t.Fatalf("web/%s is %v, want %v: run go generate ./web/", f.Path, got.Bounds(), want.Bounds())
		}
		for y := range f.Size {
			for x := range f.Size {
				if color.NRGBAModel.Convert(got.At(x, y)) != want.At(x, y) {
					t.Fatalf("web/%s differs at (%d, %d): run go generate ./web/", f.Path, x, y)
				}
			}
		}
	}
}

// TestManifest: the web manifest is JSON naming the app, its start, and
// icons that exist in the sizes it says; the page links it.
func TestManifest(t *testing.T) {
	b, err := fs.ReadFile(static, "static/manifest.webmanifest")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Name       string `json:"name"`
		ShortName  string `json:"short_name"`
		StartURL   string `json:"start_url"`
		Display    string `json:"display"`
		ThemeColor string `json:"theme_color"`
		Icons      []struct{ Src, Sizes, Type, Purpose string }
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.webmanifest: %v", err)
	}
	if m.Name != "Parley" || m.ShortName == "" || m.StartURL != "/" || m.Display != "standalone" || m.ThemeColor == "" {
		t.Errorf("manifest: %+v", m)
	}
	purposes := map[string]bool{}
	for _, ic := range m.Icons {
		purposes[ic.Purpose] = true
		f, err := static.Open("static/" + ic.Src)
		if err != nil {
			t.Errorf("manifest icon %s: %v", ic.Src, err)
			continue
		}
		if ic.Type == "image/png" {
			cfg, err := png.DecodeConfig(f)
			if err != nil || fmt.Sprintf("%dx%d", cfg.Width, cfg.Height) != ic.Sizes {
				t.Errorf("manifest icon %s: %v, %dx%d, says %s", ic.Src, err, cfg.Width, cfg.Height, ic.Sizes)
			}
		}
		f.Close()
	}
	if !purposes["maskable"] || !purposes["any"] {
		t.Errorf("manifest icons' purposes %v, want any and maskable", purposes)
	}
	page, _ := fs.ReadFile(static, "static/index.html")
	for _, want := range []string{`<link rel="manifest" href="manifest.webmanifest">`, `<meta name="theme-color"`, `<meta name="color-scheme" content="light dark">`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
}

// TestServiceWorkerShell: the service worker keeps every file the page is
// made of (so that it opens offline), and nothing that is not there.
func TestServiceWorkerShell(t *testing.T) {
	src, err := fs.ReadFile(static, "static/sw.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)const SHELL = \[(.*?)\];`).FindSubmatch(src)
	if m == nil {
		t.Fatal("sw.js has no SHELL list")
	}
	var listed []string
	for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(m[1], -1) {
		listed = append(listed, string(q[1]))
	}
	want := []string{"./"}
	fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != "static/sw.js" {
			want = append(want, strings.TrimPrefix(p, "static/"))
		}
		return err
	})
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("sw.js keeps %q\nthe page is made of %q", listed, want)
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
