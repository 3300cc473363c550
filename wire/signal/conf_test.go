package signal

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
)

const testConfID = "0123456789abcdef0123456789abcdef"

// A conference's fields are signed: a supernode cannot add a member, invite
// someone or move a leg to another conference.
func TestConfIsSigned(t *testing.T) {
	loginPub, loginPriv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	pub, priv, _ := ed25519.GenerateKey(nil)
	tok, err := identity.Issue(loginPriv, identity.Credential{User: "alice", PublicKey: pub, NotBefore: now.Unix() - 60, Expires: now.Unix() + 3600})
	if err != nil {
		t.Fatal(err)
	}
	base := func() *Signal {
		return &Signal{Kind: KindConf, CallID: "0123456789abcdef", From: "alice", To: "bob", Device: "d1",
			Conf: &Conf{ID: testConfID, Op: ConfInvite, Group: "club", Users: []string{"bob", "carol"}, Members: []string{"alice/d1", "dave/d9"}}}
	}
	tests := []struct {
		name   string
		mutate func(*Signal)
		want   bool
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
		{"another conference", func(s *Signal) { s.Conf.ID = strings.Repeat("f", 32) }, false},
		{"op changed", func(s *Signal) { s.Conf.Op = ConfRoster }, false},
		{"member added", func(s *Signal) { s.Conf.Members = append(s.Conf.Members, "eve/e1") }, false},
		{"user added", func(s *Signal) { s.Conf.Users = append(s.Conf.Users, "eve") }, false},
		{"group changed", func(s *Signal) { s.Conf.Group = "other" }, false},
		{"conf dropped", func(s *Signal) { s.Conf = nil }, false},
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

// Decode enforces a conference's shape and limits.
func TestDecodeConf(t *testing.T) {
	many := make([]string, MaxConfMembers+1)
	for i := range many {
		many[i] = "u" + string(rune('a'+i)) + "/d"
	}
	tests := []struct {
		name string
		kind string
		conf *Conf
		ok   bool
	}{
		{"leg offer", KindOffer, &Conf{ID: testConfID}, true},
		{"invite", KindConf, &Conf{ID: testConfID, Op: ConfInvite, Members: []string{"alice/d1"}, Users: []string{"bob"}}, true},
		{"conf signal without conf", KindConf, nil, false},
		{"conf on a hangup", KindHangup, &Conf{ID: testConfID}, false},
		{"op on an offer", KindOffer, &Conf{ID: testConfID, Op: ConfInvite}, false},
		{"unknown op", KindConf, &Conf{ID: testConfID, Op: "kick"}, false},
		{"short id", KindConf, &Conf{ID: "abc", Op: ConfMute}, false},
		{"upper-case id", KindConf, &Conf{ID: strings.ToUpper(testConfID), Op: ConfMute}, false},
		{"too many members", KindConf, &Conf{ID: testConfID, Op: ConfRoster, Members: many}, false},
		{"member without device", KindConf, &Conf{ID: testConfID, Op: ConfRoster, Members: []string{"alice"}}, false},
		{"comma in a user", KindConf, &Conf{ID: testConfID, Op: ConfInvited, Users: []string{"a,b"}}, false},
		{"space in the group", KindConf, &Conf{ID: testConfID, Op: ConfInvite, Group: "a b"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Signal{V: Version, Kind: tc.kind, CallID: "0123456789abcdef", From: "alice", To: "bob", Device: "d1", Conf: tc.conf}
			if tc.kind == KindOffer {
				s.SDP = "v=0\r\na=fingerprint:sha-256 AB:CD\r\n"
			}
			b, _ := json.Marshal(s)
			_, err := Decode(b)
			if got := err == nil; got != tc.ok {
				t.Errorf("decode ok = %v (%v), want %v", got, err, tc.ok)
			}
		})
	}
}
