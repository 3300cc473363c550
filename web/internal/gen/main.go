// Command gen writes web/static/js/wire.gen.js, the wire constants the page
// shares with the Go packages (see package web/internal/jsconst). Run it with
// `go generate ./web/` from the repository's root (web/web.go runs
// `go run ./internal/gen` in web/), or `go run ./web/internal/gen -o FILE`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/parley/parley/web/internal/jsconst"
)

func main() {
	out := flag.String("o", jsconst.Path, "the file to write (relative to the current directory: web/ under go generate)")
	flag.Parse()
	src, err := jsconst.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if old, err := os.ReadFile(*out); err == nil && bytes.Equal(old, src) {
		return // up to date: leave the file (and its modification time) alone
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
