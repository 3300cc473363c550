package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/parley/parley/client/console"
	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/internal/cluster"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
)

func checkTLS(cert, key string) error {
	if (cert == "") != (key == "") {
		return usageError{"--tls-cert and --tls-key go together"}
	}
	return nil
}

func cmdLoginServer(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("login-server", flag.ContinueOnError)
	var cfg cluster.LoginConfig

	fs.StringVar(&cfg.Listen, "listen", ":8080", "listen `ADDR`")
	fs.StringVar(&cfg.Login.DataDir, "data", "./parley-data", "`DIR` for the signing key (and the SQLite database by default)")
	fs.StringVar(&cfg.Login.DB, "db", os.Getenv("PARLEY_DB"), "SQLite `PATH_OR_DSN` (default DIR/login.db), or a postgres:// URL shared by several login servers, without its password (env PARLEY_DB; the password from PGPASSWORD or ~/.pgpass)")
	fs.StringVar(&cfg.CertFile, "tls-cert", "", "TLS certificate `FILE`")
	fs.StringVar(&cfg.KeyFile, "tls-key", "", "TLS key `FILE`")
	fs.BoolVar(&cfg.Web, "web", false, "serve the web client at /")
	fs.Var((*cli.CIDRs)(&cfg.Login.DialBackAllow), "supernode-allow", "`CIDR` the login server may dial supernodes back in although it is loopback, private or special (labs; repeatable)")
	fs.IntVar(&cfg.Login.MaxRegistrationsPerAddr, "max-registrations-per-addr", login.DefaultMaxRegistrationsPerAddr, "accounts one address may create an hour")
	fs.IntVar(&cfg.Login.MaxRegistrationsPerMinute, "max-registrations-per-minute", login.DefaultMaxRegistrationsPerMinute, "accounts all addresses together may create a minute")
	fs.IntVar(&cfg.Login.MaxLookupsPerAddr, "max-lookups-per-addr", login.DefaultMaxLookupsPerAddr, "user name lookups one address may make a minute")
	fs.IntVar(&cfg.Login.MaxFailuresPerAddr, "max-failures-per-addr", login.DefaultMaxFailuresPerAddr, "failed logins one address may make in 5 minutes")
	fs.IntVar(&cfg.Login.MaxFailuresPerAddrUser, "max-failures-per-addr-user", login.DefaultMaxFailuresPerAddrUser, "failed logins one address may make for one user in 5 minutes")
	fs.IntVar(&cfg.Login.MaxConnsPerAddr, "max-conns-per-addr", login.DefaultMaxConnsPerAddr, "connections one address may hold at once")
	fs.Var((*cli.CIDRs)(&cfg.Login.TrustedProxies), "trusted-proxy", "`CIDR` of front ends (supernodes with --web) whose X-Forwarded-For names the browser, for rate limits (repeatable)")
	var ops cluster.OpsFlags
	ops.Register(fs, "DIR/acme, DIR of --data")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := checkTLS(cfg.CertFile, cfg.KeyFile); err != nil {
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
	var loginKey string
	var secret cli.Secret
	relayFlags(fs, &cfg.Relay, &secret)
	fs.Var((*cluster.HostList)(&cfg.ExternalRelays), "relay", "also offer the standalone relay at `HOST[:PORT]` (sharing the TURN secret; repeatable)")
	fs.StringVar(&cfg.Listen, "listen", ":8081", "listen `ADDR`")
	fs.StringVar(&cfg.PublicAddr, "public-addr", "", "`HOST` clients reach this supernode at (default: the listen host, else 127.0.0.1)")
	fs.StringVar(&cfg.CertFile, "tls-cert", "", "TLS certificate `FILE`")
	fs.StringVar(&cfg.KeyFile, "tls-key", "", "TLS key `FILE`")
	fs.StringVar(&loginKey, "login-key", "", "pin the login server's public `KEY` (base64) instead of fetching it at start")
	fs.StringVar(&cfg.NodeKeyFile, "node-key", "", "`FILE` keeping this supernode's node key across restarts (made on first use; default: a fresh key each run)")
	fs.Var((*cluster.URLList)(&cfg.Seeds), "seed", "client `URL` of another supernode to join the mesh through (repeatable; the login server's list is always used)")
	fs.BoolVar(&cfg.Web, "web", false, "serve the web client at / (and pass its /api/ requests on to the login server)")
	fs.IntVar(&cfg.Limits.MaxSessionsPerUser, "max-sessions-per-user", supernode.DefaultMaxSessionsPerUser, "sessions one user may have attached at once (-1: no cap)")
	fs.IntVar(&cfg.Limits.MaxSessionsPerAddr, "max-sessions-per-addr", supernode.DefaultMaxSessionsPerAddr, "websocket sessions one address may hold at once (-1: no cap)")
	fs.DurationVar(&cfg.Limits.IdleTimeout, "idle-timeout", supernode.DefaultIdleTimeout, "close a session that sends nothing for this long")
	var ops cluster.OpsFlags
	ops.Register(fs, "./parley-data/acme")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := checkTLS(cfg.CertFile, cfg.KeyFile); err != nil {
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
	if loginKey != "" {
		b, err := base64.StdEncoding.DecodeString(loginKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return usageError{"--login-key: not a base64 Ed25519 public key"}
		}
		cfg.LoginKey = b
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
