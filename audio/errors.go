package audio

import "errors"

// Sentinel errors: Open and Close wrap them in a [*FileError] naming the file.
// Test with errors.Is.
var (
	// ErrPlay means what Config.Play names cannot be read as audio.
	ErrPlay = errors.New("play")
	// ErrRecord means what Config.Record names cannot be created or written.
	ErrRecord = errors.New("record")
)

// FileError is a failure of one of the files (or streams) a [Config] names.
// Its text is "OP PATH: ERR" (for example "play in.wav: codec: read wav:
// corrupt WAV file"); errors.Is matches its Op ([ErrPlay] or [ErrRecord]) and
// what Err matches.
type FileError struct {
	Op   error  // ErrPlay or ErrRecord
	Path string // Config.Play or Config.Record
	Err  error
}

func (e *FileError) Error() string { return e.Op.Error() + " " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the operation and the cause.
func (e *FileError) Unwrap() []error { return []error{e.Op, e.Err} }
