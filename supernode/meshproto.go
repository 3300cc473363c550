package supernode

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

// The mesh protocol: supernodes talk to each other with signed JSON requests,
// one HTTP POST to {http(s)://name}/v1/mesh per message, and a signed reply.
//
//	POST /v1/mesh
//	Parley-Sig: base64(SignContext(senderKey, MeshContext, body))
//	body: MeshMsg{V, Type, From, To, TS, ...}
//
//	200 (or 4xx with a MeshMsg of type "error")
//	Parley-Sig: base64(SignContext(responderKey, MeshReplyContext, requestSig || body))
//	body: MeshMsg{V, Type, From, To, TS, ...}
//
// The receiver checks the version, that To is its own name, that TS is within
// [identity.Skew] of its clock, and the signature against From.Key. Only a
// member (a node this supernode has itself pinged at its name and seen answer
// with that key) may publish, look up or deliver; a ping from a stranger is
// answered, and the stranger is pinged back before it joins the ring. The
// requester checks the reply's signature against the key it expects at the
// name it dialled; a ping reply proves the key that answers there.
//
// Message types (request → reply):
//
//	ping    Members (the sender's live members)  → pong    Members (the receiver's)
//	leave   (the sender is stepping down)        → ok
//	publish Records (presence records the sender
//	        is the home of; Sessions empty = gone) → ok
//	lookup  User                                 → found   Records (every live record of User)
//	deliver Deliver                               → delivered Delivered (devices reached)
//
// Limits: a body is at most [MaxMeshSize] bytes, with at most [MaxMeshRecords]
// records, [MaxMeshMembers] members and [MaxRecordSessions] sessions a record.
const (
	// MeshPath is the mesh endpoint on every supernode.
	MeshPath = "/v1/mesh"
	// MeshContext and MeshReplyContext are the signature contexts of mesh
	// requests and replies.
	MeshContext      = "parley-mesh-v1"
	MeshReplyContext = "parley-mesh-reply-v1"
	// MeshSigHeader carries the signature of a request or reply.
	MeshSigHeader = "Parley-Sig"
	// MaxMeshSize caps one mesh message in bytes.
	MaxMeshSize = 512 << 10
	// MaxMeshRecords caps the records in one message; publishers split.
	MaxMeshRecords = 1000
	// MaxMeshMembers caps the members gossiped in one message.
	MaxMeshMembers = 1000
	// MaxRecordSessions caps the sessions of one user on one supernode that
	// its record lists (Config.MaxSessionsPerUser caps those attached).
	MaxRecordSessions = 16
)

// Mesh message types.
const (
	MeshPing      = "ping"
	MeshPong      = "pong"
	MeshLeave     = "leave"
	MeshOK        = "ok"
	MeshPublish   = "publish"
	MeshLookup    = "lookup"
	MeshFound     = "found"
	MeshDeliver   = "deliver"
	MeshDelivered = "delivered"
	MeshError     = "error"
)

// Member is a supernode as the mesh knows it.
//   - Name: host:port (≤ 256 bytes), the address it is dialled at and the key of
//     its place on the ring.
//   - URL: its client websocket URL, ws:// or wss:// (≤ 256 bytes).
//   - Key: its Ed25519 node key (32 bytes).
type Member struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	Key  []byte `json:"key"`
}

// Record is a presence record: user User has Sessions attached at supernode
// Node. Seq orders one home's records of a user (later wins); a record with no
// Sessions says the user left Node. Hidden (a subset of Sessions) are the
// sessions whose status is invisible: routing reaches them, but a lookup by
// anyone other than User does not count them. Holders drop a record RecordTTL
// after receiving it unless refreshed.
type Record struct {
	User     string   `json:"user"`
	Node     string   `json:"node"`
	Sessions []string `json:"sessions,omitempty"`
	Hidden   []string `json:"hidden,omitempty"`
	Seq      int64    `json:"seq"`
}

