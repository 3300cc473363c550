package snapi

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/presence"
)

// DialConfig configures [Dial]. URL, Credential and Key are required.
type DialConfig struct {
	// URL is the supernode's websocket address, ws://host:port/v1/ws or wss://.
	URL string
	// Credential is the login server's token for the user; Key the matching
	// private key.
	Credential string
	Key        ed25519.PrivateKey
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// Deliver is called, from the connection's reader goroutine and in arrival
	// order, with every TypeDeliver and TypePresence frame. It must not block
	// for long.
	Deliver func(Frame)
	// Replaces is the session id this client held at this supernode on a
	// connection it has lost ("": none). The supernode closes that session,
	// if it is still open and attached with the same key, at once, instead of
	// routing to it until its pings time out.
	Replaces string
}

// Conn is a client's attached connection to a supernode. Its reader goroutine is
// owned by the Conn and ends on Close or when the connection drops; Done reports it.
type Conn struct {
	ws      *websocket.Conn
	log     *slog.Logger
	deliver func(Frame)
	user    string
	session string
	ice     []ICEServer
	others  []string
	seen    string

	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[string]chan Frame
	renewed chan Frame

	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// Dial connects to a supernode and attaches: it checks that the challenge names the
// host it dialled, signs it, and waits for TypeAttached.
func Dial(ctx context.Context, cfg DialConfig) (*Conn, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("supernode: dial %q: not a ws:// or wss:// URL", cfg.URL)
	}
	ws, resp, err := websocket.Dial(ctx, cfg.URL, nil)
	if err != nil {
		if busy := busyError(u.Host, resp); busy != nil {
			return nil, busy
		}
		return nil, fmt.Errorf("supernode: dial %s: %w: %v", u.Host, ErrDisconnected, err)
	}
	ws.SetReadLimit(MaxFrameSize)
	fail := func(err error) (*Conn, error) {
		ws.Close(websocket.StatusPolicyViolation, "")
		return nil, err
	}
	ch, err := readFrame(ctx, ws)
	if err != nil {
		return fail(fmt.Errorf("supernode: dial %s: challenge: %w", u.Host, err))
	}
	if ch.Type != TypeChallenge || len(ch.Nonce) != 32 {
		return fail(fmt.Errorf("supernode: dial %s: expected challenge: %w", u.Host, ErrBadFrame))
	}
	if !sameHost(ch.Server, u.Host) {
		return fail(fmt.Errorf("supernode: dial %s: challenge for %q: %w", u.Host, ch.Server, ErrWrongServer))
	}
	sig := identity.SignContext(cfg.Key, AttachContext, AttachMessage(ch.Nonce, ch.Server))
	if err := writeFrame(ctx, ws, Frame{Type: TypeAttach, Credential: cfg.Credential, Sig: sig, Session: cfg.Replaces}); err != nil {
		return fail(fmt.Errorf("supernode: dial %s: %w", u.Host, err))
	}
	// A presence push or a delivery can overtake the attach reply: the
	// session is known to the supernode a moment before the reply goes.
	// They are kept (at most maxEarly) and delivered first.
	var early []Frame
	at, err := readFrame(ctx, ws)
	for err == nil && (at.Type == TypePresence || at.Type == TypeDeliver) && len(early) < maxEarly {
		early = append(early, at)
		at, err = readFrame(ctx, ws)
	}
	if err != nil {
		return fail(fmt.Errorf("supernode: dial %s: attach: %w", u.Host, err))
	}
	if at.Type == TypeError {
		return fail(fmt.Errorf("supernode: attach at %s: %w: %s", u.Host, ErrAuth, at.Error))
	}
	if at.Type != TypeAttached {
		return fail(fmt.Errorf("supernode: attach at %s: got %q: %w", u.Host, at.Type, ErrBadFrame))
	}
	c := &Conn{
		ws: ws, log: cfg.Logger, deliver: cfg.Deliver, user: at.User, session: at.Session,
		ice: at.ICEServers, others: at.Supernodes, seen: at.Observed, pending: map[string]chan Frame{}, renewed: make(chan Frame, 1),
		done: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.readLoop(rctx, early)
	return c, nil
}

// maxEarly caps the pushes kept that came before the attach reply.
const maxEarly = 64

// busyError reads a busy refusal (503 with Retry-After) from a failed
// upgrade's response; nil when resp is not one.
func busyError(host string, resp *http.Response) *BusyError {
	if resp == nil || resp.StatusCode != BusyStatus || resp.Header.Get("Retry-After") == "" {
		return nil
	}
	wait := MaxRetryAfter // unreadable or too long
	if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs < int(MaxRetryAfter/time.Second) {
		wait = max(time.Duration(secs)*time.Second, time.Second)
	}
	var body BusyBody
	if resp.Body != nil {
		json.NewDecoder(io.LimitReader(resp.Body, 1024)).Decode(&body)
	}
	return &BusyError{Host: host, RetryAfter: wait, Reason: sanitize(body.Reason)}
}

// sanitize keeps a reason from a server to one short line of printable ASCII.
func sanitize(s string) string {
	s = truncateString(s, 40)
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// sameHost compares host:port pairs, treating "localhost" and the loopback
// addresses as different names: the challenge must name what was dialled.
func sameHost(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return ha == hb && pa == pb
}

// User is the user the supernode attached this connection as.
func (c *Conn) User() string { return c.user }

// Session is this connection's session id at the supernode.
func (c *Conn) Session() string { return c.session }

// ICEServers are the STUN/TURN servers the supernode offered at attach.
func (c *Conn) ICEServers() []ICEServer { return c.ice }

// Supernodes are the other live supernodes' ws:// URLs the supernode listed at
// attach (for the client's host cache).
func (c *Conn) Supernodes() []string { return c.others }

// Observed is the client's address (host:port) as the supernode saw it.
func (c *Conn) Observed() string { return c.seen }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended (after Done is closed).
func (c *Conn) Err() error {
	<-c.done
	return c.err
}

// Close ends the connection and waits for its reader.
func (c *Conn) Close() error {
	c.ws.Close(websocket.StatusNormalClosure, "")
	c.cancel()
	<-c.done
	return nil
}

// Send delivers payload to every attached device of user to, and returns how
// many devices got it. ErrOffline when the user is not attached anywhere.
func (c *Conn) Send(ctx context.Context, to string, payload json.RawMessage) (int, error) {
	f, err := c.request(ctx, Frame{Type: TypeSend, To: to, Payload: payload}, TypeAck)
	if err != nil {
		return 0, fmt.Errorf("supernode: send to %s: %w", to, err)
	}
	return f.Delivered, nil
}

// Found is the answer to a lookup.
type Found struct {
	User string `json:"user"`
	// Devices is how many devices of User are attached; 0 = offline.
	Devices int `json:"devices"`
	// Nodes are the supernodes (host:port) they are attached to.
	Nodes []string `json:"nodes,omitempty"`
	// Hops is how many overlay messages, in sequence, the lookup took.
	Hops int `json:"hops"`
}

// Lookup asks where user is online. An offline user is not an error: Devices
// is 0.
func (c *Conn) Lookup(ctx context.Context, user string) (Found, error) {
	f, err := c.request(ctx, Frame{Type: TypeLookup, To: user}, TypeFound)
	if err != nil {
		return Found{}, fmt.Errorf("supernode: lookup %s: %w", user, err)
	}
	return Found{User: user, Devices: f.Delivered, Nodes: f.Nodes, Hops: f.Hops}, nil
}

// Dialback asks the supernode to check that this client answers at url (the
// ws:// URL it would serve as a supernode, proving nodeKey) and at udp (its
// STUN port). It returns which checks passed; err explains a failure.
func (c *Conn) Dialback(ctx context.Context, url, udp string, nodeKey ed25519.PublicKey) (tcpOK, udpOK bool, err error) {
	f, err := c.request(ctx, Frame{Type: TypeDialback, URL: url, UDP: udp, NodeKey: nodeKey}, TypeDialbackResult)
	if err != nil {
		return false, false, fmt.Errorf("supernode: dial-back %s: %w", url, err)
	}
	if f.Error != "" {
		err = fmt.Errorf("supernode: dial-back %s: %w: %s", url, ErrDialback, f.Error)
	}
	return f.TCPOK, f.UDPOK, err
}

// request writes f with a fresh ID and waits for the reply of type want.
func (c *Conn) request(ctx context.Context, f Frame, want string) (Frame, error) {
	id := strconv.FormatUint(c.nextID.Add(1), 10)
	reply := make(chan Frame, 1)
	c.mu.Lock()
	c.pending[id] = reply
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	f.ID = id
	if err := c.write(f); err != nil {
		return Frame{}, err
	}
	select {
	case r := <-reply:
		if r.Type == want {
			return r, nil
		}
		switch r.Code {
		case CodeOffline:
			return r, ErrOffline
		case CodeOverload:
			return r, ErrOverload
		}
		return r, fmt.Errorf("%w: %s", ErrBadFrame, r.Error)
	case <-c.done:
		return Frame{}, ErrDisconnected
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Renew presents a fresh credential for the same user and key.
func (c *Conn) Renew(ctx context.Context, credential string) error {
	if err := c.write(Frame{Type: TypeRenew, Credential: credential}); err != nil {
		return fmt.Errorf("supernode: renew: %w", err)
	}
	select {
	case f := <-c.renewed:
		if f.Type == TypeError {
			return fmt.Errorf("supernode: renew: %w: %s", ErrAuth, f.Error)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("supernode: renew: %w", ErrDisconnected)
	case <-ctx.Done():
		return fmt.Errorf("supernode: renew: %w", ctx.Err())
	}
}

// SetPresence sets this connection's presence (see TypePresence): status is
// online, away, busy or invisible; device the client's name for itself;
// watch the users to tell. The supernode answers only a bad frame (logged).
func (c *Conn) SetPresence(status, device string, watch []string) error {
	if !presence.CanSet(status) {
		return fmt.Errorf("supernode: presence %q: %w", status, ErrBadFrame)
	}
	if len(watch) > MaxWatch {
		watch = watch[:MaxWatch]
	}
	if err := c.write(Frame{Type: TypePresence, ID: "presence", Status: status, Device: device, Watch: watch}); err != nil {
		return fmt.Errorf("supernode: presence: %w: %v", ErrDisconnected, err)
	}
	return nil
}

// write sends one frame. Its deadline is its own, not the caller's: coder/websocket
// closes the whole connection when a write's context ends mid-frame, and one
// caller giving up must not cut everyone off.
func (c *Conn) write(f Frame) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return writeFrame(ctx, c.ws, f)
}

func (c *Conn) readLoop(ctx context.Context, early []Frame) {
	defer close(c.done)
	defer c.cancel()
	if c.deliver != nil {
		for _, f := range early {
			c.deliver(f)
		}
	}
	for {
		f, err := readFrame(ctx, c.ws)
		if err != nil {
			c.err = fmt.Errorf("supernode: %w: %v", ErrDisconnected, err)
			c.ws.CloseNow()
			return
		}
		switch {
		case f.Type == TypeDeliver || f.Type == TypePresence:
			if c.deliver != nil {
				c.deliver(f)
			}
		case f.Type == TypeAttached || (f.Type == TypeError && f.ID == "" && f.Code == CodeAuth):
			select {
			case c.renewed <- f:
			default:
			}
			if f.Type == TypeError {
				c.log.Warn("supernode refused credential", "err", f.Error)
			}
		case f.ID != "":
			c.mu.Lock()
			ch := c.pending[f.ID]
			c.mu.Unlock()
			if ch != nil {
				select {
				case ch <- f: // at most one reply is awaited; a duplicate is dropped
				default:
				}
			}
		case f.Type == TypeError:
			c.log.Warn("supernode error", "code", f.Code, "err", f.Error)
		}
	}
}

func readFrame(ctx context.Context, ws *websocket.Conn) (Frame, error) {
	typ, b, err := ws.Read(ctx)
	if err != nil {
		return Frame{}, err
	}
	if typ != websocket.MessageText {
		return Frame{}, fmt.Errorf("binary frame: %w", ErrBadFrame)
	}
	f, err := DecodeFrame(b)
	if err != nil {
		return f, err
	}
	if f.Type == TypeError && f.ID == "" && f.Code != CodeAuth && f.Code != "" {
		if f.Code == CodeLimit {
			return f, fmt.Errorf("%w: %s", ErrLimit, f.Error)
		}
		return f, errors.New(f.Error)
	}
	return f, nil
}

func writeFrame(ctx context.Context, ws *websocket.Conn, f Frame) error {
	b, err := EncodeFrame(f)
	if err != nil {
		return err
	}
	return ws.Write(ctx, websocket.MessageText, b)
}
