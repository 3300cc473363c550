package signal

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
		s.Sign(aliceKey, aliceTok, now, 7)
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
		{"re-signed by mallory as alice", func(s *Signal) { s.Sign(malloryKey, aliceTok, now, 7) }, "alice", true},
		{"timestamp changed", func(s *Signal) { s.TS++ }, "alice", true},
		{"sequence changed", func(s *Signal) { s.Seq++ }, "alice", true},
		{"signed long ago", func(s *Signal) { s.Sign(aliceKey, aliceTok, now.Add(-3*time.Minute), 7) }, "alice", true},
		{"signed in the future", func(s *Signal) { s.Sign(aliceKey, aliceTok, now.Add(3*time.Minute), 7) }, "alice", true},
		{"kind changed", func(s *Signal) { s.Kind = KindAnswer }, "alice", true},
		{"no fingerprint at all", func(s *Signal) { s.SDP = "v=0\r\n"; s.Sign(aliceKey, aliceTok, now, 7) }, "alice", true},
		{"long reason cut on a character boundary", func(s *Signal) { s.Reason = strings.Repeat("é", 400); s.Sign(aliceKey, aliceTok, now, 7) }, "alice", false},
		{"wrong version", func(s *Signal) { s.V = 1 }, "alice", true},
		{"device changed", func(s *Signal) { s.Device = "ffffffffffffffff" }, "alice", true},
		{"genuine re-offer", func(s *Signal) { s.Kind = KindReoffer; s.Sign(aliceKey, aliceTok, now, 7) }, "alice", false},
		{"re-offer turned into an offer", func(s *Signal) { s.Kind = KindReoffer; s.Sign(aliceKey, aliceTok, now, 7); s.Kind = KindOffer }, "alice", true},
		{"re-answer without fingerprint", func(s *Signal) { s.Kind = KindReanswer; s.SDP = "v=0\r\n"; s.Sign(aliceKey, aliceTok, now, 7) }, "alice", true},
		{"restart with a changed reason", func(s *Signal) {
			s.Kind, s.SDP, s.Reason = KindRestart, "", "ICE disconnected"
			s.Sign(aliceKey, aliceTok, now, 7)
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
			if s, err = Decode(b); err != nil {
				t.Fatal(err)
			}
			err = s.Verify(loginPub, tt.from, "bob", now)
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
	b, _ := json.Marshal(Signal{V: Version, Kind: KindOffer, CallID: "0123456789abcdef", Device: "00", SDP: testSDP})
	f.Add(b)
	f.Add([]byte(`{"kind":"hangup","call_id":"x"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":3,"kind":"probe","call_id":"0123456789abcdef","device":"d","rtts":{"198.18.0.1:3478":1200}}`))
	f.Add([]byte(`{"v":3,"kind":"path","call_id":"0123456789abcdef","device":"d","path":{"local":"relay","relay_protocol":"tcp","relay":"198.18.0.1:3478","remote_relay":true}}`))
	f.Add([]byte(`{"v":3,"kind":"candidate","call_id":"0123456789abcdef","device":"d","candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`))
	f.Add([]byte(`{"v":3,"kind":"answered","call_id":"0123456789abcdef","device":"d","answerer":"e"}`))
	loginPub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes is within the limits, signs and encodes again.
		if len(s.RTTs) > MaxRTTs || (s.Candidate != nil && len(s.Candidate.Candidate) > MaxCandidate) || len(s.Reason) > MaxReason {
			t.Fatalf("accepted a signal over its limits: %+v", s)
		}
		_ = s.SignedMessage()
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		// Whatever decodes must be rejected by verification, never panic it.
		if s.Verify(loginPub, "alice", "bob", time.Now()) == nil {
			t.Fatal("unsigned fuzz input verified")
		}
	})
}

