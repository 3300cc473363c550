package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/wire/loginapi"
)

// audioIO holds what --play and --record name.
type audioIO struct {
	play, record string
	stdin        io.Reader
	stdout       io.Writer

	pcm []int16 // --play FILE, read at start so a bad file fails before going online

	mu       sync.Mutex
	rec      *codec.WAVWriter
	recFile  *os.File
	rawOut   io.Writer
	stdinUse bool
}

func (a *audioIO) open() error {
	if a.play != "" && a.play != "-" {
		f, err := os.Open(a.play)
		if err != nil {
			return fmt.Errorf("--play %s: %w", a.play, err)
		}
		pcm, err := codec.ReadWAV(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--play %s: %w", a.play, err)
		}
		a.pcm = pcm
	}
	switch a.record {
	case "":
	case "-":
		a.rawOut = a.stdout
	default:
		f, err := os.Create(a.record)
		if err != nil {
			return fmt.Errorf("--record %s: %w", a.record, err)
		}
		w, err := codec.NewWAVWriter(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("--record %s: %w", a.record, err)
		}
		a.recFile, a.rec = f, w
	}
	return nil
}

// source returns a fresh source for one call (nil: silence).
func (a *audioIO) source() client.FrameSource {
	switch {
	case a.play == "-":
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stdinUse {
			return nil // stdin is one stream: only the first call gets it
		}
		a.stdinUse = true
		return codec.NewRawReader(a.stdin)
	case a.pcm != nil:
		return codec.NewPCMFrameReader(a.pcm)
	}
	return nil
}

// sink returns where a call's audio goes (nil: nowhere). Calls that follow one
// another append to the same recording.
func (a *audioIO) sink() client.FrameSink {
	if a.rec == nil && a.rawOut == nil {
		return nil
	}
	return a
}

func (a *audioIO) WriteFrame(f []int16) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec != nil {
		return a.rec.Write(f)
	}
	return codec.WriteRaw(a.rawOut, f)
}

func (a *audioIO) close() error {
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
		return fmt.Errorf("--record %s: %w", a.record, err)
	}
	return nil
}

// audioFlags registers --play and --record.
func (e *env) audioFlags(fs *flag.FlagSet, playTo, recordWhat string) *audioIO {
	a := &audioIO{stdin: e.stdin, stdout: e.stdout}
	fs.StringVar(&a.play, "play", "", strings.TrimSpace("WAV `FILE` to play "+playTo)+", or - for raw s16le 48 kHz mono on stdin")
	fs.StringVar(&a.record, "record", "", "record "+recordWhat+" to a WAV `FILE`, or - for raw s16le on stdout")
	return a
}

// openAudioClient opens --play and --record (so a bad file fails before going
// online), picks the event stream and makes the client. On success the caller
// must close a (closeInto) to finish the recording.
func (e *env) openAudioClient(a *audioIO, jsonOut bool) (*printer, *client.Client, error) {
	if err := a.open(); err != nil {
		return nil, nil, err
	}
	c, err := e.newClient("")
	if err != nil {
		a.close()
		return nil, nil, err
	}
	return e.eventOut(jsonOut, a.record), c, nil
}

// closeInto finishes the recording, reporting a failure through *err unless
// that already holds one.
func (a *audioIO) closeInto(err *error) {
	if cerr := a.close(); *err == nil {
		*err = cerr
	}
}

// eventOut picks the event stream: stdout, unless stdout carries audio.
func (e *env) eventOut(jsonOut bool, record string) *printer {
	w := e.stdout
	if record == "-" {
		w = e.stderr
	}
	return &printer{w: w, json: jsonOut}
}

func cmdListen(ctx context.Context, e *env, args []string) (err error) {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	answer := fs.Bool("answer", false, "answer incoming calls (without it calls are declined)")
	answerAfter := fs.Duration("answer-after", 0, "with --answer, let a call ring this long before answering")
	a := e.audioFlags(fs, "to each caller", "what callers say")
	dur := fs.Duration("for", 0, "exit after this long (0: run until interrupted)")
	calls := fs.Int("calls", 0, "exit after this many calls have ended (0: no limit)")
	jsonOut := fs.Bool("json", false, "print events as JSON lines")
	var pf promoteFlags
	pf.register(fs)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	out, c, err := e.openAudioClient(a, *jsonOut)
	if err != nil {
		return err
	}
	defer a.closeInto(&err)
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	// Every incoming call counts toward --calls once it is over, answered or not.
	var endedCalls atomic.Int64
	ended := make(chan struct{}, 1)
	var busy sync.Mutex
	// The session keeps itself attached: when its supernode goes away it moves
	// to another ("offline", then "online" events). Done means it cannot.
	s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{
		OnEvent: out.event,
		OnIncoming: func(in *client.Incoming) {
			defer func() {
				endedCalls.Add(1)
				select {
				case ended <- struct{}{}:
				default:
				}
			}()
			if !*answer {
				in.Decline("declined")
				return
			}
			if *answerAfter > 0 {
				// Ring for a while first; another device may answer.
				t := time.NewTimer(*answerAfter)
				defer t.Stop()
				select {
				case <-t.C:
				case <-in.Cancelled():
					return
				case <-ctx.Done():
					return
				}
			}
			if !busy.TryLock() {
				in.Decline("busy")
				return
			}
			defer busy.Unlock()
			call, err := in.Answer(ctx, client.Media{Source: a.source(), Sink: a.sink()})
			if err == nil {
				<-call.Done()
			}
		},
	}))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := pf.start(s); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done():
			return s.Err()
		case <-ended:
			if *calls > 0 && endedCalls.Load() >= int64(*calls) {
				return nil
			}
		}
	}
}

