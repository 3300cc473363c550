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

// TestDeviceRemovedAnswers: a 401 "device removed" is ErrDeviceRemoved (and
// ErrUnauthorized) on refresh and on the user endpoints, never
// ErrInvalidRefresh; other 401s keep their kinds; a 404 on RemoveDevice is
// ErrUnknownDevice.
func TestDeviceRemovedAnswers(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	answer := func(status int, msg string) *Client {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(ErrorResponse{Error: msg})
		}))
		t.Cleanup(srv.Close)
		return NewClient(srv.URL, nil)
	}
	removed := answer(401, "device removed: this device was removed from the account; log in with the password on it to use it again")
	invalid := answer(401, "invalid refresh token")
	unknown := answer(404, "not a registered device: you have no device AAAAAAAAAAAA…")
	for _, tt := range []struct {
		name      string
		call      func() error
		want, not error
	}{
		{"refresh, removed", func() error { _, err := removed.Refresh(t.Context(), "alice", "tok", pub); return err }, ErrDeviceRemoved, ErrInvalidRefresh},
		{"refresh, invalid", func() error { _, err := invalid.Refresh(t.Context(), "alice", "tok", pub); return err }, ErrInvalidRefresh, ErrDeviceRemoved},
		{"my devices, removed", func() error { _, err := removed.MyDevices(t.Context(), "cred"); return err }, ErrUnauthorized, ErrInvalidRefresh},
		{"contacts, removed", func() error { _, err := removed.Contacts(t.Context(), "cred"); return err }, ErrDeviceRemoved, ErrUnknownUser},
		{"remove, unknown", func() error { return unknown.RemoveDevice(t.Context(), "cred", pub) }, ErrUnknownDevice, ErrUnknownUser},
		{"remove, no credential", func() error { return unknown.RemoveDevice(t.Context(), "", pub) }, ErrUnauthorized, ErrUnknownDevice},
	} {
		err := tt.call()
		if !errors.Is(err, tt.want) || errors.Is(err, tt.not) {
			t.Errorf("%s: %v, want %v and not %v", tt.name, err, tt.want, tt.not)
		}
	}
}
