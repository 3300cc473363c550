package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"sync"

	"github.com/parley/parley/client"
	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/snapi"
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
	s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{}))
	if err != nil {
		return err
	}
	defer s.Close()
	found := make([]snapi.Found, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			found[i], errs[i] = s.Lookup(ctx, u)
		}()
	}
	wg.Wait()
	for i, f := range found {
		if errs[i] != nil {
			return fmt.Errorf("lookup %s: %w", users[i], errs[i])
		}
		if *jsonOut {
			b, _ := json.Marshal(f)
			fmt.Fprintln(e.stdout, string(b))
			continue
		}
		hops := fmt.Sprintf("%d hop", f.Hops)
		if f.Hops != 1 {
			hops += "s"
		}
		if f.Devices == 0 {
			fmt.Fprintf(e.stdout, "%s: offline (%s)\n", f.User, hops)
			continue
		}
		fmt.Fprintf(e.stdout, "%s: online, %d device(s) at %s (%s)\n", f.User, f.Devices, strings.Join(f.Nodes, ", "), hops)
	}
	return nil
}
