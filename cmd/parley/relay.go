package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/internal/cluster"
)

// relayFlags registers the relay's flags (`parley relay` and `parley
// supernode`) into cfg; the secret is read by secretBytes.
func relayFlags(fs *flag.FlagSet, cfg *cluster.RelayConfig, secret *cli.Secret) {
	fs.StringVar(&cfg.UDP, "turn-udp", "", "TURN/STUN over UDP `ADDR` (default: port 3478 of the listen host; \"off\" disables)")
	fs.StringVar(&cfg.TCP, "turn-tcp", "", "TURN over TCP `ADDR` (default: port 3478 of the listen host; \"off\" disables)")
	fs.StringVar(&cfg.TLS, "turn-tls", "", "TURN over TLS `ADDR`, e.g. :443 (needs --tls-cert and --tls-key, or --acme-domain; default off)")
	fs.StringVar(&secret.File, "turn-secret-file", "", "`FILE` holding the TURN-REST shared secret (or env PARLEY_TURN_SECRET; default: random, for a relay used only in-process)")
	fs.StringVar(&secret.Argv, "turn-secret", "", "refused: a secret on the command line is readable by every user of the machine; use --turn-secret-file or PARLEY_TURN_SECRET")
	fs.Var((*cli.CIDRs)(&cfg.AllowPeers), "relay-allow-peer", "allow relaying to `CIDR` despite the deny list (labs only; repeatable)")
	cfg.Tuning.RegisterFlags(fs)
}

// relayTLS loads the certificate --turn-tls needs (none with ACME: the
// cluster gives the listener the ACME certificate).
func relayTLS(cfg *cluster.RelayConfig, cert, key string, acme bool) error {
	if cfg.TLS == "" || acme {
		return nil
	}
	if cert == "" {
		return usageError{"--turn-tls needs --tls-cert and --tls-key (or --acme-domain)"}
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	return nil
}

func cmdRelay(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	var cfg cluster.RelayConfig
	var secret cli.Secret
	relayFlags(fs, &cfg, &secret)
	public := fs.String("public-addr", "", "the relay's public `HOST` (required)")
	cert := fs.String("tls-cert", "", "TLS certificate `FILE` for --turn-tls")
	key := fs.String("tls-key", "", "TLS key `FILE` for --turn-tls")
	var ops cluster.OpsFlags
	ops.Register(fs, "./parley-data/acme")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := cluster.CheckTLSFlags(*cert, *key); err != nil {
		return err
	}
	var err error
	if cfg.ACME, err = ops.ACME(filepath.Join("parley-data", "acme"), *cert); err != nil {
		return err
	}
	if cfg.ACME != nil {
		if cfg.TLS == "" {
			return usageError{"--acme-domain is for --turn-tls: give the relay a TLS listener (--turn-tls :443)"}
		}
		if *public == "" {
			*public = cfg.ACME.Domain
		}
	}
	cfg.Metrics.Listen = ops.MetricsListen
	if *public == "" {
		return usageError{"relay: --public-addr HOST is required"}
	}
	if cfg.Secret, err = secret.Bytes("turn-secret", "turn-secret-file", "PARLEY_TURN_SECRET", 16); err != nil {
		return err
	} else if cfg.Secret == nil {
		return usageError{"relay: --turn-secret-file (or PARLEY_TURN_SECRET) is required: supernodes hand out credentials with it"}
	}
	if cfg.IP, err = cluster.ResolveIP(*public); err != nil {
		return err
	}
	if err := relayTLS(&cfg, *cert, *key, cfg.ACME != nil); err != nil {
		return err
	}
	cfg.Logger = e.logger(slog.LevelInfo)
	return cluster.ListenHint(cluster.RunRelay(ctx, cfg), nil)
}
