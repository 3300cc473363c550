package client

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
)

const testSDP = "v=0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 AB:CD:EF\r\n"

func TestSignalVerify(t *testing.T) {
	loginPub, loginPriv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	cred := func(user string) (string, ed25519.PrivateKey) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		tok, err := identity.Issue(loginPriv, identity.Credential{User: user, PublicKey: pub, NotBefore: now.Unix() - 60, Expires: now.Unix() + 3600})
		if err != nil {
			t.Fatal(err)
		}
		return tok, priv
	}
	aliceTok, aliceKey := cred("alice")
	malloryTok, malloryKey := cred("mallory")
	offer := func() *Signal {
		s := &Signal{Kind: KindOffer, CallID: "0123456789abcdef", From: "alice", To: "bob", Device: "00112233aabbccdd", SDP: testSDP}
		s.sign(aliceKey, aliceTok, now, 7)
		return s
	}
	tests := []struct {
		name    string
		mutate  func(*Signal)
		from    string
		wantErr bool
	}{
		{"genuine", func(*Signal) {}, "alice", false},
		{"fingerprint rewritten", func(s *Signal) { s.SDP = strings.ReplaceAll(s.SDP, "AB:CD:EF", "AB:CD:00") }, "alice", true},
		{"other candidates are fine", func(s *Signal) { s.SDP += "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n" }, "alice", false},
		{"redirected to carol", func(s *Signal) { s.To = "carol" }, "alice", true},
		{"supernode claims another sender", func(*Signal) {}, "mallory", true},
		{"mallory's credential on alice's signal", func(s *Signal) { s.Credential = malloryTok }, "alice", true},
		{"re-signed by mallory as alice", func(s *Signal) { s.sign(malloryKey, aliceTok, now, 7) }, "alice", true},
		{"timestamp changed", func(s *Signal) { s.TS++ }, "alice", true},
		{"sequence changed", func(s *Signal) { s.Seq++ }, "alice", true},
		{"signed long ago", func(s *Signal) { s.sign(aliceKey, aliceTok, now.Add(-3*time.Minute), 7) }, "alice", true},
		{"signed in the future", func(s *Signal) { s.sign(aliceKey, aliceTok, now.Add(3*time.Minute), 7) }, "alice", true},
		{"kind changed", func(s *Signal) { s.Kind = KindAnswer }, "alice", true},
		{"no fingerprint at all", func(s *Signal) { s.SDP = "v=0\r\n"; s.sign(aliceKey, aliceTok, now, 7) }, "alice", true},
		{"long reason cut on a character boundary", func(s *Signal) { s.Reason = strings.Repeat("é", 400); s.sign(aliceKey, aliceTok, now, 7) }, "alice", false},
		{"wrong version", func(s *Signal) { s.V = 1 }, "alice", true},
		{"device changed", func(s *Signal) { s.Device = "ffffffffffffffff" }, "alice", true},
		{"genuine re-offer", func(s *Signal) { s.Kind = KindReoffer; s.sign(aliceKey, aliceTok, now, 7) }, "alice", false},
		{"re-offer turned into an offer", func(s *Signal) { s.Kind = KindReoffer; s.sign(aliceKey, aliceTok, now, 7); s.Kind = KindOffer }, "alice", true},
		{"re-answer without fingerprint", func(s *Signal) { s.Kind = KindReanswer; s.SDP = "v=0\r\n"; s.sign(aliceKey, aliceTok, now, 7) }, "alice", true},
		{"restart with a changed reason", func(s *Signal) {
			s.Kind, s.SDP, s.Reason = KindRestart, "", "ICE disconnected"
			s.sign(aliceKey, aliceTok, now, 7)
			s.Reason = "hangup"
		}, "alice", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := offer()
			tt.mutate(s)
			// What the receiver checks is what came over the wire.
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if s, err = decodeSignal(b); err != nil {
				t.Fatal(err)
			}
			err = s.verify(loginPub, tt.from, "bob", now)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("verify err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadSignal) {
				t.Errorf("err = %v, want ErrBadSignal", err)
			}
		})
	}
}

func TestFingerprints(t *testing.T) {
	got := Fingerprints("a=fingerprint:sha-256  AB:CD\r\na=fingerprint:sha-256 ab:cd\na=fingerprint:sha-1 00\r\n")
	want := []string{"sha-1 00", "sha-256 ab:cd"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Fingerprints = %q, want %q", got, want)
	}
}

func FuzzDecodeSignal(f *testing.F) {
	b, _ := json.Marshal(Signal{V: SignalVersion, Kind: KindOffer, CallID: "0123456789abcdef", Device: "00", SDP: testSDP})
	f.Add(b)
	f.Add([]byte(`{"kind":"hangup","call_id":"x"}`))
	f.Add([]byte(`null`))
	loginPub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSignal(b)
		if err != nil {
			return
		}
		// Whatever decodes must be rejected by verification, never panic it.
		if s.verify(loginPub, "alice", "bob", time.Now()) == nil {
			t.Fatal("unsigned fuzz input verified")
		}
	})
}

func TestReplayedSignalIsRefused(t *testing.T) {
	s := &Session{seen: map[string]time.Time{}}
	now := time.Now()
	sig := &Signal{From: "alice", TS: now.UnixMilli(), Seq: 3}
	if !s.firstSight(sig, now) {
		t.Fatal("first sight refused")
	}
	if s.firstSight(&Signal{From: "alice", TS: sig.TS, Seq: 3}, now) {
		t.Fatal("replay accepted")
	}
	if !s.firstSight(&Signal{From: "alice", TS: sig.TS, Seq: 4}, now) {
		t.Fatal("next signal refused")
	}
	if !s.firstSight(&Signal{From: "bob", TS: sig.TS, Seq: 3}, now) {
		t.Fatal("another sender's signal refused")
	}
}
