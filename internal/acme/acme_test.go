package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestNewRefusesWhatNoCAIssues(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"an IP address", Config{Domain: "192.0.2.1", CacheDir: t.TempDir()}},
		{"no dot", Config{Domain: "localhost", CacheDir: t.TempDir()}},
		{"no domain", Config{CacheDir: t.TempDir()}},
		{"no cache", Config{Domain: "sn.example.net"}},
		{"a plain http directory", Config{Domain: "sn.example.net", CacheDir: t.TempDir(), DirectoryURL: "http://ca.example/dir"}},
	} {
		if _, err := New(tt.cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tt.name, err)
		}
	}
}

// TestRenewAt: two thirds into the lifetime, for Let's Encrypt's 90 days
// and for a test CA's 30 seconds alike.
func TestRenewAt(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, life := range []time.Duration{90 * 24 * time.Hour, 30 * time.Second} {
		got := RenewAt(&x509.Certificate{NotBefore: start, NotAfter: start.Add(life)})
		if want := start.Add(life * 2 / 3); !got.Equal(want) {
			t.Errorf("lifetime %v: renew at %v, want %v", life, got, want)
		}
	}
}

// certFor makes a certificate for domain valid from now for life.
func certFor(t *testing.T, domain string, life time.Duration) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(life)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestCacheServesAfterARestart: a certificate saved in the cache is served
// by the next manager at once (a restart does not ask the CA); an expired
// one is not.
func TestCacheServesAfterARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Domain: "sn.example.net", CacheDir: dir, DirectoryURL: "https://ca.example/dir"}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Certificate() != nil {
		t.Fatal("a certificate before any was obtained")
	}
	if err := m.saveCert(certFor(t, "sn.example.net", time.Hour)); err != nil {
		t.Fatal(err)
	}
	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-m2.Ready():
	default:
		t.Fatal("the cached certificate is not served")
	}
	c, err := m2.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: "sn.example.net"})
	if err != nil || c.Leaf.SerialNumber.Int64() != 7 {
		t.Fatalf("GetCertificate: %v, %v", c, err)
	}
	m2.saveCert(certFor(t, "sn.example.net", -time.Second))
	if m3, _ := New(cfg); m3.Certificate() != nil {
		t.Error("an expired cached certificate is served")
	}
	// Another CA's cache is another directory.
	if m4, _ := New(Config{Domain: "sn.example.net", CacheDir: dir, DirectoryURL: "https://other.example/dir"}); m4.Certificate() != nil {
		t.Error("a certificate cached for another CA is served")
	}
}

// TestHTTP01Handler answers only the challenges pending, and passes the
// rest on.
func TestHTTP01Handler(t *testing.T) {
	m, err := New(Config{Domain: "sn.example.net", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.tokens["/.well-known/acme-challenge/tok"] = "tok.thumb"
	h := m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tt := range []struct {
		path string
		code int
		body string
	}{
		{"/.well-known/acme-challenge/tok", 200, "tok.thumb"},
		{"/.well-known/acme-challenge/other", 404, ""},
		{"/", http.StatusTeapot, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rec.Code != tt.code || (tt.body != "" && rec.Body.String() != tt.body) {
			t.Errorf("GET %s: %d %q, want %d %q", tt.path, rec.Code, rec.Body, tt.code, tt.body)
		}
	}
}
