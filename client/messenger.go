package client

// Instant messaging on a Session: sending, receiving, receipts, the mailbox.
//
// Sending a message to user B (Session.SendMessage), one message at a time
// per session so a conversation keeps its order:
//
//  1. B's devices and the sender's own other devices are read from the login
//     server (cached for deviceCacheTTL); the text is sealed to all of them
//     (im.go) and stored in the history as "sending".
//  2. If a call with B is up, the envelope goes over the call's data channel
//     first, and the sender waits up to dataChannelWait for receipts.
//  3. Devices that have not acknowledged are sent to through the supernodes
//     (a send to B, and one to the sender's own user for its other devices);
//     the sender waits up to liveWait for as many receipts as devices the
//     supernodes reached.
//  4. Every device still silent gets the envelope in its mailbox on the login
//     server; the message is then "sent". A receipt from any of B's devices
//     marks it "delivered".
//
// A message still "sending" or "sent" when the session ends is sent again,
// with the same id, when the next session of this home starts. Receivers store
// every message by id (history.go), so one that arrives twice (data channel and
// supernode, a resend, the mailbox) is shown once, and acknowledge it every time
// it arrives (the earlier receipt may have been lost).
//
// Receiving: envelopes from the data channel, the supernodes and the mailbox go
// through one queue and one goroutine, in arrival order. Each is verified and
// opened (an envelope that does not verify is dropped and reported as a
// "message-refused" event), stored, shown once ("message" event) and
// acknowledged: receipts are batched per sender and go back over a data
// channel, the supernodes or, when the sender is offline, its mailbox. The
// mailbox is read at every attach (login, and after a failover) and emptied
// only after what it held is stored.
//
// Read receipts and typing (docs/protocol.md, "Read receipts and typing"):
// SendRead marks a peer's messages read in the history and acknowledges
// them with a receipt of state "read", which goes like any receipt; a read
// receipt that comes marks my messages read ("read" event). SendTyping seals
// a typing envelope for the peer's devices alone and sends it over a data
// channel or the supernodes only, rate-limited; one that comes is shown as a
// "typing" event unless stale or too soon after the last.

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/snapi"
)

// Message timing.
const (
	// dataChannelWait is how long a sender waits for receipts over a call's
	// data channel before trying the supernodes.
	dataChannelWait = time.Second
	// liveWait is how long a sender waits for the receipts of the devices the
	// supernodes reached before mailing the rest.
	liveWait = 3 * time.Second
	// deviceCacheTTL is how long a user's device list is reused.
	deviceCacheTTL = 10 * time.Second
	// inboxQueue bounds the envelopes waiting to be opened; more are dropped
	// (their senders fall back to the mailbox).
	inboxQueue = 1024
	// mailboxFetch is how many mailbox items are read at once.
	mailboxFetch = 100
	// receiptBatch caps the ids one receipt carries.
	receiptBatch = 500
)

// Ways a message arrives (MessageEvent.Via).
const (
	ViaDataChannel = "datachannel"
	ViaSupernode   = "supernode"
	ViaMailbox     = "mailbox"
)

// MessageEvent is the payload of "message" events (a message arrived, or a
// copy of one another device of mine sent), "delivered" and "read" events
// (receipts for messages I sent), "typing" events (a peer is typing to me,
// or stopped) and "message-refused" events (an envelope that did not
// verify, dropped; Why says why).
type MessageEvent struct {
	ID   string    `json:"id,omitempty"`
	From string    `json:"from,omitempty"`
	To   string    `json:"to,omitempty"`
	Text string    `json:"text,omitempty"`
	Sent time.Time `json:"sent,omitzero"`
	Via  string    `json:"via,omitempty"`
	// IDs are the messages a "delivered" event reports.
	IDs []string `json:"ids,omitempty"`
	// Why names the reason of a "message-refused" event.
	Why string `json:"why,omitempty"`
	// Active is set on "typing" events: true while From is typing, false
	// once they stopped.
	Active *bool `json:"active,omitempty"`
	// Group is the group id of a group message (then Peer is "#" and the
	// id) and of a "group" event: an operation on the group took effect
	// (Op, one of create, add, remove, leave, rename, admin, made By, on
	// Target; GroupName and Members are the group's after it).
	Group     string   `json:"group,omitempty"`
	GroupName string   `json:"group_name,omitempty"`
	Op        string   `json:"op,omitempty"`
	By        string   `json:"by,omitempty"`
	Target    string   `json:"target,omitempty"`
	Members   []string `json:"members,omitempty"`
}

