package main

import (
	"context"
	"errors"
	"flag"
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

// password reads the password from PARLEY_PASSWORD, else prompts on the terminal.
func password(prompt, envVar string) func() (string, error) {
	return func() (string, error) {
		if pw := os.Getenv(envVar); pw != "" {
			return pw, nil
		}
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
}

func (e *env) newClient(user string) (*client.Client, error) {
	if user == "" {
		user = e.user
	}
	return client.New(client.Config{
		Home: e.home, LoginURL: e.loginURL, User: user,
		Password: password("Password: ", "PARLEY_PASSWORD"),
		Logger:   e.logger(levelWarn),
	})
}

func cmdRegister(ctx context.Context, e *env, args []string) error {
	return loginCommand(ctx, e, args, "register")
}

func cmdLogin(ctx context.Context, e *env, args []string) error {
	return loginCommand(ctx, e, args, "login")
}

// loginCommand is `parley register USER` (create the account, then log in) and
// `parley login USER`.
func loginCommand(ctx context.Context, e *env, args []string, name string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	pos, err := parseFlags(fs, e, args, 1, 1, "USER")
	if err != nil {
		return err
	}
	user := pos[0]
	if err := identity.CheckUser(user); err != nil {
		return err
	}
	c, err := e.newClient(user)
	if err != nil {
		return err
	}
	prompt := "Password: "
	if name == "register" {
		prompt = "Choose a password: "
	}
	pw, err := password(prompt, "PARLEY_PASSWORD")()
	if err != nil {
		return err
	}
	if name == "register" {
		if err := c.Register(ctx, user, pw); err != nil {
			return err
		}
	}
	if err := c.Login(ctx, user, pw); err != nil {
		return err
	}
	if name == "register" {
		fmt.Fprintf(e.stdout, "registered %s and logged in\n", user)
	} else {
		fmt.Fprintf(e.stdout, "logged in as %s\n", user)
	}
	return nil
}

func cmdPasswd(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	if c.User() == "" {
		return client.ErrNoUser
	}
	old, err := password("Current password: ", "PARLEY_PASSWORD")()
	if err != nil {
		return err
	}
	pw, err := password("New password: ", "PARLEY_NEW_PASSWORD")()
	if err != nil {
		return err
	}
	if err := c.ChangePassword(ctx, old, pw); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "password changed for %s\n", c.User())
	return nil
}

// userMessage turns an error into the one line a user reads.
func userMessage(err error) string {
	known := []struct {
		err error
		msg string
	}{
		{loginapi.ErrWrongPassword, "wrong password"},
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
