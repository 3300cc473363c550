package im

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func TestFileChunks(t *testing.T) {
	data := make([]byte, 3*FileChunk+123)
	rand.Read(data)
	sum := sha256.Sum256(data)
	f, err := NewFileOffer("photo.jpg", int64(len(data)), "image/jpeg", sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if f.Chunks() != 4 {
		t.Fatalf("%d chunks, want 4", f.Chunks())
	}
	var sealed [][]byte
	for i := range f.Chunks() {
		end := min(int64(len(data)), (i+1)*FileChunk)
		c, err := f.SealChunk(i, data[i*FileChunk:end])
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, c)
	}
	var got []byte
	for i, c := range sealed {
		p, err := f.OpenChunk(int64(i), c)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the chunks do not make the file again")
	}
	other, _ := NewFileOffer("x", int64(len(data)), "", sum[:])
	tampered := bytes.Clone(sealed[1])
	tampered[7] ^= 1
	tests := []struct {
		name  string
		f     *FileOffer
		index int64
		c     []byte
		want  error
	}{
		{"a chunk at another index", f, 2, sealed[1], ErrDecrypt},
		{"a chunk of another file", other, 1, sealed[1], ErrDecrypt},
		{"an altered chunk", f, 1, tampered, ErrDecrypt},
		{"the last chunk in the middle", f, 1, sealed[3], ErrBadFile},
		{"past the end", f, 4, sealed[3], ErrBadFile},
	}
	for _, tt := range tests {
		if _, err := tt.f.OpenChunk(tt.index, tt.c); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestFileNames(t *testing.T) {
	tests := []struct {
		name     string
		ok       bool
		safeName string
	}{
		{"photo.jpg", true, "photo.jpg"},
		{"../../etc/passwd", false, ""},
		{"/etc/passwd", false, ""},
		{`C:\Windows\x`, false, ""},
		{"a\x00b", false, ""},
		{"..", false, ""},
		{".", false, ""},
		{"", false, ""},
		{strings.Repeat("a", MaxFileName+1), false, ""},
		{"line\nbreak", false, ""},
		{".bashrc", true, "bashrc"},
		{"CON", true, "_CON"},
		{"nul.txt", true, "_nul.txt"},
		{"what?.txt", true, "what_.txt"},
		{"trailing. ", true, "trailing"},
		{"...", true, "file"},
		{"résumé 2026.pdf", true, "résumé 2026.pdf"},
	}
	for _, tt := range tests {
		err := CheckFileName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckFileName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
		if tt.ok {
			if got := SafeFileName(tt.name); got != tt.safeName {
				t.Errorf("SafeFileName(%q) = %q, want %q", tt.name, got, tt.safeName)
			}
		} else if err != nil && !errors.Is(err, ErrBadFileName) {
			t.Errorf("CheckFileName(%q) = %v, want %v", tt.name, err, ErrBadFileName)
		}
	}
}

func FuzzSafeFileName(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "CON", " .", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckFileName(name) != nil {
			return
		}
		s := SafeFileName(name)
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") || strings.HasPrefix(s, ".") {
			t.Fatalf("SafeFileName(%q) = %q", name, s)
		}
	})
}
