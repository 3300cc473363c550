package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/oneshot"
	"github.com/parley/parley/internal/identity"
)

// cmdLookup asks the mesh where users are online and how many overlay hops
// each lookup took.
func cmdLookup(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print one JSON object per user")
	users, err := parseFlags(fs, e, args, 1, 1000, "USER...")
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := identity.CheckUser(u); err != nil {
			return usageError{fmt.Sprintf("lookup: %q: %v", u, err)}
		}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	found, err := oneshot.Lookup(ctx, c, e.sessionConfig(client.SessionConfig{}), users)
	e.printer(*jsonOut).Lookups(found) // those before a failure
	return err
}
