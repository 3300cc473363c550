package loadgen

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/parley/parley/internal/backoff"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

// The reconnect policy of a simulated user: the client library's
// (client/failover.go): full jitter, the first try within 300 ms, doubling
// up to 30 s; a busy supernode's Retry-After plus up to half of it again.
const (
	retryBase     = 300 * time.Millisecond
	retryCap      = 30 * time.Second
	dialTimeout   = 5 * time.Second
	sendTimeout   = 10 * time.Second
	deadFor       = 10 * time.Second // a supernode that failed is tried last this long
	renewBefore   = 10 * time.Minute // credentials are renewed this long before they expire
	offlineResend = 2 * time.Second  // a message to an offline user is tried again after this
)

// payload is what a simulated user sends through the supernodes.
type payload struct {
	Load int    `json:"load"`
	Kind string `json:"kind"` // "msg" or "receipt"
	ID   string `json:"id"`   // sender:seq
	To   string `json:"to,omitempty"`
	Try  int    `json:"try,omitempty"`
}

const (
	kindMsg     = "msg"
	kindReceipt = "receipt"
)

type receipt struct{ to, id string }

type pendingMsg struct {
	id, to string
	try    int
	next   time.Time
}

// vuser is one simulated user: one device, one websocket at a time.
type vuser struct {
	l     *Load
	idx   int
	name  string
	pub   ed25519.PublicKey
	key   ed25519.PrivateKey
	watch []string

	receipts chan receipt // from the reader, to be sent by run

	// run's goroutine only
	excluded map[string]time.Time
	rng      *rand.Rand
	seq      int

	mu      sync.Mutex
	cred    string
	expires time.Time
	refresh string
	conn    *snapi.Conn
	url     string
	pending map[string]*pendingMsg
}

// logIn registers the user (unless it exists) and logs it in with a fresh
// device key.
func (u *vuser) logIn(ctx context.Context) error {
	u.pub, u.key = keyPair()
	for try := 0; ; try++ {
		err := u.l.login.Register(ctx, u.name, u.l.cfg.Password)
		var ae *loginapi.APIError
		switch {
		case err == nil, errors.Is(err, loginapi.ErrUserExists):
		case errors.Is(err, loginapi.ErrRateLimited) && errors.As(err, &ae) && try < 5:
			if sleepCtx(ctx, max(ae.RetryAfter, time.Second)) != nil {
				return ctx.Err()
			}
			continue
		default:
			return fmt.Errorf("loadgen: register %s: %w", u.name, err)
		}
		break
	}
	resp, err := u.l.login.Login(ctx, u.name, u.l.cfg.Password, u.pub)
	if err != nil {
		return fmt.Errorf("loadgen: login %s: %w", u.name, err)
	}
	u.setCred(resp)
	return nil
}

func (u *vuser) setCred(resp *loginapi.LoginResponse) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cred, u.expires, u.refresh = resp.Credential, time.Unix(resp.Expires, 0), resp.RefreshToken
}

// credential returns a credential valid for renewBefore at least, renewing
// it first if need be (or when force).
func (u *vuser) credential(ctx context.Context, force bool) (string, bool, error) {
	u.mu.Lock()
	cred, exp, refresh := u.cred, u.expires, u.refresh
	u.mu.Unlock()
	if !force && time.Until(exp) > renewBefore {
		return cred, false, nil
	}
	resp, err := u.l.login.Refresh(ctx, u.name, refresh, u.pub)
	if err != nil {
		resp, err = u.l.login.Login(ctx, u.name, u.l.cfg.Password, u.pub)
	}
	if err != nil {
		return cred, false, fmt.Errorf("loadgen: renewing %s: %w", u.name, err)
	}
	u.setCred(resp)
	return resp.Credential, true, nil
}

func (u *vuser) setConn(c *snapi.Conn, url string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.conn, u.url = c, url
}

func (u *vuser) online() bool { return u.supernode() != "" }

func (u *vuser) supernode() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.url
}

func (u *vuser) currentConn() *snapi.Conn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conn
}

func (u *vuser) waiting() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending)
}

// end is why an attached session ended.
type end int

const (
	endClose   end = iota // the load is closing
	endDropped            // the connection dropped (its supernode died)
	endLeave              // the user leaves for a while (churn)
)

