package login

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// cheapArgon keeps tests fast; TestArgon2Defaults covers the real defaults.
var cheapArgon = Argon2Params{Time: 1, Memory: 64, Threads: 1}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	cfg   Config
	clock *fakeClock
	srv   *Server
	ts    *httptest.Server
	cl    *loginapi.Client
	h     http.Handler
	net   *nodeNet // the fake supernode network dial-backs reach (newEnv)
}

// newEnv starts a server on a fresh data dir (unless cfg names one) with a
// fake clock and cheap argon2, served over real HTTP, whose dial-backs reach
// the fake supernode network e.net (admitting labAllow unless cfg sets
// DialBackAllow).
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	n := newNodeNet(t)
	n.configure(&cfg)
	e := newEnvNet(t, cfg)
	e.net = n
	return e
}

// newEnvNet is newEnv with cfg's dial-back settings as they are (nil: the
// real network).
func newEnvNet(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{t: t, clock: newClock()}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	if cfg.Argon2 == (Argon2Params{}) {
		cfg.Argon2 = cheapArgon
	}
	// Tests register many users from one address; the registration limits
	// have tests of their own, which set them.
	if cfg.MaxRegistrationsPerAddr == 0 {
		cfg.MaxRegistrationsPerAddr = 1 << 20
	}
	if cfg.MaxRegistrationsPerMinute == 0 {
		cfg.MaxRegistrationsPerMinute = 1 << 20
	}
	e.cfg = cfg
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	e.t.Helper()
	srv, err := New(e.cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.srv = srv
	e.h = srv.Handler()
	e.ts = httptest.NewServer(e.h)
	e.cl = loginapi.NewClient(e.ts.URL, e.ts.Client())
	e.cl = e.cl.WithClock(e.cfg.Now)
}

func (e *env) stop() {
	if e.srv == nil {
		return
	}
	e.ts.Close()
	if err := e.srv.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	e.srv = nil
}

func (e *env) restart() {
	e.t.Helper()
	e.stop()
	e.start()
}

func newKey(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// call sends a request straight to the handler (no network), from remote,
// and returns the status, the decoded JSON body and the headers.
func call(t testing.TB, h http.Handler, method, path, remote string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if method != http.MethodHead {
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %s: answer %d is not JSON: %q", method, path, rec.Code, rec.Body.String())
		}
	}
	return rec.Code, m, rec.Result().Header
}

// captureLogs returns a logger writing JSON lines to a buffer.
func captureLogs() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitGoroutines waits until at most n goroutines run, and fails with a dump
// otherwise.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: got %d, want <= %d\n%s", got, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}
