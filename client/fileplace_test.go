package client

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client/im"
)

// TestPlaceFile: a received file gets a name in the download directory and
// nowhere else, never one that is taken (the file there stays as it was),
// and never one longer than a file system takes.
func TestPlaceFile(t *testing.T) {
	long := strings.Repeat("é", 127) + ".txt" // 258 bytes: over MaxFileName
	for _, tt := range []struct {
		offered string   // the offer's name (checked by CheckFileName)
		exists  []string // already in the directory
		want    string
	}{
		{"report.pdf", nil, "report.pdf"},
		{"report.pdf", []string{"report.pdf"}, "report (1).pdf"},
		{"report.pdf", []string{"report.pdf", "report (1).pdf"}, "report (2).pdf"},
		{".bashrc", nil, "bashrc"},
		{"CON", nil, "_CON"},
		{"nul.txt", nil, "_nul.txt"},
		{"a:b*c?.txt", nil, "a_b_c_.txt"},
		{"trailing. ", nil, "trailing"},
		{"...", nil, "file"},
		{"Makefile", []string{"Makefile"}, "Makefile (1)"},
		{long[:254], nil, strings.Repeat("é", 117)},
	} {
		dir := t.TempDir()
		for _, e := range tt.exists {
			if err := os.WriteFile(filepath.Join(dir, e), []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := im.CheckFileName(tt.offered); err != nil {
			t.Fatalf("%q: %v", tt.offered, err)
		}
		part := filepath.Join(dir, ".parley-x.part")
		if err := os.WriteFile(part, []byte("new"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := placeFile(dir, im.SafeFileName(tt.offered), part)
		if err != nil {
			t.Fatalf("%q: %v", tt.offered, err)
		}
		if got != filepath.Join(dir, tt.want) || len(filepath.Base(got)) > maxPlacedName {
			t.Errorf("%q: placed at %q, want %q", tt.offered, filepath.Base(got), tt.want)
		}
		for _, e := range tt.exists {
			if b, _ := os.ReadFile(filepath.Join(dir, e)); string(b) != "mine" {
				t.Errorf("%q: %s was overwritten", tt.offered, e)
			}
		}
	}
}

// TestPreview: a picture's offer carries a small JPEG of it; what is not a
// picture (or does not decode as one) carries none.
func TestPreview(t *testing.T) {
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 800, 600))
	for y := range 600 {
		for x := range 800 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 100, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, typ string
		data      []byte
		w, h      int // 0: no preview
	}{
		{"pic.png", "image/png", b.Bytes(), 160, 120},
		{"fake.jpg", "image/jpeg", []byte("not a picture at all"), 0, 0},
		{"pic.bin", "application/octet-stream", b.Bytes(), 0, 0},
	} {
		p := filepath.Join(dir, tt.name)
		if err := os.WriteFile(p, tt.data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got := preview(f, tt.typ, int64(len(tt.data)))
		f.Close()
		if tt.w == 0 {
			if got != nil {
				t.Errorf("%s: a preview of %d bytes, want none", tt.name, len(got))
			}
			continue
		}
		c, err := jpeg.DecodeConfig(bytes.NewReader(got))
		if err != nil || c.Width != tt.w || c.Height != tt.h || len(got) > im.MaxPreview {
			t.Errorf("%s: preview %dx%d, %d bytes (%v); want a %dx%d JPEG", tt.name, c.Width, c.Height, len(got), err, tt.w, tt.h)
		}
	}
}

// TestPruneStates: the state of a transfer finished more than 30 days ago
// goes; a recent one, or one not finished, stays.
func TestPruneStates(t *testing.T) {
	home := t.TempDir()
	now := time.Now()
	offer := func() *im.FileOffer {
		o, err := im.NewFileOffer("a.txt", 10, "", make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	type st struct {
		name     string
		f        *inFile
		age      time.Duration
		wantKept bool
	}
	cases := []st{
		{"old done", &inFile{V: 1, Offer: offer(), From: "alice", Done: true}, 40 * 24 * time.Hour, false},
		{"old failed", &inFile{V: 1, Offer: offer(), From: "alice", Failed: "x"}, 40 * 24 * time.Hour, false},
		{"old unfinished", &inFile{V: 1, Offer: offer(), From: "alice"}, 40 * 24 * time.Hour, true},
		{"recent done", &inFile{V: 1, Offer: offer(), From: "alice", Done: true}, time.Hour, true},
	}
	for _, c := range cases {
		p := fileStatePath(home, "in", c.f.key())
		if err := saveState(p, c.f); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, now.Add(-c.age), now.Add(-c.age))
	}
	pruneStates(home, now)
	for _, c := range cases {
		_, err := os.Stat(fileStatePath(home, "in", c.f.key()))
		if kept := err == nil; kept != c.wantKept {
			t.Errorf("%s: kept %v, want %v", c.name, kept, c.wantKept)
		}
	}
}
