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

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the embedded assets at "/".
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The embedded tree is fixed at build time; fs.Sub only fails on a bad path.
		return http.NotFoundHandler()
	}
	return http.FileServer(http.FS(sub))
}
