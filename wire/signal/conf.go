package signal

import (
	"fmt"
	"slices"
	"strings"
)

// Conference calls (docs/conference.md) are a full mesh of ordinary calls,
// "legs", one between every two participants' devices: each participant
// sends its own voice to every other and mixes what it hears itself. There
// is no host: a participant that leaves or dies takes only its own legs with
// it.
//
// A leg is a call whose offer carries Conf (ID only) and names the device
// it calls in Answerer. That device, in that conference, answers it at once, without ringing, when the caller is a
// member or was invited; otherwise it declines with "refused: ...".
// Everything else about a conference travels as KindConf signals:
//
//	starter/member → user  invite    Members: the sender's participants
//	                                 ("user/device", the sender first);
//	                                 Users: the users invited so far;
//	                                 Group: the group it was started from.
//	                                 The user's devices ring.
//	member → member        invited   Users: users just invited (they may
//	                                 now dial in)
//	invitee → inviter      declined  the invitation was declined
//	invitee → own user     joined    one device took the invitation: the
//	                                 others stop ringing
//	member → newcomer      roster    Members: the sender's participants, Users:
//	                                 the users invited so far; the newcomer
//	                                 dials those it has no leg with
//	member → member        mute, unmute
//	member → 1:1 peer      upgrade   CallID: a 1:1 call in progress, which
//	                                 becomes the conference's first leg
//
// Two devices that dial each other at once (glare) keep the leg offered by
// the smaller "user/device" string; the other declines with [ConfGlare].

// KindConf is a conference signal (Conf.Op says which).
const KindConf = "conf"

// Conference operations (Conf.Op of a KindConf signal).
const (
	ConfInvite   = "invite"
	ConfInvited  = "invited"
	ConfDeclined = "declined"
	ConfJoined   = "joined"
	ConfRoster   = "roster"
	ConfMute     = "mute"
	ConfUnmute   = "unmute"
	ConfUpgrade  = "upgrade"
)

// ConfOps lists every operation.
func ConfOps() []string {
	return []string{ConfInvite, ConfInvited, ConfDeclined, ConfJoined, ConfRoster, ConfMute, ConfUnmute, ConfUpgrade}
}

// MaxConfMembers is the most participants (devices) in one conference, and
// caps Users and Members.
const MaxConfMembers = 8

// ConfGlare is the decline reason of a leg dropped because the two devices
// dialled each other at once and the other offer won.
const ConfGlare = "conference glare"

// Conf says which conference a signal belongs to and, in a KindConf signal,
// what it says.
//
//   - ID: 32 lowercase hex characters, chosen at random by the starter.
//   - Op: empty in a leg's offer; one of [ConfOps] in a KindConf signal.
//   - Group: invite only: the group the conference was started from (≤ 256
//     bytes).
//   - Users: invite, roster: the users invited so far; invited: the users
//     just invited; at most [MaxConfMembers] user names.
//   - Members: invite and roster: "user/device" entries, at most
//     [MaxConfMembers], the sender's own first.
//
// No field holds a space, a comma or a line break (they are signed as one
// line: see [Signal.SignedMessage]).
type Conf struct {
	ID      string   `json:"id"`
	Op      string   `json:"op,omitempty"`
	Group   string   `json:"group,omitempty"`
	Users   []string `json:"users,omitempty"`
	Members []string `json:"members,omitempty"`
}

// Member names a participant: its user and device.
func Member(user, device string) string { return user + "/" + device }

// SplitMember is the inverse of [Member].
func SplitMember(m string) (user, device string, ok bool) {
	return strings.Cut(m, "/")
}

// signedLine is the conference's line of the signed message: empty without
// Conf, else "=" id SP op SP group SP users SP members, the lists joined by
// commas.
func (c *Conf) signedLine() string {
	if c == nil {
		return ""
	}
	return "=" + c.ID + " " + c.Op + " " + c.Group + " " + strings.Join(c.Users, ",") + " " + strings.Join(c.Members, ",")
}

// check is Decode's check of Conf within a signal of kind.
func (c *Conf) check(kind string) error {
	if c == nil {
		if kind == KindConf {
			return fmt.Errorf("conf: missing")
		}
		return nil
	}
	if kind != KindConf && kind != KindOffer {
		return fmt.Errorf("conf: in a %s signal", kind)
	}
	if len(c.ID) != 32 || strings.Trim(c.ID, "0123456789abcdef") != "" {
		return fmt.Errorf("conf: id %q is not 32 hex characters", c.ID)
	}
	switch {
	case kind == KindOffer && c.Op != "":
		return fmt.Errorf("conf: op %q in an offer", c.Op)
	case kind == KindConf && !slices.Contains(ConfOps(), c.Op):
		return fmt.Errorf("conf: op %q", c.Op)
	}
	if len(c.Users) > MaxConfMembers || len(c.Members) > MaxConfMembers {
		return fmt.Errorf("conf: more than %d users or members", MaxConfMembers)
	}
	bad := func(v string) bool { return len(v) > maxField || strings.ContainsAny(v, " ,\r\n") }
	if bad(c.Group) {
		return fmt.Errorf("conf: group")
	}
	for _, u := range c.Users {
		if u == "" || bad(u) {
			return fmt.Errorf("conf: user %q", u)
		}
	}
	for _, m := range c.Members {
		if u, d, ok := SplitMember(m); !ok || u == "" || d == "" || bad(m) {
			return fmt.Errorf("conf: member %q", m)
		}
	}
	return nil
}
