package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Secret is where a secret may come from: a file (File) or an environment
// variable, never the command line, which every user of the machine can
// read (/proc/PID/cmdline). Argv is the flag that would carry it there: set,
// it is refused.
type Secret struct{ Argv, File string }

// Bytes returns the secret of the file (a trailing newline dropped), else of
// the environment variable env; nil when neither is set. argvFlag and
// fileFlag name the flags for the messages; a secret shorter than minLen is
// refused.
func (s Secret) Bytes(argvFlag, fileFlag, env string, minLen int) ([]byte, error) {
	if s.Argv != "" {
		return nil, Usagef("--%s is refused: a secret on the command line is readable by every user of this machine (/proc/PID/cmdline); put it in a file (--%s FILE, mode 0600) or in %s", argvFlag, fileFlag, env)
	}
	v := os.Getenv(env)
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, Usagef("--%s: %v", fileFlag, err)
		}
		v = strings.TrimRight(string(b), "\r\n")
	}
	if v == "" {
		return nil, nil
	}
	if len(v) < minLen {
		return nil, Usagef("the secret of --%s must be at least %d characters", fileFlag, minLen)
	}
	return []byte(v), nil
}

// LogFormat is a --log-format flag: text (slog's key=value lines, the
// default) or json (one JSON object a line, slog's JSON handler).
type LogFormat string

func (f *LogFormat) String() string { return string(*f) }

// Set implements flag.Value.
func (f *LogFormat) Set(s string) error {
	if s != "text" && s != "json" {
		return fmt.Errorf("%q: want text or json", s)
	}
	*f = LogFormat(s)
	return nil
}

// Logger returns a logger writing to w in format f, at level (a
// --log-level: debug, info, warn or error) or, when that is empty, at def.
func (f LogFormat) Logger(w io.Writer, level string, def slog.Level) *slog.Logger {
	lvl := def
	if level != "" {
		lvl.UnmarshalText([]byte(level))
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if f == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// WithHint returns err with msg, a message that says what to do about it,
// as its text; errors.Is and As still see err.
func WithHint(err error, msg string) error { return hint{err, msg} }

type hint struct {
	err error
	msg string
}

func (h hint) Error() string { return h.msg }
func (h hint) Unwrap() error { return h.err }
