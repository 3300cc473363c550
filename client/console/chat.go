package console

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
)

// Chat runs a conversation on a terminal (`parley chat USER`, `parley chat
// --group GROUP`): every line read is a message, sent by Send, which prints
// its result; a line that fails is reported on Stderr (and, with JSON, as
// an error line) and the conversation goes on, ending with an error that
// counts the failures. With Read set, the messages of the peer that Event
// printed are acknowledged as read by Read, from Run's goroutine (a
// receipt takes a round trip).
type Chat struct {
	Out    *Printer
	Stderr io.Writer
	// Name names the conversation in errors: the peer, or the group.
	Name string
	// Send sends one line and prints its result.
	Send func(ctx context.Context, line string) error
	// Show reports whether an event belongs to the conversation and is
	// printed; ReadOf returns the id of a message event to acknowledge as
	// read ("" for none). Read, when set, acknowledges ids.
	Show   func(client.Event) bool
	ReadOf func(client.Event) string
	Read   func(ctx context.Context, ids []string) error
	// Conv prints the events (each delivery once).
	Conv *Conversation

	mu   sync.Mutex
	ids  []string
	kick chan struct{}
}

// Event is the session's OnEvent.
func (c *Chat) Event(ev client.Event) {
	if c.Show != nil && !c.Show(ev) {
		return
	}
	c.Conv.Event(ev)
	if c.Read != nil && c.ReadOf != nil {
		if id := c.ReadOf(ev); id != "" {
			c.Seen(id)
		}
	}
}

// Seen queues the id of a message printed, to acknowledge as read.
func (c *Chat) Seen(id string) {
	c.mu.Lock()
	c.ids = append(c.ids, id)
	if c.kick == nil {
		c.kick = make(chan struct{}, 1)
	}
	k := c.kick
	c.mu.Unlock()
	select {
	case k <- struct{}{}:
	default:
	}
}

func (c *Chat) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := c.ids
	c.ids = nil
	return ids
}

func (c *Chat) kicks() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kick == nil {
		c.kick = make(chan struct{}, 1)
	}
	return c.kick
}

func (c *Chat) flushRead(ctx context.Context) {
	if ids := c.take(); len(ids) > 0 && c.Read != nil {
		if err := c.Read(ctx, ids); err != nil && ctx.Err() == nil {
			fmt.Fprintln(c.Stderr, "parley: "+UserMessage(err))
		}
	}
}

// Run reads lines from in and sends them until in ends, ctx ends or the
// session does.
func (c *Chat) Run(ctx context.Context, s *client.Session, in io.Reader) error {
	// Lines may be long (up to im.MaxMessageBytes and beyond, to be refused
	// whole); the reader stops handing them over when Run returns.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	lines, readErr := ReadLines(readCtx, in)
	kick := c.kicks()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done():
			return s.Err()
		case <-kick:
			c.flushRead(ctx)
		case err := <-readErr:
			if err != nil {
				return fmt.Errorf("chat: reading stdin: %w", err)
			}
			c.flushRead(ctx)
			if failed > 0 {
				return fmt.Errorf("chat %s: %d messages not sent", c.Name, failed)
			}
			return nil
		case line := <-lines:
			if err := c.Send(ctx, line); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failed++
				msg := "parley: " + UserMessage(err)
				fmt.Fprintln(c.Stderr, msg)
				c.Out.Error(msg, 1) // with JSON: this line's failure; chat exits 1 at the end
			}
		}
	}
}

// ConverseConfig configures [Converse].
type ConverseConfig struct {
	Out    *Printer
	Stderr io.Writer
	Stdin  io.Reader
	// Peer is the user, or with Group the group (its name or id).
	Peer  string
	Group bool
	// Read: acknowledge Peer's messages printed as read (not with Group).
	Read bool
	// Last: first print the last Last messages (not with JSON).
	Last int
}

// Converse goes online with c (sc's OnEvent is replaced) and holds a
// conversation with a user or a group (`parley chat USER`, `parley chat
// --group GROUP`): the last messages, then every line of cfg.Stdin is a
// message and what comes is printed, until Stdin ends or ctx does.
func Converse(ctx context.Context, c *client.Client, sc client.SessionConfig, cfg ConverseConfig) error {
	out, peer := cfg.Out, cfg.Peer
	conv := &Conversation{P: out} // each delivery once: the send result, or else the receipt
	chat := &Chat{Out: out, Stderr: cfg.Stderr, Name: peer, Conv: conv,
		Show: func(ev client.Event) bool {
			switch ev.Event {
			case "message", "delivered", "read", "typing", "presence", "message-refused", "status", "group":
				return true
			}
			return false
		},
		ReadOf: func(ev client.Event) string {
			if ev.Event == "message" && ev.MessageEvent.From == peer && ev.MessageEvent.Group == "" {
				return ev.MessageEvent.ID
			}
			return ""
		},
	}
	sc.OnEvent = chat.Event
	s, err := c.Online(ctx, sc)
	if err != nil {
		return err
	}
	defer s.Close()
	var hist []im.Message
	if cfg.Group {
		g, err := s.Group(peer)
		if err != nil {
			return err
		}
		chat.Send = func(ctx context.Context, line string) error {
			res, err := s.SendGroupMessage(ctx, g.ID, line)
			if err == nil {
				out.GroupSent(g.Name, res)
			}
			return err
		}
		if hist, err = s.GroupHistory(g.ID, cfg.Last); err != nil {
			return err
		}
	} else {
		chat.Send = func(ctx context.Context, line string) error {
			conv.Sending()
			res, err := s.SendMessage(ctx, peer, line)
			conv.Sent(peer, res, err)
			return err
		}
		if cfg.Read {
			chat.Read = func(ctx context.Context, ids []string) error { _, err := s.SendRead(ctx, peer, ids); return err }
		}
		if hist, err = s.History(peer, cfg.Last); err != nil {
			return err
		}
	}
	if !out.JSON && cfg.Last > 0 {
		out.History(s.User(), peer, hist)
		for _, m := range hist {
			if cfg.Read && m.Dir == im.DirIn && m.State == im.StateReceived {
				chat.Seen(m.ID)
			}
		}
	}
	return chat.Run(ctx, s, cfg.Stdin)
}
