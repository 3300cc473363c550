package snapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// scriptedSupernode answers the attach handshake with the frames script
// returns (given the dialled host), then reads (answering the client's
// close) until the connection ends.
func scriptedSupernode(t *testing.T, script func(host string) []Frame) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		nonce := make([]byte, 32)
		rand.Read(nonce)
		if writeFrame(ctx, ws, Frame{Type: TypeChallenge, Nonce: nonce, Server: r.Host}) != nil {
			return
		}
		if f, err := readFrame(ctx, ws); err != nil || f.Type != TypeAttach {
			return
		}
		for _, f := range script(r.Host) {
			if writeFrame(ctx, ws, f) != nil {
				return
			}
		}
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestDialKeepsPushesThatOvertakeTheReply: a supernode makes a session
// known a moment before its attach reply goes, so a presence push or a
// delivery can come first. Dial keeps them (up to maxEarly) and delivers
// them, in order, before anything read after the reply.
func TestDialKeepsPushesThatOvertakeTheReply(t *testing.T) {
	attached := Frame{Type: TypeAttached, User: "alice", Session: "s1"}
	push := func(from string) Frame { return Frame{Type: TypePresence, From: from, Status: "online"} }
	deliver := func(from string) Frame { return Frame{Type: TypeDeliver, From: from, Payload: []byte(`{"n":1}`)} }
	many := make([]Frame, 0, maxEarly+1)
	for range maxEarly + 1 {
		many = append(many, push("flood"))
	}
	tests := []struct {
		name    string
		frames  []Frame
		wantErr error    // nil: Dial succeeds
		want    []string // Type:From of what Deliver gets, in order
	}{
		{name: "reply first", frames: []Frame{attached, push("bob")}, want: []string{"presence:bob"}},
		{name: "a push and a delivery overtake the reply",
			frames: []Frame{push("bob"), deliver("carol"), attached, push("dave")},
			want:   []string{"presence:bob", "deliver:carol", "presence:dave"}},
		{name: "more than maxEarly before the reply", frames: append(many, attached), wantErr: ErrBadFrame},
		{name: "something else before the reply", frames: []Frame{{Type: TypeAck, ID: "1"}, attached}, wantErr: ErrBadFrame},
		{name: "refused after a push", frames: []Frame{push("bob"), {Type: TypeError, Code: CodeAuth, Error: "no"}}, wantErr: ErrAuth},
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := scriptedSupernode(t, func(string) []Frame { return tt.frames })
			got := make(chan string, 100)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, DialConfig{URL: url, Credential: "token", Key: key,
				Deliver: func(f Frame) { got <- f.Type + ":" + f.From }})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Dial: err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if c.Session() != "s1" {
				t.Errorf("session %q, want s1", c.Session())
			}
			var delivered []string
			for len(delivered) < len(tt.want) {
				select {
				case s := <-got:
					delivered = append(delivered, s)
				case <-ctx.Done():
					t.Fatalf("delivered %v, want %v", delivered, tt.want)
				}
			}
			if !slices.Equal(delivered, tt.want) {
				t.Errorf("delivered %v, want %v", delivered, tt.want)
			}
		})
	}
}
