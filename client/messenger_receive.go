package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/loginapi"
)

// checkMailbox asks the messenger to read the mailbox.
func (m *messenger) checkMailbox() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// isEnvelope reports whether a deliver payload is an IM envelope (the other
// payloads are call signals).
func isEnvelope(b []byte) bool {
	var k struct {
		Kind string `json:"kind"`
		CT   []byte `json:"ct"`
	}
	if json.Unmarshal(b, &k) != nil {
		return false
	}
	return im.IsKind(k.Kind) && k.CT != nil
}

// open verifies, stores, shows and acknowledges one envelope.
func (m *messenger) open(ctx context.Context, in inbound) {
	s := m.s
	e, err := im.DecodeEnvelope(in.b)
	if err == nil {
		var o *im.Opened
		o, err = im.Open(e, s.user, m.key, m.x, s.c.loginKey(), time.Now())
		if err == nil {
			m.opened(o, in.via)
			return
		}
	}
	from := ""
	if e != nil {
		from = e.From
	}
	s.c.log.Warn("refusing a message", "from", from, "via", in.via, "err", err)
	s.emit(Event{Event: "message-refused", Peer: from, MessageEvent: &MessageEvent{From: from, Via: in.via, Why: err.Error()}})
}

func (m *messenger) opened(o *im.Opened, via string) {
	s := m.s
	switch o.Kind {
	case im.KindMessage:
		msg := o.Message(s.user)
		isNew, err := m.hist.AddIncoming(msg)
		if err != nil {
			s.c.log.Error("storing a message", "from", o.From, "err", err)
			return // not acknowledged: the sender mails it, and it comes again
		}
		if isNew {
			s.emit(Event{Event: "message", Peer: msg.Peer, MessageEvent: &MessageEvent{ID: o.ID, From: o.From, To: o.To,
				Text: o.Text, Sent: time.UnixMilli(o.TS), Via: via}})
		}
		m.mu.Lock()
		m.acks[o.From] = append(m.acks[o.From], o.ID)
		n := len(m.acks[o.From])
		m.mu.Unlock()
		if n >= receiptBatch {
			m.flushAcks(s.ctx)
		}
	case im.KindReceipt:
		dev := hex.EncodeToString(o.FromDevice)
		acked := o.Acked[:0:0]
		m.mu.Lock()
		for _, id := range o.Acked {
			tr := m.waits[id]
			if tr == nil || !tr.group {
				acked = append(acked, id) // a group envelope's marks no message
			}
			if tr == nil {
				continue
			}
			if _, ok := tr.want[dev]; ok {
				delete(tr.want, dev)
				tr.total++
				if o.From == tr.peer {
					tr.peerN++
				}
				select {
				case tr.got <- struct{}{}:
				default:
				}
			}
		}
		m.mu.Unlock()
		if o.From == s.user || len(acked) == 0 {
			return // one of my devices has a copy of what I sent (or read what came)
		}
		o.Acked = acked
		if o.State == im.ReceiptRead {
			// Read implies delivered: the messages go straight to read.
			done, err := m.hist.MarkRead(o.From, o.Acked)
			if err != nil {
				s.c.log.Error("marking messages read", "by", o.From, "err", err)
				return
			}
			if len(done) > 0 {
				s.emit(Event{Event: "read", Peer: o.From, MessageEvent: &MessageEvent{To: o.From, IDs: done, Via: via}})
			}
			return
		}
		done, err := m.hist.MarkDelivered(o.From, o.Acked)
		if err != nil {
			s.c.log.Error("marking messages delivered", "to", o.From, "err", err)
			return
		}
		if len(done) > 0 {
			s.emit(Event{Event: "delivered", Peer: o.From, MessageEvent: &MessageEvent{To: o.From, IDs: done, Via: via}})
		}
	case im.KindTyping:
		m.typed(o, via)
	case im.KindGroup:
		m.openedGroup(o, via)
	case im.KindHistory:
		m.openedHistory(o, via)
	case im.KindFile:
		m.openedFile(o, via)
	}
}

