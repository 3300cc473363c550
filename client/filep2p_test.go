package client_test

import (
	"testing"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/relay"
)

// im.FileRelayBudget is a copy (package im imports no server) of the
// budget a relay gives a user by default: a file's pace through a relay is
// a share of it.
func TestFileRelayBudgetIsTheRelays(t *testing.T) {
	if got, want := im.FileRelayBudget, relay.DefaultUserBandwidth; got != want {
		t.Errorf("im.FileRelayBudget = %d, relay.DefaultUserBandwidth = %d", got, want)
	}
}
