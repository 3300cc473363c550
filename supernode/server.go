package supernode

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

// Config configures a [Server]. LoginKey and Name are required; every other zero
// value means the documented default.
type Config struct {
	// LoginKey is the login server's public key; credentials are checked against it
	// offline.
	LoginKey ed25519.PublicKey
	// Name is how this supernode names itself in challenges: the host:port of the
	// address clients dial. Attach proofs made for another name are refused.
	Name string
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SendQueue is the bound of each connection's outbound queue, in frames. A
	// client that lets it fill is disconnected rather than allowed to stall
	// routing. Default 256.
	SendQueue int
	// SendRate and SendBurst limit the sends one connection may make (per
	// second, and at once). Defaults 50 and 100: far above what calls and chat
	// need, well below what fills a recipient's SendQueue.
	SendRate  float64
	SendBurst int
	// AttachTimeout bounds the time from connect to a valid attach. Default 10 s.
	AttachTimeout time.Duration
	// PingInterval is how often the supernode pings each client (and checks that
	// its credential is still valid). Default 15 s.
	PingInterval time.Duration
	// ICEServers, when set, returns the STUN/TURN servers to offer user.
	ICEServers func(user string) []snapi.ICEServer
	// Login and Advertise, when both set, make the supernode heartbeat its
	// advertised websocket URL to the login server every HeartbeatInterval
	// (default 10 s) so that it is listed for clients.
	Login             *loginapi.Client
	Advertise         string
	HeartbeatInterval time.Duration

	// NodeKey is this supernode's identity in the mesh and to the login
	// server (see internal/nodeid). nil = a fresh key for this run.
	NodeKey ed25519.PrivateKey
	// Seeds are client URLs (ws://host:port/v1/ws) of supernodes to join the
	// mesh through, besides the login server's list (private meshes, tests).
	Seeds []string
	// Replicas is how many supernodes hold each presence record. Default 3:
	// a record survives two of its holders dying at once.
	Replicas int
	// ProbeInterval is how often every other supernode is pinged (and gossip
	// exchanged). Default 1 s.
	ProbeInterval time.Duration
	// DeadAfter is how long a supernode may leave pings unanswered before it
	// is taken off the ring. Default 3 s.
	DeadAfter time.Duration
	// RecordTTL is how long a holder keeps a presence record that is not
	// refreshed; RefreshInterval how often a supernode refreshes the records
	// of the users attached to it. Defaults 30 s and 10 s.
	RecordTTL       time.Duration
	RefreshInterval time.Duration
	// ListInterval is how often the login server's supernode list is read for
	// new members (when Login is set). Default 10 s.
	ListInterval time.Duration
	// MeshClient makes the requests to other supernodes (and dial-backs).
	// nil = a client with a 5 s timeout. Redirects are never followed.
	MeshClient *http.Client
	// MaxRecords caps the presence records (and tombstones) this supernode
	// holds for the directory. Default 1,048,576 (about 200 MiB).
	MaxRecords int
}

// Server is a supernode's presence and signalling service. It serves the
// websocket endpoint /v1/ws and /healthz through [Server.Handler].
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mesh *mesh

	// The heartbeat stops before Close tells the login server goodbye.
	hbCtx    context.Context
	hbCancel context.CancelFunc
	hbDone   chan struct{}

	mu     sync.Mutex
	users  map[string]map[string]*conn // user → session → conn
	closed bool
}

// New checks cfg and returns a running server.
func New(cfg Config) (*Server, error) {
	if len(cfg.LoginKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("supernode: new: %w", ErrNoLoginKey)
	}
	if cfg.Name == "" {
		return nil, fmt.Errorf("supernode: new: %w: Name is required", snapi.ErrBadFrame)
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 256
	}
	if cfg.SendRate <= 0 {
		cfg.SendRate = 50
	}
	if cfg.SendBurst <= 0 {
		cfg.SendBurst = 100
	}
	if cfg.AttachTimeout <= 0 {
		cfg.AttachTimeout = 10 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 15 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.NodeKey == nil {
		var err error
		if cfg.NodeKey, err = nodeid.LoadOrCreate(""); err != nil {
			return nil, fmt.Errorf("supernode: new: node key: %w", err)
		}
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 3
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 3 * time.Second
	}
	if cfg.RecordTTL <= 0 {
		cfg.RecordTTL = 30 * time.Second
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 10 * time.Second
	}
	if cfg.ListInterval <= 0 {
		cfg.ListInterval = 10 * time.Second
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 1 << 20
	}
	if cfg.MeshClient == nil {
		cfg.MeshClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute, ResponseHeaderTimeout: 5 * time.Second,
		}}
	}
	// A mesh request is never redirected: a candidate could otherwise bounce
	// this supernode's signed request to any address.
	mc := *cfg.MeshClient
	mc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.MeshClient = &mc
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, users: map[string]map[string]*conn{}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mesh = newMesh(s)
	s.mesh.start()
	if cfg.Login != nil {
		s.wg.Add(1)
		go s.listLoop()
		if cfg.Advertise != "" {
			s.hbCtx, s.hbCancel = context.WithCancel(s.ctx)
			s.hbDone = make(chan struct{})
			go s.heartbeat()
		}
	}
	return s, nil
}

