package client

// History on every device (docs/protocol.md, "History on every device").
//
// A session that shows presence (not a one-shot command) asks the user's
// other devices for what it lacks when it starts: a "want" sealed to them,
// naming per conversation the time of the newest message it holds, carried
// like a message (supernodes, else their mailboxes, so a device that comes
// online later still answers). A device that gets a want from another
// device of its user answers with "batch" envelopes, sealed to that device
// alone, of each conversation's messages from that time on (at most
// im.HistoryPerConversation) and its groups' logs; and, unless it asked
// that device in the last historyAskEvery, asks it back. A batch is merged
// into the history (a message held already keeps the further state). A
// read (SendRead, MarkRead) goes to the other devices as a "read", so a
// conversation read on one device is read on all. Only the user's devices
// registered now count: a history envelope from any other device is
// refused, and a removed device is sealed nothing.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parley/parley/client/im"
)

const (
	// historyBatchJSON is the JSON a batch aims at before it is deflated
	// (a batch that still does not fit an envelope is halved).
	historyBatchJSON = 192 << 10
	// historyAskEvery is how often a device asks one other device of its
	// user for history unasked.
	historyAskEvery = time.Minute
)

// HistoryEvent is the payload of "history" events: messages another device
// of this user sent this one were merged (Count new ones).
type HistoryEvent struct {
	Count int `json:"count"`
}

// ownDevices returns this user's other devices, as the login server lists
// them now.
func (m *messenger) ownDevices(ctx context.Context) ([]im.DeviceRecord, error) {
	devs, err := m.devicesOf(ctx, m.s.user, true)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(slices.Clone(devs), func(d im.DeviceRecord) bool { return im.SameDevice(d.Key, m.me) }), nil
}

// wantHistory asks the user's other devices (or one of them) for the
// messages this device lacks.
func (m *messenger) wantHistory(ctx context.Context, only *im.DeviceRecord) error {
	devs, err := m.ownDevices(ctx)
	if err != nil {
		return err
	}
	if only != nil {
		devs = slices.DeleteFunc(devs, func(d im.DeviceRecord) bool { return !im.SameDevice(d.Key, only.Key) })
	}
	if len(devs) == 0 {
		return nil
	}
	convs, err := m.hist.Conversations()
	if err != nil {
		return err
	}
	since := map[string]int64{}
	for _, c := range convs[:min(len(convs), im.MaxHistoryConversations)] {
		since[c.Peer] = c.LastTS
	}
	m.mu.Lock()
	for _, d := range devs {
		m.asked[hex.EncodeToString(d.Key)] = time.Now()
	}
	m.mu.Unlock()
	return m.sendHistory(ctx, devs, &im.HistoryBody{Type: im.HistoryWant, Since: since})
}

// sendHistory seals body to devs (devices of this user) and delivers it like
// a message.
func (m *messenger) sendHistory(ctx context.Context, devs []im.DeviceRecord, body *im.HistoryBody) error {
	snd, err := m.sender(ctx)
	if err != nil {
		return err
	}
	env, err := im.SealHistory(snd, devs, body, time.Now())
	if err != nil {
		return err
	}
	_, err = m.deliver(ctx, env, devs, nil)
	return err
}

// ownDevice returns the record of key if it is one of this user's other
// devices now.
func (m *messenger) ownDevice(ctx context.Context, key []byte) (*im.DeviceRecord, error) {
	devs, err := m.ownDevices(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if im.SameDevice(d.Key, key) {
			return &d, nil
		}
	}
	return nil, fmt.Errorf("client: history from device %s: %w", hex.EncodeToString(key[:min(8, len(key))]), im.ErrNotOwnDevice)
}

// openedHistory handles a history envelope that opened.
func (m *messenger) openedHistory(o *im.Opened, via string) {
	s := m.s
	b := o.History
	d, err := m.ownDevice(s.ctx, o.FromDevice)
	if err != nil {
		s.c.log.Warn("refusing history", "via", via, "err", err)
		s.emit(Event{Event: "message-refused", Peer: o.From, MessageEvent: &MessageEvent{From: o.From, Via: via, Why: err.Error()}})
		return
	}
	switch b.Type {
	case im.HistoryWant:
		s.Go(func(ctx context.Context) {
			if err := m.answerHistory(ctx, *d, b.Since); err != nil && ctx.Err() == nil {
				s.c.log.Warn("sending history to another device", "err", err)
			}
			m.mu.Lock()
			last := m.asked[hex.EncodeToString(d.Key)]
			m.mu.Unlock()
			if time.Since(last) > historyAskEvery {
				if err := m.wantHistory(ctx, d); err != nil && ctx.Err() == nil {
					s.c.log.Warn("asking another device for history", "err", err)
				}
			}
		})
	case im.HistoryBatch:
		ms := make([]im.Message, 0, len(b.Messages))
		for _, x := range b.Messages {
			ms = append(ms, x.Message())
		}
		n, err := m.hist.Merge(ms)
		if err != nil {
			s.c.log.Warn("refusing history", "via", via, "err", err)
			s.emit(Event{Event: "message-refused", Peer: o.From, MessageEvent: &MessageEvent{From: o.From, Via: via, Why: err.Error()}})
			return
		}
		for id, ops := range b.Groups {
			if _, _, err := m.merge(id, ops); err != nil && !errors.Is(err, im.ErrUnknownGroup) {
				s.c.log.Warn("merging a group's log from another device", "group", id, "err", err)
			}
		}
		if n > 0 {
			s.emit(Event{Event: "history", HistoryEvent: &HistoryEvent{Count: n}})
		}
	case im.HistoryRead:
		for _, r := range b.Read {
			done, err := m.hist.MarkSeen(r.Peer, r.IDs)
			if err != nil {
				s.c.log.Warn("marking messages read on another device", "err", err)
				continue
			}
			if len(done) > 0 {
				s.emit(Event{Event: "seen", Peer: r.Peer, MessageEvent: &MessageEvent{IDs: done, Via: via}})
			}
		}
	}
	m.mu.Lock()
	m.acks[o.From] = append(m.acks[o.From], o.ID)
	m.mu.Unlock()
}

