package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/parley/parley/audio"
	"github.com/parley/parley/client"
	"github.com/parley/parley/client/bot"
	"github.com/parley/parley/client/callscript"
	"github.com/parley/parley/client/console"
	"github.com/parley/parley/client/echo"
)

// audioFlags registers --play and --record.
func (e *env) audioFlags(fs *flag.FlagSet, playTo, recordWhat string) *audio.Config {
	a := &audio.Config{Stdin: e.stdin, Stdout: e.stdout}
	fs.StringVar(&a.Play, "play", "", strings.TrimSpace("WAV `FILE` to play "+playTo)+", or - for raw s16le 48 kHz mono on stdin")
	fs.StringVar(&a.Record, "record", "", "record "+recordWhat+" to a WAV `FILE`, or - for raw s16le on stdout")
	return a
}

// openAudioClient opens --play and --record (so a bad file fails before going
// online), picks the event stream and makes the client. On success the caller
// must close the audio (closeAudio) to finish the recording.
func (e *env) openAudioClient(cfg *audio.Config, jsonOut bool) (*audio.IO, *console.Printer, *client.Client, error) {
	a, err := audio.Open(*cfg)
	if err != nil {
		return nil, nil, nil, audioError(err)
	}
	c, err := e.newClient("")
	if err != nil {
		a.Close()
		return nil, nil, nil, err
	}
	return a, e.eventOut(jsonOut, cfg.Record), c, nil
}

// closeAudio finishes the recording, reporting a failure through *err unless
// that already holds one.
func closeAudio(a *audio.IO, err *error) {
	if cerr := a.Close(); *err == nil {
		*err = audioError(cerr)
	}
}

// audioError names a failed audio file by its flag: "--play FILE: …".
func audioError(err error) error {
	if fe, ok := errors.AsType[*audio.FileError](err); ok {
		return fmt.Errorf("--%s %s: %w", fe.Op, fe.Path, fe.Err)
	}
	return err
}

// eventOut picks the event stream: stdout, unless stdout carries audio.
func (e *env) eventOut(jsonOut bool, record string) *console.Printer {
	w := e.stdout
	if record == "-" {
		w, e.jsonErr = e.stderr, e.stderr
	}
	return &console.Printer{W: w, JSON: jsonOut}
}

func cmdListen(ctx context.Context, e *env, args []string) (err error) {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	answerCalls := fs.Bool("answer", false, "answer incoming calls (without it calls are declined)")
	answerAfter := fs.Duration("answer-after", 0, "with --answer, let a call ring this long before answering")
	a := e.audioFlags(fs, "to each caller", "what callers say")
	dur := fs.Duration("for", 0, "exit after this long (0: run until interrupted)")
	calls := fs.Int("calls", 0, "exit after this many calls have ended (0: no limit)")
	jsonOut := fs.Bool("json", false, "print events as JSON lines")
	downloads := fs.String("download-dir", "", "where received files go (default: downloads in --home)")
	commands := fs.Bool("commands", false, "bot mode: JSON commands on stdin, one per line; calls ring until answered by command (implies --json; docs/cli.md)")
	var pf promoteFlags
	pf.register(fs)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if *commands && (*answerCalls || *calls > 0 || a.Play != "" || a.Record != "") {
		return usageError{"listen: --commands answers calls by command: no --answer, --calls, --play or --record"}
	}
	aio, out, c, err := e.openAudioClient(a, *jsonOut)
	if err != nil {
		return err
	}
	defer closeAudio(aio, &err)
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	// Every incoming call counts toward --calls once it is over, answered or not.
	m := callscript.NewAnswerer(callscript.AnswerConfig{Answer: *answerCalls, RingFor: *answerAfter, Limit: *calls,
		Media: func() client.Media { return client.Media{Source: aio.Source(), Sink: aio.Sink()} }})
	// The session keeps itself attached: when its supernode goes away it moves
	// to another ("offline", then "online" events). Done means it cannot.
	sc, b := client.SessionConfig{OnEvent: out.Event, OnIncoming: m.Handler(ctx), OnConfInvite: m.ConfHandler(ctx)}, bot.New(bot.Config{Out: e.stdout})
	if *commands { // bot mode: client/bot answers, prints and reads stdin
		sc.OnEvent, sc.OnIncoming, sc.OnConfInvite = b.Event, b.OnIncoming, b.OnConfInvite
	}
	s, err := c.Online(ctx, e.sessionConfig(sc))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := errors.Join(pf.start(s), s.ReceiveFiles(client.FileConfig{Dir: *downloads})); err != nil {
		return err
	}
	if *commands {
		return b.Run(ctx, s, e.stdin)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-s.Done():
		return s.Err()
	case <-m.Done():
		return nil
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
	group := fs.String("group", "", "a conference call with every other member of `GROUP` (docs/conference.md)")
	pos, err := parseFlags(fs, e, args, 0, 16, "USER...")
	if err == nil && *group == "" && len(pos) == 0 {
		err = usageError{"call: expected USER (several for a conference call) or --group GROUP"}
	}
	if err != nil {
		return err
	}
	aio, out, c, err := e.openAudioClient(a, *jsonOut)
	if err != nil {
		return err
	}
	defer closeAudio(aio, &err)
	// Nothing shows before the call rings (or connects: the ringing signal
	// may come late): an error before that says it all.
	held := &console.Held{P: out, Start: func(ev client.Event) bool { return ev.CallState != nil && ev.CallState.State != client.StateEnded }}
	s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{OnEvent: held.Event, StatsInterval: *statsEvery}))
	if err != nil {
		return err
	}
	defer s.Close()
	// The script owns the hold timers and hangs up: after --for, at the end
	// of --play once the peer has had the last frames, or on Ctrl-C.
	script := callscript.New(callscript.Config{For: *dur, HoldAt: *holdAt, HoldFor: *holdFor})
	return script.Place(ctx, s, *group, pos, client.Media{Source: aio.Source(), Sink: aio.Sink(), OnSourceEnd: script.SourceEnded})
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
	user := "" // echo.Config's default: "echo"
	if len(pos) == 1 {
		user = pos[0]
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	return echo.Run(ctx, echo.Config{
		Home: e.home, LoginURL: e.loginURL, User: user, Password: os.Getenv("PARLEY_PASSWORD"), Prefer: e.supernode,
		OnEvent: e.eventOut(*jsonOut, "").Event, Promote: pf.start, Logger: e.logger(slog.LevelWarn),
	})
}
