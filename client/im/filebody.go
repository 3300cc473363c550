package im

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Types of a file envelope's body ([FileBody.Type]).
const (
	// FileBodyOffer offers a file: Offer is set. To a group, Group, MID and
	// Seq are set as for a group message.
	FileBodyOffer = "offer"
	// FileBodyDone tells the sender (and the receiver's other devices)
	// that the receiving device has the whole file, its hash checked:
	// File names it.
	FileBodyDone = "done"
	// FileBodySignal carries the peer-to-peer connection's signalling
	// for file File between two devices: SDP is an offer or an answer.
	FileBodySignal = "signal"
)

// MaxFileSDP caps the SDP a signal body carries.
const MaxFileSDP = 16 << 10

// FileBody is the sealed body of a [KindFile] envelope, JSON.
//
//   - T: [FileBodyOffer], [FileBodyDone] or [FileBodySignal].
//   - Offer (offer): the file ([FileOffer]).
//   - Group, MID, Seq (offer to a group): the group id, the offer's
//     message id (one id for the copies to every member; it is also the
//     history's id of the file's entry) and the sending device's counter
//     in the group.
//   - File (done, signal): the file's id.
//   - SDPType, SDP (signal): "offer" or "answer", and the session
//     description of a data-only WebRTC connection between the two
//     devices (the envelope's signature authenticates its DTLS
//     fingerprint).
type FileBody struct {
	T       string     `json:"t"`
	Offer   *FileOffer `json:"offer,omitempty"`
	Group   string     `json:"g,omitempty"`
	MID     string     `json:"mid,omitempty"`
	Seq     int64      `json:"seq,omitempty"`
	File    string     `json:"file,omitempty"`
	SDPType string     `json:"sdp_type,omitempty"`
	SDP     string     `json:"sdp,omitempty"`
}

// check checks a body's form.
func (b *FileBody) check() error {
	bad := func(what string) error { return fmt.Errorf("file body: %s: %w", what, ErrBadFile) }
	switch b.T {
	case FileBodyOffer:
		if b.Offer == nil || b.File != "" || b.SDP != "" {
			return bad("offer")
		}
		if err := b.Offer.Check(); err != nil {
			return err
		}
		if b.Group != "" && (!validID(b.Group) || !validID(b.MID) || b.Seq < 1) {
			return bad("group offer")
		}
		if b.Group == "" && (b.MID != "" || b.Seq != 0) {
			return bad("offer")
		}
	case FileBodyDone:
		if !validID(b.File) || b.Offer != nil || b.Group != "" || b.SDP != "" {
			return bad("done")
		}
	case FileBodySignal:
		if !validID(b.File) || b.Offer != nil || b.Group != "" || (b.SDPType != "offer" && b.SDPType != "answer") ||
			b.SDP == "" || len(b.SDP) > MaxFileSDP {
			return bad("signal")
		}
	default:
		return bad("type")
	}
	return nil
}

// FileEnvelopeContext starts what a group file's envelope id is the hash
// of ([FileEnvelopeID]).
const FileEnvelopeContext = "parley-file-env"

// FileEnvelopeID returns the id of the envelope offering a group's file
// (its offer's MID) to member to: fixed, so that a resend is the same
// envelope, and distinct per recipient. It is the first 16 bytes, hex, of
// the SHA-256 of FileEnvelopeContext, 0x00, mid, 0x00, to.
func FileEnvelopeID(mid, to string) string {
	h := sha256.Sum256([]byte(FileEnvelopeContext + "\x00" + mid + "\x00" + to))
	return hex.EncodeToString(h[:idBytes])
}

// FileMessageID returns the history id of the file's entry: the offer's
// id in a 1:1 conversation (it is also the envelope's id, so the receipt
// of the offer marks the entry delivered), its MID in a group's.
func FileMessageID(body *FileBody) string {
	if body.Group != "" {
		return body.MID
	}
	return body.Offer.ID
}

// SealFile seals body from s to user to, for the devices in devices (as
// for [SealMessage]). A 1:1 offer's envelope id is the file's id and its
// seq is seq (the conversation's counter, from 1); a group offer's id is
// FileEnvelopeID(MID, to) and its seq 0; other bodies get a random id and
// seq 0.
func SealFile(s Sender, to string, devices []DeviceRecord, body *FileBody, seq int64, now time.Time) (*Envelope, error) {
	if err := body.check(); err != nil {
		return nil, fmt.Errorf("client: seal file envelope to %s: %w", to, err)
	}
	id := NewMessageID()
	if body.T == FileBodyOffer {
		id = body.Offer.ID
		if body.Group != "" {
			id, seq = FileEnvelopeID(body.MID, to), 0
		} else if seq < 1 {
			return nil, fmt.Errorf("client: seal file offer to %s: seq %d: %w", to, seq, ErrBadEnvelope)
		}
	} else {
		seq = 0
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("client: seal file envelope to %s: %w", to, err)
	}
	e, err := seal(s, KindFile, id, to, seq, now, b, devices)
	if err != nil {
		return nil, fmt.Errorf("client: seal file envelope to %s: %w", to, err)
	}
	return e, nil
}

// openFile parses and checks the body of a file envelope.
func openFile(content []byte) (*FileBody, error) {
	body, err := unframeContent(content, MaxContent)
	if err != nil {
		return nil, err
	}
	var b FileBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("file body: %w", ErrBadEnvelope)
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	return &b, nil
}

// FileNote is the text of a file's entry in the history: what a reader of
// the conversation (`parley history`, another device after a history
// sync) sees of it — the name and size, not the key.
func FileNote(f *FileOffer) string {
	return fmt.Sprintf("[file] %s (%s)", f.Name, HumanSize(f.Size))
}

// HumanSize writes n bytes as "812 B", "1.5 KB", "10.0 MB" (powers of
// 1000).
func HumanSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}
