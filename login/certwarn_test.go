package login

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// recordLog keeps the records a logger gets.
type recordLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recordLog) WithGroup(string) slog.Handler            { return l }
func (l *recordLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}

// count returns the records with message msg at level lvl, and the value of
// attribute key in the last of them.
func (l *recordLog) count(msg string, lvl slog.Level, key string) (n int, val string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Message == msg && r.Level == lvl {
			n++
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == key {
					val = a.Value.String()
				}
				return true
			})
		}
	}
	return n, val
}

// TestDialBackCertificateProblemsAreSaidOnce: a supernode whose certificate
// the login server refuses (self-signed, or for another name) is told why in
// the heartbeat's answer, every time; the login server logs the problem as
// a warning once per supernode and problem, however often the supernode
// retries (it used to log an x509 error at every heartbeat, every 1–2 s).
func TestDialBackCertificateProblemsAreSaidOnce(t *testing.T) {
	const msg = "supernode refused: its TLS certificate is not accepted"
	for _, tt := range []struct {
		name, addr string
		trustLab   bool // the login server trusts the lab's certificate
		want       string
	}{
		{"self-signed", "wss://example.com:443/v1/ws", false, "is self-signed"},
		{"another name", "wss://sn.example.org:443/v1/ws", true, "is for example.com, *.example.com, 127.0.0.1, ::1, not sn.example.org"},
		{"an IP address", "wss://203.0.113.5:443/v1/ws", true, "is for example.com, *.example.com, 127.0.0.1, ::1, and the URL has the IP address 203.0.113.5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &recordLog{}
			n := newNodeNet(t)
			cfg := Config{Logger: slog.New(logs)}
			n.configure(&cfg)
			if !tt.trustLab {
				cfg.DialBackTLS = nil // the system's roots: the test certificate is nobody's
			}
			e := newEnvNet(t, cfg)
			e.net = n
			for range 5 {
				err := e.hb(tt.addr)
				if err == nil || !strings.Contains(err.Error(), "its TLS certificate "+tt.want) ||
					!strings.Contains(err.Error(), "not an IP address") {
					t.Fatalf("heartbeat: %v, want the certificate's problem %q and what it must be", err, tt.want)
				}
			}
			warns, problem := logs.count(msg, slog.LevelWarn, "problem")
			debugs, _ := logs.count(msg, slog.LevelDebug, "problem")
			if warns != 1 || debugs != 4 || !strings.HasPrefix(problem, tt.want) {
				t.Errorf("5 refused heartbeats: %d warnings (%q), %d at debug; want 1 warning saying %q, then debug", warns, problem, debugs, tt.want)
			}
		})
	}
}
