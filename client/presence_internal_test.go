package client

import (
	"testing"

	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
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
		s.onPresence(snapi.Frame{Type: snapi.TypePresence, From: "bob", Device: "d1", Status: status, FromSession: session})
	}
	tests := []struct {
		status, session, want string
	}{
		{presence.Online, "old", presence.Online},
		{presence.Away, "new", presence.Online},       // back on another supernode; the old one still answers
		{presence.Offline, "old", presence.Away},      // the old one's late end
		{presence.Online, "old", presence.Online},     // a stale answer of the old one again
		{presence.Offline, "new", presence.Online},    // gone from the new one, the old one not ended yet
		{presence.Offline, "old", presence.Offline},   // and now ended
		{presence.Busy, "", presence.Busy},            // an older supernode: no session
		{presence.Offline, "other", presence.Offline}, // ends a session-less entry too
	}
	for i, tt := range tests {
		push(tt.status, tt.session)
		if got := s.Presence("bob"); got != tt.want {
			t.Errorf("step %d (%s from session %q): bob is %s, want %s", i, tt.status, tt.session, got, tt.want)
		}
	}
}
