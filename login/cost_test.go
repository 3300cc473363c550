package login

import (
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// processCPU is this process's CPU time (user and system), from /proc.
func processCPU(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		b.Skip("needs /proc: ", err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // clock ticks of 1/100 s
}

// BenchmarkLoginServerCost reports what the login server's steady work
// costs on SQLite: the CPU time of one credential renewal (the refresh every
// client makes two thirds into each 1-hour credential; the client's half of
// the HTTP exchange is included, so it is an upper bound), and one login
// with the default argon2id parameters (19 MiB, 2 passes).
//
//	go test -run '^$' -bench LoginServerCost -benchtime 1x ./login/
func BenchmarkLoginServerCost(b *testing.B) {
	for range b.N {
		srv, err := New(Config{DataDir: b.TempDir()}) // the default argon2id parameters
		if err != nil {
			b.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		cl := loginapi.NewClient(ts.URL, nil)
		pub := newKey(b)
		if err := cl.Register(b.Context(), "costuser", "cost-password"); err != nil {
			b.Fatal(err)
		}
		const logins, refreshes = 20, 2000
		c0 := processCPU(b)
		var tok string
		for range logins {
			r, err := cl.Login(b.Context(), "costuser", "cost-password", pub)
			if err != nil {
				b.Fatal(err)
			}
			tok = r.RefreshToken
		}
		c1 := processCPU(b)
		for range refreshes {
			if _, err := cl.Refresh(b.Context(), "costuser", tok, pub); err != nil {
				b.Fatal(err)
			}
		}
		c2 := processCPU(b)
		b.ReportMetric(float64((c1-c0)/logins)/1e6, "ms-CPU/login")
		b.ReportMetric(float64((c2-c1)/refreshes)/1e3, "µs-CPU/refresh")
		ts.Close()
		srv.Close()
	}
}