// answerHistory sends device d the messages of each conversation from the
// time its want named on (all of those it did not name), at most
// im.HistoryPerConversation each, and every group's log.
func (m *messenger) answerHistory(ctx context.Context, d im.DeviceRecord, since map[string]int64) error {
	convs, err := m.hist.Conversations()
	if err != nil {
		return err
	}
	var all []im.SyncedMessage
	for _, c := range convs {
		ms, err := m.hist.Since(c.Peer, since[c.Peer], im.HistoryPerConversation)
		if err != nil {
			return err
		}
		for _, x := range ms {
			all = append(all, im.Synced(x))
		}
	}
	groups := map[string][]*im.GroupOp{}
	ids, err := m.hist.Groups()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if groups[id], err = m.hist.GroupOps(id); err != nil {
			return err
		}
	}
	var batches []*im.HistoryBody
	for _, c := range chunkSynced(all) {
		batches = append(batches, &im.HistoryBody{Type: im.HistoryBatch, Messages: c})
	}
	for id, ops := range groups {
		for _, c := range chunkOps(ops) {
			batches = append(batches, &im.HistoryBody{Type: im.HistoryBatch, Groups: map[string][]*im.GroupOp{id: c}})
		}
	}
	for _, b := range batches {
		if err := m.sendBatch(ctx, d, b); err != nil {
			return err
		}
	}
	return nil
}

// sendBatch sends one batch to d, halving it while it does not fit an
// envelope.
func (m *messenger) sendBatch(ctx context.Context, d im.DeviceRecord, b *im.HistoryBody) error {
	err := m.sendHistory(ctx, []im.DeviceRecord{d}, b)
	if !errors.Is(err, im.ErrMessageTooLong) && !errors.Is(err, im.ErrBadEnvelope) {
		return err
	}
	if len(b.Messages) < 2 {
		// One message that does not fit an envelope by itself (64 KiB of
		// text that does not compress): left out, the rest goes on.
		m.s.c.log.Warn("a message too long to send in a history batch is left out", "err", err)
		return nil
	}
	half := len(b.Messages) / 2
	if err := m.sendBatch(ctx, d, &im.HistoryBody{Type: im.HistoryBatch, Messages: b.Messages[:half]}); err != nil {
		return err
	}
	return m.sendBatch(ctx, d, &im.HistoryBody{Type: im.HistoryBatch, Messages: b.Messages[half:]})
}

// chunkSynced splits messages into runs whose JSON is about
// historyBatchJSON at most.
func chunkSynced(ms []im.SyncedMessage) [][]im.SyncedMessage {
	var out [][]im.SyncedMessage
	start, size := 0, 0
	for i, x := range ms {
		b, _ := json.Marshal(x)
		if i > start && (size+len(b) > historyBatchJSON || i-start >= im.MaxHistoryMessages) {
			out = append(out, ms[start:i])
			start, size = i, 0
		}
		size += len(b) + 1
	}
	if start < len(ms) {
		out = append(out, ms[start:])
	}
	return out
}

// syncRead tells this user's other devices that the messages ids of the
// conversation with peer were read here.
func (m *messenger) syncRead(peer string, ids []string) {
	if len(ids) == 0 {
		return
	}
	m.s.Go(func(ctx context.Context) {
		devs, err := m.ownDevices(ctx)
		if err != nil || len(devs) == 0 {
			return
		}
		for rest := ids; len(rest) > 0; {
			n := min(len(rest), im.MaxReceiptIDs)
			if err := m.sendHistory(ctx, devs, &im.HistoryBody{Type: im.HistoryRead, Read: []im.ReadMark{{Peer: peer, IDs: rest[:n]}}}); err != nil && ctx.Err() == nil {
				m.s.c.log.Warn("telling the other devices what was read", "err", err)
				return
			}
			rest = rest[n:]
		}
	})
}

// MarkRead marks the messages ids of the conversation with peer (a user, or
// "#" and a group id; all still unread when ids is empty) read on this
// device and the user's other devices, without telling peer (SendRead
// tells peer too). It returns the ids newly marked.
func (s *Session) MarkRead(ctx context.Context, peer string, ids []string) ([]string, error) {
	done, err := s.im.hist.MarkSeen(peer, ids)
	if err != nil {
		return nil, err
	}
	s.im.syncRead(peer, done)
	return done, nil
}