// MeshDelivery is a client's send carried to the supernode the recipient is
// attached at: To (user), From and FromSession as authenticated by the sender's
// supernode, the opaque Payload (≤ [MaxPayloadSize]).
//
// A presence push has Presence set instead of a Payload.
type MeshDelivery struct {
	To          string          `json:"to"`
	From        string          `json:"from"`
	FromSession string          `json:"from_session"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Presence    *PresenceNote   `json:"presence,omitempty"`
}

// PresenceNote is a presence push through the mesh: device Device of From is
// now Status (as shown: never invisible); Reply is set on the answer a
// watcher's supernode sends back, which is not answered again.
type PresenceNote struct {
	Device string `json:"device"`
	Status string `json:"status"`
	Reply  bool   `json:"reply,omitempty"`
}

// MeshMsg is every mesh request and reply. Fields a type does not use are
// omitted. TS is Unix milliseconds.
type MeshMsg struct {
	V         int           `json:"v"`
	Type      string        `json:"type"`
	From      Member        `json:"from"`
	To        string        `json:"to"`
	TS        int64         `json:"ts"`
	Members   []Member      `json:"members,omitempty"`
	Records   []Record      `json:"records,omitempty"`
	User      string        `json:"user,omitempty"`
	Deliver   *MeshDelivery `json:"deliver,omitempty"`
	Delivered int           `json:"delivered,omitempty"`
	Error     string        `json:"error,omitempty"`
}

const maxNameLen = 256

// DecodeMeshMsg parses and checks a mesh message from untrusted bytes. It does
// not check the signature.
func DecodeMeshMsg(b []byte) (MeshMsg, error) {
	var m MeshMsg
	if len(b) > MaxMeshSize {
		return m, fmt.Errorf("supernode: mesh decode: %d bytes: %w", len(b), snapi.ErrFrameTooBig)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("supernode: mesh decode: %w: %v", snapi.ErrBadFrame, err)
	}
	if m.V != snapi.ProtocolVersion {
		return m, fmt.Errorf("supernode: mesh decode: version %d: %w", m.V, snapi.ErrVersion)
	}
	if err := checkMember(m.From); err != nil {
		return m, fmt.Errorf("supernode: mesh decode: from: %w", err)
	}
	switch {
	case m.Type == "":
		return m, fmt.Errorf("supernode: mesh decode: no type: %w", snapi.ErrBadFrame)
	case len(m.Members) > MaxMeshMembers, len(m.Records) > MaxMeshRecords:
		return m, fmt.Errorf("supernode: mesh decode: too many entries: %w", snapi.ErrFrameTooBig)
	case len(m.To) > maxNameLen, len(m.User) > identity.MaxUserLen, len(m.Error) > 512:
		return m, fmt.Errorf("supernode: mesh decode: field too long: %w", snapi.ErrBadFrame)
	}
	for _, mb := range m.Members {
		if err := checkMember(mb); err != nil {
			return m, fmt.Errorf("supernode: mesh decode: member: %w", err)
		}
	}
	for _, r := range m.Records {
		if identity.CheckUser(r.User) != nil || r.Node == "" || len(r.Node) > maxNameLen || len(r.Sessions) > MaxRecordSessions {
			return m, fmt.Errorf("supernode: mesh decode: record: %w", snapi.ErrBadFrame)
		}
		for _, s := range r.Sessions {
			if len(s) > 64 {
				return m, fmt.Errorf("supernode: mesh decode: session id: %w", snapi.ErrBadFrame)
			}
		}
		if len(r.Hidden) > len(r.Sessions) {
			return m, fmt.Errorf("supernode: mesh decode: record hides too many sessions: %w", snapi.ErrBadFrame)
		}
		for _, s := range r.Hidden {
			if !slices.Contains(r.Sessions, s) {
				return m, fmt.Errorf("supernode: mesh decode: hidden session not in the record: %w", snapi.ErrBadFrame)
			}
		}
	}
	if d := m.Deliver; d != nil {
		if identity.CheckUser(d.To) != nil || identity.CheckUser(d.From) != nil || len(d.FromSession) > 64 {
			return m, fmt.Errorf("supernode: mesh decode: deliver: %w", snapi.ErrBadFrame)
		}
		if p := d.Presence; p != nil {
			if len(d.Payload) != 0 || len(p.Device) > snapi.MaxIDLen || presence.Shown(p.Status) != p.Status || !presence.CanSet(p.Status) && p.Status != presence.Offline {
				return m, fmt.Errorf("supernode: mesh decode: presence: %w", snapi.ErrBadFrame)
			}
		} else if len(d.Payload) > snapi.MaxPayloadSize || !json.Valid(d.Payload) {
			return m, fmt.Errorf("supernode: mesh decode: deliver: %w", snapi.ErrBadFrame)
		}
	}
	return m, nil
}

func checkMember(m Member) error {
	if m.Name == "" || len(m.Name) > maxNameLen || len(m.URL) > maxNameLen || len(m.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("member %.64q: %w", m.Name, snapi.ErrBadFrame)
	}
	return nil
}

// replyMessage is what a reply's signature covers: the request's signature
// followed by the reply body, so a reply can't be replayed for another request.
func replyMessage(reqSig, body []byte) []byte {
	m := make([]byte, 0, len(reqSig)+len(body))
	return append(append(m, reqSig...), body...)
}