// run keeps the user going until the load closes: attach, a session, then
// reattach (after a drop) or a pause offline (after leaving).
func (u *vuser) run(sem chan struct{}, attached chan<- struct{}) {
	first, afterDrop := true, false
	var dropped time.Time
	for {
		if first {
			select {
			case sem <- struct{}{}:
			case <-u.l.ctx.Done():
				return
			}
		}
		conn, url, err := u.connect(afterDrop)
		if first {
			<-sem
		}
		if err != nil {
			return // closing
		}
		if first {
			attached <- struct{}{}
			first = false
		}
		if afterDrop {
			u.l.reattached(dropped, time.Since(dropped))
		}
		u.setConn(conn, url)
		conn.SetPresence(presence.Online, "load", u.watch)
		why := u.session(conn)
		u.setConn(nil, "")
		conn.Close()
		afterDrop = why == endDropped
		switch why {
		case endClose:
			return
		case endDropped:
			dropped = time.Now()
			u.l.st.drops.Add(1)
		case endLeave:
			u.l.st.leaves.Add(1)
			off := u.exp(u.l.cfg.MeanOffline)
			select {
			case <-u.l.ctx.Done():
				return
			case <-u.l.quietCh:
			case <-time.After(off):
			}
		}
	}
}

// exp is an exponentially distributed duration of mean m.
func (u *vuser) exp(m time.Duration) time.Duration {
	return time.Duration(u.rng.ExpFloat64() * float64(m))
}

// candidates are the supernodes to try, in a random order, leaving out those
// that failed or were busy recently unless none is left.
func (u *vuser) candidates() []string {
	all := u.l.supernodes()
	u.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	now := time.Now()
	var ok []string
	for _, url := range all {
		if now.After(u.excluded[url]) {
			ok = append(ok, url)
		}
	}
	if len(ok) == 0 {
		return all
	}
	return ok
}

// connect attaches to a supernode, retrying (with the client's backoff,
// honouring Retry-After) until it does or the load closes. After a drop it
// first waits a random 0–300 ms, as the client library does.
func (u *vuser) connect(afterDrop bool) (*snapi.Conn, string, error) {
	b := backoff.New(backoff.Policy{Base: retryBase, Cap: retryCap, Rand: u.rng.Int64N})
	wait := time.Duration(0)
	if afterDrop {
		wait = b.Next()
	}
	force := false
	for {
		if err := sleepCtx(u.l.ctx, wait); err != nil {
			return nil, "", err
		}
		cred, _, err := u.credential(u.l.ctx, force)
		if err != nil {
			if u.l.ctx.Err() != nil {
				return nil, "", u.l.ctx.Err()
			}
			u.l.log.Warn("credential", "user", u.name, "err", err)
		}
		force = false
		busyWait := time.Duration(0)
		for _, url := range u.candidates() {
			dctx, cancel := context.WithTimeout(u.l.ctx, dialTimeout)
			conn, err := snapi.Dial(dctx, snapi.DialConfig{URL: url, Credential: cred, Key: u.key, Deliver: u.deliver})
			cancel()
			if err == nil {
				u.l.st.attaches.Add(1)
				return conn, url, nil
			}
			if u.l.ctx.Err() != nil {
				return nil, "", u.l.ctx.Err()
			}
			if ra, busy := snapi.RetryAfter(err); busy {
				u.l.st.busy.Add(1)
				u.excluded[url] = time.Now().Add(ra)
				if busyWait == 0 || ra < busyWait {
					busyWait = ra
				}
				continue
			}
			u.l.st.dialFailures.Add(1)
			u.excluded[url] = time.Now().Add(deadFor)
			force = force || errors.Is(err, snapi.ErrAuth)
			u.l.log.Debug("attach failed", "user", u.name, "supernode", url, "err", err)
		}
		wait = b.Next()
		if busyWait > 0 {
			wait = max(wait, busyWait+time.Duration(u.rng.Int64N(int64(busyWait/2)+1)))
		}
	}
}

