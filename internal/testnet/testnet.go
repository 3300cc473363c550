// Package testnet starts a small Parley network on loopback for tests and
// runnable examples: a login server (SQLite in a directory of the caller's,
// cheap argon2id) and, if asked, one supernode listed by it. It also makes
// users: an account, logged in, from a home of its own. Tests and examples
// only; it links the servers.
package testnet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/parley/parley/client"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/loginapi"
)

// Net is a running network.
type Net struct {
	// LoginURL is the login server's base URL.
	LoginURL string
	// Login is the login server.
	Login *login.Server
	stop  []func()
}

// Config says what to start. The zero value starts a login server and a
// supernode, their data in Dir.
type Config struct {
	// Dir holds the login server's database and key; required.
	Dir string
	// NoSupernode starts the login server alone.
	NoSupernode bool
}

// New starts a network; Close stops it.
func New(cfg Config) (*Net, error) {
	ls, err := login.New(login.Config{DB: filepath.Join(cfg.Dir, "login.db"), DataDir: cfg.Dir,
		Argon2:                  login.Argon2Params{Time: 1, Memory: 1024, Threads: 1},
		DialBackAllow:           []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		MaxRegistrationsPerAddr: 1000, // every user comes from 127.0.0.1
	})
	if err != nil {
		return nil, fmt.Errorf("testnet: login server: %w", err)
	}
	lhs := httptest.NewServer(ls.Handler())
	n := &Net{LoginURL: lhs.URL, Login: ls, stop: []func(){func() { ls.Close() }, lhs.Close}}
	if cfg.NoSupernode {
		return n, nil
	}
	shs := httptest.NewUnstartedServer(nil)
	name := shs.Listener.Addr().String()
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	sn, err := supernode.New(supernode.Config{LoginKey: ls.PublicKey(), Name: name, NodeKey: nodeKey})
	if err != nil {
		shs.Close()
		n.Close()
		return nil, fmt.Errorf("testnet: supernode: %w", err)
	}
	shs.Config.Handler = sn.Handler()
	shs.Start()
	n.stop = append(n.stop, shs.Close, func() { sn.Close() })
	if _, err := loginapi.NewClient(lhs.URL, nil).Heartbeat(context.Background(), "ws://"+name+"/v1/ws", nodeKey); err != nil {
		n.Close()
		return nil, fmt.Errorf("testnet: listing the supernode: %w", err)
	}
	return n, nil
}

// Close stops what New started, the last first.
func (n *Net) Close() {
	for i := len(n.stop) - 1; i >= 0; i-- {
		n.stop[i]()
	}
}

// Start starts a network for tb, stopped at its cleanup, and returns the
// login server's URL.
func Start(tb testing.TB, cfg Config) string {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	n, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.Close)
	return n.LoginURL
}

// User registers user ("password-" + user) from a new home in dir and logs
// it in.
func User(ctx context.Context, dir, loginURL, user string) (*client.Client, error) {
	c, err := client.New(client.Config{Home: dir, LoginURL: loginURL})
	if err != nil {
		return nil, err
	}
	if err := c.Register(ctx, user, "password-"+user); err != nil {
		return nil, err
	}
	if err := c.Login(ctx, user, "password-"+user); err != nil {
		return nil, err
	}
	return c, nil
}

// Register is User for tb, in a home of tb's.
func Register(tb testing.TB, ctx context.Context, loginURL, user string) *client.Client {
	tb.Helper()
	c, err := User(ctx, tb.TempDir(), loginURL, user)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Online is Register then Online with cfg; the session closes at tb's
// cleanup.
func Online(tb testing.TB, ctx context.Context, loginURL, user string, cfg client.SessionConfig) *client.Session {
	tb.Helper()
	s, err := Register(tb, ctx, loginURL, user).Online(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
