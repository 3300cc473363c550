package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckWebLoginURL(t *testing.T) {
	tests := []struct {
		url  string
		want error
	}{
		{"http://127.0.0.1:8080", nil},
		{"https://login.example.net", nil},
		{"ws://127.0.0.1:8080", ErrConfig},
		{"127.0.0.1:8080", ErrConfig},
		{"http://", ErrConfig},
		{"", ErrConfig},
	}
	for _, tt := range tests {
		if got := CheckWebLoginURL(tt.url); !errors.Is(got, tt.want) {
			t.Errorf("CheckWebLoginURL(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

// The web front serves the page, passes /api/ on to the login server with
// the browser's address appended, and the rest to the supernode.
func TestWebFront(t *testing.T) {
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "login "+r.URL.Path+" for "+r.Header.Get("X-Forwarded-For"))
	}))
	defer login.Close()
	dead := httptest.NewServer(nil)
	dead.Close()
	sn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "supernode "+r.URL.Path) })
	tests := []struct {
		name, loginURL, path string
		wantStatus           int
		wantBody             string // a part of it
	}{
		{"page", login.URL, "/", http.StatusOK, "<"},
		{"api", login.URL, "/api/v1/key", http.StatusOK, "login /api/v1/key for 127.0.0.1"},
		{"websocket", login.URL, "/v1/ws", http.StatusOK, "supernode /v1/ws"},
		{"health", login.URL, "/healthz", http.StatusOK, "supernode /healthz"},
		{"login server down", dead.URL, "/api/v1/key", http.StatusBadGateway, `{"error":"login server unreachable"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := WebFront(sn, tt.loginURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("GET %s: %d %q, want %d with %q", tt.path, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if _, err := WebFront(sn, "ws://127.0.0.1:1", nil); !errors.Is(err, ErrConfig) {
		t.Errorf("WebFront with a ws:// login URL: %v, want ErrConfig", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func() error
	}{
		{"supernode without login URL", func() error { return RunSupernode(ctx, SupernodeConfig{}) }},
		{"external relays without the secret", func() error {
			return RunSupernode(ctx, SupernodeConfig{LoginURL: "http://127.0.0.1:1", ExternalRelays: []string{"192.0.2.1:3478"}})
		}},
		{"standalone relay without a secret", func() error { return RunRelay(ctx, RelayConfig{IP: net.IPv4(127, 0, 0, 1)}) }},
		{"relay TLS without a certificate", func() error {
			_, err := StartRelay(RelayConfig{TLS: "127.0.0.1:0", IP: net.IPv4(127, 0, 0, 1), Secret: []byte("0123456789abcdef")}, "127.0.0.1")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); !errors.Is(err, ErrConfig) {
				t.Errorf("got %v, want ErrConfig", err)
			}
		})
	}
}

// Up runs a whole network: the echo user attaches to the supernode, and
// everything stops when the context ends.
func TestUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan Network, 1)
	res := make(chan error, 1)
	go func() {
		res <- Up(ctx, UpConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", SupernodeListen: "127.0.0.1:0",
			TURN: "127.0.0.1:0", OnUp: func(n Network) { up <- n }})
	}()
	var n Network
	select {
	case n = <-up:
	case err := <-res:
		t.Fatalf("Up returned %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Up never called OnUp")
	}
	if !strings.HasPrefix(n.LoginURL, "http://127.0.0.1:") || !strings.HasPrefix(n.SupernodeAddr, "127.0.0.1:") {
		t.Fatalf("OnUp(%+v), want addresses on 127.0.0.1", n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for online := 0; online < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the echo user never attached to the supernode")
		}
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get("http://" + n.SupernodeAddr + "/healthz")
		if err != nil {
			continue
		}
		var h struct{ Online int }
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		online = h.Online
	}
	if resp, err := http.Get(n.LoginURL + "/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the web page at %s/: %v", n.LoginURL, err)
	} else {
		resp.Body.Close()
	}
	cancel()
	select {
	case err := <-res:
		if err != nil {
			t.Errorf("Up = %v after its context ended, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Up did not return 15 s after its context ended")
	}
}
