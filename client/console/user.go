package console

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/snapi"
)

// ReadPassword asks for a password on the terminal (/dev/tty), showing
// prompt and not echoing what is typed. Without a terminal it returns
// client.ErrNeedPassword.
func ReadPassword(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return "", client.ErrNeedPassword
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return string(b), nil
}

// UserMessage turns an error into the one line a user reads: a short
// phrase for the errors a user causes or meets (a wrong password, a taken
// name, no supernode), otherwise the error's text without the package
// prefixes ("client: ", "login: ", …) that library errors carry.
func UserMessage(err error) string {
	known := []struct {
		err error
		msg string
	}{
		{loginapi.ErrWrongPassword, "wrong user name or password"},
		{loginapi.ErrUnknownUser, "unknown user"},
		{loginapi.ErrUserExists, "that user name is taken"},
		{loginapi.ErrRateLimited, ""},
		{loginapi.ErrUnreachable, ""},
		{client.ErrUnknownUser, ""},
		{client.ErrNotContact, ""},
		{im.ErrEmptyMessage, ""},
		{im.ErrMessageTooLong, ""},
		{im.ErrMessageNotText, ""},
		{client.ErrOffline, ""},
		{client.ErrDeclined, ""},
		{client.ErrRefused, ""},
		{client.ErrNoAnswer, ""},
		{client.ErrConnectFailed, ""},
		{client.ErrNeedPassword, client.ErrNeedPassword.Error()},
		{client.ErrNoLoginURL, client.ErrNoLoginURL.Error()},
		{client.ErrNoUser, client.ErrNoUser.Error()},
		{client.ErrNoSupernode, "no supernode reachable: is the network up? (parley up starts one)"},
		{identity.ErrBadUser, ""},
		{codec.ErrNotWAV, ""},
		{codec.ErrUnsupported, ""},
		{codec.ErrCorrupt, ""},
		{snapi.ErrDisconnected, "lost the connection to the supernode"},
	}
	if errors.Is(err, client.ErrNoSupernodeListed) {
		msg := err.Error()
		return msg[max(0, strings.Index(msg, client.ErrNoSupernodeListed.Error())):] + ": start one (parley supernode) or run parley up"
	}
	for _, k := range known {
		if errors.Is(err, k.err) {
			if k.msg != "" {
				return k.msg
			}
			break
		}
	}
	// Drop the package prefixes ("client: ", "login: ") that library errors carry.
	msg := err.Error()
	for _, p := range []string{"client: ", "login: ", "supernode: ", "codec: ", "identity: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}
