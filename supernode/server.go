package supernode

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/internal/connlimit"
	"github.com/parley/parley/internal/logthrottle"
	"github.com/parley/parley/internal/metrics"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/loginapi"
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

	// MaxSessionsPerUser caps the sessions one user may have attached here
	// at once; a further attach is refused with a snapi.CodeLimit error
	// frame and closed. A device attaching again replaces its old session
	// (see replace) instead of counting twice. Default 32, twice the 16
	// devices a user may register at the login server (its
	// MaxDevicesPerUser); negative = no cap. The directory lists at most
	// MaxRecordSessions of them; sends reach them all.
	MaxSessionsPerUser int
	// MaxSessionsPerAddr caps the websocket connections (attached or still
	// attaching) from one address: one IPv4 address, or one IPv6 /64. A
	// further one gets a snapi.CodeLimit error frame instead of the
	// challenge and is closed. Default 64; labs that put many clients behind
	// one address raise it; negative = no cap.
	MaxSessionsPerAddr int
	// MaxConnsPerAddr caps the TCP connections one address (IPv4 address,
	// IPv6 /64) holds at once, websockets, mesh requests and /healthz
	// together, for a listener wrapped by [Server.LimitListener]; one
	// beyond it is closed as soon as it is accepted. Default twice
	// MaxSessionsPerAddr (128); negative = no cap.
	MaxConnsPerAddr int
	// IdleTimeout closes an attached connection that has sent no frame for
	// that long (answering pings does not count), with a snapi.CodeLimit
	// error frame. Clients repeat their presence every
	// snapi.PresenceRefresh (60 s). Checked every PingInterval. Default
	// 150 s; negative = never.
	IdleTimeout time.Duration

	// Admission control (admission.go): a new connection is refused
	// before the websocket upgrade with 503 and a Retry-After (see
	// snapi.BusyStatus) when MaxAttaching connections are between upgrade
	// and attach (default 256; negative = no cap), when more than
	// AttachRate connections a second arrive (a token bucket of
	// AttachBurst; defaults 200 a second, burst = the rate; negative rate =
	// no cap), or while the Go runtime's memory (heap, stacks and runtime
	// structures: what GOMEMLIMIT counts) is over ShedMemoryBytes (default
	// 80% of the process's memory limit, GOMEMLIMIT, when one is set, else
	// none; negative = none). Attached sessions are never shed. The
	// Retry-After is uniform in [RetryAfter, 2·RetryAfter], whole seconds
	// (default 2 s).
	MaxAttaching    int
	AttachRate      float64
	AttachBurst     int
	ShedMemoryBytes int64
	RetryAfter      time.Duration

	// The timeouts of the http.Server [Server.HTTPServer] builds.
	// HTTPReadHeaderTimeout bounds reading a request's headers (slow or
	// idle connections that never finish a request). Default 10 s.
	// HTTPReadTimeout bounds reading a whole request, body included (mesh
	// requests, dial-backs, /healthz), and HTTPWriteTimeout the time from
	// the end of the headers to the end of the answer. Defaults 30 s and
	// 60 s. Neither applies to a websocket once it is accepted (net/http
	// clears the deadlines when the handler takes the connection over);
	// websockets are bounded by AttachTimeout, PingInterval and IdleTimeout.
	// HTTPIdleTimeout bounds a kept-alive connection between requests.
	// Default 120 s. A negative one means no timeout.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration

	// LogPerMinute is how many records with the same level and message
	// (info and above) reach Logger per minute; the rest are counted, and
	// reported in one record with "suppressed"=count when the minute ends
	// (see internal/logthrottle). Default 10; negative = no throttling.
	LogPerMinute int

	// Metrics, when set, receives the supernode's Prometheus metrics
	// (parley_supernode_…, see docs/operations.md); Close unregisters them.
	// nil: they are counted but not exported.
	Metrics prometheus.Registerer
	// RelayHealth, when set, says whether the relay this supernode offers
	// its users is serving (nil error) or what is wrong; /healthz reports
	// it. nil: no relay of its own.
	RelayHealth func() error
}