// SendResult says how far a message got.
type SendResult struct {
	// ID is the message's id.
	ID string
	// Delivered: a device of the recipient acknowledged it.
	Delivered bool
	// Stored: at least one device of the recipient was offline, and the
	// message waits in its mailbox on the login server.
	Stored bool
}

type inbound struct {
	b   []byte
	via string
}

type deviceEntry struct {
	recs []im.DeviceRecord
	at   time.Time
}

// tracker is a send waiting for receipts.
type tracker struct {
	want  map[string]string // device key (hex) → its user, not yet acknowledged
	peer  string
	got   chan struct{} // signalled on every receipt
	peerN int           // receipts from the peer's devices
	total int           // receipts from any device
	group bool          // a group envelope: its receipts mark no message
}

// messenger is the IM half of a Session.
type messenger struct {
	s    *Session
	hist *im.History
	x    *ecdh.PrivateKey
	key  ed25519.PrivateKey
	me   ed25519.PublicKey

	in   chan inbound
	kick chan struct{}

	sendMu sync.Mutex // one send at a time, in order

	mu         sync.Mutex
	devices    map[string]deviceEntry
	waits      map[string]*tracker   // envelope id → its send
	acks       map[string][]string   // user → message ids to acknowledge
	typingSent map[string]typingMark // peer → the last typing envelope sent to them
	typingSeen map[string]typingMark // peer → the last typing event shown from them
	asked      map[string]time.Time  // own device key (hex) → when this device last asked it for history

	g groups

	files fileSet // files (file.go)
}

// typingMark is when a typing envelope went or came, and what it said.
type typingMark struct {
	at     time.Time
	active bool
}

func newMessenger(s *Session) (*messenger, error) {
	x, err := deviceX25519(s.c.home.dir)
	if err != nil {
		return nil, err
	}
	hist, err := im.OpenHistory(s.c.home.dir)
	if err != nil {
		return nil, err
	}
	return &messenger{s: s, hist: hist, x: x, key: s.c.key, me: s.c.key.Public().(ed25519.PublicKey),
		in: make(chan inbound, inboxQueue), kick: make(chan struct{}, 1),
		devices: map[string]deviceEntry{}, waits: map[string]*tracker{}, acks: map[string][]string{},
		typingSent: map[string]typingMark{}, typingSeen: map[string]typingMark{}, asked: map[string]time.Time{},
		g: groups{states: map[string]*im.GroupState{}, synced: map[string]time.Time{}}}, nil
}

// register publishes this device's X25519 key so that others can encrypt to
// it (again: it may have been dropped for a newer device, or its key replaced).
func (m *messenger) register(ctx context.Context) error {
	lc, cred, err := m.s.c.withCred(ctx)
	if err != nil {
		return err
	}
	return m.s.c.registerDevice(ctx, lc, cred, m.s.user)
}

// run is the messenger's goroutine: it opens what arrives and reads the
// mailbox when asked, until the session ends.
func (m *messenger) run() {
	defer m.s.wg.Done()
	ctx := m.s.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-m.in:
			m.open(ctx, in)
			if len(m.in) == 0 {
				m.flushAcks(ctx)
			}
		case <-m.kick:
			if err := m.fetchMailbox(ctx); err != nil && ctx.Err() == nil {
				m.s.c.log.Warn("reading the mailbox", "err", err)
			}
		}
	}
}

// enqueue hands an envelope to the messenger without blocking.
func (m *messenger) enqueue(b []byte, via string) {
	select {
	case m.in <- inbound{b: b, via: via}:
	default:
		m.s.c.log.Warn("message queue full; dropping an envelope (its sender will mail it)", "via", via)
	}
}

