package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
	"github.com/parley/parley/client/oneshot"
	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
)

// cmdContacts is `parley contacts add|accept|decline|list`.
func cmdContacts(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{"contacts: expected a subcommand: add, accept, decline or list (parley help contacts)"}
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "add", "accept", "decline":
		return contactOp(ctx, e, sub, rest)
	case "list":
		return contactsList(ctx, e, rest)
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, helpText("contacts"))
		return nil
	}
	err := cli.Unknown("subcommand", sub, []string{"accept", "add", "decline", "list"}, "add, accept, decline or list")
	return usageError{"contacts: " + err.Error()}
}

func contactOp(ctx context.Context, e *env, sub string, args []string) error {
	fs := flag.NewFlagSet("contacts "+sub, flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print {"event":"result","cmd":"contacts `+sub+`","peer","state"}`)
	pos, err := parseFlags(fs, e, args, 1, 1, "USER")
	if err != nil {
		return err
	}
	user := pos[0]
	if err := identity.CheckUser(user); err != nil {
		return usageError{fmt.Sprintf("contacts %s: %v", sub, err)}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	state, err := oneshot.Contact(ctx, c, e.sessionConfig(client.SessionConfig{}), oneshot.Op(sub), user)
	if err == nil {
		e.printer(*jsonOut).ContactResult(sub, user, state)
	}
	return err
}

func contactsList(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("contacts list", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print one JSON object per contact: {"user","state","presence"}`)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	contacts, unknown, err := oneshot.Contacts(ctx, c, e.sessionConfig(client.SessionConfig{}))
	if err != nil {
		return err
	} else if unknown != nil {
		fmt.Fprintf(e.stderr, "parley: presence unknown: %s\n", console.UserMessage(unknown))
	}
	e.printer(*jsonOut).Contacts(contacts)
	return nil
}

// cmdStatus is `parley status [online|away|busy|invisible]`.
func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print {"event":"result","cmd":"status","status"[,"note"]}`)
	pos, err := parseFlags(fs, e, args, 0, 1, "[online|away|busy|invisible]")
	if err != nil {
		return err
	}
	if len(pos) == 1 && !presence.CanSet(pos[0]) {
		return usageError{fmt.Sprintf("status: %q: must be one of %s", pos[0], strings.Join(presence.Settable(), ", "))}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		st, err := c.Status(ctx)
		if err == nil {
			e.printer(*jsonOut).Result("status", st, "status", st)
		}
		return err
	}
	offline, err := oneshot.SetStatus(ctx, c, e.sessionConfig(client.SessionConfig{}), pos[0])
	if err == nil {
		e.printer(*jsonOut).StatusSet(pos[0], offline)
	}
	return err
}

// cmdSearch is `parley search TEXT [--limit N] [--json]`.
func cmdSearch(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	limit := fs.Int("limit", loginapi.MaxSearchResults, fmt.Sprintf("at most N names (1-%d)", loginapi.MaxSearchResults))
	jsonOut := fs.Bool("json", false, `print one JSON object per user: {"user"}`)
	pos, err := parseFlags(fs, e, args, 1, 1, "TEXT")
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > loginapi.MaxSearchResults {
		return usageError{fmt.Sprintf("search: --limit must be 1 to %d", loginapi.MaxSearchResults)}
	}
	prefix := pos[0]
	if prefix == "" {
		return usageError{"search: TEXT is empty: give the start of a user name"}
	}
	if err := identity.CheckUser(prefix); err != nil {
		return usageError{fmt.Sprintf("search: %v", err)}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	users, err := c.Search(ctx, prefix, *limit)
	if err != nil {
		return err
	}
	e.printer(*jsonOut).Users(users)
	return nil
}
