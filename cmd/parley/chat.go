package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/internal/identity"
)

// cmdChat is `parley chat USER [MESSAGE...]` or `parley chat --group GROUP
// [MESSAGE...]`: one message, or (without MESSAGE) a conversation: every
// line of stdin is a message, and what comes is printed as it arrives.
func cmdChat(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print results and events as JSON lines")
	last := fs.Int("last", 20, "in a conversation, first print the last N messages")
	read := fs.Bool("read", false, "in a conversation, tell USER that the messages of theirs it prints were read (read receipts)")
	group := fs.Bool("group", false, "the first argument is a GROUP (its name or id), not a USER")
	pos, err := parseFlags(fs, e, args, 1, 1<<20, "USER|--group GROUP [MESSAGE...]")
	if err != nil {
		return err
	}
	peer := pos[0]
	if err := identity.CheckUser(peer); err != nil && !*group {
		return usageError{fmt.Sprintf("chat: %v", err)}
	}
	if *read && (len(pos) > 1 || *group) {
		return usageError{"chat: --read goes with a conversation with a user (chat USER, without MESSAGE): it marks what the conversation prints"}
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
		if *group {
			res, err := s.SendGroupMessage(ctx, peer, text)
			if err == nil {
				out.GroupSent(peer, res)
			}
			return err
		}
		res, err := s.SendMessage(ctx, peer, text)
		if err != nil {
			return err
		}
		out.Sent(peer, res)
		return nil
	}

	return console.Converse(ctx, c, e.sessionConfig(client.SessionConfig{}), console.ConverseConfig{
		Out: out, Stderr: e.stderr, Stdin: e.stdin, Peer: peer, Group: *group, Read: *read, Last: *last})
}

// cmdHistory is `parley history USER`: the conversation from local storage.
func cmdHistory(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print one JSON object per message: {"id","from","to","text","sent","state"}`)
	limit := fs.Int("limit", 0, "only the last N messages (0: all)")
	group := fs.Bool("group", false, "the argument is a GROUP (its name or id), not a USER")
	pos, err := parseFlags(fs, e, args, 1, 1, "USER|--group GROUP")
	if err != nil {
		return err
	}
	peer := pos[0]
	if err := identity.CheckUser(peer); err != nil && !*group {
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
	if *group {
		g, ms, err := c.LocalGroupHistory(peer, *limit)
		if err == nil {
			e.printer(*jsonOut).History(me, g.Name, ms)
		}
		return err
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
