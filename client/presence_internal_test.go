package client

import (
	"testing"

	"github.com/parley/parley/supernode"
)

// TestPresenceIgnoresTheEndOfALeftSession: a contact's device moved to
// another supernode (new session) while its old supernode still reports the
// old, half-open session; the device is offline only when every session of
// it has said so, so the old session's late "offline" does not take it
// offline, and going offline (or invisible) on the new one is not hidden by
// the old one for longer than the old one lasts.
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
		{supernode.StatusAway, "new", supernode.StatusOnline},       // back on another supernode; the old one still answers
		{supernode.StatusOffline, "old", supernode.StatusAway},      // the old one's late end
		{supernode.StatusOnline, "old", supernode.StatusOnline},     // a stale answer of the old one again
		{supernode.StatusOffline, "new", supernode.StatusOnline},    // gone from the new one, the old one not ended yet
		{supernode.StatusOffline, "old", supernode.StatusOffline},   // and now ended
		{supernode.StatusBusy, "", supernode.StatusBusy},            // an older supernode: no session
		{supernode.StatusOffline, "other", supernode.StatusOffline}, // ends a session-less entry too
	}
	for i, tt := range tests {
		push(tt.status, tt.session)
		if got := s.Presence("bob"); got != tt.want {
			t.Errorf("step %d (%s from session %q): bob is %s, want %s", i, tt.status, tt.session, got, tt.want)
		}
	}
}
