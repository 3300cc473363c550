package cluster

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/echo"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/web"
	"github.com/parley/parley/wire/loginapi"
)

// loopback is where everything `parley up` runs: its login server may dial
// the supernode back there and its relay may relay there, which public ones
// never do.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// UpConfig configures [Up]. The zero value is `parley up` without flags.
type UpConfig struct {
	// DataDir holds the login server's database and key, the supernode's
	// node key and the echo user's home. Default "./parley-data"; it is
	// created (mode 0700) when missing.
	DataDir string
	// Listen is the login server's and web page's address. Default
	// "127.0.0.1:8080".
	Listen string
	// SupernodeListen is the supernode's address. Default "127.0.0.1:8081".
	SupernodeListen string
	// TURN is the supernode's relay address (UDP and TCP). Default
	// "127.0.0.1:3478".
	TURN string
	// OnUp, when set, is called once every server listens (the echo user may
	// still be logging in), with where they are; not when a part fails
	// first.
	OnUp func(Network)
	// OnEchoEvent receives the echo user's events; nil drops them.
	OnEchoEvent func(client.Event)
	// Logger receives every server's logs (the echo's with
	// component=echo); nil discards them.
	Logger *slog.Logger
	// Metrics receives the login server's, the supernode's and the relay's
	// metrics, served at /metrics on both listeners. nil: a new registry.
	Metrics *prometheus.Registry
}

// Network is where a running [Up] network is.
type Network struct {
	// LoginURL is the login server and web page, http://host:port.
	LoginURL string
	// SupernodeAddr is the supernode's host:port (ws://SupernodeAddr/v1/ws).
	SupernodeAddr string
}

func (cfg UpConfig) withDefaults() UpConfig {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.DataDir, "./parley-data")
	def(&cfg.Listen, "127.0.0.1:8080")
	def(&cfg.SupernodeListen, "127.0.0.1:8081")
	def(&cfg.TURN, "127.0.0.1:3478")
	cfg.Logger = orDiscard(cfg.Logger)
	return cfg
}

// loopbackLimit is what `parley up` allows per address (all of its users
// share 127.0.0.1) where a public server allows a few.
const loopbackLimit = 10000

// Up runs a complete network on 127.0.0.1 until ctx ends or one of its
// parts fails: a login server on SQLite serving the web page, a supernode
// with its STUN service and relay, and the echo user ([echo.Run]). It
// returns nil when ctx ends, else the first part's error; either way it
// stops the other parts and waits for them.
func Up(ctx context.Context, cfg UpConfig) error {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	reg := MetricsConfig{Registry: cfg.Metrics}.registry()
	lln, err := Listen(cfg.Listen)
	if err != nil {
		return err
	}
	sln, err := listenAs(RoleSupernodeListen, cfg.SupernodeListen)
	if err != nil {
		lln.Close()
		return err
	}
	// Every user of this network comes from 127.0.0.1: the limits per
	// address are the whole network's here, so they are raised.
	ls, err := login.New(login.Config{DB: filepath.Join(cfg.DataDir, "login.db"), DataDir: cfg.DataDir, Logger: log,
		Web: web.Handler(), DialBackAllow: []netip.Prefix{loopback},
		MaxRegistrationsPerAddr: loopbackLimit, MaxRegistrationsPerMinute: loopbackLimit, MaxLookupsPerAddr: loopbackLimit,
		MaxConnsPerAddr: loopbackLimit, Metrics: reg})
	if err != nil {
		lln.Close()
		sln.Close()
		return err
	}
	defer ls.Close()
	nw := Network{LoginURL: "http://" + lln.Addr().String(), SupernodeAddr: sln.Addr().String()}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	// part runs one part; the first to end stops the others.
	part := func(run func(context.Context) error) {
		wg.Go(func() {
			err := run(runCtx)
			errOnce.Do(func() {
				if ctx.Err() == nil {
					firstErr = err
				}
				cancel()
			})
		})
	}
	part(func(ctx context.Context) error {
		hs := ls.HTTPServer()
		hs.Handler = web.Secure(MetricsConfig{}.withMetrics(hs.Handler, reg)) // the page's security headers, API included
		return Serve(ctx, ls.LimitListener(lln), hs, "", "", log)
	})
	listening := make(chan struct{})
	part(func(ctx context.Context) error {
		return RunSupernode(ctx, SupernodeConfig{
			LoginURL: nw.LoginURL, LoginKey: ls.PublicKey(), Login: loginapi.NewClient(nw.LoginURL, nil),
			Listen: cfg.SupernodeListen, Listener: sln, NodeKeyFile: filepath.Join(cfg.DataDir, "node-key"),
			Relay:   RelayConfig{UDP: cfg.TURN, TCP: cfg.TURN, AllowPeers: []netip.Prefix{loopback}},
			Limits:  supernode.Config{MaxSessionsPerAddr: loopbackLimit, MaxConnsPerAddr: loopbackLimit},
			Metrics: MetricsConfig{Registry: reg}, Logger: log,
			listening: func() { close(listening) },
		})
	})
	// Nothing says the network is up before the supernode and its relay
	// listen (a TURN port in use ends Up first).
	select {
	case <-listening:
		if cfg.OnUp != nil {
			cfg.OnUp(nw)
		}
		part(func(ctx context.Context) error {
			return echo.Run(ctx, echo.Config{
				Home: filepath.Join(cfg.DataDir, "echo-home"), LoginURL: nw.LoginURL, User: "echo",
				OnEvent: cfg.OnEchoEvent, Logger: log.With("component", "echo"),
			})
		})
	case <-runCtx.Done():
	}
	wg.Wait()
	return firstErr
}
