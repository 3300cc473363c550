package main

import (
	"context"
	"flag"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
)

// cmdSend is `parley send USER|--group GROUP FILE` (docs/files.md).
func cmdSend(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print progress and the result as JSON events (file-progress, file-sent)")
	group := fs.Bool("group", false, "the first argument is a GROUP (its name or id), not a USER")
	pos, err := parseFlags(fs, e, args, 2, 2, "USER|--group GROUP FILE")
	if err != nil {
		return err
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	return console.SendFile(ctx, c, e.sessionConfig(client.SessionConfig{}), e.printer(*jsonOut), &console.Printer{W: e.stderr}, pos[0], pos[1], *group)
}
