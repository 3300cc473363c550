package client

import (
	"testing"

	"github.com/parley/parley/supernode"
)

// TestPresenceIgnoresTheEndOfALeftSession: a contact's device moved to
// another supernode (new session) before its old supernode noticed the lost
// connection; the old session's late "offline" does not take it offline. An
// "offline" from the session it is on now does.
func TestPresenceIgnoresTheEndOfALeftSession(t *testing.T) {
	s := &Session{}
	s.pres = presenceState{watch: []string{"bob"}, seen: map[string]map[string]devicePresence{}, shown: map[string]string{}}
	push := func(status, session string) {
		s.onPresence(supernode.Frame{Type: supernode.TypePresence, From: "bob", Device: "d1", Status: status, FromSession: session})
	}
	tests := []struct {
		status, session, want string
	}{
		{supernode.StatusOnline, "old", supernode.StatusOnline},
		{supernode.StatusAway, "new", supernode.StatusAway},         // back on another supernode
		{supernode.StatusOffline, "old", supernode.StatusAway},      // the old one's late end
		{supernode.StatusOffline, "new", supernode.StatusOffline},   // really gone
		{supernode.StatusBusy, "", supernode.StatusBusy},            // an older supernode: no session
		{supernode.StatusOffline, "other", supernode.StatusOffline}, // no session known: believed
	}
	for i, tt := range tests {
		push(tt.status, tt.session)
		if got := s.Presence("bob"); got != tt.want {
			t.Errorf("step %d (%s from session %q): bob is %s, want %s", i, tt.status, tt.session, got, tt.want)
		}
	}
}
