package supernode

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/snapi"
)

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
	// admitted gives back the admission slot (once: at attach, or when
	// the connection ends first).
	admitted func()

	replaced atomic.Bool  // closed by a reattach of its client (see replace)
	lastRead atomic.Int64 // when the client last sent a frame (Unix ns, s.now)
	attached bool         // counted in s.users (read loop's goroutine only)

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
	admitted, shed := s.adm.admit()
	if shed != "" {
		s.refuseBusy(w, shed)
		return
	}
	defer admitted()

	// Authentication is by signed credential, never by cookie, so cross-origin
	// pages (the web client served by the login server) may connect.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(snapi.MaxFrameSize)
	addr := addrKey(r.RemoteAddr)
	if !s.admitAddr(addr) {
		s.m.refused(refuseAddrSessions)
		s.log.Warn("refused a connection: too many from one address", "addr", addr, "max", s.cfg.MaxSessionsPerAddr)
		refuse(ws, fmt.Sprintf("too many connections from your address (%d); try another supernode", s.cfg.MaxSessionsPerAddr))
		return
	}
	defer s.releaseAddr(addr)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c := &conn{ws: ws, out: make(chan []byte, s.cfg.SendQueue), cancel: cancel,
		sends:  rate.NewLimiter(rate.Limit(s.cfg.SendRate), s.cfg.SendBurst),
		reqs:   make(chan *snapi.Frame, requestQueue),
		remote: r.RemoteAddr, admitted: admitted}
	c.lastRead.Store(s.now().UnixNano())

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
	if c.attached {
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
				s.m.refused(refuseCredential)
				s.sendError(c, "", snapi.CodeAuth, "credential expired; renew it")
				c.cancel()
				continue
			}
			if idle := s.cfg.IdleTimeout; idle > 0 && s.now().Sub(time.Unix(0, c.lastRead.Load())) > idle {
				// Answering pings costs a client nothing: a session that
				// never speaks (live clients refresh their presence every
				// minute) is let go.
				s.m.refused(refuseIdle)
				s.sendError(c, "", snapi.CodeLimit, fmt.Sprintf("no frame for %v; closing an idle connection", idle))
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

func (s *Server) send(c *conn, f snapi.Frame) {
	b, err := snapi.EncodeFrame(f)
	if err != nil {
		s.log.Error("encode frame", "err", err)
		return
	}
	if s.enqueue(c, b) {
		s.m.frameOut(f.Type)
	}
}

// enqueue is c.enqueue, counting a frame dropped because c's queue was full.
func (s *Server) enqueue(c *conn, b []byte) bool {
	if c.enqueue(b) {
		return true
	}
	s.m.drops.WithLabelValues(dropSlowClient).Inc()
	return false
}

func (s *Server) sendError(c *conn, id, code, msg string) {
	s.send(c, snapi.Frame{Type: snapi.TypeError, ID: id, Code: code, Error: truncate(msg, 200)})
}

// addrKey is the address connections are counted by: the IP of remote
// (host:port), or its /64 for IPv6, where one subscriber holds a whole /64.
func addrKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// admitAddr takes one of addr's MaxSessionsPerAddr connection slots; false
// when there is none left.
func (s *Server) admitAddr(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit := s.cfg.MaxSessionsPerAddr; limit > 0 && s.byAddr[addr] >= limit {
		return false
	}
	s.byAddr[addr]++
	return true
}

func (s *Server) releaseAddr(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byAddr[addr]--; s.byAddr[addr] <= 0 {
		delete(s.byAddr, addr)
	}
}

// refuse tells a client just accepted why it is turned away (a CodeLimit
// error frame, instead of the challenge) and drops its connection at once:
// a refused connection must cost next to nothing, so no closing handshake is
// waited for.
func refuse(ws *websocket.Conn, msg string) {
	b, err := snapi.EncodeFrame(snapi.Frame{Type: snapi.TypeError, Code: snapi.CodeLimit, Error: truncate(msg, 200)})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ws.Write(ctx, websocket.MessageText, b)
		cancel()
	}
	ws.CloseNow()
}

func newSessionID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
