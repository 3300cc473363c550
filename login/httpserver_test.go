package login

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestHTTPServerDefaults: the http.Server the login server hands out has
// every timeout set.
func TestHTTPServerDefaults(t *testing.T) {
	e := newEnv(t, Config{})
	hs := e.srv.HTTPServer()
	if hs.Handler == nil {
		t.Fatal("no handler")
	}
	for name, got := range map[string]time.Duration{
		"ReadHeaderTimeout": hs.ReadHeaderTimeout,
		"ReadTimeout":       hs.ReadTimeout,
		"WriteTimeout":      hs.WriteTimeout,
		"IdleTimeout":       hs.IdleTimeout,
	} {
		if got <= 0 {
			t.Errorf("%s not set", name)
		}
	}
	if hs.ReadHeaderTimeout != DefaultReadHeaderTimeout || hs.ReadTimeout != DefaultReadTimeout ||
		hs.WriteTimeout != DefaultWriteTimeout || hs.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("timeouts %v %v %v %v, want the defaults", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout)
	}
	if hs.MaxHeaderBytes != MaxHeaderBytes {
		t.Errorf("MaxHeaderBytes %d, want %d", hs.MaxHeaderBytes, MaxHeaderBytes)
	}
}

// closedWithin reports whether the server closes c (a read returns) within d.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// TestHTTPServerTimeouts: idle keep-alive connections and slow bodies are
// cut, and one address holds at most MaxConnsPerAddr connections.
func TestHTTPServerTimeouts(t *testing.T) {
	e := newEnv(t, Config{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: 400 * time.Millisecond,
		WriteTimeout: 2 * time.Second, IdleTimeout: 300 * time.Millisecond, MaxConnsPerAddr: 3})
	hs := e.srv.HTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = e.srv.LimitListener(ln)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	addr := ln.Addr().String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Idle keep-alive: one request, then nothing.
	idle := dial()
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	if !closedWithin(t, idle, 3*time.Second) {
		t.Errorf("idle keep-alive connection still open after 3 s (IdleTimeout 300 ms)")
	}

	// Slow body: headers promise 100 bytes, one arrives.
	slow := dial()
	io.WriteString(slow, "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	if !closedWithin(t, slow, 3*time.Second) {
		t.Errorf("slow-body connection still open after 3 s (ReadTimeout 400 ms)")
	}

	// Slow headers.
	hdr := dial()
	io.WriteString(hdr, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	if !closedWithin(t, hdr, 3*time.Second) {
		t.Errorf("slow-header connection still open after 3 s")
	}

	// Per-address cap: three held connections, the fourth is closed at once.
	// (First wait for the server to let go of the connections above: it
	// closes a connection a moment after its last answer.)
	count := func() int {
		return ln.(interface{ Count(netip.Addr) int }).Count(netip.MustParseAddr("127.0.0.1"))
	}
	for deadline := time.Now().Add(3 * time.Second); count() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 {
		c := dial()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // incomplete: held open
	}
	for deadline := time.Now().Add(3 * time.Second); count() < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fourth := dial()
	if !closedWithin(t, fourth, 100*time.Millisecond) {
		t.Errorf("fourth connection from one address not closed at once")
	}
	// Once they are gone, new connections are served again.
	// ReadHeaderTimeout closes the three.
	var b []byte
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ok := dial()
		io.WriteString(ok, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ = io.ReadAll(ok)
		if strings.HasPrefix(string(b), "HTTP/1.1 200") {
			break
		}
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		t.Errorf("after the held connections closed: %q", b)
	}
}
