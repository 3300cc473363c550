package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/internal/cluster"
	"github.com/parley/parley/internal/nodeid"
)

// urlList is a repeatable flag of supernode URLs.
type urlList []string

func (u *urlList) String() string { return strings.Join(*u, ",") }
func (u *urlList) Set(s string) error {
	if _, _, err := nodeid.HostPort(s); err != nil {
		return fmt.Errorf("not a ws:// or wss:// URL with host:port: %q", s)
	}
	*u = append(*u, s)
	return nil
}

type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }
func (h *hostList) Set(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(s, "3478")
	}
	*h = append(*h, s)
	return nil
}

// secretFlags are where a TURN-REST secret may come from: a file or the
// environment, never the command line, which every user of the machine can
// read (/proc/PID/cmdline); argv is the refused --turn-secret.
type secretFlags struct{ argv, file string }

// relayFlags registers the relay's flags (`parley relay` and `parley
// supernode`) into cfg; the secret is read by secretBytes.
func relayFlags(fs *flag.FlagSet, cfg *cluster.RelayConfig, secret *secretFlags) {
	fs.StringVar(&cfg.UDP, "turn-udp", "", "TURN/STUN over UDP `ADDR` (default: port 3478 of the listen host; \"off\" disables)")
	fs.StringVar(&cfg.TCP, "turn-tcp", "", "TURN over TCP `ADDR` (default: port 3478 of the listen host; \"off\" disables)")
	fs.StringVar(&cfg.TLS, "turn-tls", "", "TURN over TLS `ADDR`, e.g. :443 (needs --tls-cert and --tls-key, or --acme-domain; default off)")
	fs.StringVar(&secret.file, "turn-secret-file", "", "`FILE` holding the TURN-REST shared secret (or env PARLEY_TURN_SECRET; default: random, for a relay used only in-process)")
	fs.StringVar(&secret.argv, "turn-secret", "", "refused: a secret on the command line is readable by every user of the machine; use --turn-secret-file or PARLEY_TURN_SECRET")
	fs.Var((*cli.CIDRs)(&cfg.AllowPeers), "relay-allow-peer", "allow relaying to `CIDR` despite the deny list (labs only; repeatable)")
}

// secretBytes is the secret of --turn-secret-file (a trailing newline
// dropped), else PARLEY_TURN_SECRET; nil when neither is set.
func secretBytes(f secretFlags) ([]byte, error) {
	if f.argv != "" {
		return nil, usageError{"--turn-secret is refused: a secret on the command line is readable by every user of this machine (/proc/PID/cmdline); put it in a file (--turn-secret-file FILE, mode 0600) or in PARLEY_TURN_SECRET"}
	}
	s := os.Getenv("PARLEY_TURN_SECRET")
	if f.file != "" {
		b, err := os.ReadFile(f.file)
		if err != nil {
			return nil, usageError{fmt.Sprintf("--turn-secret-file: %v", err)}
		}
		s = strings.TrimRight(string(b), "\r\n")
	}
	if s == "" {
		return nil, nil
	}
	if len(s) < 16 {
		return nil, usageError{"the TURN secret must be at least 16 characters"}
	}
	return []byte(s), nil
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

// resolveIP turns --public-addr (an IP or a name) into the address to relay from.
func resolveIP(host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("--public-addr %s: cannot resolve: %v", host, err)
	}
	return ips[0], nil
}

func cmdRelay(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	var cfg cluster.RelayConfig
	var secret secretFlags
	relayFlags(fs, &cfg, &secret)
	public := fs.String("public-addr", "", "the relay's public `HOST` (required)")
	cert := fs.String("tls-cert", "", "TLS certificate `FILE` for --turn-tls")
	key := fs.String("tls-key", "", "TLS key `FILE` for --turn-tls")
	var ops opsFlags
	ops.register(fs, "./parley-data/acme")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := checkTLS(*cert, *key); err != nil {
		return err
	}
	var err error
	if cfg.ACME, err = ops.acme(filepath.Join("parley-data", "acme"), *cert); err != nil {
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
	cfg.Metrics.Listen = ops.metricsListen
	if *public == "" {
		return usageError{"relay: --public-addr HOST is required"}
	}
	if cfg.Secret, err = secretBytes(secret); err != nil {
		return err
	} else if cfg.Secret == nil {
		return usageError{"relay: --turn-secret-file (or PARLEY_TURN_SECRET) is required: supernodes hand out credentials with it"}
	}
	if cfg.IP, err = resolveIP(*public); err != nil {
		return err
	}
	if err := relayTLS(&cfg, *cert, *key, cfg.ACME != nil); err != nil {
		return err
	}
	cfg.Logger = e.logger(slog.LevelInfo)
	return listenHint(cluster.RunRelay(ctx, cfg), nil)
}
