package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/relay"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/snapi"
)

// turnCredentialTTL is how long the TURN credentials a supernode hands out are
// good for new allocations: minutes, not days.
const turnCredentialTTL = 10 * time.Minute

// relayRefreshGrace is how long after its credential expired an allocation
// may still be refreshed: how long a relayed call may last.
const relayRefreshGrace = 12 * time.Hour

// relayFlags are the relay's flags, shared by `parley relay` and `parley supernode`.
type relayFlags struct {
	udp, tcp, tls string
	secret        string
	allow         cidrList
	external      hostList // supernode only: standalone relays sharing the secret
}

type cidrList []netip.Prefix

func (c *cidrList) String() string { return fmt.Sprint(*c) }
func (c *cidrList) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("not a CIDR: %q", s)
	}
	*c = append(*c, p.Masked())
	return nil
}

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

func (f *relayFlags) register(fs *flag.FlagSet, withExternal bool) {
	fs.StringVar(&f.udp, "turn-udp", "", "TURN/STUN over UDP `ADDR` (default: port 3478 of the listen host; \"off\" disables)")
	fs.StringVar(&f.tcp, "turn-tcp", "", "TURN over TCP `ADDR` (default: port 3478 of the listen host; \"off\" disables)")
	fs.StringVar(&f.tls, "turn-tls", "", "TURN over TLS `ADDR`, e.g. :443 (needs --tls-cert and --tls-key; default off)")
	fs.StringVar(&f.secret, "turn-secret", "", "TURN-REST shared `SECRET` (env PARLEY_TURN_SECRET; default: random, for a relay used only in-process)")
	fs.Var(&f.allow, "relay-allow-peer", "allow relaying to `CIDR` despite the deny list (labs only; repeatable)")
	if withExternal {
		fs.Var(&f.external, "relay", "also offer the standalone relay at `HOST[:PORT]` (sharing --turn-secret; repeatable)")
	}
}

func (f *relayFlags) secretBytes() ([]byte, error) {
	s := f.secret
	if s == "" {
		s = os.Getenv("PARLEY_TURN_SECRET")
	}
	if s == "" {
		b := make([]byte, 32)
		rand.Read(b)
		return b, nil
	}
	if len(s) < 16 {
		return nil, usageError{"--turn-secret must be at least 16 characters"}
	}
	return []byte(s), nil
}

// defaultAddr fills "" with port 3478 of host; "off" means none.
func defaultAddr(addr, host string) string {
	switch addr {
	case "off":
		return ""
	case "":
		return net.JoinHostPort(host, "3478")
	}
	return addr
}

// startRelay starts a relay on the flags' listeners, relaying from publicIP.
func startRelay(f relayFlags, listenHost string, publicIP net.IP, secret []byte, cert, key string, log *slog.Logger) (*relay.Server, error) {
	cfg := relay.Config{
		UDPAddr: defaultAddr(f.udp, listenHost), TCPAddr: defaultAddr(f.tcp, listenHost), TLSAddr: f.tls,
		RelayIP: publicIP, Secret: secret, AllowPeers: f.allow, Logger: log,
		// New allocations need a credential younger than turnCredentialTTL;
		// an allocation made with one keeps refreshing for a long call.
		RefreshGrace: relayRefreshGrace,
	}
	if f.tls != "" {
		if cert == "" {
			return nil, usageError{"--turn-tls needs --tls-cert and --tls-key"}
		}
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	}
	return relay.New(cfg)
}

// iceServers returns the STUN/TURN servers a supernode offers a user: its own
// relay (if any) and the standalone ones, each with fresh TURN-REST credentials.
func iceServers(host string, r *relay.Server, external []string, secret []byte) func(string) []snapi.ICEServer {
	o := supernode.RelayOffer{Host: host, External: external, Secret: secret, TTL: turnCredentialTTL}
	if r != nil {
		o.UDP, o.TCP, o.TLS = r.Addrs()
	}
	return o.ICEServers()
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
	var f relayFlags
	f.register(fs, false)
	public := fs.String("public-addr", "", "the relay's public `HOST` (required)")
	cert := fs.String("tls-cert", "", "TLS certificate `FILE` for --turn-tls")
	key := fs.String("tls-key", "", "TLS key `FILE` for --turn-tls")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := checkTLS(*cert, *key); err != nil {
		return err
	}
	if *public == "" {
		return usageError{"relay: --public-addr HOST is required"}
	}
	if f.secret == "" && os.Getenv("PARLEY_TURN_SECRET") == "" {
		return usageError{"relay: --turn-secret (or PARLEY_TURN_SECRET) is required: supernodes hand out credentials with it"}
	}
	ip, err := resolveIP(*public)
	if err != nil {
		return err
	}
	secret, err := f.secretBytes()
	if err != nil {
		return err
	}
	log := e.logger(slog.LevelInfo)
	r, err := startRelay(f, "", ip, secret, *cert, *key, log)
	if err != nil {
		return err
	}
	defer r.Close()
	udp, tcp, tlsA := r.Addrs()
	log.Info("relay listening", "udp", udp, "tcp", tcp, "tls", tlsA, "relay_ip", ip)
	<-ctx.Done()
	return nil
}
