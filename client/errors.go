package client

import (
	"errors"

	"github.com/parley/parley/client/im"
)

// Sentinel errors, wrapped with the operation. Their texts are written to read
// well as the one line a CLI prints.
var (
	ErrNoUser         = errors.New("no user: log in first (parley login USER) or set --user")
	ErrNeedPassword   = errors.New("a password is needed: set PARLEY_PASSWORD or run interactively")
	ErrNoLoginURL     = errors.New("no login server: set --login or PARLEY_LOGIN")
	ErrNoSupernode    = errors.New("no supernode online")
	ErrUnknownUser    = errors.New("unknown user")
	ErrNotContact     = errors.New("not a contact yet: send a contact request first (parley contacts add USER)")
	ErrBadStatus      = errors.New("status must be online, away, busy or invisible")
	ErrOffline        = errors.New("user is offline")
	ErrDeclined       = errors.New("call declined")
	ErrNoAnswer       = errors.New("no answer")
	ErrRefused        = errors.New("call refused")
	ErrConnectFailed  = errors.New("call could not connect")
	ErrLoginKeyChange = errors.New("the login server's key changed since this home first saw it")
	ErrClosed         = errors.New("session closed")
	ErrHomeCorrupt    = errors.New("home directory state is unreadable")
	ErrNotAFile       = errors.New("not a file that can be sent (a directory, a device, or empty)")
)

// ErrNoSupernodeListed: the login server lists no supernode and the home
// knows none. It comes with ErrNoSupernode, and names the login server.
var ErrNoSupernodeListed = errors.New("no supernode is listed by the login server")

// Group errors: those of package im, so that errors.Is matches either name.
var (
	// ErrUnknownGroup: this device knows no group by that id or name.
	ErrUnknownGroup = im.ErrUnknownGroup
	// ErrNotMember: the user is not a member of the group.
	ErrNotMember = im.ErrNotMember
	// ErrNotAdmin: only an admin may change the group's members or name.
	ErrNotAdmin = im.ErrNotAdmin
	// ErrGroupFull: the group has im.MaxGroupMembers members.
	ErrGroupFull = im.ErrGroupFull
	// ErrAmbiguousGroup: several groups have that name.
	ErrAmbiguousGroup = errors.New("several groups have that name")
)
