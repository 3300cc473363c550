package client

import "time"

// Event is one thing that happened, in the shape the CLI prints with --json: one
// flat JSON object with "ts" and "event", plus the fields of its kind.
//
//   - "online": user, supernode (at start, and again after each failover).
//   - "offline": user, supernode (the one lost), message (why); the session is
//     reconnecting by itself.
//   - "path" (during a call, when its path or relay changes, e.g. after an ICE
//     restart): call_id, peer, path, relay.
//   - "call": call_id, peer, state (ringing, connected, held, resumed, ended), reason, direction,
//     and path/relay once connected.
//   - "stats" (every StatsInterval during a call): call_id, peer, path, relay and
//     the [Stats] fields.
//   - "credential": user, message (a credential was renewed).
//   - "message", "delivered", "read", "typing", "message-refused", "group":
//     see [MessageEvent]; "seen": peer, ids: messages of that conversation
//     were read on another device of this user.
//   - "history": count: messages another device of this user sent this one
//     were merged into the history ([HistoryEvent]).
//   - "file-offer", "file-progress", "file", "file-sent", "file-delivered",
//     "file-failed": files sent and received ([FileEvent], file.go).
//   - "conference": conf, conf_state (invited, joined, roster, declined,
//     left), roster ([ConfEvent], conference.go).
type Event struct {
	TS     time.Time `json:"ts"`
	Event  string    `json:"event"`
	CallID string    `json:"call_id,omitempty"`
	Peer   string    `json:"peer,omitempty"`
	// Path and Relay are set on "stats" events and on "call" events once the
	// call is connected: the path (direct, udp-relay, tcp-relay) and the relay's
	// address when relayed. (They live here, not in the embedded structs, so
	// that JSON flattening keeps them.)
	Path  string `json:"path,omitempty"`
	Relay string `json:"relay,omitempty"`
	// Conf is the conference a call is a leg of, and the conference of a
	// "conference" event.
	Conf string `json:"conf,omitempty"`
	*CallState
	*Stats
	*Info
	*MessageEvent
	*PresenceEvent
	*HistoryEvent
	*FileEvent
	*ConfEvent
}

// Call states.
const (
	StateRinging   = "ringing"
	StateConnected = "connected"
	StateEnded     = "ended"
	// StateHeld and StateResumed mark hold and resume during a connected call;
	// the reason says "by local" or "by peer".
	StateHeld    = "held"
	StateResumed = "resumed"
)

// CallState is the payload of a "call" event.
type CallState struct {
	State     string `json:"state"`
	Reason    string `json:"reason"`
	Direction string `json:"direction"`
}

// Info is the payload of "online", "offline" and "credential" events.
type Info struct {
	User      string `json:"user,omitempty"`
	Supernode string `json:"supernode,omitempty"`
	Message   string `json:"message,omitempty"`
}

// Stats describes a call's media so far. Packet and byte counts are RTP packets
// and their payload bytes (Opus frames), counted where they are written and read.
type Stats struct {
	PacketsSent     uint64  `json:"packets_sent"`
	PacketsReceived uint64  `json:"packets_received"`
	BytesSent       uint64  `json:"bytes_sent"`
	BytesReceived   uint64  `json:"bytes_received"`
	Loss            float64 `json:"loss"`      // fraction of expected packets not received, 0–1
	JitterMS        float64 `json:"jitter_ms"` // RFC 3550 interarrival jitter
	RTTMS           float64 `json:"rtt_ms"`    // ICE round trip on the selected pair
	Path            string  `json:"-"`         // direct, udp-relay or tcp-relay (Event.Path in JSON)
	Relay           string  `json:"-"`         // the relay's address (Event.Relay in JSON)
	// RelayProtocol is how this end reaches its relay (udp, tcp or tls) when
	// its own candidate is a relay candidate.
	RelayProtocol string `json:"relay_protocol,omitempty"`
	// DirectVia says what made a direct path direct: host, hole-punched,
	// port-mapped or ipv6 (client/call_portmap.go); empty when relayed.
	DirectVia string `json:"direct_via,omitempty"`
}

// Self-promotion events ([Event.Event], package promote): "promoted"
// (Info.Supernode is the URL it serves at) and "stepped-down" (Info.Message
// says why).
const (
	EventPromoted    = "promoted"
	EventSteppedDown = "stepped-down"
)