// session runs one attached session until it ends.
func (u *vuser) session(conn *snapi.Conn) end {
	var leave <-chan time.Time
	if u.l.cfg.MeanOnline > 0 && !u.l.quiet.Load() {
		t := time.NewTimer(u.exp(u.l.cfg.MeanOnline))
		defer t.Stop()
		leave = t.C
	}
	var msg <-chan time.Time
	msgT := time.NewTimer(time.Hour)
	defer msgT.Stop()
	if u.l.cfg.MessageEvery > 0 {
		msgT.Reset(u.exp(u.l.cfg.MessageEvery))
		msg = msgT.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	pres := time.NewTicker(snapi.PresenceRefresh)
	defer pres.Stop()
	quiet := u.l.quietCh
	u.flush(conn)
	for {
		select {
		case <-u.l.ctx.Done():
			return endClose
		case <-conn.Done():
			return endDropped
		case <-leave:
			return endLeave
		case <-quiet:
			leave, msg, quiet = nil, nil, nil
		case <-msg:
			u.newMessage()
			u.flush(conn)
			msgT.Reset(u.exp(u.l.cfg.MessageEvery))
		case r := <-u.receipts:
			ctx, cancel := context.WithTimeout(u.l.ctx, sendTimeout)
			b, _ := json.Marshal(payload{Load: 1, Kind: kindReceipt, ID: r.id})
			if _, err := conn.Send(ctx, r.to, b); err == nil {
				u.l.st.receiptsSent.Add(1)
			}
			cancel()
		case <-tick.C:
			u.flush(conn)
			if cred, renewed, err := u.credential(u.l.ctx, false); err == nil && renewed {
				ctx, cancel := context.WithTimeout(u.l.ctx, sendTimeout)
				if err := conn.Renew(ctx, cred); err != nil {
					u.l.log.Warn("renew", "user", u.name, "err", err)
				}
				cancel()
			}
		case <-pres.C:
			conn.SetPresence(presence.Online, "load", u.watch)
		}
	}
}

// newMessage queues a message to a random other user.
func (u *vuser) newMessage() {
	if u.l.quiet.Load() {
		return
	}
	n := len(u.l.users)
	to := u.l.users[(u.idx+1+u.rng.IntN(n-1))%n].name
	u.seq++
	id := u.name + ":" + strconv.Itoa(u.seq)
	u.l.ledger.created(id, to)
	u.mu.Lock()
	u.pending[id] = &pendingMsg{id: id, to: to, next: time.Now()}
	u.mu.Unlock()
}

// flush sends the messages that are due: new ones, and those whose receipt
// has not come within ResendAfter (the same id, the next try).
func (u *vuser) flush(conn *snapi.Conn) {
	now := time.Now()
	var due []pendingMsg
	u.mu.Lock()
	for _, m := range u.pending {
		if !now.Before(m.next) {
			m.try++
			m.next = now.Add(u.l.cfg.ResendAfter)
			due = append(due, *m)
		}
	}
	u.mu.Unlock()
	for _, m := range due {
		if m.try > 1 {
			u.l.st.resends.Add(1)
		}
		b, _ := json.Marshal(payload{Load: 1, Kind: kindMsg, ID: m.id, To: m.to, Try: m.try})
		ctx, cancel := context.WithTimeout(u.l.ctx, sendTimeout)
		n, err := conn.Send(ctx, m.to, b)
		cancel()
		u.l.st.sends.Add(1)
		switch {
		case err == nil && n > 0:
			u.l.st.acked.Add(1)
		case errors.Is(err, snapi.ErrOffline), errors.Is(err, snapi.ErrOverload):
			u.mu.Lock()
			if p := u.pending[m.id]; p != nil {
				p.next = time.Now().Add(offlineResend)
			}
			u.mu.Unlock()
		case errors.Is(err, snapi.ErrDisconnected):
			return
		}
	}
}

// deliver is the connection's reader callback: a message is recorded and
// its receipt queued; a receipt ends the wait for its message.
func (u *vuser) deliver(f snapi.Frame) {
	if f.Type == snapi.TypePresence {
		u.l.st.presence.Add(1)
		return
	}
	var p payload
	if json.Unmarshal(f.Payload, &p) != nil || p.Load != 1 {
		return
	}
	switch p.Kind {
	case kindMsg:
		u.l.ledger.delivered(p.ID, p.Try, u.name)
		select {
		case u.receipts <- receipt{to: f.From, id: p.ID}:
		default: // the sender sends it again and gets the receipt then
		}
	case kindReceipt:
		u.mu.Lock()
		_, ok := u.pending[p.ID]
		delete(u.pending, p.ID)
		u.mu.Unlock()
		if ok {
			u.l.st.receipts.Add(1)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
