package supernode

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/snapi"
)

func (s *Server) lookup(ctx context.Context, c *conn, f snapi.Frame) {
	if err := identity.CheckUser(f.To); err != nil {
		s.sendError(c, f.ID, snapi.CodeBadRequest, err.Error())
		return
	}
	loc := s.mesh.lookup(ctx, f.To)
	// Others see only the devices that are not invisible; a user looking
	// themselves up sees all of theirs.
	count, devices := loc.shown, loc.devices
	if c.user == f.To {
		count = loc.nodes
	} else {
		devices = 0
		for _, n := range count {
			devices += n
		}
	}
	nodes := make([]string, 0, len(count))
	for n, k := range count {
		if k > 0 && len(nodes) < snapi.MaxNodesFound {
			nodes = append(nodes, n)
		}
	}
	s.send(c, snapi.Frame{Type: snapi.TypeFound, ID: f.ID, User: f.To, Delivered: devices, Nodes: nodes, Hops: loc.hops})
}

// route delivers a send to every attached device of its recipient, here and
// on the supernodes the directory places them at, and acks it.
func (s *Server) route(ctx context.Context, from *conn, f snapi.Frame) {
	if err := identity.CheckUser(f.To); err != nil {
		s.sendError(from, f.ID, snapi.CodeBadRequest, err.Error())
		return
	}
	if len(f.Payload) == 0 || !json.Valid(f.Payload) {
		s.sendError(from, f.ID, snapi.CodeBadRequest, "payload must be JSON")
		return
	}
	d := MeshDelivery{To: f.To, From: from.user, FromSession: from.session, Payload: f.Payload}
	n := s.deliverLocal(d, from)
	// Devices here (other than the sender's own connection) whose queues
	// are full.
	full := n == 0 && slices.ContainsFunc(s.sessionsOf(f.To), func(id string) bool { return id != from.session })
	n += s.forward(ctx, d)
	switch {
	case n > 0:
		s.send(from, snapi.Frame{Type: snapi.TypeAck, ID: f.ID, Delivered: n})
	case full:
		s.sendError(from, f.ID, snapi.CodeOverload, f.To+" is not keeping up; try again")
	default:
		// Not attached anywhere reachable: perhaps moving between
		// supernodes right now; the sender may retry.
		s.sendError(from, f.ID, snapi.CodeOffline, f.To+" is offline")
	}
}

// forward carries d to the other supernodes the directory places d.To at,
// and returns how many devices there took it.
func (s *Server) forward(ctx context.Context, d MeshDelivery) int {
	loc := s.mesh.lookup(ctx, d.To)
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for node := range loc.nodes {
		if node == s.cfg.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _ := s.mesh.forward(ctx, node, d) // unreachable: dead, or the record is stale
			mu.Lock()
			n += k
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n
}

// deliverLocal queues d for every device of d.To attached here except the
// sender's own connection, and returns how many took it. A presence push
// that is not a reply is answered with the presence of every receiving
// device that watches its sender.
func (s *Server) deliverLocal(d MeshDelivery, except *conn) int {
	f := snapi.Frame{Type: snapi.TypeDeliver, From: d.From, FromSession: d.FromSession, Payload: d.Payload}
	if p := d.Presence; p != nil {
		f = snapi.Frame{Type: snapi.TypePresence, From: d.From, FromSession: d.FromSession, Device: p.Device, Status: p.Status}
	}
	b, err := snapi.EncodeFrame(f)
	if err != nil {
		return 0
	}
	s.mu.Lock()
	var targets []*conn
	for _, c := range s.users[d.To] {
		if c != except {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range targets {
		if s.enqueue(c, b) {
			n++
			s.m.frameOut(f.Type)
			if f.Type == snapi.TypePresence {
				s.m.pushes.Inc()
			}
		}
		if d.Presence != nil && !d.Presence.Reply {
			s.answerPresence(c, d.From)
		}
	}
	return n
}
