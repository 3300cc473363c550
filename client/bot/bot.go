// Package bot drives a client session with commands, one JSON object per
// line, and reports what happens as JSON lines: the session's events as
// they are and the result or error of every command. It is `parley listen
// --json --commands` (docs/cli.md, "Bot mode"); docs/schema holds the JSON
// Schemas of both streams.
//
// Incoming calls are not answered by themselves: they ring (the session's
// "call" event, state "ringing", with the call's id) until an answer or a
// decline command, or until the caller gives up (its ring timeout);
// conference invitations likewise ring until a conference join or decline
// (conference.go). Every command runs on a goroutine of its own owned by
// [Bot.Run], so that a slow one (a message to a device that is slow to
// acknowledge, a call being placed) holds up no other; results carry the
// command's "id" to tell them apart. The commands are one dispatch table,
// [commands]: a new command is one entry there.
package bot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley/parley/audio"
	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
)

// DefaultMaxLine is the default cap on a command line: 256 KiB (a message's
// text is at most 64 KiB).
const DefaultMaxLine = 256 << 10

// maxInFlight bounds the commands in progress; the reader waits for one to
// finish beyond it.
const maxInFlight = 64

// Config configures a [Bot]. Only Out is required.
type Config struct {
	// Out is the output stream: every event passed to [Bot.Event] and the
	// result or error of every command, one JSON object per line; lines
	// are never interleaved.
	Out io.Writer
	// Audio opens what a call says (play) and where what it hears goes
	// (record), as a call or answer command names them: "" is silence, or
	// nowhere. done is called once the call has ended (it finishes the
	// recording); its error is reported as an error event of the command.
	// Nil means [OpenFiles].
	Audio func(play, record string) (media client.Media, done func() error, err error)
	// MaxLine caps a command line, in bytes; a longer line is skipped and
	// answered with an error event. Default [DefaultMaxLine].
	MaxLine int
}

// Bot runs commands on a session. Make it with [New] before the session, so
// that the session's SessionConfig.OnIncoming can be [Bot.OnIncoming] and
// its OnEvent [Bot.Event]; then [Bot.Run] with the session.
type Bot struct {
	cfg     Config
	outMu   sync.Mutex
	stopped chan struct{} // closed when Run ends: ringing calls are declined
	stop    sync.Once
	wg      sync.WaitGroup // command goroutines and the calls they started, owned by Run

	mu      sync.Mutex
	s       *client.Session
	calls   map[string]*entry     // by call id
	confs   map[string]*confEntry // by conference id (conference.go)
	closing bool                  // Run is ending: calls that connect now are hung up
}

// entry is one call the bot knows: ringing here, being placed or answered,
// or connected.
type entry struct {
	peer    string
	in      *client.Incoming   // ringing here, until an answer or a decline command is done with it
	claimed bool               // an answer or decline command took in
	taken   chan struct{}      // closed when that command is done with in
	cancel  context.CancelFunc // a call being placed or answered: ends the attempt
	call    *client.Call       // once connected
}

// New returns a bot for cfg.
func New(cfg Config) *Bot {
	if cfg.Audio == nil {
		cfg.Audio = OpenFiles
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = DefaultMaxLine
	}
	return &Bot{cfg: cfg, stopped: make(chan struct{}), calls: map[string]*entry{}, confs: map[string]*confEntry{}}
}

// OpenFiles is the default Config.Audio: play is a WAV file (read whole
// now, as audio.Config.Play says), record a WAV file to create; "" plays
// silence, records nothing. "-" is refused: in bot mode stdin and stdout
// carry the commands and the events.
func OpenFiles(play, record string) (client.Media, func() error, error) {
	if play == audio.Stdio || record == audio.Stdio {
		return client.Media{}, nil, errors.New(`"-" is not a file (stdin and stdout carry the commands and the events)`)
	}
	a, err := audio.Open(audio.Config{Play: play, Record: record})
	if err != nil {
		return client.Media{}, nil, err
	}
	return client.Media{Source: a.Source(), Sink: a.Sink()}, a.Close, nil
}

// Event writes a session event to Out, as `parley --json` prints it: use it
// as the session's SessionConfig.OnEvent.
func (b *Bot) Event(ev client.Event) {
	if line, err := json.Marshal(ev); err == nil {
		b.writeLine(line)
	}
}

// OnIncoming is the session's SessionConfig.OnIncoming: the call rings until
// an answer or decline command, until the caller gives up, or until Run
// ends (then it is declined).
func (b *Bot) OnIncoming(in *client.Incoming) {
	e := &entry{peer: in.Peer, in: in, taken: make(chan struct{})}
	b.mu.Lock()
	b.calls[in.CallID] = e
	b.mu.Unlock()
	select {
	case <-e.taken:
		return
	case <-in.Cancelled():
	case <-b.stopped:
	}
	b.mu.Lock()
	claimed := e.claimed
	if !claimed {
		delete(b.calls, in.CallID)
	}
	b.mu.Unlock()
	if claimed {
		// A command is answering or declining it: returning now would
		// decline it under that command.
		<-e.taken
	}
}