func cmdCall(ctx context.Context, e *env, args []string) (err error) {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	a := e.audioFlags(fs, "", "what the peer says")
	dur := fs.Duration("for", 0, "hang up after this long (default: at the end of --play, else when interrupted)")
	holdAt := fs.Duration("hold-at", 0, "put the call on hold this long after it connects")
	holdFor := fs.Duration("hold-for", 0, "resume after this long on hold (0 with --hold-at: stay on hold)")
	jsonOut := fs.Bool("json", false, "print events as JSON lines")
	statsEvery := fs.Duration("stats-interval", time.Second, "how often to print call statistics")
	pos, err := parseFlags(fs, e, args, 1, 1, "USER")
	if err != nil {
		return err
	}
	peer := pos[0]
	out, c, err := e.openAudioClient(a, *jsonOut)
	if err != nil {
		return err
	}
	defer a.closeInto(&err)
	s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{OnEvent: out.event, StatsInterval: *statsEvery}))
	if err != nil {
		return err
	}
	defer s.Close()
	sourceEnd := make(chan struct{})
	var once sync.Once
	media := client.Media{Source: a.source(), Sink: a.sink()}
	if *dur == 0 {
		media.OnSourceEnd = func() { once.Do(func() { close(sourceEnd) }) }
	}
	call, err := s.Call(ctx, peer, media)
	if err != nil {
		return err
	}
	if *holdAt > 0 {
		t := time.AfterFunc(*holdAt, func() {
			call.Hold(true)
			if *holdFor > 0 {
				time.AfterFunc(*holdFor, func() { call.Hold(false) })
			}
		})
		defer t.Stop()
	}
	var timeout <-chan time.Time
	if *dur > 0 {
		t := time.NewTimer(*dur)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-call.Done():
	case <-sourceEnd:
		// Let the last frames and their jitter-buffer delay reach the peer.
		time.Sleep(200 * time.Millisecond)
		call.Hangup("hangup")
	case <-timeout:
		call.Hangup("hangup")
	case <-ctx.Done():
		call.Hangup("hangup")
	}
	<-call.Done()
	return call.Err()
}

func cmdEcho(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	dur := fs.Duration("for", 0, "exit after this long (0: run until interrupted)")
	jsonOut := fs.Bool("json", false, "print events as JSON lines")
	var pf promoteFlags
	pf.register(fs)
	pos, err := parseFlags(fs, e, args, 0, 1, "[USER]")
	if err != nil {
		return err
	}
	user := "echo"
	if len(pos) == 1 {
		user = pos[0]
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	return runEcho(ctx, echoConfig{
		home: e.home, loginURL: e.loginURL, user: user, password: os.Getenv("PARLEY_PASSWORD"),
		out: e.eventOut(*jsonOut, ""), log: e.logger(levelWarn), prefer: e.supernode, promote: &pf,
	})
}

type echoConfig struct {
	home, loginURL, user, password string
	out                            *printer
	log                            *slog.Logger  // the echo's and its client's logs
	prefer                         string        // the supernode to try first ("": the measured choice)
	promote                        *promoteFlags // nil: never a supernode
}

// runEcho keeps the echo user online until ctx ends: it registers the user if
// needed, answers every call and plays back what it hears. The session moves to
// another supernode by itself when its own goes away; only a session that
// cannot (say, its credential can no longer be renewed) is started afresh.
func runEcho(ctx context.Context, cfg echoConfig) error {
	pw := cfg.password
	c, err := client.New(client.Config{
		Home: cfg.home, LoginURL: cfg.loginURL, User: cfg.user,
		Password: func() (string, error) { return pw, nil },
		Logger:   cfg.log,
	})
	if err != nil {
		return err
	}
	// Log in with what the home has; failing that, register (with the given
	// password, or a random one nobody needs to know: the refresh token in the
	// home keeps the echo user logged in).
	if _, err := c.Credential(ctx); err != nil {
		if pw == "" {
			b := make([]byte, 18)
			rand.Read(b)
			pw = hex.EncodeToString(b)
		}
		if errors.Is(err, loginapi.ErrUnknownUser) || errors.Is(err, client.ErrNeedPassword) {
			if rerr := c.Register(ctx, cfg.user, pw); rerr != nil && !errors.Is(rerr, loginapi.ErrUserExists) {
				return rerr
			} else if rerr != nil {
				return fmt.Errorf("echo user %q exists and this home cannot log in as it: set PARLEY_PASSWORD: %w", cfg.user, err)
			}
			if err := c.Login(ctx, cfg.user, pw); err != nil {
				return err
			}
		} else {
			return err
		}
	}
	for {
		s, err := c.Online(ctx, client.SessionConfig{
			Prefer:  cfg.prefer,
			OnEvent: cfg.out.event,
			OnIncoming: func(in *client.Incoming) {
				echo := client.NewEcho()
				if _, err := in.Answer(ctx, client.Media{Source: echo, Sink: echo}); err != nil {
					cfg.log.Warn("echo: answering failed", "peer", in.Peer, "err", err)
				}
			},
		})
		if err == nil && cfg.promote != nil {
			if perr := cfg.promote.start(s); perr != nil {
				cfg.log.Warn("echo: cannot promote to supernode", "err", perr)
			}
		}
		if err == nil {
			select {
			case <-ctx.Done():
				s.Close()
				return nil
			case <-s.Done():
				cfg.log.Warn("echo: the session ended; starting again", "err", s.Err())
				s.Close()
			}
		} else if ctx.Err() == nil {
			cfg.log.Warn("echo: not online yet; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