// devicesOf returns user's verified device records.
func (m *messenger) devicesOf(ctx context.Context, user string, fresh bool) ([]im.DeviceRecord, error) {
	m.mu.Lock()
	e, ok := m.devices[user]
	m.mu.Unlock()
	if ok && !fresh && time.Since(e.at) < deviceCacheTTL {
		return e.recs, nil
	}
	lc, cred, err := m.s.c.withCred(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := lc.Devices(ctx, cred, user)
	if errors.Is(err, loginapi.ErrNotContact) {
		// A member of a group of ours, with the pass its adder signed.
		if p := m.passFor(user); p != nil {
			ds, err = lc.DevicesWithPass(ctx, cred, user, p)
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, loginapi.ErrUnknownUser):
			return nil, fmt.Errorf("client: message to %s: %w", user, ErrUnknownUser)
		case errors.Is(err, loginapi.ErrNotContact):
			return nil, fmt.Errorf("client: message to %s: %w", user, ErrNotContact)
		}
		return nil, fmt.Errorf("client: devices of %s: %w", user, err)
	}
	recs := make([]im.DeviceRecord, 0, len(ds))
	for _, d := range ds {
		r := im.DeviceRecord{User: user, Key: d.Key, X25519: d.X25519, Sig: d.Sig}
		if r.Verify() == nil {
			recs = append(recs, r)
		}
	}
	m.mu.Lock()
	m.devices[user] = deviceEntry{recs: recs, at: time.Now()}
	m.mu.Unlock()
	return recs, nil
}

func (m *messenger) sender(ctx context.Context) (im.Sender, error) {
	cred, err := m.s.c.Credential(ctx)
	if err != nil {
		return im.Sender{}, err
	}
	return im.Sender{User: m.s.user, Device: m.key, Credential: cred}, nil
}

// SendMessage sends text to user to and returns once a device of theirs has
// it, or it waits in their mailbox. Errors: ErrUnknownUser, ErrNotContact,
// ErrEmptyMessage, ErrMessageTooLong, ErrMessageNotText, ErrNoDevices; on
// those nothing was sent or stored. Other errors (the login server
// unreachable) leave the message stored and "sending": the next session of
// this home sends it.
func (s *Session) SendMessage(ctx context.Context, to, text string) (SendResult, error) {
	m := s.im
	if err := identity.CheckUser(to); err != nil {
		return SendResult{}, fmt.Errorf("client: message: %w", err)
	}
	if err := im.CheckText(text); err != nil {
		return SendResult{}, fmt.Errorf("client: message to %s: %w", to, err)
	}
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	peerDevs, err := m.devicesOf(ctx, to, false)
	if err != nil {
		return SendResult{}, err
	}
	if len(peerDevs) == 0 {
		// Perhaps registered a moment ago.
		if peerDevs, err = m.devicesOf(ctx, to, true); err != nil {
			return SendResult{}, err
		}
	}
	myDevs, err := m.devicesOf(ctx, s.user, false)
	if err != nil {
		return SendResult{}, err
	}
	snd, err := m.sender(ctx)
	if err != nil {
		return SendResult{}, err
	}
	// Seal before storing: a message that can't be sealed (too long, no
	// device) is refused whole. (A refused one leaves a gap in the seq
	// counter, which only orders.)
	seq, err := m.hist.NextSeq(to)
	if err != nil {
		return SendResult{}, err
	}
	env, err := im.SealMessage(snd, to, append(peerDevs, myDevs...), im.Draft{Seq: seq, Time: time.Now(), Text: text})
	if err != nil {
		for _, e := range []error{im.ErrNoDevices, im.ErrMessageTooLong, im.ErrTooManyDevices} {
			if errors.Is(err, e) {
				err = e
			}
		}
		return SendResult{}, fmt.Errorf("client: message to %s: %w", to, err)
	}
	if err := m.hist.AddOutgoing(im.Message{ID: env.ID, Peer: to, FromDevice: m.me, Seq: seq, TS: env.TS, Text: text}); err != nil {
		return SendResult{}, err
	}
	return m.deliver(ctx, env, peerDevs, myDevs)
}

