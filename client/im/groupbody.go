package im

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Types of a group envelope's body ([GroupBody.Type]).
const (
	// GroupMessage: a text message to the group.
	GroupMessage = "msg"
	// GroupOps: new operations, sent by their author to every member (and
	// to the user an operation adds or removes), or the log an adder sends
	// the member it added.
	GroupOps = "ops"
	// GroupSync: the sender's whole log (or part of it: a log over one
	// envelope goes in several), sent to a member whose digest differed
	// from the sender's. Unless Reply is set, a receiver that then still
	// holds operations the sender lacks answers with its own log, Reply
	// set.
	GroupSync = "sync"
)

// GroupBody is the sealed body of a [KindGroup] envelope, JSON.
//
//   - Group: the group id.
//   - Type: [GroupMessage], [GroupOps] or [GroupSync].
//   - MID, Seq, Text (GroupMessage): the message id (one id for the copies
//     to every member, so each device stores it once), the sending
//     device's counter in the group (from 1), the text (as a 1:1 message's).
//   - Ops (GroupOps, GroupSync): signed operations of the group, each
//     verified by the receiver ([VerifyGroupOp]); at most MaxGroupOps.
//   - Digest: the digest of the sender's log ([GroupState.Digest]) when it
//     sealed the envelope; a receiver whose own differs sends it a
//     GroupSync (at most once every GroupSyncInterval per group and user).
//   - Reply (GroupSync): this sync answers one; do not answer it.
type GroupBody struct {
	Group  string     `json:"g"`
	Type   string     `json:"t"`
	MID    string     `json:"mid,omitempty"`
	Seq    int64      `json:"seq,omitempty"`
	Text   string     `json:"text,omitempty"`
	Ops    []*GroupOp `json:"ops,omitempty"`
	Digest string     `json:"digest,omitempty"`
	Reply  bool       `json:"reply,omitempty"`
}

// GroupSyncInterval is how often a device sends one user its log for one
// group, unasked.
const GroupSyncInterval = 10 * time.Second

// GroupEnvelopeID returns the id of the envelope carrying group message mid
// to user to: fixed, so that a resend is the same envelope (the mailbox
// keeps it once), and distinct per recipient.
func GroupEnvelopeID(mid, to string) string {
	h := sha256.Sum256([]byte(GroupEnvelopePrefix + "\x00" + mid + "\x00" + to))
	return hex.EncodeToString(h[:idBytes])
}

// check checks a body's form. loginKey verifies the operations.
func (b *GroupBody) check(verify func(*GroupOp) error) error {
	bad := func(what string) error { return fmt.Errorf("group body: %s: %w", what, ErrBadEnvelope) }
	if !validID(b.Group) {
		return bad("group")
	}
	if b.Digest != "" && !validID(b.Digest) {
		return bad("digest")
	}
	switch b.Type {
	case GroupMessage:
		if !validID(b.MID) || b.Seq < 1 || len(b.Ops) > 0 || b.Reply {
			return bad("message")
		}
		if err := CheckText(b.Text); err != nil {
			return fmt.Errorf("%w: %w", ErrBadEnvelope, err)
		}
	case GroupOps, GroupSync:
		if b.MID != "" || b.Seq != 0 || b.Text != "" || len(b.Ops) > MaxGroupOps || (b.Type == GroupOps && len(b.Ops) == 0) {
			return bad(b.Type)
		}
		for _, o := range b.Ops {
			if o == nil {
				return bad("null operation")
			}
			if err := verify(o); err != nil {
				return err
			}
			if o.GroupOf() != b.Group {
				return bad("operation of another group")
			}
		}
	default:
		return bad("type")
	}
	return nil
}

// SealGroup seals body from s to user to, for the devices in devices (as
// for [SealMessage]). A message's envelope id is GroupEnvelopeID(MID, to);
// others get a random one.
func SealGroup(s Sender, to string, devices []DeviceRecord, body *GroupBody, now time.Time) (*Envelope, error) {
	if err := body.check(func(o *GroupOp) error { return o.check() }); err != nil {
		return nil, fmt.Errorf("client: seal group envelope to %s: %w", to, err)
	}
	id := NewMessageID()
	if body.Type == GroupMessage {
		id = GroupEnvelopeID(body.MID, to)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("client: seal group envelope to %s: %w", to, err)
	}
	if len(b) > MaxContent-5 {
		if body.Type == GroupMessage {
			return nil, fmt.Errorf("client: seal group message to %s: %w", to, ErrMessageTooLong)
		}
		// Deflate may still fit it; seal checks the envelope's size.
	}
	e, err := seal(s, KindGroup, id, to, 0, now, b, devices)
	if err != nil {
		return nil, fmt.Errorf("client: seal group envelope to %s: %w", to, err)
	}
	return e, nil
}

// openGroup parses and checks the body of a group envelope.
func openGroup(content []byte, verify func(*GroupOp) error) (*GroupBody, error) {
	body, err := unframeContent(content, MaxContent)
	if err != nil {
		return nil, err
	}
	var b GroupBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("group body: %w", ErrBadEnvelope)
	}
	if err := b.check(verify); err != nil {
		return nil, err
	}
	return &b, nil
}
