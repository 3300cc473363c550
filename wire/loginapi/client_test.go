package loginapi

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
)

// A server answering a login with somebody else's credential, or one for
// another key, is caught by the client.
func TestClientRejectsForeignCredential(t *testing.T) {
	loginPub, loginPriv, _ := ed25519.GenerateKey(nil)
	myPub, _, _ := ed25519.GenerateKey(nil)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	for _, tc := range []struct {
		name string
		user string
		key  ed25519.PublicKey
		want error
	}{
		{"another user", "mallory", myPub, ErrServer},
		{"another key", "alice", otherPub, ErrServer},
		{"mine", "alice", myPub, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := identity.Issue(loginPriv, identity.Credential{User: tc.user, PublicKey: tc.key,
				V: 1, Alg: identity.Alg, NotBefore: now.Add(-time.Minute).Unix(), Expires: now.Add(time.Hour).Unix()})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode(LoginResponse{User: tc.user, Credential: tok, LoginKey: loginPub})
			}))
			defer srv.Close()
			_, err = NewClient(srv.URL, nil).Login(t.Context(), "alice", "password1", myPub)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}
