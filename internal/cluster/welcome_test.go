package cluster

import (
	"strings"
	"testing"
)

func TestDBHasPassword(t *testing.T) {
	for _, tt := range []struct {
		dsn  string
		want bool
	}{
		{"postgres://parley:hunter2@db/parley", true},
		{"postgresql://parley@db/parley?password=hunter2", true},
		{"host=db user=parley password=hunter2", true},
		{"postgres://parley@db/parley", false},
		{"host=db user=parley", false},
		{"/var/lib/parley/login.db", false},
		{"", false},
	} {
		if got := DBHasPassword(tt.dsn); got != tt.want {
			t.Errorf("DBHasPassword(%q) = %v, want %v", tt.dsn, got, tt.want)
		}
	}
}

func TestPrintWelcome(t *testing.T) {
	var b strings.Builder
	Network{LoginURL: "http://127.0.0.1:8080", SupernodeAddr: "127.0.0.1:8081"}.PrintWelcome(&b, "./parley-data")
	for _, want := range []string{"http://127.0.0.1:8080/", "ws://127.0.0.1:8081/v1/ws", " register alice", " call echo --play", "accounts stay in ./parley-data"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("welcome text lacks %q:\n%s", want, b.String())
		}
	}
}
