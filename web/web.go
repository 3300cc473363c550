// Package web holds the browser client: a single-page app (plain JavaScript
// modules and CSS) embedded in the binary so that `parley up`, a login server or
// a supernode can serve it with no outside fetch. See docs/web.md.
package web

// wire.gen.js holds the wire constants the page shares with the Go packages
// (signal, snapi, presence, client/im, identity, ...), generated from them:
// after changing one, run `go generate ./web/`. TestWireGenUpToDate fails
// while the committed file is stale.
//
//go:generate go run ./internal/gen
//
// The app icons of the manifest (static/icons/*.png) are drawn by package
// internal/icons: `go generate ./web/` writes them too; TestIconsUpToDate
// fails when a committed one differs.
//
//go:generate go run ./internal/icongen

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of everything served with the page:
// scripts, styles and images from the page's own origin only (no inline
// script or style, no eval), fetches to the same origin and websockets to any
// supernode (the login server lists supernodes on other hosts; WebRTC's own
// traffic is not governed by CSP), no plugins, no <base>, forms posting only
// to the origin, and no framing by any site.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self'; " +
	"connect-src 'self' ws: wss:; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// SetSecurityHeaders sets the security headers of every response that the
// servers serving the page send (the page, its modules and styles, the API
// and the websocket's upgrade): [CSP], X-Frame-Options DENY (for browsers
// without frame-ancestors), Referrer-Policy no-referrer, nosniff, the
// microphone for the page's origin alone, and a browsing context of its own.
func SetSecurityHeaders(h http.Header) {
	for _, kv := range securityHeaders {
		h.Set(kv[0], kv[1])
	}
}

// DelSecurityHeaders removes them from h: a front end that sets its own
// (a supernode serving the page) drops those of the answers it passes on,
// so that each is sent once.
func DelSecurityHeaders(h http.Header) {
	for _, kv := range securityHeaders {
		h.Del(kv[0])
	}
}

var securityHeaders = [][2]string{
	{"Content-Security-Policy", CSP},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"X-Content-Type-Options", "nosniff"},
	{"Permissions-Policy", "microphone=(self), camera=(), geolocation=(), payment=(), usb=()"},
	{"Cross-Origin-Opener-Policy", "same-origin"},
}

// Secure wraps next so that every response carries the security headers
// ([SetSecurityHeaders]). Login servers and supernodes that serve the page
// wrap their whole handler with it, API included.
func Secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// Handler serves the embedded assets at "/", with the security headers
// ([Secure]): /favicon.ico is the SVG icon, the web manifest is
// application/manifest+json, the service worker is /sw.js (its scope is the
// whole origin), and directories other than "/" are not listed.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The embedded tree is fixed at build time; fs.Sub only fails on a bad path.
		return Secure(http.NotFoundHandler())
	}
	files := http.FileServer(http.FS(sub))
	icon, _ := fs.ReadFile(sub, "favicon.svg")
	return Secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The page is small and changes with the binary: always revalidate.
		w.Header().Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/favicon.ico":
			// Browsers ask for /favicon.ico whatever the page links; they
			// decode an SVG served there.
			w.Header().Set("Content-Type", "image/svg+xml")
			w.Write(icon)
		case r.URL.Path != "/" && strings.HasSuffix(r.URL.Path, "/"):
			http.NotFound(w, r)
		case strings.HasSuffix(r.URL.Path, ".webmanifest"):
			// Not in Go's table of types (nor every system's).
			w.Header().Set("Content-Type", "application/manifest+json")
			files.ServeHTTP(w, r)
		default:
			files.ServeHTTP(w, r)
		}
	}))
}
