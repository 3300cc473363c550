package codec

import "errors"

// Sentinel errors returned by this package, wrapped with the operation
// (for example "codec: read wav: not a RIFF/WAVE file"). Test with errors.Is.
var (
	// ErrFrameSize means a PCM frame handed to the encoder is not exactly
	// FrameSamples samples long, or an Opus packet does not hold exactly
	// one 20 ms frame of audio.
	ErrFrameSize = errors.New("wrong frame size")
	// ErrBadPacket means an Opus payload is empty or malformed.
	ErrBadPacket = errors.New("malformed opus packet")
	// ErrConfig means a Config field is out of its documented range.
	ErrConfig = errors.New("invalid configuration")
	// ErrUninitialized means a method was called on a zero or nil
	// Encoder or Decoder instead of one made by NewEncoder/NewDecoder.
	ErrUninitialized = errors.New("not initialized")
	// ErrNotWAV means the input is not a RIFF/WAVE file.
	ErrNotWAV = errors.New("not a RIFF/WAVE file")
	// ErrUnsupported means a WAV file is valid but of a kind this package
	// does not read (not 16-bit integer PCM, not 1 or 2 channels, sample
	// rate outside 8000..192000 Hz, RF64/RIFX).
	ErrUnsupported = errors.New("unsupported WAV format")
	// ErrCorrupt means a WAV file is truncated or its header sizes lie.
	ErrCorrupt = errors.New("corrupt WAV file")
	// ErrTooLarge means a WAV file holds more audio than ReadWAV accepts
	// (see MaxWAVDataBytes and MaxWAVSamples).
	ErrTooLarge = errors.New("WAV file too large")
	// ErrClosed means Write was called on a WAVWriter after Close.
	ErrClosed = errors.New("writer closed")
)
