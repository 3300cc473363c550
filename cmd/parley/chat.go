package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/internal/identity"
)

// cmdChat is `parley chat USER [MESSAGE...]`: one message, or (without
// MESSAGE) a conversation: every line of stdin is a message, and what USER
// sends is printed as it arrives.
func cmdChat(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print results and events as JSON lines")
	last := fs.Int("last", 20, "in a conversation, first print the last N messages")
	read := fs.Bool("read", false, "in a conversation, tell USER that the messages of theirs it prints were read (read receipts)")
	pos, err := parseFlags(fs, e, args, 1, 1<<20, "USER [MESSAGE...]")
	if err != nil {
		return err
	}
	peer := pos[0]
	if err := identity.CheckUser(peer); err != nil {
		return usageError{fmt.Sprintf("chat: %v", err)}
	}
	if *read && len(pos) > 1 {
		return usageError{"chat: --read goes with a conversation (chat USER, without MESSAGE): it marks what the conversation prints"}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	out := e.printer(*jsonOut)
	if len(pos) > 1 {
		text := strings.Join(pos[1:], " ")
		if err := im.CheckText(text); err != nil {
			return fmt.Errorf("chat %s: %w", peer, err)
		}
		// One message: do not show this short visit to the contacts.
		s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{NoPresence: true}))
		if err != nil {
			return err
		}
		defer s.Close()
		res, err := s.SendMessage(ctx, peer, text)
		if err != nil {
			return err
		}
		out.Sent(peer, res)
		return nil
	}

	conv := &console.Conversation{P: out}            // each delivery once: the send result, or else the receipt
	seen := &readQueue{kick: make(chan struct{}, 1)} // with --read: peer's messages printed, to acknowledge as read
	s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{OnEvent: func(ev client.Event) {
		switch ev.Event {
		case "message", "delivered", "read", "typing", "presence", "message-refused", "status":
			conv.Event(ev)
			if *read && ev.Event == "message" && ev.MessageEvent.From == peer {
				seen.add(ev.MessageEvent.ID)
			}
		}
	}}))
	if err != nil {
		return err
	}
	defer s.Close()
	if !*jsonOut && *last > 0 {
		hist, err := s.History(peer, *last)
		if err != nil {
			return err
		}
		out.History(s.User(), peer, hist)
		if *read {
			for _, m := range hist {
				if m.Dir == im.DirIn && m.State == im.StateReceived {
					seen.add(m.ID)
				}
			}
		}
	}
	// Lines may be long (up to im.MaxMessageBytes and beyond, to be refused
	// whole); the reader stops handing them over when the command returns.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	lines, readErr := console.ReadLines(readCtx, e.stdin)
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done():
			return s.Err()
		case <-seen.kick:
			if ids := seen.take(); len(ids) > 0 {
				if _, err := s.SendRead(ctx, peer, ids); err != nil && ctx.Err() == nil {
					fmt.Fprintln(e.stderr, "parley: "+console.UserMessage(err))
				}
			}
		case err := <-readErr:
			if err != nil {
				return fmt.Errorf("chat: reading stdin: %w", err)
			}
			if ids := seen.take(); len(ids) > 0 {
				if _, err := s.SendRead(ctx, peer, ids); err != nil {
					fmt.Fprintln(e.stderr, "parley: "+console.UserMessage(err))
				}
			}
			if failed > 0 {
				return fmt.Errorf("chat %s: %d messages not sent", peer, failed)
			}
			return nil
		case line := <-lines:
			conv.Sending()
			res, err := s.SendMessage(ctx, peer, line)
			conv.Sent(peer, res, err)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failed++
				msg := "parley: " + console.UserMessage(err)
				fmt.Fprintln(e.stderr, msg)
				out.Error(msg, 1) // with --json: this line's failure; chat exits 1 at the end
			}
		}
	}
}

// readQueue holds the ids of messages a conversation printed, until the
// conversation's loop acknowledges them as read (not on the event's own
// goroutine: a receipt takes a round trip).
type readQueue struct {
	mu   sync.Mutex
	ids  []string
	kick chan struct{}
}

func (q *readQueue) add(id string) {
	q.mu.Lock()
	q.ids = append(q.ids, id)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

func (q *readQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := q.ids
	q.ids = nil
	return ids
}

// cmdHistory is `parley history USER`: the conversation from local storage.
func cmdHistory(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print one JSON object per message: {"id","from","to","text","sent","state"}`)
	limit := fs.Int("limit", 0, "only the last N messages (0: all)")
	pos, err := parseFlags(fs, e, args, 1, 1, "USER")
	if err != nil {
		return err
	}
	peer := pos[0]
	if err := identity.CheckUser(peer); err != nil {
		return usageError{fmt.Sprintf("history: %v", err)}
	}
	if *limit < 0 {
		return usageError{"history: --limit must be 0 or more"}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	me := c.User()
	if me == "" {
		return client.ErrNoUser
	}
	h, err := c.OpenHistory()
	if err != nil {
		return err
	}
	defer h.Close()
	ms, err := h.Conversation(peer, *limit)
	if err != nil {
		return err
	}
	e.printer(*jsonOut).History(me, peer, ms)
	return nil
}
