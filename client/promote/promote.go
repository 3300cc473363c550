// Package promote is self-promotion: a long-running client on a public
// address becomes a supernode, with its relay, in the same process. It is the
// only part of the client allowed to start servers (package relay and
// supernode); the session (package client) links none of them.
package promote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/internal/connlimit"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/relay"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/snapi"
)

// Config configures self-promotion ([Start]): a long-running
// client on a public address becomes a supernode (with its relay) in the same
// process. Zero values mean the documented defaults.
type Config struct {
	// After is how long the session must have been online before it asks
	// for a dial-back and, if that passes, promotes itself. Default 10 min.
	After time.Duration
	// CheckInterval is how often the client asks its supernode to dial it
	// back after a failed one and, once promoted, to keep qualifying (two
	// failures in a row step it down). Default 1 min.
	CheckInterval time.Duration
	// Listen is the supernode's TCP address (websocket, mesh, dial-back), the
	// same default as `parley supernode`: ":8081".
	Listen string
	// TURN is the relay's UDP and TCP address (UDP also answers STUN and the
	// dial-back): default ":3478".
	TURN string
	// NodeKeyFile keeps the node key across runs; "" = a key in the home.
	NodeKeyFile string
	// AllowPeers are exceptions to the relay's peer deny list (labs only).
	AllowPeers []netip.Prefix
}

// promoteDefaults fills in cfg's zero values.
func (cfg Config) withDefaults(home string) Config {
	if cfg.After <= 0 {
		cfg.After = 10 * time.Minute
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Minute
	}
	if cfg.Listen == "" {
		cfg.Listen = ":8081"
	}
	if cfg.TURN == "" {
		cfg.TURN = ":3478"
	}
	if cfg.NodeKeyFile == "" {
		cfg.NodeKeyFile = home + "/node-key"
	}
	return cfg
}

// Start starts self-promotion on s: once the session has been up for cfg.After,
// it binds the supernode and relay ports, asks its supernode to dial it back
// on them (TCP and UDP, at the address the supernode sees it at), and when
// that works starts a supernode and a relay in this process on those ports,
// registers with the login server and joins the mesh. It steps down
// when dial-backs stop passing and when the session closes. A client behind a
// NAT fails the dial-back and never promotes. Promote returns at once; the
// work runs until the session closes.
func Start(s *client.Session, cfg Config) error {
	cfg = cfg.withDefaults(s.HomeDir())
	key, err := nodeid.LoadOrCreate(cfg.NodeKeyFile)
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	p := &promoter{s: s, cfg: cfg, key: key, log: s.Logger().With("part", "promote"), started: time.Now()}
	s.Go(p.run)
	return nil
}

type promoter struct {
	s       *client.Session
	cfg     Config
	key     ed25519.PrivateKey
	log     *slog.Logger
	started time.Time
}

// run binds, checks and promotes until the session ends; after stepping down
// it starts over.
func (p *promoter) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := p.round(ctx)
		if ctx.Err() != nil {
			return
		}
		p.log.Info("not a supernode", "reason", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.cfg.CheckInterval):
		}
	}
}

// candidate is a would-be supernode's bound ports: the HTTP server answers
// dial-backs (and serves the supernode once promoted), the UDP socket answers
// STUN until the relay takes it over.
type candidate struct {
	ln       net.Listener
	pc       net.PacketConn
	tl       net.Listener
	handler  atomic.Pointer[http.Handler]
	srv      *http.Server
	srvDone  chan struct{}
	stunDone chan struct{}
	stunEnd  atomic.Bool
}

func (p *promoter) bind() (*candidate, error) {
	c := &candidate{}
	var err error
	if c.ln, err = net.Listen("tcp", p.cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", p.cfg.Listen, err)
	}
	if c.pc, err = net.ListenPacket("udp", p.cfg.TURN); err != nil {
		c.ln.Close()
		return nil, fmt.Errorf("listen udp %s: %w", p.cfg.TURN, err)
	}
	if c.tl, err = net.Listen("tcp", p.cfg.TURN); err != nil {
		c.ln.Close()
		c.pc.Close()
		return nil, fmt.Errorf("listen tcp %s: %w", p.cfg.TURN, err)
	}
	// The server answers dial-backs before the supernode exists, then
	// serves it: its timeouts are the supernode's defaults.
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := c.handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}),
		ReadHeaderTimeout: supernode.DefaultHTTPReadHeaderTimeout, ReadTimeout: supernode.DefaultHTTPReadTimeout,
		WriteTimeout: supernode.DefaultHTTPWriteTimeout, IdleTimeout: supernode.DefaultHTTPIdleTimeout,
		MaxHeaderBytes: supernode.MaxHeaderBytes}
	c.srvDone, c.stunDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.srvDone)
		c.srv.Serve(connlimit.Wrap(c.ln, connlimit.Config{PerAddr: 2 * supernode.DefaultMaxSessionsPerAddr}))
	}()
	go func() {
		defer close(c.stunDone)
		nodeid.AnswerSTUN(c.pc, &c.stunEnd)
	}()
	return c, nil
}