// resendPending sends again the messages this device sent that no receipt
// has confirmed (after a restart), in order, with their ids.
func (m *messenger) resendPending(ctx context.Context) {
	pending, err := m.hist.Pending("")
	if err != nil {
		m.s.c.log.Warn("reading unsent messages", "err", err)
		return
	}
	for _, p := range pending {
		if !im.SameDevice(p.FromDevice, m.me) {
			continue
		}
		if id, ok := im.GroupIDOf(p.Peer); ok {
			// A group message is "sent" once every member had it on a
			// device or in a mailbox: only one still "sending" goes again.
			if err := m.resendGroup(ctx, id, p); err != nil && ctx.Err() == nil {
				m.s.c.log.Warn("resending a group message", "group", id, "id", p.ID, "err", err)
			}
			continue
		}
		if err := m.resend(ctx, p); err != nil {
			if ctx.Err() == nil {
				m.s.c.log.Warn("resending a message", "to", p.Peer, "id", p.ID, "err", err)
			}
			if errors.Is(err, ErrUnknownUser) || errors.Is(err, ErrNotContact) || errors.Is(err, loginapi.ErrQuota) {
				continue // this peer only (a full mailbox: later)
			}
			return // unreachable: the next session tries again
		}
	}
}

func (m *messenger) resend(ctx context.Context, p im.Message) error {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	// A send of this session may have delivered it since the list was read.
	if st, _, err := m.hist.State(p.Peer, im.DirOut, p.ID); err != nil || (st != im.StateSending && st != im.StateSent) {
		return err
	}
	peerDevs, err := m.devicesOf(ctx, p.Peer, false)
	if err != nil {
		return err
	}
	myDevs, err := m.devicesOf(ctx, m.s.user, false)
	if err != nil {
		return err
	}
	snd, err := m.sender(ctx)
	if err != nil {
		return err
	}
	env, err := im.SealMessage(snd, p.Peer, append(peerDevs, myDevs...), im.Draft{ID: p.ID, Seq: p.Seq, Time: p.Time(), Text: p.Text})
	if err != nil {
		return err
	}
	_, err = m.deliver(ctx, env, peerDevs, myDevs)
	return err
}

