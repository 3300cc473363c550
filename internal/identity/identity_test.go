package identity

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	loginPub, loginPriv, _ := ed25519.GenerateKey(nil)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	userPub, _, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_800_000_000, 0)
	issue := func(priv ed25519.PrivateKey, nbf, exp time.Time) string {
		tok, err := Issue(priv, Credential{User: "alice", PublicKey: userPub, NotBefore: nbf.Unix(), Expires: exp.Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := issue(loginPriv, now.Add(-time.Minute), now.Add(time.Hour))
	// Flip one character of the payload: the signature no longer matches.
	p, s, _ := strings.Cut(good, ".")
	tampered := p[:10] + string(p[10]^1) + p[11:] + "." + s
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", good, nil},
		{"forged by another key", issue(otherPriv, now, now.Add(time.Hour)), ErrBadSignature},
		{"expired", issue(loginPriv, now.Add(-2*time.Hour), now.Add(-time.Hour)), ErrExpired},
		{"not yet valid", issue(loginPriv, now.Add(time.Hour), now.Add(2*time.Hour)), ErrNotYetValid},
		{"within skew", issue(loginPriv, now.Add(-time.Hour), now.Add(-Skew/2)), nil},
		{"tampered", tampered, ErrMalformed},
		{"no dot", "abc", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"too long", strings.Repeat("a", MaxTokenLen+1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(loginPub, tt.token, now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got, want := c.User, "alice"; got != want {
					t.Errorf("User = %q, want %q", got, want)
				}
				if !c.Key().Equal(userPub) {
					t.Error("public key differs")
				}
				return
			}
			// A tampered payload may fail to parse or fail the signature.
			if !errors.Is(err, tt.want) && !(tt.name == "tampered" && errors.Is(err, ErrBadSignature)) {
				t.Fatalf("Verify err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckUser(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true}, {"a", true}, {"bob.smith-2_x", true}, {"echo", true},
		{"", false}, {"Alice", false}, {"1abc", false}, {"-x", false}, {"a b", false},
		{strings.Repeat("a", MaxUserLen), true}, {strings.Repeat("a", MaxUserLen+1), false},
		{"ålice", false}, {"a/b", false},
	}
	for _, tt := range tests {
		if got := CheckUser(tt.name) == nil; got != tt.ok {
			t.Errorf("CheckUser(%q) ok = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestSignContextSeparatesPurposes(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	sig := SignContext(priv, "parley-attach-v1", []byte("nonce"))
	if !VerifyContext(pub, "parley-attach-v1", []byte("nonce"), sig) {
		t.Fatal("signature does not verify in its own context")
	}
	if VerifyContext(pub, "parley-signal-v1", []byte("nonce"), sig) {
		t.Fatal("signature verifies in another context")
	}
	if VerifyContext(pub, "parley-attach-v1", []byte("nonce2"), sig) {
		t.Fatal("signature verifies for another message")
	}
}

func FuzzParse(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	pub, _, _ := ed25519.GenerateKey(nil)
	tok, _ := Issue(priv, Credential{User: "alice", PublicKey: pub, NotBefore: 1, Expires: 2})
	f.Add(tok)
	f.Add("a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, _, _, err := Parse(s)
		if err != nil {
			return
		}
		if CheckUser(c.User) != nil || len(c.PublicKey) != ed25519.PublicKeySize || c.V != Version {
			t.Fatalf("Parse accepted %+v", c)
		}
	})
}
