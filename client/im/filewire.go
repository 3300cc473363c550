package im

// A file peer to peer (docs/protocol.md, "Files": over a data channel;
// docs/files.md, "Peer to peer"): a data-only WebRTC connection between the
// sending device and a receiving device, whose session descriptions travel
// in [FileBodySignal] bodies. On its one data channel (label [FileP2PLabel],
// ordered, reliable), version 1:
//
//	receiver → sender, text:   {"t":"want","from":N} | {"t":"ack","bytes":B} | {"t":"done"}
//	sender → receiver, binary: index (8 bytes, big-endian) || offset (4 bytes,
//	                           big-endian) || up to FileP2PPiece bytes of sealed
//	                           chunk index from offset
//
// The Go client (client/filep2p*.go) and the page (web/static/js/files.js,
// through wire.gen.js) both use the constants below: the wire-level ones
// both ends must agree on, and the timing and pacing each end keeps, so that
// a page and a Go client behave alike on either end.

import "time"

// The data channel's wire.
const (
	// FileP2PLabel is the data channel's label.
	FileP2PLabel = "parley-file-v1"
	// FileP2PHeader is the length of a binary message's header: the chunk's
	// index (8 bytes, big-endian) and the offset in the sealed chunk of the
	// bytes that follow (4 bytes, big-endian). A receiver refuses a message
	// no longer than it.
	FileP2PHeader = 12
	// FileP2PPiece caps the sealed bytes one binary message carries after
	// its header: 16 KiB, every browser's safe message size (a sealed chunk,
	// FileChunk + AEADOverhead, is five messages).
	FileP2PPiece = 16 << 10
	// FileP2PMaxCtrl caps a text (control) message, in bytes; a longer one
	// is ignored.
	FileP2PMaxCtrl = 255
	// FileP2PWant, FileP2PAck and FileP2PDone are the "t" of the receiver's
	// control messages: send from chunk "from" (the first missing one);
	// "bytes" bytes are on disk; the whole file is here, its hash checked.
	FileP2PWant = "want"
	FileP2PAck  = "ack"
	FileP2PDone = "done"
	// FileP2PAckEvery is how many chunks a receiver stores between two
	// acknowledgements (256 KiB: 1.3 s at a relay's pace, well inside
	// FileP2PStall).
	FileP2PAckEvery = 4
)

// The data channel's timing.
const (
	// FileP2PHighWater: a sender stops sending while this much is buffered
	// on the data channel, until it falls to FileP2PLowWater.
	FileP2PHighWater = 1 << 20
	// FileP2PLowWater is where a stopped sender goes on.
	FileP2PLowWater = 256 << 10
	// FileP2PGatherWait caps the wait for an end's ICE candidates (no
	// trickle: every candidate is in the one signal each way).
	FileP2PGatherWait = 5 * time.Second
	// FileP2PAnswerWait is how long a sender waits for a device of the
	// recipient to answer its offer; no answer to the first attempt leaves
	// the file to the store.
	FileP2PAnswerWait = 10 * time.Second
	// FileP2PConnectWait caps the wait for the data channel once the
	// descriptions are exchanged.
	FileP2PConnectWait = 15 * time.Second
	// FileP2PStall: nothing from the other end (no acknowledgement, or no
	// data) for this long means the connection is cut.
	FileP2PStall = 6 * time.Second
	// FileP2PAttempts is how many connections a sender makes (the first and
	// one after each cut) before it leaves the rest to the store.
	FileP2PAttempts = 5
	// FileP2PRedial is how long a sender waits after a cut before it
	// connects again.
	FileP2PRedial = time.Second
)

// Pacing through a relay (docs/files.md, "Relays, and voice first"): a file
// whose connection goes through a relay is sent at FileRelayPercent of the
// relay's per-user budget, less FileCallRelayCost for every call in
// progress, never under FileMinRelayRate, so that a transfer never costs a
// call its voice.
const (
	// FileRelayBudget is a relay's default per-user budget, bytes a second,
	// both directions summed (package relay's DefaultUserBandwidth; packets
	// over it are dropped).
	FileRelayBudget = 256 << 10
	// FileRelayPercent is the share of FileRelayBudget a file takes, in
	// percent.
	FileRelayPercent = 75
	// FileCallRelayCost is what a call in progress is given of the budget,
	// bytes a second.
	FileCallRelayCost = 16 << 10
	// FileMinRelayRate is the least rate a file is paced at, bytes a second.
	FileMinRelayRate = 16 << 10
)

// FileRelayRate is the rate, in bytes a second, at which a file is sent
// through a relay while calls calls are in progress.
func FileRelayRate(calls int) int {
	return max(FileRelayBudget*FileRelayPercent/100-calls*FileCallRelayCost, FileMinRelayRate)
}

// Through the login server's store.
const (
	// FileUploadWait is how long a receiver waits for a stored chunk its
	// sender has not uploaded yet (the sender is still putting it).
	FileUploadWait = 30 * time.Second
	// FileRetry is how long after a transfer stopped (the disk full, the
	// store unreachable) a receiver tries it again, by default.
	FileRetry = 10 * time.Second
)
