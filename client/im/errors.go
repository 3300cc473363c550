package im

import "errors"

// Sentinel errors of instant messages (im.go, im_keys.go) and the message
// history (history.go), wrapped with the operation. Like those of errors.go,
// their texts read well as the one line a CLI prints.
var (
	// ErrEmptyMessage: the text is empty or only white space.
	ErrEmptyMessage = errors.New("message is empty")
	// ErrMessageTooLong: the text is over MaxMessageBytes, or (rarely, for
	// text near the limit that does not compress) its envelope would be
	// over MaxEnvelopeBytes.
	ErrMessageTooLong = errors.New("message is too long (at most 64 KiB of text)")
	// ErrMessageNotText: the text is not valid UTF-8.
	ErrMessageNotText = errors.New("message is not valid UTF-8 text")
	// ErrBadEnvelope: a message envelope is malformed: not JSON, another
	// version, a field of the wrong size, over a limit.
	ErrBadEnvelope = errors.New("malformed message envelope")
	// ErrEnvelopeSignature: the envelope's signature does not verify: it
	// was altered on the way, or forged.
	ErrEnvelopeSignature = errors.New("message signature does not verify")
	// ErrEnvelopeSender: the sender's credential is not the login server's,
	// was not valid when the message was dated, or names another user or
	// device than the envelope claims.
	ErrEnvelopeSender = errors.New("message sender's credential does not match")
	// ErrNotForMe: the envelope is neither to nor from this user.
	ErrNotForMe = errors.New("message is not addressed to this user")
	// ErrNoKeyForDevice: the envelope carries no content key for this device.
	ErrNoKeyForDevice = errors.New("message was not encrypted to this device")
	// ErrDecrypt: a wrapped key or the body does not decrypt.
	ErrDecrypt = errors.New("message does not decrypt")
	// ErrBadDevice: a device record's signature or keys do not verify.
	ErrBadDevice = errors.New("device record does not verify")
	// ErrNoDevices: there is no device to encrypt a message to.
	ErrNoDevices = errors.New("recipient has no registered device")
	// ErrTooManyDevices: more than MaxEnvelopeDevices devices.
	ErrTooManyDevices = errors.New("too many devices for one message")
	// ErrHistoryCorrupt: the history database is not a readable SQLite
	// database of this format.
	ErrHistoryCorrupt = errors.New("message history is unreadable")
	// ErrDuplicateMessage: a message with this id is already in the history.
	ErrDuplicateMessage = errors.New("message id already in the history")
)
