package im

// History on every device (docs/protocol.md, "History on every device"). A
// device asks its user's other devices for what it lacks with a "want"
// naming, per conversation, the newest message it holds; each device that
// gets a want answers with "batch" envelopes of the messages newer than that
// (at most HistoryPerConversation of each conversation) and the logs of its
// groups. A "read" tells the other devices which messages this user has
// read. All three are envelopes of kind [KindHistory] from the user to the
// user, sealed to the devices they are for and signed by the sending
// device, so a server sees only that a user's devices talk to each other.

import (
	"encoding/json"
	"fmt"
	"time"
)

// KindHistory is the envelope kind of history sync; its body is a
// [HistoryBody].
const KindHistory = "history"

// Types of a history body.
const (
	HistoryWant  = "want"
	HistoryBatch = "batch"
	HistoryRead  = "read"
)

// History sync limits.
const (
	// HistoryPerConversation is how many of each conversation's last
	// messages a device sends a device of its user that asks.
	HistoryPerConversation = 1000
	// MaxHistoryBody caps a history body's JSON once inflated (an
	// envelope carries at most MaxEnvelopeBytes, deflated).
	MaxHistoryBody = 4 << 20
	// MaxHistoryMessages caps the messages of one batch.
	MaxHistoryMessages = 10000
	// MaxHistoryConversations caps the conversations a want names and the
	// read marks of one read.
	MaxHistoryConversations = 1000
)

// HistoryBody is the sealed body of a [KindHistory] envelope, JSON.
//
//   - Type: [HistoryWant], [HistoryBatch] or [HistoryRead].
//   - Since (want): for each conversation (a user, or GroupPeer(id)) the
//     sender holds, the time (Unix ms) of its newest message; at most
//     MaxHistoryConversations.
//   - Messages (batch): messages as the sender's history holds them, at
//     most MaxHistoryMessages, each checked as the history checks what it
//     stores; one bad message refuses the batch.
//   - Groups (batch): group id → its log, each operation verified.
//   - Read (read): per conversation, the ids of incoming messages this user
//     has read.
type HistoryBody struct {
	Type     string                `json:"t"`
	Since    map[string]int64      `json:"since,omitempty"`
	Messages []SyncedMessage       `json:"msgs,omitempty"`
	Groups   map[string][]*GroupOp `json:"groups,omitempty"`
	Read     []ReadMark            `json:"read,omitempty"`
}

// SyncedMessage is a message of a batch: a [Message] with short JSON names.
type SyncedMessage struct {
	ID     string `json:"id"`
	Peer   string `json:"peer"`
	From   string `json:"from,omitempty"`
	Dir    string `json:"dir"`
	Device []byte `json:"dev"`
	Seq    int64  `json:"seq"`
	TS     int64  `json:"ts"`
	Text   string `json:"text"`
	State  string `json:"state"`
}

// ReadMark names messages of one conversation this user has read.
type ReadMark struct {
	Peer string   `json:"peer"`
	IDs  []string `json:"ids"`
}

// Synced returns m as a batch carries it; Message the reverse.
func Synced(m Message) SyncedMessage {
	return SyncedMessage{ID: m.ID, Peer: m.Peer, From: m.From, Dir: m.Dir, Device: m.FromDevice, Seq: m.Seq, TS: m.TS, Text: m.Text, State: m.State}
}

// Message returns the message a batch carried.
func (s SyncedMessage) Message() Message {
	return Message{ID: s.ID, Peer: s.Peer, From: s.From, Dir: s.Dir, FromDevice: s.Device, Seq: s.Seq, TS: s.TS, Text: s.Text, State: s.State}
}

// validPeer reports whether peer names a conversation.
func validPeer(peer string) bool { return checkMessagePeer(peer) == nil }

// check checks a history body's form; verify checks group operations.
func (b *HistoryBody) check(verify func(*GroupOp) error) error {
	bad := func(what string) error { return fmt.Errorf("history %s: %s: %w", b.Type, what, ErrBadHistory) }
	switch b.Type {
	case HistoryWant:
		if len(b.Since) > MaxHistoryConversations || len(b.Messages) > 0 || len(b.Groups) > 0 || len(b.Read) > 0 {
			return bad("fields")
		}
		for p, ts := range b.Since {
			if !validPeer(p) || ts < 0 {
				return bad("conversation")
			}
		}
	case HistoryBatch:
		if len(b.Messages) > MaxHistoryMessages || len(b.Since) > 0 || len(b.Read) > 0 || len(b.Groups) > MaxHistoryConversations {
			return bad("fields")
		}
		for i, s := range b.Messages {
			if err := checkSynced(s.Message()); err != nil {
				return fmt.Errorf("history batch: message %d: %w: %w", i, ErrBadHistory, err)
			}
		}
		for id, ops := range b.Groups {
			if !validID(id) || len(ops) > MaxGroupOps {
				return bad("group")
			}
			for _, o := range ops {
				if o == nil || o.GroupOf() != id {
					return bad("group operation")
				}
				if err := verify(o); err != nil {
					return fmt.Errorf("history batch: group %s: %w", id, err)
				}
			}
		}
	case HistoryRead:
		if len(b.Read) == 0 || len(b.Read) > MaxHistoryConversations || len(b.Since) > 0 || len(b.Messages) > 0 || len(b.Groups) > 0 {
			return bad("fields")
		}
		for _, r := range b.Read {
			if !validPeer(r.Peer) || len(r.IDs) == 0 || len(r.IDs) > MaxReceiptIDs || !allValidIDs(r.IDs) {
				return bad("read mark")
			}
		}
	default:
		return bad("type")
	}
	return nil
}

// checkSynced checks a message a batch carries as the history checks what
// it stores, and that its state fits its direction.
func checkSynced(m Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	if m.Seq < 0 || m.TS < 0 {
		return fmt.Errorf("seq or ts: %w", ErrBadEnvelope)
	}
	switch {
	case m.Dir == DirIn && (m.State == StateReceived || m.State == StateRead):
	case m.Dir == DirOut && (m.State == StateSending || m.State == StateSent || m.State == StateDelivered || m.State == StateRead):
	default:
		return fmt.Errorf("state %q of a message %s: %w", m.State, m.Dir, ErrBadEnvelope)
	}
	return nil
}

// SealHistory seals body from s to s's own devices in devices (records of
// s.User only; this device is skipped).
func SealHistory(s Sender, devices []DeviceRecord, body *HistoryBody, now time.Time) (*Envelope, error) {
	if err := body.check(func(o *GroupOp) error { return o.check() }); err != nil {
		return nil, fmt.Errorf("client: seal history: %w", err)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("client: seal history: %w", err)
	}
	if len(b) > MaxHistoryBody {
		return nil, fmt.Errorf("client: seal history: %d bytes: %w", len(b), ErrMessageTooLong)
	}
	e, err := seal(s, KindHistory, NewMessageID(), s.User, 0, now, b, devices)
	if err != nil {
		return nil, fmt.Errorf("client: seal history: %w", err)
	}
	return e, nil
}

// openHistory parses and checks the body of a history envelope from
// user from to me: only a user's own devices send them.
func openHistory(content []byte, from, to, me string, verify func(*GroupOp) error) (*HistoryBody, error) {
	if from != me || to != me {
		return nil, fmt.Errorf("history from %s to %s: %w", from, to, ErrNotOwnDevice)
	}
	body, err := unframeContent(content, MaxHistoryBody)
	if err != nil {
		return nil, err
	}
	var b HistoryBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("history: %w: %v", ErrBadHistory, err)
	}
	if err := b.check(verify); err != nil {
		return nil, err
	}
	return &b, nil
}
