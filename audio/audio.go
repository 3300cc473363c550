// Package audio connects calls to files and streams: it plays a WAV file, or
// raw PCM read from a stream such as stdin, into calls, and records what calls
// hear to a WAV file or as raw PCM on a stream such as stdout. It is what the
// CLI's --play and --record name.
//
// Frames are codec's: 20 ms of 48 kHz mono signed 16-bit PCM
// (codec.FrameSamples samples). A [FrameSource] and a [FrameSink] have the
// methods of client.FrameSource and client.FrameSink, so they plug into
// client.Media as they are; this package does not import the client.
package audio

import (
	"io"
	"os"
	"sync"

	"github.com/parley/parley/codec"
)

// Stdio is the Play or Record value that names the Stdin or Stdout stream
// instead of a file.
const Stdio = "-"

// FrameSource supplies 20 ms frames; io.EOF ends it (client.FrameSource).
type FrameSource interface {
	ReadFrame() ([]int16, error)
}

// FrameSink receives 20 ms frames (client.FrameSink).
type FrameSink interface {
	WriteFrame([]int16) error
}

// Config says where calls' audio comes from and where it goes. The zero value
// plays silence and records nothing.
type Config struct {
	// Play is what calls say: the path of a WAV file (PCM 16-bit, mono or
	// stereo, 8–192 kHz, converted to 48 kHz mono; Open reads it whole, so a
	// bad file fails before any call), [Stdio] ("-") for raw s16le 48 kHz
	// mono read from Stdin, or "" for silence.
	Play string
	// Record is where what calls hear goes: the path of a WAV file to create
	// (48 kHz mono 16-bit), [Stdio] for raw s16le 48 kHz mono written to
	// Stdout, or "" for nowhere. Calls one after another append to the same
	// recording.
	Record string
	// Stdin is read for Play "-"; nil means os.Stdin.
	Stdin io.Reader
	// Stdout is written for Record "-"; nil means os.Stdout.
	Stdout io.Writer
}

// IO is an opened Config: a source and a sink for each call. Its methods are
// safe for concurrent use; Close finishes the recording.
type IO struct {
	cfg Config
	pcm []int16 // the WAV file to play, read by Open

	mu       sync.Mutex
	rec      *codec.WAVWriter // Record is a file
	recFile  *os.File
	rawOut   io.Writer // Record is Stdio
	stdinUse bool      // the Stdin stream was handed to a call
}

// Open reads the WAV file to play and creates the recording. On success the
// caller must Close the IO to finish the recording.
func Open(cfg Config) (*IO, error) {
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	a := &IO{cfg: cfg}
	if cfg.Play != "" && cfg.Play != Stdio {
		pcm, err := readWAVFile(cfg.Play)
		if err != nil {
			return nil, &FileError{Op: ErrPlay, Path: cfg.Play, Err: err}
		}
		a.pcm = pcm
	}
	switch cfg.Record {
	case "":
	case Stdio:
		a.rawOut = cfg.Stdout
	default:
		f, err := os.Create(cfg.Record)
		if err != nil {
			return nil, &FileError{Op: ErrRecord, Path: cfg.Record, Err: err}
		}
		w, err := codec.NewWAVWriter(f)
		if err != nil {
			f.Close()
			return nil, &FileError{Op: ErrRecord, Path: cfg.Record, Err: err}
		}
		a.recFile, a.rec = f, w
	}
	return a, nil
}

func readWAVFile(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return codec.ReadWAV(f)
}

// Source returns a fresh source for one call, from the start of the file;
// nil (silence) when Play is "". Stdin is one stream: only the first call
// gets it, later ones get nil.
func (a *IO) Source() FrameSource {
	switch {
	case a.cfg.Play == Stdio:
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stdinUse {
			return nil
		}
		a.stdinUse = true
		return codec.NewRawReader(a.cfg.Stdin)
	case a.pcm != nil:
		return codec.NewPCMFrameReader(a.pcm)
	}
	return nil
}

// Sink returns where a call's audio goes: nil (nowhere) when Record is "".
// Every call's sink is the same recording.
func (a *IO) Sink() FrameSink {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec == nil && a.rawOut == nil {
		return nil
	}
	return (*recorder)(a)
}

// recorder is the sink of an IO.
type recorder IO

func (r *recorder) WriteFrame(f []int16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.rec != nil:
		return r.rec.Write(f)
	case r.rawOut != nil:
		return codec.WriteRaw(r.rawOut, f)
	}
	return nil // closed
}

// Close finishes and closes the recording file (frames written after it are
// dropped). Closing twice is a no-op.
func (a *IO) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec == nil {
		return nil
	}
	err := a.rec.Close()
	if cerr := a.recFile.Close(); err == nil {
		err = cerr
	}
	a.rec = nil
	if err != nil {
		return &FileError{Op: ErrRecord, Path: a.cfg.Record, Err: err}
	}
	return nil
}