// Every typed field is covered by the signature: a supernode that changes a
// path view, a relay's round trip, a trickled candidate (even turning an
// absent sdpMid into an empty one), a status or a restart's name is caught.
func TestTypedFieldsAreSigned(t *testing.T) {
	loginPub, loginPriv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	pub, priv, _ := ed25519.GenerateKey(nil)
	tok, err := identity.Issue(loginPriv, identity.Credential{User: "alice", PublicKey: pub, NotBefore: now.Unix() - 60, Expires: now.Unix() + 3600})
	if err != nil {
		t.Fatal(err)
	}
	mid, idx := "0", uint16(0)
	base := func() *Signal {
		return &Signal{Kind: KindCandidate, CallID: "0123456789abcdef", From: "alice", To: "bob", Device: "d1",
			Status: "away", Attempt: "1", Path: &Path{Local: "relay", RelayProtocol: "udp", Relay: "198.18.0.1:3478"},
			RTTs:      map[string]int64{"198.18.0.1:3478": 1200, "198.18.0.2:3478": 800},
			Candidate: &Candidate{Candidate: "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host", SDPMid: &mid, SDPMLineIndex: &idx}}
	}
	empty := ""
	tests := []struct {
		name   string
		mutate func(*Signal)
		want   bool // verifies
	}{
		{"genuine", func(*Signal) {}, true},
		{"genuine, through JSON", func(s *Signal) {
			b, _ := json.Marshal(s)
			d, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			*s = *d
		}, true},
		{"path made direct", func(s *Signal) { s.Path.Local = "host" }, false},
		{"path dropped", func(s *Signal) { s.Path = nil }, false},
		{"remote relay flipped", func(s *Signal) { s.Path.RemoteRelay = true }, false},
		{"round trip lowered", func(s *Signal) { s.RTTs["198.18.0.1:3478"] = 1 }, false},
		{"relay added", func(s *Signal) { s.RTTs["203.0.113.9:3478"] = 1 }, false},
		{"candidate swapped", func(s *Signal) { s.Candidate.Candidate = "candidate:1 1 udp 2130706431 10.6.6.6 5000 typ host" }, false},
		{"sdpMid absent → empty", func(s *Signal) { s.Candidate.SDPMid = nil; s.Candidate.UsernameFragment = &empty }, false},
		{"mline dropped", func(s *Signal) { s.Candidate.SDPMLineIndex = nil }, false},
		{"status changed", func(s *Signal) { s.Status = "busy" }, false},
		{"attempt changed", func(s *Signal) { s.Attempt = "2" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			s.Sign(priv, tok, now, 1)
			tc.mutate(s)
			if got := s.Verify(loginPub, "alice", "bob", now) == nil; got != tc.want {
				t.Errorf("verifies = %v, want %v", got, tc.want)
			}
		})
	}
}

// Decode enforces the typed fields' limits.
func TestDecodeLimits(t *testing.T) {
	ok := `"v":3,"kind":"probe","call_id":"0123456789abcdef","device":"d1","from":"a","to":"b"`
	long := strings.Repeat("x", MaxCandidate+1)
	tests := []struct {
		name string
		json string
		want bool
	}{
		{"plain", `{` + ok + `}`, true},
		{"rtts", `{` + ok + `,"rtts":{"198.18.0.1:3478":1200}}`, true},
		{"negative rtt", `{` + ok + `,"rtts":{"198.18.0.1:3478":-1}}`, false},
		{"rtt key with a comma", `{` + ok + `,"rtts":{"a,b":1}}`, false},
		{"fractional rtt", `{` + ok + `,"rtts":{"198.18.0.1:3478":1.5}}`, false},
		{"candidate too long", `{` + ok + `,"candidate":{"candidate":"` + long + `"}}`, false},
		{"empty candidate", `{` + ok + `,"candidate":{"candidate":""}}`, false},
		{"path with a space", `{` + ok + `,"path":{"local":"re lay"}}`, false},
		{"reason with a newline", `{` + ok + `,"reason":"a\nb"}`, false},
		{"path as a string (v2)", `{` + ok + `,"path":"{}"}`, false},
		{"too big", `{` + ok + `,"sdp":"` + strings.Repeat("x", MaxBytes) + `"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.json))
			if got := err == nil; got != tc.want {
				t.Errorf("decodes = %v (%v), want %v", got, err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrBadSignal) {
				t.Errorf("err = %v, want ErrBadSignal", err)
			}
		})
	}
}
