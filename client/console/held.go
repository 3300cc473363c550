package console

import (
	"slices"
	"sync"

	"github.com/parley/parley/client"
)

// Held prints events only once the command is under way: it holds them
// until Start accepts one, then prints the held ones and that one, in
// order, and every later one at once. A command that fails before (a call
// to an unknown user) thus prints nothing but its error; the held events
// are dropped.
type Held struct {
	P     *Printer
	Start func(client.Event) bool

	mu      sync.Mutex
	started bool
	held    []client.Event
}

// Event is a session's OnEvent.
func (h *Held) Event(ev client.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started && !h.Start(ev) {
		h.held = append(h.held, ev)
		return
	}
	h.started = true
	for _, e := range h.held {
		h.P.Event(e)
	}
	h.held = nil
	h.P.Event(ev)
}

// Conversation prints a conversation (`parley chat USER`): the result of
// sending each line and the events that arrive, each delivery once. A
// message whose send result says delivered is not told delivered again by
// its receipt ("delivered" event), which may arrive before the result or
// after it: receipts that come while a send is under way wait for its
// result.
type Conversation struct {
	P *Printer

	mu        sync.Mutex
	sending   bool
	held      []client.Event
	delivered map[string]bool // told delivered by a send result, receipt not yet seen
}

// Event is the session's OnEvent.
func (c *Conversation) Event(ev client.Event) {
	if ev.Event != "delivered" || ev.MessageEvent == nil {
		c.P.Event(ev)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sending {
		c.held = append(c.held, ev)
		return
	}
	c.receipt(ev)
}

// receipt prints a "delivered" event without the messages already told
// delivered (c.mu held).
func (c *Conversation) receipt(ev client.Event) {
	m := *ev.MessageEvent
	m.IDs = slices.DeleteFunc(slices.Clone(m.IDs), func(id string) bool {
		told := c.delivered[id]
		delete(c.delivered, id)
		return told
	})
	if len(m.IDs) > 0 {
		ev.MessageEvent = &m
		c.P.Event(ev)
	}
}

// Sending is called before each send.
func (c *Conversation) Sending() {
	c.mu.Lock()
	c.sending = true
	c.mu.Unlock()
}

// Sent is called after each send: it prints the result unless err is set
// (the caller reports the error), then the receipts that waited for it.
func (c *Conversation) Sent(peer string, res client.SendResult, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sending = false
	if err == nil {
		c.P.Sent(peer, res)
		if res.Delivered {
			if c.delivered == nil {
				c.delivered = map[string]bool{}
			}
			c.delivered[res.ID] = true
		}
	}
	for _, ev := range c.held {
		c.receipt(ev)
	}
	c.held = nil
}
