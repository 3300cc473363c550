package main

import (
	"context"
	"flag"
	"fmt"
	"slices"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/oneshot"
	"github.com/parley/parley/internal/cli"
)

// cmdGroup is `parley group SUBCOMMAND`: create NAME [USER...], add,
// remove or admin GROUP USER, rename GROUP NAME, leave or info GROUP, list.
// GROUP is a group's name or id; list and info read the local history.
func cmdGroup(ctx context.Context, e *env, args []string) error {
	subs := []string{"add", "admin", "create", "info", "leave", "list", "remove", "rename"}
	if len(args) > 0 && slices.Contains([]string{"help", "-h", "--help"}, args[0]) {
		fmt.Fprint(e.stdout, helpText("group"))
		return nil
	}
	if len(args) == 0 || !slices.Contains(subs, args[0]) {
		if len(args) == 0 {
			args = []string{""}
		}
		return usageError{"group: " + cli.Unknown("subcommand", args[0], subs, "create, add, remove, admin, rename, leave, info or list").Error()}
	}
	sub := args[0]
	n := map[string][2]int{"info": {1, 1}, "list": {0, 0}}[sub]
	if op, ok := oneshot.GroupOps[sub]; ok {
		n = op
	}
	fs := flag.NewFlagSet("group "+sub, flag.ContinueOnError)
	doc := map[bool]string{false: `{"event":"result","cmd":"group ` + sub + `","id","name","members","admins","member"}`, true: `{"id","name","members","admins","member"} per group`}
	jsonOut := fs.Bool("json", false, "print "+doc[sub == "list"])
	pos, err := parseFlags(fs, e, args[1:], n[0], n[1], map[string]string{"create": "NAME [USER...]", "rename": "GROUP NAME",
		"add": "GROUP USER", "remove": "GROUP USER", "admin": "GROUP USER", "leave": "GROUP", "info": "GROUP"}[sub])
	if err != nil {
		return err
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	out := e.printer(*jsonOut)
	var g client.GroupInfo
	switch sub {
	case "list":
		gs, err := c.LocalGroups()
		if err == nil {
			out.Groups(gs)
		}
		return err
	case "info":
		g, _, err = c.LocalGroupHistory(pos[0], 1)
	default:
		g, err = oneshot.Group(ctx, c, e.sessionConfig(client.SessionConfig{}), sub, pos)
	}
	if err == nil {
		out.Group("group "+sub, g)
	}
	return err
}
