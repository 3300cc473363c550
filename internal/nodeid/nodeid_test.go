package nodeid

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	srv := httptest.NewServer(nil)
	defer srv.Close()
	name := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		desc    string
		answer  http.Handler
		url     string
		want    ed25519.PublicKey
		wantErr error
	}{
		{"ok", Handler(name, key), "ws://" + name + "/v1/ws", nil, nil},
		{"ok with expected key", Handler(name, key), "http://" + name, key.Public().(ed25519.PublicKey), nil},
		{"another key", Handler(name, key), "ws://" + name + "/v1/ws", other.Public().(ed25519.PublicKey), ErrWrongKey},
		{"another name", Handler("198.51.100.1:8081", key), "ws://" + name + "/v1/ws", nil, ErrWrongName},
		{"not a node", http.NotFoundHandler(), "ws://" + name + "/v1/ws", nil, ErrUnreachable},
		{"redirect", http.RedirectHandler("http://example.com/", http.StatusFound), "ws://" + name, nil, ErrUnreachable},
		{"garbage", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{")) }), "ws://" + name, nil, ErrBadAnswer},
		{"bad scheme", Handler(name, key), "ftp://" + name, nil, ErrBadURL},
		{"no port", Handler(name, key), "ws://example.com/v1/ws", nil, ErrBadURL},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			srv.Config.Handler = tt.answer
			got, err := Check(context.Background(), nil, tt.url, tt.want)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Check: err %v, want %v", err, tt.wantErr)
			}
			if err == nil && !got.Equal(key.Public()) {
				t.Fatalf("Check returned another key")
			}
		})
	}
}

func TestBadSignatureRefused(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	srv := httptest.NewServer(nil)
	defer srv.Close()
	name := strings.TrimPrefix(srv.URL, "http://")
	// A node that replays a signature made for another nonce.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.RawQuery = "nonce=" + strings.Repeat("A", 43)
		Handler(name, key).ServeHTTP(w, r)
	})
	if _, err := Check(context.Background(), nil, "ws://"+name, nil); !errors.Is(err, ErrBadSig) {
		t.Fatalf("Check: err %v, want ErrBadSig", err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node-key")
	k1, err := LoadOrCreate(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreate(p)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("second load gave another key")
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(`{"v":1,"name":"a:1","key":"AAAA","sig":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnswer(b)
		if err == nil && (len(a.Key) != ed25519.PublicKeySize || a.Name == "") {
			t.Fatalf("accepted %q", b)
		}
	})
}