// Run reads commands from r, one JSON object per line, and runs each on a
// goroutine of its own. At the end of r it stops reading and goes on (calls
// still ring and connect) until ctx ends, or the session ends for good
// (then it returns s.Err()). Before returning it hangs up the calls it
// knows, lets ringing ones be declined and waits for every command and call
// it started. The goroutine reading r ends at the end of r, or when ctx
// ends while it waits to hand over a line; a Read blocked on r ends only
// when r does (stdin: at exit).
func (b *Bot) Run(ctx context.Context, s *client.Session, r io.Reader) error {
	b.mu.Lock()
	if b.s != nil {
		b.mu.Unlock()
		return errors.New("bot: Run called twice")
	}
	b.s = s
	b.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer b.shutdown(cancel)
	lines := make(chan line)
	go readLines(ctx, r, b.cfg.MaxLine, lines)
	sem := make(chan struct{}, maxInFlight)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done():
			return s.Err()
		case l, ok := <-lines:
			if !ok {
				lines = nil // the end of r: keep running
				continue
			}
			if l.err != nil {
				b.reply(head{Event: "error", Error: l.err.Error()}, nil)
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer func() { <-sem }()
				b.do(ctx, l.text)
			}()
		}
	}
}

// shutdown ends Run: it stops the commands, declines what rings, hangs up
// the calls and waits for all of them.
func (b *Bot) shutdown(cancel context.CancelFunc) {
	cancel()
	b.stop.Do(func() { close(b.stopped) })
	b.mu.Lock()
	b.closing = true
	for _, e := range b.calls {
		if e.call != nil {
			e.call.Hangup("hangup")
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// do runs one command line and writes its result or error.
func (b *Bot) do(ctx context.Context, text []byte) {
	var args map[string]json.RawMessage
	if err := json.Unmarshal(text, &args); err != nil || args == nil {
		why := "not a JSON object"
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			why = "not JSON: " + se.Error()
		}
		b.reply(head{Event: "error", Error: "command: " + why}, nil)
		return
	}
	h := head{Event: "error", ID: args["id"]}
	delete(args, "id")
	if string(h.ID) == "null" {
		h.ID = nil
	}
	if len(h.ID) > 0 && !isScalarID(h.ID) {
		b.reply(head{Event: "error", Error: "command: id must be a string or a number"}, nil)
		return
	}
	raw, ok := args["cmd"]
	delete(args, "cmd")
	if !ok || json.Unmarshal(raw, &h.Cmd) != nil || h.Cmd == "" {
		h.Error = "command: missing cmd (a string: " + strings.Join(slices.Sorted(maps.Keys(commands)), ", ") + ")"
		b.reply(h, nil)
		return
	}
	c, ok := commands[h.Cmd]
	if !ok {
		h.Error = fmt.Sprintf("%s: unknown command (%s)", h.Cmd, strings.Join(slices.Sorted(maps.Keys(commands)), ", "))
		b.reply(h, nil)
		return
	}
	res, err := c.run(ctx, b, args)
	if err != nil {
		b.fail(h, err)
		return
	}
	h.Event = "result"
	b.reply(h, res)
}

// fail writes h as an error event: the command and the reason, on one line.
func (b *Bot) fail(h head, err error) {
	h.Event = "error"
	h.Error = h.Cmd + ": " + strings.Join(strings.Fields(console.UserMessage(err)), " ")
	b.reply(h, nil)
}

func isScalarID(id json.RawMessage) bool {
	var v any
	if json.Unmarshal(id, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

// Result holds the fields a command's result event adds to "event", "ts",
// "id" and "cmd".
type Result map[string]any

// head is the start of every result and error event.
type head struct {
	TS    time.Time       `json:"ts"`
	Event string          `json:"event"`
	ID    json.RawMessage `json:"id,omitempty"`
	Cmd   string          `json:"cmd,omitempty"`
	Error string          `json:"error,omitempty"`
}

// reply writes h followed by the fields of res, in name order.
func (b *Bot) reply(h head, res Result) {
	h.TS = time.Now()
	line, err := json.Marshal(h)
	if err != nil {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(res)) {
		switch k {
		case "ts", "event", "id", "cmd", "error":
			continue
		}
		v, err := json.Marshal(res[k])
		if err != nil {
			continue
		}
		name, _ := json.Marshal(k)
		line = append(append(append(append(line[:len(line)-1], ','), name...), ':'), v...)
		line = append(line, '}')
	}
	b.writeLine(line)
}

func (b *Bot) writeLine(line []byte) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	b.cfg.Out.Write(append(line, '\n'))
}

// line is one command line, or why it was refused.
type line struct {
	text []byte
	err  error
}

// readLines sends each non-blank line of r (without its line ending) on
// out, or an error for a line longer than max bytes (read to its end and
// dropped), and closes out at the end of r, after an error for a failed
// read. It returns then, or when ctx ends while it waits to send.
func readLines(ctx context.Context, r io.Reader, max int, out chan<- line) {
	defer close(out)
	send := func(l line) bool {
		select {
		case out <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		var buf []byte
		tooLong := false
		var err error
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			if !tooLong {
				buf = append(buf, frag...)
				if tooLong = len(bytes.TrimRight(buf, "\r\n")) > max; tooLong {
					buf = nil
				}
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		buf = bytes.TrimRight(buf, "\r\n")
		switch {
		case tooLong:
			if !send(line{err: fmt.Errorf("command: line longer than %d bytes, skipped", max)}) {
				return
			}
		case len(bytes.TrimSpace(buf)) > 0:
			if !send(line{text: buf}) {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				send(line{err: fmt.Errorf("command: reading: %v", err)})
			}
			return
		}
	}
}