// typed shows a typing envelope from a peer as a "typing" event, unless it
// is stale (held up on the way) or repeats the last one too soon.
func (m *messenger) typed(o *im.Opened, via string) {
	s := m.s
	now := time.Now()
	if o.From == s.user || o.To != s.user || now.Sub(time.UnixMilli(o.TS)) > im.TypingMaxAge {
		return
	}
	active := o.State == im.TypingActive
	m.mu.Lock()
	last := m.typingSeen[o.From]
	if active && last.active && now.Sub(last.at) < im.TypingInterval/2 {
		m.mu.Unlock()
		return
	}
	m.typingSeen[o.From] = typingMark{at: now, active: active}
	m.mu.Unlock()
	s.emit(Event{Event: "typing", Peer: o.From, MessageEvent: &MessageEvent{From: o.From, To: o.To,
		Sent: time.UnixMilli(o.TS), Via: via, Active: &active}})
}

// flushAcks sends the receipts waiting to go.
func (m *messenger) flushAcks(ctx context.Context) {
	m.mu.Lock()
	acks := m.acks
	m.acks = map[string][]string{}
	m.mu.Unlock()
	for user, ids := range acks {
		for len(ids) > 0 {
			n := min(len(ids), receiptBatch)
			if err := m.sendReceipt(ctx, user, ids[:n], im.ReceiptDelivered); err != nil && ctx.Err() == nil {
				m.s.c.log.Warn("sending a receipt", "to", user, "err", err)
			}
			ids = ids[n:]
		}
	}
}

// sendReceipt acknowledges ids to user with a receipt saying state: over a
// data channel, else the supernodes, else the mailboxes of user's devices.
func (m *messenger) sendReceipt(ctx context.Context, user string, ids []string, state string) error {
	devs, err := m.devicesOf(ctx, user, false)
	if err != nil {
		return err
	}
	snd, err := m.sender(ctx)
	if err != nil {
		return err
	}
	env, err := im.SealReceiptState(snd, user, devs, state, ids, time.Now())
	if err != nil {
		return err
	}
	b, err := env.Encode()
	if err != nil {
		return err
	}
	if m.s.sendDataChannel(user, b) {
		return nil
	}
	n, err := m.s.sendPayload(ctx, user, b)
	if err == nil && n > 0 {
		return nil
	}
	if err != nil && !errors.Is(err, ErrOffline) {
		return err
	}
	var items []loginapi.MailboxItem
	for _, d := range devs {
		if !im.SameDevice(d.Key, m.me) {
			items = append(items, loginapi.MailboxItem{ToUser: user, ToDevice: d.Key, ID: env.ID, Blob: b})
		}
	}
	if len(items) == 0 {
		return nil
	}
	_, err = m.postMailbox(ctx, items)
	return err
}

// fetchMailbox reads this device's mailbox, stores what it holds, sends the
// receipts and only then empties it.
func (m *messenger) fetchMailbox(ctx context.Context) error {
	lc, cred, err := m.s.c.withCred(ctx)
	if err != nil {
		return err
	}
	for {
		items, more, err := lc.Mailbox(ctx, cred, mailboxFetch)
		if err != nil {
			return fmt.Errorf("client: mailbox: %w", err)
		}
		seqs := make([]int64, 0, len(items))
		for _, it := range items {
			m.open(ctx, inbound{b: it.Blob, via: ViaMailbox})
			seqs = append(seqs, it.Seq)
		}
		m.flushAcks(ctx)
		if len(seqs) > 0 {
			if _, err := lc.AckMailbox(ctx, cred, seqs); err != nil {
				return fmt.Errorf("client: mailbox ack: %w", err)
			}
		}
		if !more || len(items) == 0 {
			return nil
		}
	}
}
