package client

// Files peer to peer (docs/files.md, "Peer to peer"): a data-only WebRTC
// connection between the sending device and a receiving device, on
// whatever path ICE finds (directly, or through a relay that sees only
// the chunks' ciphertext and DTLS). Its session descriptions travel in
// signal bodies of KindFile envelopes, so each end's DTLS fingerprint is
// signed by its device and sealed end to end. The receiver pulls: it asks
// for the file from its first missing chunk ("want"), acknowledges what is
// on disk ("ack", every im.FileP2PAckEvery chunks) and says "done" once the
// whole file checked; a cut connection is made again by the sender and
// the transfer goes on from the receiver's first missing chunk.
//
// The data channel's wire, its timing and the pace through a relay are
// package im's (client/im/filewire.go), shared with the page.

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parley/parley/client/im"
)

var (
	errNoAnswer = errors.New("no device of the recipient answered for a direct connection")
	errCut      = errors.New("the connection was cut")
)

// p2pCtrl is a receiver's control message.
type p2pCtrl struct {
	T     string `json:"t"`
	From  int64  `json:"from,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
}

// directRecv is a direct connection receiving a file.
type directRecv struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// p2pAnswers are the senders waiting for an answer, by file id.
type p2pAnswers struct {
	mu sync.Mutex
	m  map[string]chan webrtc.SessionDescription
	// done: the receiver's "done" envelope came (closed by its handler):
	// the file is there, whatever the connection says.
	done map[string]chan struct{}
}

// fileRoute says how a connected peer connection goes: through a relay
// when either end's candidate of the selected pair is a relay one.
func fileRoute(pc *webrtc.PeerConnection) string {
	if sctp := pc.SCTP(); sctp != nil {
		if pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair(); err == nil && pair != nil &&
			(pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay) {
			return RouteRelay
		}
	}
	return RouteDirect
}

// relayRate is the pace of file data through a relay now, bytes a second
// (im.FileRelayRate: a file never costs a call its voice).
func (s *Session) relayRate() float64 {
	s.mu.Lock()
	calls := len(s.calls)
	s.mu.Unlock()
	return float64(im.FileRelayRate(calls))
}

// pacer spaces sends at a rate; nil sends at once.
type pacer struct {
	s    *Session
	next time.Time
}

func (p *pacer) wait(ctx context.Context, n int) error {
	if p == nil {
		return nil
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(time.Duration(float64(n) / p.s.relayRate() * float64(time.Second)))
	if d <= time.Millisecond {
		return nil
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

// newFilePC makes a peer connection with the current supernode's ICE
// servers.
func (s *Session) newFilePC(ctx context.Context) (*webrtc.PeerConnection, error) {
	conn, err := s.waitConn(ctx)
	if err != nil {
		return nil, err
	}
	pc, err := s.api.NewPeerConnection(s.iceConfig(conn.ICEServers(), ""))
	if err != nil {
		return nil, fmt.Errorf("client: peer connection: %w", err)
	}
	return pc, nil
}

// gathered sets desc as the local description and waits for every
// candidate (no trickle: one signal each way).
func gathered(ctx context.Context, pc *webrtc.PeerConnection, desc webrtc.SessionDescription) (string, error) {
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", err
	}
	t := time.NewTimer(im.FileP2PGatherWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

// sendDirect sends out's file to its recipient's device over a data
// channel, connecting again after a cut, and returns the route it took
// and the sealed bytes sent. errNoAnswer: no device took the connection
// (none receives files now): the store is the way.
func (m *messenger) sendDirect(ctx context.Context, out *outFile, f *os.File, pr *progress) (string, int64, error) {
	var sent int64
	var err error
	done := m.delivered(out.Offer.ID)
	defer func() {
		a := &m.files.answers
		a.mu.Lock()
		delete(a.done, out.Offer.ID)
		a.mu.Unlock()
	}()
	for attempt := range im.FileP2PAttempts {
		var route string
		route, err = m.directAttempt(ctx, out, f, pr, &sent, done)
		select {
		case <-done:
			return cmp.Or(route, pr.ev.Route, RouteDirect), sent, nil
		default:
		}
		if err == nil {
			return route, sent, nil
		}
		if ctx.Err() != nil || (errors.Is(err, errNoAnswer) && attempt == 0) {
			break
		}
		m.s.c.log.Info("a direct file transfer stopped; connecting again", "file", out.Offer.ID, "err", err)
		t := time.NewTimer(im.FileP2PRedial)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", sent, ctx.Err()
		case <-t.C:
		}
	}
	return "", sent, err
}

// directAttempt is one connection of sendDirect.
func (m *messenger) directAttempt(ctx context.Context, out *outFile, f *os.File, pr *progress, sent *int64, done <-chan struct{}) (string, error) {
	s, o := m.s, out.Offer
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pc, err := s.newFilePC(ctx)
	if err != nil {
		return "", err
	}
	defer pc.Close()
	ordered := true
	dc, err := pc.CreateDataChannel(im.FileP2PLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return "", err
	}
	opened, closed, low := make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
	ctrl := make(chan p2pCtrl, 256)
	var closeOnce sync.Once
	cut := func() { closeOnce.Do(func() { close(closed) }) }
	dc.OnOpen(func() { close(opened) })
	dc.OnClose(cut)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			cut()
		}
	})
	dc.SetBufferedAmountLowThreshold(im.FileP2PLowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	dc.OnMessage(func(msg webrtc.DataChannelMessage) {
		var c p2pCtrl
		if msg.IsString && len(msg.Data) <= im.FileP2PMaxCtrl && json.Unmarshal(msg.Data, &c) == nil {
			select {
			case ctrl <- c:
			default:
			}
		}
	})
	desc, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	sdp, err := gathered(ctx, pc, desc)
	if err != nil {
		return "", err
	}
	answers := m.expectAnswer(o.ID)
	defer m.dropAnswer(o.ID)
	if _, err := m.sendFileBody(ctx, out.To, &im.FileBody{T: im.FileBodySignal, File: o.ID, SDPType: "offer", SDP: sdp}, time.Now(), false); err != nil {
		return "", err
	}
	select {
	case a := <-answers:
		if err := pc.SetRemoteDescription(a); err != nil {
			return "", err
		}
	case <-done:
		return "", nil
	case <-time.After(im.FileP2PAnswerWait):
		return "", errNoAnswer
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case <-opened:
	case <-closed:
		return "", errCut
	case <-time.After(im.FileP2PConnectWait):
		return "", fmt.Errorf("no direct connection in %v: %w", im.FileP2PConnectWait, errCut)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	route := fileRoute(pc)
	pr.ev.Route = route
	var pace *pacer
	if route == RouteRelay {
		pace = &pacer{s: s}
	}
	n, next := o.Chunks(), int64(-1) // nothing until the receiver says
	stall := time.NewTimer(im.FileP2PStall)
	defer stall.Stop()
	plain, piece := make([]byte, im.FileChunk), make([]byte, im.FileP2PHeader+im.FileP2PPiece)
	handle := func(c p2pCtrl) bool {
		switch c.T {
		case im.FileP2PWant:
			if c.From >= 0 && c.From <= n {
				next = c.From
			}
		case im.FileP2PAck:
			pr.report(min(max(c.Bytes, 0), o.Size))
		case im.FileP2PDone:
			return true
		}
		stall.Reset(im.FileP2PStall)
		return false
	}
	for {
		if next < 0 || next >= n {
			select {
			case c := <-ctrl:
				if handle(c) {
					return route, nil
				}
			case <-closed:
				return "", errCut
			case <-stall.C:
				return "", fmt.Errorf("nothing from the receiver for %v: %w", im.FileP2PStall, errCut)
			case <-done:
				return route, nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
			continue
		}
		select {
		case c := <-ctrl:
			if handle(c) {
				return route, nil
			}
			continue
		case <-closed:
			return "", errCut
		case <-stall.C:
			return "", fmt.Errorf("nothing from the receiver for %v: %w", im.FileP2PStall, errCut)
		default:
		}
		cur := next
		size := min(int64(im.FileChunk), o.Size-next*im.FileChunk)
		if _, err := f.ReadAt(plain[:size], next*im.FileChunk); err != nil {
			return "", err
		}
		sealed, err := o.SealChunk(next, plain[:size])
		if err != nil {
			return "", err
		}
		for off := 0; off < len(sealed); off += im.FileP2PPiece {
			for dc.BufferedAmount() > im.FileP2PHighWater {
				select {
				case <-low:
				case <-closed:
					return "", errCut
				case <-stall.C:
					return "", fmt.Errorf("nothing from the receiver for %v: %w", im.FileP2PStall, errCut)
				case c := <-ctrl:
					if handle(c) {
						return route, nil
					}
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}
			part := sealed[off:min(off+im.FileP2PPiece, len(sealed))]
			if err := pace.wait(ctx, len(part)+im.FileP2PHeader); err != nil {
				return "", err
			}
			binary.BigEndian.PutUint64(piece[0:8], uint64(cur))
			binary.BigEndian.PutUint32(piece[8:12], uint32(off))
			copy(piece[im.FileP2PHeader:], part)
			if err := dc.Send(piece[:im.FileP2PHeader+len(part)]); err != nil {
				return "", fmt.Errorf("%w: %w", errCut, err)
			}
		}
		*sent += int64(len(sealed))
		if next == cur { // else a "want" came meanwhile: from there
			next++
		}
	}
}

func (m *messenger) expectAnswer(id string) chan webrtc.SessionDescription {
	a := &m.files.answers
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]chan webrtc.SessionDescription{}
	}
	ch := make(chan webrtc.SessionDescription, 1)
	a.m[id] = ch
	return ch
}

// delivered returns a channel closed when the receiver's "done" envelope
// for file id comes (sendDirect drops it at the end).
func (m *messenger) delivered(id string) chan struct{} {
	a := &m.files.answers
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		a.done = map[string]chan struct{}{}
	}
	if a.done[id] == nil {
		a.done[id] = make(chan struct{})
	}
	return a.done[id]
}

// markDelivered closes file id's delivered channel, if a send waits on it.
func (m *messenger) markDelivered(id string) {
	a := &m.files.answers
	a.mu.Lock()
	defer a.mu.Unlock()
	if ch := a.done[id]; ch != nil {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
}

func (m *messenger) dropAnswer(id string) {
	a := &m.files.answers
	a.mu.Lock()
	delete(a.m, id)
	a.mu.Unlock()
}

// openedFileSignal handles a signal for a direct connection: an answer
// for a file this device sends, or an offer for one it receives.
func (m *messenger) openedFileSignal(o *im.Opened) {
	s, b := m.s, o.File
	if o.From == s.user {
		return
	}
	if b.SDPType == "answer" {
		if out, err := loadOut(s.c.home.dir, b.File); err != nil || out.To != o.From {
			return
		}
		a := &m.files.answers
		a.mu.Lock()
		ch := a.m[b.File]
		a.mu.Unlock()
		if ch != nil {
			select {
			case ch <- webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: b.SDP}:
			default: // another device answered first
			}
		}
		return
	}
	m.files.mu.Lock()
	cfg := m.files.cfg
	if cfg == nil {
		m.files.mu.Unlock()
		return // not receiving files here
	}
	key := inKey(o.From, b.File)
	if old := m.files.busy[key]; old != nil {
		// The sender connects again (it saw the connection die, or
		// restarted): the old connection goes, this one takes over.
		m.files.mu.Unlock()
		old.cancel()
		select {
		case <-old.done:
		case <-time.After(2 * time.Second):
			return
		}
		m.files.mu.Lock()
	}
	f, err := loadIn(s.c.home.dir, key)
	if err != nil || f.Failed != "" {
		m.files.mu.Unlock()
		return
	}
	if f.Done {
		m.files.mu.Unlock()
		// The sender missed the word: say it again.
		s.Go(func(ctx context.Context) {
			m.sendFileBody(ctx, f.From, &im.FileBody{T: im.FileBodyDone, File: b.File}, time.Now(), false)
		})
		return
	}
	if m.files.busy == nil {
		m.files.busy = map[string]*directRecv{}
	}
	if m.files.busy[key] != nil {
		m.files.mu.Unlock()
		return // a third offer got there first
	}
	rctx, cancel := context.WithCancel(s.ctx)
	r := &directRecv{cancel: cancel, done: make(chan struct{})}
	m.files.busy[key] = r
	m.files.mu.Unlock()
	s.Go(func(context.Context) {
		ctx := rctx
		defer func() {
			r.cancel()
			m.files.mu.Lock()
			delete(m.files.busy, key)
			m.files.mu.Unlock()
			close(r.done)
		}()
		if err := m.receiveDirect(ctx, *cfg, f, b.SDP); err != nil && ctx.Err() == nil {
			s.c.log.Info("a direct file transfer stopped", "file", b.File, "err", err)
		}
	})
}
