package main

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/parley/parley/internal/loadgen"
)

// cmdLoad runs the load client (internal/loadgen): operators sizing a supernode.
func cmdLoad(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var f loadgen.Flags
	f.Register(fs)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	} else if e.loginURL == "" {
		return usageError{"load: --login URL (or PARLEY_LOGIN) is required"}
	}
	cfg := f.Config(e.loginURL, os.Getenv("PARLEY_PASSWORD"), e.home, e.logger(slog.LevelWarn))
	return loadgen.Run(ctx, cfg, f.Duration, e.stdout, f.JSON)
}
