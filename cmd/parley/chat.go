package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parley/parley/client"
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
	pos, err := parseFlags(fs, e, args, 1, 1<<20, "USER [MESSAGE...]")
	if err != nil {
		return err
	}
	peer := pos[0]
	if err := identity.CheckUser(peer); err != nil {
		return usageError{fmt.Sprintf("chat: %v", err)}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	out := &printer{w: e.stdout, json: *jsonOut}
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
		printResult(out, peer, res)
		return nil
	}

	s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{OnEvent: func(ev client.Event) {
		switch ev.Event {
		case "message", "delivered", "presence", "message-refused", "status":
			out.event(ev)
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
		for _, m := range hist {
			fmt.Fprintln(e.stdout, historyLine(s.User(), m))
		}
	}
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		// Lines may be long (up to im.MaxMessageBytes and beyond, to be
		// refused whole), so no bufio.Scanner.
		r := bufio.NewReader(e.stdin)
		for {
			line, err := r.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				return
			}
		}
	}()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done():
			return s.Err()
		case err := <-readErr:
			if err != nil {
				return fmt.Errorf("chat: reading stdin: %w", err)
			}
			if failed > 0 {
				return fmt.Errorf("chat %s: %d messages not sent", peer, failed)
			}
			return nil
		case line := <-lines:
			res, err := s.SendMessage(ctx, peer, line)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failed++
				fmt.Fprintln(e.stderr, "parley: "+userMessage(err))
				continue
			}
			printResult(out, peer, res)
		}
	}
}

func printResult(out *printer, peer string, res client.SendResult) {
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.json {
		b, _ := json.Marshal(struct {
			Event     string `json:"event"`
			Peer      string `json:"peer"`
			ID        string `json:"id"`
			Delivered bool   `json:"delivered"`
			Stored    bool   `json:"stored"`
		}{"sent", peer, res.ID, res.Delivered, res.Stored})
		fmt.Fprintln(out.w, string(b))
		return
	}
	switch {
	case res.Delivered:
		fmt.Fprintf(out.w, "delivered to %s\n", peer)
	case res.Stored:
		fmt.Fprintf(out.w, "%s is offline: stored in their mailbox, delivered at their next login\n", peer)
	default:
		fmt.Fprintf(out.w, "sent to %s\n", peer)
	}
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
	for _, m := range ms {
		if !*jsonOut {
			fmt.Fprintln(e.stdout, historyLine(me, m))
			continue
		}
		from, to := peer, me
		if m.Dir == im.DirOut {
			from, to = me, peer
		}
		b, _ := json.Marshal(struct {
			ID    string    `json:"id"`
			From  string    `json:"from"`
			To    string    `json:"to"`
			Text  string    `json:"text"`
			Sent  time.Time `json:"sent"`
			State string    `json:"state"`
			Seq   int64     `json:"seq"`
		}{m.ID, from, to, m.Text, m.Time(), m.State, m.Seq})
		fmt.Fprintln(e.stdout, string(b))
	}
	return nil
}

// historyLine is one message as `parley history` and `parley chat` print it.
func historyLine(me string, m im.Message) string {
	ts := m.Time().Local().Format("2006-01-02 15:04:05")
	if m.Dir == im.DirOut {
		return fmt.Sprintf("%s <%s> %s  [%s]", ts, me, m.Text, m.State)
	}
	return fmt.Sprintf("%s <%s> %s", ts, m.Peer, m.Text)
}