// stopSTUN ends the STUN answerer (so the relay can take the socket over) and
// waits for it.
func (c *candidate) stopSTUN() {
	c.stunEnd.Store(true)
	c.pc.SetReadDeadline(time.Now())
	<-c.stunDone
	c.pc.SetReadDeadline(time.Time{})
}

// close stops serving and, unless the relay owns them now, closes the ports.
func (c *candidate) close(relayOwnsPorts bool) {
	c.srv.Close()
	<-c.srvDone
	if !relayOwnsPorts {
		c.stopSTUN()
		c.pc.Close()
		c.tl.Close()
	}
}

func port(a net.Addr) int {
	_, ps, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(ps)
	return n
}

// round waits until the session has been up for After, binds the ports,
// asks for a dial-back and, when it passes, serves as a supernode until it
// stops qualifying. Ports are held only while checking or serving. It
// returns why it is not (or no longer) a supernode.
func (p *promoter) round(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(p.started.Add(p.cfg.After))):
	}
	c, err := p.bind()
	if err != nil {
		return err
	}
	relayOwnsPorts := false
	defer func() { c.close(relayOwnsPorts) }()

	conn, err := p.s.WaitConn(ctx)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(conn.Observed())
	if err != nil {
		return fmt.Errorf("the supernode did not say what address it sees: %q", conn.Observed())
	}
	name := net.JoinHostPort(host, strconv.Itoa(port(c.ln.Addr())))
	url := "ws://" + name + "/v1/ws"
	udp := net.JoinHostPort(host, strconv.Itoa(port(c.pc.LocalAddr())))
	h := identifyOnly(name, p.key)
	c.handler.Store(&h)
	if err := p.dialback(ctx, conn, url, udp); err != nil {
		return err
	}

	// Promote.
	ip := net.ParseIP(host)
	secret := make([]byte, 32)
	rand.Read(secret)
	c.stopSTUN()
	rcfg := relay.Config{PacketConn: c.pc, TCPListener: c.tl, RelayIP: ip, Secret: secret,
		AllowPeers: p.cfg.AllowPeers, Logger: p.log, RefreshGrace: 12 * time.Hour}
	if !isLocalIP(ip) {
		rcfg.RelayBindIP = net.IPv4zero // behind a 1:1 NAT that forwards everything
	}
	r, err := relay.New(rcfg)
	if err != nil {
		return fmt.Errorf("starting the relay: %w", err)
	}
	relayOwnsPorts = true
	defer r.Close()
	lc, err := p.s.LoginClient()
	if err != nil {
		return err
	}
	rudp, rtcp, _ := r.Addrs()
	sn, err := supernode.New(supernode.Config{
		LoginKey: p.s.LoginKey(), Name: name, NodeKey: p.key, Logger: p.log,
		Login: lc, Advertise: url, Seeds: []string{p.s.Supernode()},
		ICEServers: supernode.RelayOffer{Host: host, UDP: rudp, TCP: rtcp, Secret: secret, TTL: 10 * time.Minute}.ICEServers(),
	})
	if err != nil {
		return fmt.Errorf("starting the supernode: %w", err)
	}
	served := sn.Handler() // a new variable: HTTP goroutines may be reading h
	c.handler.Store(&served)
	// Never attach to ourselves: our dial-back checks must be made by
	// another supernode.
	p.s.Exclude(url, time.Now().Add(100*365*24*time.Hour))
	defer p.s.Exclude(url, time.Now())
	p.log.Info("promoted to supernode", "url", url)
	p.s.Emit(client.Event{Event: client.EventPromoted, Info: &client.Info{User: p.s.User(), Supernode: url, Message: "serving as a supernode and relay"}})

	// Keep qualifying.
	why := "the session closed"
	fails := 0
	for fails < 2 {
		select {
		case <-ctx.Done():
		case <-time.After(p.cfg.CheckInterval):
			// Offline for long counts as a failed check.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			conn, err := p.s.WaitConn(wctx)
			cancel()
			if err == nil {
				err = p.dialback(ctx, conn, url, udp)
			}
			if err != nil {
				fails++
				why = err.Error()
				continue
			}
			fails = 0
			continue
		}
		break
	}
	sn.Close() // says goodbye to the mesh and the login server
	p.log.Info("stepped down as supernode", "reason", why)
	p.s.Emit(client.Event{Event: client.EventSteppedDown, Info: &client.Info{User: p.s.User(), Supernode: url, Message: why}})
	return errors.New(why)
}

func (p *promoter) dialback(ctx context.Context, conn *snapi.Conn, url, udp string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tcpOK, udpOK, err := conn.Dialback(ctx, url, udp, p.key.Public().(ed25519.PublicKey))
	if err != nil {
		return fmt.Errorf("dial-back (tcp %v, udp %v): %w", tcpOK, udpOK, err)
	}
	return nil
}

func identifyOnly(name string, key ed25519.PrivateKey) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(nodeid.IdentifyPath, nodeid.Handler(name, key))
	return mux
}

func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