// deliver carries env to every device it is sealed for: data channel,
// supernodes, mailbox, in that order, each for the devices still silent.
func (m *messenger) deliver(ctx context.Context, env *im.Envelope, peerDevs, myDevs []im.DeviceRecord) (SendResult, error) {
	b, err := env.Encode()
	if err != nil {
		return SendResult{}, err
	}
	to := env.To
	tr := &tracker{want: map[string]string{}, peer: to, got: make(chan struct{}, 1), group: env.Kind == im.KindGroup}
	for _, d := range append(append([]im.DeviceRecord{}, peerDevs...), myDevs...) {
		if !im.SameDevice(d.Key, m.me) {
			tr.want[hex.EncodeToString(d.Key)] = d.User
		}
	}
	m.mu.Lock()
	m.waits[env.ID] = tr
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.waits, env.ID)
		m.mu.Unlock()
	}()

	// 1. A call's data channel.
	if m.s.sendDataChannel(to, b) {
		m.wait(ctx, tr, func() bool { return tr.silentLocked(to) == 0 }, dataChannelWait)
	}
	// 2. The supernodes, for the users with devices still silent.
	expect := 0
	users := []string{to, m.s.user}
	if to == m.s.user {
		users = users[:1] // a note to my own devices: one send reaches them all
	}
	for _, u := range users {
		if m.silent(tr, u) == 0 {
			continue
		}
		n, err := m.s.sendPayload(ctx, u, b)
		if err != nil && !errors.Is(err, ErrOffline) {
			m.s.c.log.Debug("live message send", "to", u, "err", err)
		}
		expect += n
	}
	if expect > 0 {
		m.mu.Lock()
		base := tr.total
		m.mu.Unlock()
		m.wait(ctx, tr, func() bool { return len(tr.want) == 0 || tr.total-base >= expect }, liveWait)
	}
	// 3. The mailbox, for every device still silent.
	m.mu.Lock()
	var items []loginapi.MailboxItem
	for k, u := range tr.want {
		key, _ := hex.DecodeString(k)
		items = append(items, loginapi.MailboxItem{ToUser: u, ToDevice: key, ID: env.ID, Blob: b})
	}
	delivered := tr.peerN > 0
	m.mu.Unlock()
	res := SendResult{ID: env.ID, Delivered: delivered}
	if len(items) > 0 {
		forPeer := slices.ContainsFunc(items, func(it loginapi.MailboxItem) bool { return it.ToUser == to })
		var err error
		items, err = m.postMailbox(ctx, items)
		if err != nil {
			if delivered {
				// The peer has it; only a copy for another device is
				// missing. Not worth failing the send for.
				m.s.c.log.Warn("mailing a message to the other devices", "to", to, "err", err)
				return res, nil
			}
			return res, fmt.Errorf("client: message to %s: mailbox: %w", to, err)
		}
		for _, it := range items {
			if it.ToUser == to {
				res.Stored = true
			}
		}
		if forPeer && !delivered && !res.Stored {
			return res, fmt.Errorf("client: message to %s: every device's mailbox is full: %w", to, loginapi.ErrQuota)
		}
	}
	if !delivered {
		if err := m.hist.MarkSent(to, []string{env.ID}); err != nil {
			return res, err
		}
	}
	return res, nil
}

// postMailbox posts items, leaving out each device whose mailbox is full (a
// device gone for good must not keep the message from the others), and
// returns the items stored.
func (m *messenger) postMailbox(ctx context.Context, items []loginapi.MailboxItem) ([]loginapi.MailboxItem, error) {
	lc, cred, err := m.s.c.withCred(ctx)
	if err != nil {
		return nil, err
	}
	passes := map[string]*loginapi.Pass{}
	for i, it := range items {
		p, ok := passes[it.ToUser]
		if !ok && it.ToUser != m.s.user {
			p = m.passFor(it.ToUser)
			passes[it.ToUser] = p
		}
		items[i].Pass = p
	}
	for {
		_, err := lc.PostMailbox(ctx, cred, items)
		var ae *loginapi.APIError
		if err == nil || !errors.Is(err, loginapi.ErrQuota) || !errors.As(err, &ae) || ae.Item < 0 || ae.Item >= len(items) || len(items) == 1 {
			return items, err
		}
		full := items[ae.Item]
		m.s.c.log.Warn("a device's mailbox is full; it will miss this message", "user", full.ToUser,
			"device", hex.EncodeToString(full.ToDevice[:min(8, len(full.ToDevice))]), "id", full.ID)
		items = slices.Delete(slices.Clone(items), ae.Item, ae.Item+1)
	}
}

// silent counts the devices of user that have not acknowledged tr yet.
func (m *messenger) silent(tr *tracker, user string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return tr.silentLocked(user)
}

// silentLocked is silent with m.mu held.
func (tr *tracker) silentLocked(user string) int {
	n := 0
	for _, u := range tr.want {
		if u == user {
			n++
		}
	}
	return n
}

// wait waits, up to d, until done (called with m.mu held) is true.
func (m *messenger) wait(ctx context.Context, tr *tracker, done func() bool, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		m.mu.Lock()
		ok := done()
		m.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-tr.got:
		}
	}
}

