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
	// ErrBadGroupOp: a group operation is malformed, or one that would
	// change nothing (adding a member, removing a non-member).
	ErrBadGroupOp = errors.New("malformed group operation")
	// ErrGroupOpSignature: a group operation's signature or credential
	// does not verify: it was forged or altered.
	ErrGroupOpSignature = errors.New("group operation signature does not verify")
	// ErrBadGroupName: a group name is empty, too long or not text.
	ErrBadGroupName = errors.New("group name must be 1 to 200 bytes of text")
	// ErrUnknownGroup: this device knows no group by that id or name.
	ErrUnknownGroup = errors.New("no such group")
	// ErrNotMember: the user is not a member of the group.
	ErrNotMember = errors.New("not a member of the group")
	// ErrNotAdmin: only the group's admins may change its members or name.
	ErrNotAdmin = errors.New("only an admin of the group may do that")
	// ErrGroupFull: the group has MaxGroupMembers members, or its log
	// MaxGroupOps operations.
	ErrGroupFull = errors.New("group is full (at most 100 members)")
	// ErrBadHistory: a history envelope is malformed or over a limit; it
	// changes nothing.
	ErrBadHistory = errors.New("malformed history batch")
	// ErrNotOwnDevice: a history envelope that does not come from one of
	// this user's own devices.
	ErrNotOwnDevice = errors.New("history not from one of this user's own devices")
	// ErrBadFile: a file offer or a chunk is malformed, or a chunk does not
	// fit its file.
	ErrBadFile = errors.New("malformed file or chunk")
	// ErrBadFileName: a file name that is empty, too long, or names more
	// than a file (a directory, a control character).
	ErrBadFileName = errors.New("not a file name")
	// ErrFileTooBig: a file over the size a client, a store or a quota
	// takes.
	ErrFileTooBig = errors.New("file is too big")
	// ErrFileHash: a received file's SHA-256 is not the one its sender
	// signed.
	ErrFileHash = errors.New("received file does not match the hash its sender signed")
)
