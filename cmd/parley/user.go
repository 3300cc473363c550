package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
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