// Server is a supernode's presence and signalling service. It serves the
// websocket endpoint /v1/ws and /healthz through [Server.Handler].
type Server struct {
	cfg      Config
	log      *slog.Logger
	throttle *logthrottle.Handler // nil: no Logger, or not throttled
	now      func() time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mesh *mesh
	adm  *admission

	// The heartbeat stops before Close tells the login server goodbye.
	hbCtx    context.Context
	hbCancel context.CancelFunc
	hbDone   chan struct{}

	// m are the Prometheus metrics; unregister takes them out of
	// Config.Metrics at Close. login is what the last heartbeat said.
	m          *snMetrics
	unregister func()
	login      atomic.Pointer[LoginState]

	mu     sync.Mutex
	users  map[string]map[string]*conn // user → session → conn
	byAddr map[string]int              // websocket connections by addrKey
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
	if cfg.MaxSessionsPerUser == 0 {
		cfg.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if cfg.MaxSessionsPerAddr == 0 {
		cfg.MaxSessionsPerAddr = DefaultMaxSessionsPerAddr
	}
	if cfg.MaxConnsPerAddr == 0 {
		cfg.MaxConnsPerAddr = -1 // no cap on sessions, none on connections
		if cfg.MaxSessionsPerAddr > 0 {
			cfg.MaxConnsPerAddr = 2 * cfg.MaxSessionsPerAddr
		}
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.HTTPReadHeaderTimeout == 0 {
		cfg.HTTPReadHeaderTimeout = DefaultHTTPReadHeaderTimeout
	}
	if cfg.HTTPReadTimeout == 0 {
		cfg.HTTPReadTimeout = DefaultHTTPReadTimeout
	}
	if cfg.HTTPWriteTimeout == 0 {
		cfg.HTTPWriteTimeout = DefaultHTTPWriteTimeout
	}
	if cfg.HTTPIdleTimeout == 0 {
		cfg.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	admissionDefaults(&cfg)
	if cfg.LogPerMinute == 0 {
		cfg.LogPerMinute = logthrottle.DefaultPerWindow
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
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, users: map[string]map[string]*conn{}, byAddr: map[string]int{}}
	switch {
	case s.log == nil:
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	case cfg.LogPerMinute > 0:
		// A failure that repeats (a login server down, a flood of refused
		// sessions) must not fill the disk: identical records beyond
		// LogPerMinute a minute are only counted.
		s.throttle = logthrottle.New(cfg.Logger.Handler(), logthrottle.Options{PerWindow: cfg.LogPerMinute})
		s.log = slog.New(s.throttle)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.adm = newAdmission(cfg, s.now)
	s.login.Store(&LoginState{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mesh = newMesh(s)
	s.m = newSNMetrics(s)
	unregister, err := metrics.Register(cfg.Metrics, s.m.all...)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("supernode: new: %w", err)
	}
	s.unregister = unregister
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

// Defaults of the Config's limits and HTTP timeouts (also for an HTTP
// server started before the supernode, as self-promotion does).
const (
	DefaultMaxSessionsPerUser    = 32
	DefaultMaxSessionsPerAddr    = 64
	DefaultIdleTimeout           = 150 * time.Second
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPReadTimeout       = 30 * time.Second
	DefaultHTTPWriteTimeout      = 60 * time.Second
	DefaultHTTPIdleTimeout       = 120 * time.Second
	// MaxHeaderBytes caps a request's headers in HTTPServer (a websocket
	// upgrade, a mesh request, the web front's API calls are all a few
	// hundred bytes).
	MaxHeaderBytes = 64 << 10
)

// HTTPServer returns an http.Server that serves h (Handler, or a handler in
// front of it such as the web front) with the Config's HTTP timeouts:
// HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout and
// HTTPIdleTimeout (a negative one means none), headers capped at 64 KiB and
// its errors logged at debug level. Serve (or ServeTLS) it on the
// supernode's listener and Shutdown it before Close. Websockets are not cut
// by these timeouts: they end by AttachTimeout, PingInterval and
// IdleTimeout.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	pos := func(d time.Duration) time.Duration { return max(d, 0) }
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: pos(s.cfg.HTTPReadHeaderTimeout),
		ReadTimeout:       pos(s.cfg.HTTPReadTimeout),
		WriteTimeout:      pos(s.cfg.HTTPWriteTimeout),
		IdleTimeout:       pos(s.cfg.HTTPIdleTimeout),
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// LimitListener wraps ln (a TCP listener, before any TLS) so that one
// address holds at most Config.MaxConnsPerAddr connections at once.
func (s *Server) LimitListener(ln net.Listener) net.Listener {
	if s.cfg.MaxConnsPerAddr < 0 {
		return ln
	}
	return connlimit.Wrap(ln, connlimit.Config{PerAddr: s.cfg.MaxConnsPerAddr, OnRefuse: func(ip netip.Addr) {
		s.m.refused(refuseAddrConns)
		s.log.Debug("connection refused: too many from this address", "addr", ip.String(), "max", s.cfg.MaxConnsPerAddr)
	}})
}

// Handler serves /v1/ws (the client websocket) and /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/ws", s.serveWS)
	mux.HandleFunc(MeshPath, s.serveMesh)
	mux.Handle(nodeid.IdentifyPath, nodeid.Handler(s.cfg.Name, s.cfg.NodeKey))
	mux.HandleFunc("/healthz", s.serveHealth)
	return mux
}

// userCount returns the number of users with a session attached here.
func (s *Server) userCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
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
	if s.throttle != nil {
		s.throttle.Close() // the counts of records still held back
	}
	s.unregister()
	return nil
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