// sendPayload sends b to every device of user through the supernodes and
// returns how many took it. It waits for a supernode while reconnecting and
// retries while the supernode asks it to slow down.
func (s *Session) sendPayload(ctx context.Context, user string, b []byte) (int, error) {
	backoff := 50 * time.Millisecond
	for {
		conn, err := s.waitConn(ctx)
		if err != nil {
			return 0, err
		}
		n, err := conn.Send(ctx, user, b)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, snapi.ErrOffline):
			return 0, fmt.Errorf("client: send to %s: %w", user, ErrOffline)
		case errors.Is(err, snapi.ErrOverload), errors.Is(err, snapi.ErrDisconnected):
		default:
			return 0, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// SendRead tells peer that this user has read their messages ids (every
// message of theirs still unread here when ids is empty): the messages are
// marked read in the history, and a read receipt acknowledging those not
// read before goes to peer's devices (data channel, supernodes, else their
// mailboxes). Ids that are not messages from peer in the history are left
// out. It returns the ids the receipt acknowledged. Sending read receipts
// is the caller's choice (`parley chat --read`): a user may not want
// contacts to know.
func (s *Session) SendRead(ctx context.Context, peer string, ids []string) ([]string, error) {
	m := s.im
	if _, ok := im.GroupIDOf(peer); !ok && identity.CheckUser(peer) != nil {
		return nil, fmt.Errorf("client: read receipt: %w", identity.CheckUser(peer))
	}
	if _, ok := im.GroupIDOf(peer); ok {
		return s.MarkRead(ctx, peer, ids) // a group's reads are this user's own business
	}
	done, err := m.hist.MarkSeen(peer, ids)
	if err != nil {
		return nil, err
	}
	m.syncRead(peer, done)
	for rest := done; len(rest) > 0; {
		n := min(len(rest), receiptBatch)
		if err := m.sendReceipt(ctx, peer, rest[:n], im.ReceiptRead); err != nil {
			return done, fmt.Errorf("client: read receipt to %s: %w", peer, err)
		}
		rest = rest[n:]
	}
	return done, nil
}

// SendTyping tells peer that this user is typing to them (active) or has
// stopped. It is online only — over a call's data channel, else through the
// supernodes, never to a mailbox — and rate-limited: a typing envelope goes
// at most once every im.TypingInterval to a peer while active, and a
// stopped one only after an active one. It reports whether an envelope
// went to a device of peer (false: skipped by the rate limit, or peer is
// offline).
func (s *Session) SendTyping(ctx context.Context, peer string, active bool) (bool, error) {
	m := s.im
	if err := identity.CheckUser(peer); err != nil {
		return false, fmt.Errorf("client: typing: %w", err)
	}
	now := time.Now()
	m.mu.Lock()
	last := m.typingSent[peer]
	if (active && last.active && now.Sub(last.at) < im.TypingInterval) || (!active && !last.active) {
		m.mu.Unlock()
		return false, nil
	}
	m.typingSent[peer] = typingMark{at: now, active: active}
	m.mu.Unlock()
	sent, err := m.sendTyping(ctx, peer, active, now)
	if err != nil {
		m.mu.Lock()
		m.typingSent[peer] = last // try again at once next time
		m.mu.Unlock()
	}
	return sent, err
}

func (m *messenger) sendTyping(ctx context.Context, peer string, active bool, now time.Time) (bool, error) {
	devs, err := m.devicesOf(ctx, peer, false)
	if err != nil {
		return false, err
	}
	snd, err := m.sender(ctx)
	if err != nil {
		return false, err
	}
	env, err := im.SealTyping(snd, peer, devs, active, now)
	if err != nil {
		return false, fmt.Errorf("client: typing to %s: %w", peer, err)
	}
	b, err := env.Encode()
	if err != nil {
		return false, err
	}
	if m.s.sendDataChannel(peer, b) {
		return true, nil
	}
	n, err := m.s.sendPayload(ctx, peer, b)
	if errors.Is(err, ErrOffline) {
		return false, nil
	}
	return n > 0, err
}

// History returns the last limit messages of the conversation with peer
// (all if limit ≤ 0), oldest first.
func (s *Session) History(peer string, limit int) ([]im.Message, error) {
	return s.im.hist.Conversation(peer, limit)
}

// OpenHistory opens the message history of the client's home (for reading
// it without going online, as `parley history` does).
func (c *Client) OpenHistory() (*im.History, error) { return im.OpenHistory(c.home.dir) }
