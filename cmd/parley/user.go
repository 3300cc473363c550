package main

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
	"github.com/parley/parley/client/oneshot"
	"github.com/parley/parley/internal/identity"
)

// password reads the password from PARLEY_PASSWORD, else prompts on the terminal.
func password(prompt, envVar string) func() (string, error) {
	return func() (string, error) {
		if pw := os.Getenv(envVar); pw != "" {
			return pw, nil
		}
		return console.ReadPassword(prompt)
	}
}

// printer prints results on stdout: text, or JSON with --json.
func (e *env) printer(jsonOut bool) *console.Printer {
	return &console.Printer{W: e.stdout, JSON: jsonOut}
}

func (e *env) newClient(user string) (*client.Client, error) {
	if user == "" {
		user = e.user
	}
	return client.New(client.Config{
		Home: e.home, LoginURL: e.loginURL, User: user,
		Password: password("Password: ", "PARLEY_PASSWORD"),
		Logger:   e.logger(slog.LevelWarn),
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
	jsonOut := fs.Bool("json", false, `print {"event":"result","cmd":"`+name+`","user"}`)
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
	pw, err := password(map[bool]string{false: "Password: ", true: "Choose a password: "}[name == "register"], "PARLEY_PASSWORD")()
	if err == nil {
		err = oneshot.Login(ctx, c, user, pw, name == "register")
	}
	if err == nil {
		e.printer(*jsonOut).LoggedIn(name, user)
	}
	return err
}

func cmdPasswd(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print {"event":"result","cmd":"passwd","user"}`)
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
	e.printer(*jsonOut).Result("passwd", "password changed for "+c.User(), "user", c.User())
	return nil
}
