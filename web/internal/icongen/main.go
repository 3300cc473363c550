// Command icongen writes the page's app icons (package web/internal/icons)
// as PNG files under web/static/icons/. Run it with `go generate ./web/`
// from the repository's root (web/web.go runs `go run ./internal/icongen`
// in web/).
package main

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"

	"github.com/parley/parley/web/internal/icons"
)

func main() {
	for _, f := range icons.Files {
		var b bytes.Buffer
		enc := png.Encoder{CompressionLevel: png.BestCompression}
		if err := enc.Encode(&b, icons.Render(f.Size, f.Maskable)); err != nil {
			fmt.Fprintln(os.Stderr, "icongen:", err)
			os.Exit(1)
		}
		if old, err := os.ReadFile(f.Path); err == nil && bytes.Equal(old, b.Bytes()) {
			continue // up to date
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "icongen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(f.Path, b.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "icongen:", err)
			os.Exit(1)
		}
	}
}
