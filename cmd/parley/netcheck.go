package main

import (
	"context"
	"flag"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/netcheck"
)

// cmdNetcheck reports what the network does to a call's packets.
func cmdNetcheck(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("netcheck", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print {"event":"result","cmd":"netcheck","report":{...}} (docs/cli.md)`)
	stun := fs.String("stun", "", "more STUN servers to probe (`HOST:PORT,...`), beside the relays on offer")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	r, err := netcheck.Online(ctx, c, e.sessionConfig(client.SessionConfig{}), *stun)
	if err == nil {
		e.printer(*jsonOut).Result("netcheck", r.Text(), "report", r)
	}
	return err
}
