package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/parley/parley/client/console"
	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/internal/cluster"
)

func cmdLoginServer(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("login-server", flag.ContinueOnError)
	var cfg cluster.LoginConfig
	cfg.RegisterFlags(fs, os.Getenv("PARLEY_DB"))
	var ops cluster.OpsFlags
	ops.Register(fs, "DIR/acme, DIR of --data")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := cluster.CheckTLSFlags(cfg.CertFile, cfg.KeyFile); err != nil {
		return err
	}
	var err error
	if cfg.ACME, err = ops.ACME(filepath.Join(cfg.Login.DataDir, "acme"), cfg.CertFile); err != nil {
		return err
	}
	cfg.Metrics.Listen = ops.MetricsListen
	if cluster.DBHasPassword(cfg.Login.DB) && os.Getenv("PARLEY_DB") != cfg.Login.DB {
		return usageError{"--db: a password on the command line is readable by every user of this machine (/proc/PID/cmdline); give the URL in PARLEY_DB, or the password in PGPASSWORD or ~/.pgpass"}
	}
	cfg.Logger = e.logger(slog.LevelInfo)
	return cluster.ListenHint(cluster.RunLogin(ctx, cfg), nil)
}

func cmdSupernode(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("supernode", flag.ContinueOnError)
	var cfg cluster.SupernodeConfig
	var secret cli.Secret
	relayFlags(fs, &cfg.Relay, &secret)
	cfg.RegisterFlags(fs)
	var ops cluster.OpsFlags
	ops.Register(fs, "./parley-data/acme")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := cluster.CheckTLSFlags(cfg.CertFile, cfg.KeyFile); err != nil {
		return err
	}
	var err error
	if cfg.ACME, err = ops.ACME(filepath.Join("parley-data", "acme"), cfg.CertFile); err != nil {
		return err
	}
	if cfg.ACME != nil {
		// The certificate is for the name clients reach the supernode (and
		// its relay) at: that is the public address.
		switch cfg.PublicAddr {
		case "":
			cfg.PublicAddr = cfg.ACME.Domain
		case cfg.ACME.Domain:
		default:
			return usageError{fmt.Sprintf("--acme-domain %s and --public-addr %s differ: clients reach the supernode at --public-addr, which is the name its certificate must be for", cfg.ACME.Domain, cfg.PublicAddr)}
		}
	}
	cfg.Metrics.Listen = ops.MetricsListen
	if cfg.LoginURL = e.loginURL; cfg.LoginURL == "" {
		return usageError{"supernode: --login URL (or PARLEY_LOGIN) is required"}
	}
	if cfg.Relay.Secret, err = secret.Bytes("turn-secret", "turn-secret-file", "PARLEY_TURN_SECRET", 16); err != nil {
		return err
	}
	if len(cfg.ExternalRelays) > 0 && cfg.Relay.Secret == nil {
		return usageError{"--relay needs --turn-secret-file (or PARLEY_TURN_SECRET): the secret the relays share"}
	}
	if cfg.Web && cluster.CheckWebLoginURL(cfg.LoginURL) != nil {
		return usageError{fmt.Sprintf("--web: the login URL %q is not an http(s) URL", cfg.LoginURL)}
	}
	if err := relayTLS(&cfg.Relay, cfg.CertFile, cfg.KeyFile, cfg.ACME != nil); err != nil {
		return err
	}
	if cfg.Relay.IP, err = cluster.ResolveIP(cfg.Host()); err != nil {
		return err
	}
	cfg.Logger = e.logger(slog.LevelInfo)
	return cluster.ListenHint(cluster.RunSupernode(ctx, cfg), nil)
}

func cmdUp(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	data := fs.String("data", "./parley-data", "`DIR` for the database, keys and the echo user's home")
	addr := fs.String("listen", "127.0.0.1:8080", "login server and web page `ADDR`")
	snAddr := fs.String("supernode-listen", "127.0.0.1:8081", "supernode `ADDR`")
	turnAddr := fs.String("turn", "127.0.0.1:3478", "the supernode's relay (TURN/STUN over UDP and TCP) `ADDR`")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	return cluster.ListenHint(cluster.Up(ctx, cluster.UpConfig{
		DataDir: *data, Listen: *addr, SupernodeListen: *snAddr, TURN: *turnAddr,
		OnUp:        func(n cluster.Network) { n.PrintWelcome(e.stdout, *data) },
		OnEchoEvent: (&console.Printer{W: e.stderr}).Event, Logger: e.logger(slog.LevelInfo),
	}), map[string]string{cluster.RoleTURNUDP: "turn", cluster.RoleTURNTCP: "turn"})
}