// advertise is the client URL this supernode is listed under.
func (s *Server) advertise() string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	return "ws://" + s.cfg.Name + "/v1/ws"
}

// NodeKey is the public node key this supernode proves at dial-back and signs
// mesh messages with.
func (s *Server) NodeKey() ed25519.PublicKey { return s.cfg.NodeKey.Public().(ed25519.PublicKey) }

// Stats are a supernode's counters.
type Stats struct {
	Online   int   `json:"online"`    // attached connections
	Members  int   `json:"members"`   // live supernodes on this one's ring, itself included
	Records  int   `json:"records"`   // presence records held for the directory
	MeshMsgs int64 `json:"mesh_msgs"` // mesh requests sent
	MeshOut  int64 `json:"mesh_bytes_out"`
	MeshIn   int64 `json:"mesh_bytes_in"`
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Online: s.Online(), Members: s.mesh.size(), Records: s.mesh.records(),
		MeshMsgs: s.mesh.msgsOut.Load(), MeshOut: s.mesh.bytesOut.Load(), MeshIn: s.mesh.bytesIn.Load(),
	}
}

// listLoop reads the login server's supernode list for members to join.
func (s *Server) listLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ListInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		list, err := s.cfg.Login.Supernodes(ctx)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.log.Debug("reading the supernode list", "err", err)
		}
		for _, sn := range list {
			if name, _, err := nodeid.HostPort(sn.Addr); err == nil {
				s.mesh.learn(Member{Name: name, URL: sn.Addr, Key: sn.Key}, false)
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Handler serves /v1/ws (the client websocket) and /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/ws", s.serveWS)
	mux.HandleFunc(MeshPath, s.serveMesh)
	mux.Handle(nodeid.IdentifyPath, nodeid.Handler(s.cfg.Name, s.cfg.NodeKey))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"name":%q,"online":%d,"members":%d}`+"\n", s.cfg.Name, s.Online(), s.mesh.size())
	})
	return mux
}

// Online returns the number of attached connections.
func (s *Server) Online() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.users {
		n += len(m)
	}
	return n
}

// Close tells the mesh this supernode is leaving, disconnects every client and
// waits for all goroutines to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	var wg sync.WaitGroup
	if s.hbDone != nil {
		s.hbCancel()
		<-s.hbDone
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.cfg.Login.Leave(ctx, s.cfg.Advertise, s.cfg.NodeKey); err != nil {
				s.log.Debug("leaving the login server's list", "err", err)
			}
		}()
	}
	s.mesh.leave(ctx)
	wg.Wait()
	cancel()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) heartbeat() {
	defer close(s.hbDone)
	listed := false
	retry := 500 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(s.hbCtx, 5*time.Second)
		_, err := s.cfg.Login.Heartbeat(ctx, s.cfg.Advertise, s.cfg.NodeKey)
		cancel()
		wait := s.cfg.HeartbeatInterval
		switch {
		case err != nil && s.hbCtx.Err() == nil:
			// The first heartbeat may race the HTTP server's start (the login
			// server dials back): retry soon, backing off to the interval.
			s.log.Warn("heartbeat to login server failed", "err", err)
			listed = false
			wait = min(retry, wait)
			retry *= 2
		case err == nil && !listed:
			s.log.Info("listed by the login server", "advertise", s.cfg.Advertise)
			listed = true
			retry = 500 * time.Millisecond
		}
		select {
		case <-s.hbCtx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// conn is one attached client: the handler goroutine reads, one writer goroutine
// drains the bounded queue.
type conn struct {
	ws      *websocket.Conn
	out     chan []byte
	cancel  context.CancelFunc
	user    string
	session string
	key     ed25519.PublicKey
	expires atomic.Int64 // Unix seconds of the credential's end; 0 until attached
	sends   *rate.Limiter
	reqs    chan *snapi.Frame // sends, lookups, dial-backs and presence, served in order
	remote  string            // host:port the client connects from

	replaced atomic.Bool // closed by a reattach of its client (see replace)

	pmu    sync.Mutex // guards the presence fields
	status string     // as set by the client; "" until its first TypePresence
	device string
	watch  []string
}

// presence returns the connection's presence as set by its client.
func (c *conn) presence() (status, device string, watch []string) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.status, c.device, c.watch
}

// enqueue queues b without blocking; a full queue disconnects the slow client.
func (c *conn) enqueue(b []byte) bool {
	select {
	case c.out <- b:
		return true
	default:
		c.cancel()
		return false
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, `{"error":"supernode closing"}`, http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// Authentication is by signed credential, never by cookie, so cross-origin
	// pages (the web client served by the login server) may connect.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(snapi.MaxFrameSize)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c := &conn{ws: ws, out: make(chan []byte, s.cfg.SendQueue), cancel: cancel,
		sends:  rate.NewLimiter(rate.Limit(s.cfg.SendRate), s.cfg.SendBurst),
		reqs:   make(chan *snapi.Frame, requestQueue),
		remote: r.RemoteAddr}

	var wwg sync.WaitGroup
	wwg.Add(2)
	go func() {
		defer wwg.Done()
		s.writeLoop(ctx, c)
	}()
	go func() {
		defer wwg.Done()
		s.serveRequests(ctx, c)
	}()
	err = s.readLoop(ctx, c, r.RemoteAddr)
	cancel()
	if s.ctx.Err() != nil {
		ws.CloseNow() // shutting down: do not wait for a slow client's writes
	}
	wwg.Wait()
	if c.user != "" {
		s.detach(c)
	}
	code, reason := websocket.StatusNormalClosure, ""
	if err != nil && !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
		code, reason = websocket.StatusPolicyViolation, truncate(err.Error(), 120)
		s.log.Debug("connection ended", "user", c.user, "remote", r.RemoteAddr, "err", err)
	}
	ws.Close(code, reason)
}

func (s *Server) writeLoop(ctx context.Context, c *conn) {
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			// Flush what is queued (an error frame explaining a close) briefly.
			for {
				select {
				case b := <-c.out:
					wctx, cancel := context.WithTimeout(context.Background(), time.Second)
					c.ws.Write(wctx, websocket.MessageText, b)
					cancel()
				default:
					return
				}
			}
		case b := <-c.out:
			// Not derived from ctx: cancelling a write closes the websocket, and
			// an error frame queued just before the close must still go out.
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.ws.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				c.cancel()
				return
			}
		case <-ping.C:
			if exp := c.expires.Load(); exp != 0 && s.now().Unix() > exp+int64(identity.Skew/time.Second) {
				s.sendError(c, "", snapi.CodeAuth, "credential expired; renew it")
				c.cancel()
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, s.cfg.PingInterval)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil {
				c.cancel()
				return
			}
		}
	}
}

func (s *Server) readLoop(ctx context.Context, c *conn, remote string) error {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	s.send(c, snapi.Frame{Type: snapi.TypeChallenge, Nonce: nonce, Server: s.cfg.Name})

	actx, cancel := context.WithTimeout(ctx, s.cfg.AttachTimeout)
	f, err := s.readFrame(actx, c)
	cancel()
	if err != nil {
		return err
	}
	if f.Type != snapi.TypeAttach {
		s.sendError(c, "", snapi.CodeBadRequest, "expected attach")
		return fmt.Errorf("supernode: attach: got %q: %w", f.Type, snapi.ErrBadFrame)
	}
	cred, err := s.checkCredential(f.Credential)
	if err != nil {
		s.sendError(c, "", snapi.CodeAuth, err.Error())
		return err
	}
	if !identity.VerifyContext(cred.Key(), snapi.AttachContext, snapi.AttachMessage(nonce, s.cfg.Name), f.Sig) {
		s.sendError(c, "", snapi.CodeAuth, "attach signature does not match the credential's key")
		return fmt.Errorf("supernode: attach %q: signature: %w", cred.User, snapi.ErrAuth)
	}
	c.user, c.key = cred.User, cred.Key()
	c.expires.Store(cred.Expires)
	c.session = newSessionID()
	if f.Session != "" {
		s.replace(c, f.Session)
	}
	s.attach(c)
	s.mesh.publishNow(ctx, c.user)
	s.log.Info("attached", "user", c.user, "session", c.session, "remote", remote)
	s.send(c, snapi.Frame{Type: snapi.TypeAttached, User: c.user, Session: c.session, ICEServers: s.iceServers(c.user),
		Supernodes: s.mesh.liveURLs(snapi.MaxSupernodesListed), Observed: remote})

	for {
		f, err := s.readFrame(ctx, c)
		if err != nil {
			return err
		}
		switch f.Type {
		case snapi.TypeRenew:
			cred, err := s.checkCredential(f.Credential)
			if err == nil && (cred.User != c.user || !cred.Key().Equal(c.key)) {
				err = fmt.Errorf("supernode: renew: credential for another user or key: %w", snapi.ErrAuth)
			}
			if err != nil {
				s.sendError(c, "", snapi.CodeAuth, err.Error())
				return err
			}
			c.expires.Store(cred.Expires)
			s.send(c, snapi.Frame{Type: snapi.TypeAttached, User: c.user, Session: c.session, ICEServers: s.iceServers(c.user)})
		case snapi.TypeSend, snapi.TypeLookup, snapi.TypeDialback, snapi.TypePresence:
			if !c.sends.Allow() {
				// A sender over its rate is told so; it cannot fill a
				// recipient's queue and get them disconnected.
				s.sendError(c, f.ID, snapi.CodeOverload, "sending too fast; slow down")
				continue
			}
			select {
			case c.reqs <- &f:
			default:
				s.sendError(c, f.ID, snapi.CodeOverload, "too many requests in flight; slow down")
			}
		default:
			s.sendError(c, f.ID, snapi.CodeBadRequest, "unknown frame type "+truncate(f.Type, 32))
			return fmt.Errorf("supernode: read: type %q: %w", truncate(f.Type, 32), snapi.ErrBadFrame)
		}
	}
}

func (s *Server) readFrame(ctx context.Context, c *conn) (snapi.Frame, error) {
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		if websocket.CloseStatus(err) != -1 {
			return snapi.Frame{}, io.EOF
		}
		return snapi.Frame{}, fmt.Errorf("supernode: read: %w", err)
	}
	if typ != websocket.MessageText {
		s.sendError(c, "", snapi.CodeBadRequest, "binary frames are not part of the protocol")
		return snapi.Frame{}, fmt.Errorf("supernode: read: binary: %w", snapi.ErrBadFrame)
	}
	f, err := snapi.DecodeFrame(b)
	if err != nil {
		s.sendError(c, "", snapi.CodeBadRequest, err.Error())
		return snapi.Frame{}, err
	}
	return f, nil
}

func (s *Server) checkCredential(token string) (identity.Credential, error) {
	cred, err := identity.Verify(s.cfg.LoginKey, token, s.now())
	if err != nil {
		return cred, fmt.Errorf("supernode: attach: %w: %w", snapi.ErrAuth, err)
	}
	return cred, nil
}

func (s *Server) iceServers(user string) []snapi.ICEServer {
	if s.cfg.ICEServers == nil {
		return nil
	}
	return s.cfg.ICEServers(user)
}

func (s *Server) attach(c *conn) {
	s.mu.Lock()
	m := s.users[c.user]
	if m == nil {
		m = map[string]*conn{}
		s.users[c.user] = m
	}
	m[c.session] = c
	s.mu.Unlock()
	// The caller publishes the record at once (publishNow); a failure there
	// leaves it dirty for the publish loop.
}

// replace closes session id of c's user, when it is attached here with c's
// key: its client has lost it (a network change leaves a connection
// half-open until its pings time out) and is back on c. Its watchers are not
// told it went offline: c carries on for the same device.
func (s *Server) replace(c *conn, id string) {
	s.mu.Lock()
	old := s.users[c.user][id]
	s.mu.Unlock()
	if old == nil || !old.key.Equal(c.key) {
		return
	}
	old.replaced.Store(true)
	old.cancel()
	s.log.Info("replaced a lost session", "user", c.user, "session", id)
}

func (s *Server) detach(c *conn) {
	s.mu.Lock()
	if m := s.users[c.user]; m != nil {
		delete(m, c.session)
		if len(m) == 0 {
			delete(s.users, c.user)
		}
	}
	s.mu.Unlock()
	s.mesh.markDirty(c.user)
	s.log.Info("detached", "user", c.user, "session", c.session)
	if status, device, watch := c.presence(); status != "" && len(watch) > 0 && !c.replaced.Load() {
		s.goOwned(func(ctx context.Context) {
			s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: device, Status: presence.Offline}, watch)
		})
	}
}

// localUsers returns the users attached here.
func (s *Server) localUsers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.users))
	for u := range s.users {
		out = append(out, u)
	}
	return out
}

// sessionsOf returns the sessions user has attached here (at most
// MaxRecordSessions).
func (s *Server) sessionsOf(user string) []string {
	sessions, _ := s.sessionsAndHidden(user)
	return sessions
}

// sessionsAndHidden returns the sessions user has attached here (at most
// MaxRecordSessions) and those of them whose status is invisible.
func (s *Server) sessionsAndHidden(user string) (sessions, hidden []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.users[user] {
		if len(sessions) == MaxRecordSessions {
			break
		}
		sessions = append(sessions, id)
		if status, _, _ := c.presence(); status == presence.Invisible {
			hidden = append(hidden, id)
		}
	}
	return sessions, hidden
}

// requestQueue bounds one connection's sends, lookups and dial-backs waiting
// to be served.
const requestQueue = 64

// serveRequests serves one connection's requests in order, so a client's
// signals reach their recipient in the order it sent them.
func (s *Server) serveRequests(ctx context.Context, c *conn) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-c.reqs:
			switch f.Type {
			case snapi.TypeSend:
				s.route(ctx, c, *f)
			case snapi.TypeLookup:
				s.lookup(ctx, c, *f)
			case snapi.TypeDialback:
				s.send(c, s.dialback(ctx, c, *f))
			case snapi.TypePresence:
				s.setPresence(ctx, c, *f)
			}
		}
	}
}

func (s *Server) lookup(ctx context.Context, c *conn, f snapi.Frame) {
	if err := identity.CheckUser(f.To); err != nil {
		s.sendError(c, f.ID, snapi.CodeBadRequest, err.Error())
		return
	}
	loc := s.mesh.lookup(ctx, f.To)
	// Others see only the devices that are not invisible; a user looking
	// themselves up sees all of theirs.
	count, devices := loc.shown, loc.devices
	if c.user == f.To {
		count = loc.nodes
	} else {
		devices = 0
		for _, n := range count {
			devices += n
		}
	}
	nodes := make([]string, 0, len(count))
	for n, k := range count {
		if k > 0 && len(nodes) < snapi.MaxNodesFound {
			nodes = append(nodes, n)
		}
	}
	s.send(c, snapi.Frame{Type: snapi.TypeFound, ID: f.ID, User: f.To, Delivered: devices, Nodes: nodes, Hops: loc.hops})
}

// route delivers a send to every attached device of its recipient, here and
// on the supernodes the directory places them at, and acks it.
func (s *Server) route(ctx context.Context, from *conn, f snapi.Frame) {
	if err := identity.CheckUser(f.To); err != nil {
		s.sendError(from, f.ID, snapi.CodeBadRequest, err.Error())
		return
	}
	if len(f.Payload) == 0 || !json.Valid(f.Payload) {
		s.sendError(from, f.ID, snapi.CodeBadRequest, "payload must be JSON")
		return
	}
	d := MeshDelivery{To: f.To, From: from.user, FromSession: from.session, Payload: f.Payload}
	n := s.deliverLocal(d, from)
	// Devices here (other than the sender's own connection) whose queues
	// are full.
	full := n == 0 && slices.ContainsFunc(s.sessionsOf(f.To), func(id string) bool { return id != from.session })
	n += s.forward(ctx, d)
	switch {
	case n > 0:
		s.send(from, snapi.Frame{Type: snapi.TypeAck, ID: f.ID, Delivered: n})
	case full:
		s.sendError(from, f.ID, snapi.CodeOverload, f.To+" is not keeping up; try again")
	default:
		// Not attached anywhere reachable: perhaps moving between
		// supernodes right now; the sender may retry.
		s.sendError(from, f.ID, snapi.CodeOffline, f.To+" is offline")
	}
}

// forward carries d to the other supernodes the directory places d.To at,
// and returns how many devices there took it.
func (s *Server) forward(ctx context.Context, d MeshDelivery) int {
	loc := s.mesh.lookup(ctx, d.To)
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for node := range loc.nodes {
		if node == s.cfg.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _ := s.mesh.forward(ctx, node, d) // unreachable: dead, or the record is stale
			mu.Lock()
			n += k
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n
}

// deliverLocal queues d for every device of d.To attached here except the
// sender's own connection, and returns how many took it. A presence push
// that is not a reply is answered with the presence of every receiving
// device that watches its sender.
func (s *Server) deliverLocal(d MeshDelivery, except *conn) int {
	f := snapi.Frame{Type: snapi.TypeDeliver, From: d.From, FromSession: d.FromSession, Payload: d.Payload}
	if p := d.Presence; p != nil {
		f = snapi.Frame{Type: snapi.TypePresence, From: d.From, FromSession: d.FromSession, Device: p.Device, Status: p.Status}
	}
	b, err := snapi.EncodeFrame(f)
	if err != nil {
		return 0
	}
	s.mu.Lock()
	var targets []*conn
	for _, c := range s.users[d.To] {
		if c != except {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range targets {
		if c.enqueue(b) {
			n++
		}
		if d.Presence != nil && !d.Presence.Reply {
			s.answerPresence(c, d.From)
		}
	}
	return n
}

// setPresence applies a client's TypePresence frame and pushes it.
func (s *Server) setPresence(ctx context.Context, c *conn, f snapi.Frame) {
	if !presence.CanSet(f.Status) {
		s.sendError(c, f.ID, snapi.CodeBadRequest, "status must be online, away, busy or invisible")
		return
	}
	watch := make([]string, 0, len(f.Watch))
	seen := make(map[string]bool, len(f.Watch))
	for _, u := range f.Watch {
		if identity.CheckUser(u) != nil {
			s.sendError(c, f.ID, snapi.CodeBadRequest, "watch: bad user name "+truncate(u, 64))
			return
		}
		if !seen[u] && u != c.user {
			seen[u] = true
			watch = append(watch, u)
		}
	}
	c.pmu.Lock()
	var dropped []string
	for _, u := range c.watch {
		if !seen[u] {
			dropped = append(dropped, u)
		}
	}
	hiding := (c.status == presence.Invisible) != (f.Status == presence.Invisible)
	c.status, c.device, c.watch = f.Status, f.Device, watch
	c.pmu.Unlock()
	if hiding {
		// Lookups by others must stop (or start) counting this device
		// before the contacts are told.
		s.mesh.publishNow(ctx, c.user)
	}
	if len(dropped) > 0 {
		s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: f.Device, Status: presence.Offline}, dropped)
	}
	s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: f.Device, Status: presence.Shown(f.Status)}, watch)
}

// answerPresence pushes c's presence back to user from, when c watches them.
func (s *Server) answerPresence(c *conn, from string) {
	status, device, watch := c.presence()
	if status == "" || status == presence.Invisible {
		return
	}
	for _, u := range watch {
		if u == from {
			s.goOwned(func(ctx context.Context) {
				s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: device, Status: status, Reply: true}, []string{from})
			})
			return
		}
	}
}

// pushFanout bounds the watchers one presence change is pushed to at once.
const pushFanout = 8

// pushPresence tells every user in to that device note.Device of user is
// now note.Status, wherever they are attached. Offline watchers are skipped.
func (s *Server) pushPresence(ctx context.Context, user, session string, note PresenceNote, to []string) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(pushFanout, len(to)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				n := note
				d := MeshDelivery{To: u, From: user, FromSession: session, Presence: &n}
				s.deliverLocal(d, nil)
				s.forward(ctx, d)
			}
		}()
	}
	for _, u := range to {
		select {
		case work <- u:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// asyncTimeout bounds work the server does on its own (presence pushes).
const asyncTimeout = 10 * time.Second

// goOwned runs f on a goroutine the server owns (Close waits for it), with
// a context that ends at Close or after asyncTimeout.
func (s *Server) goOwned(f func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, asyncTimeout)
		defer cancel()
		f(ctx)
	}()
}

func (s *Server) send(c *conn, f snapi.Frame) {
	b, err := snapi.EncodeFrame(f)
	if err != nil {
		s.log.Error("encode frame", "err", err)
		return
	}
	c.enqueue(b)
}

func (s *Server) sendError(c *conn, id, code, msg string) {
	s.send(c, snapi.Frame{Type: snapi.TypeError, ID: id, Code: code, Error: truncate(msg, 200)})
}

func newSessionID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
