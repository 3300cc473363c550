package supernode

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/snapi"
)

// call sends one signed request to mb and returns its verified reply. want is
// the key the reply must be signed with; nil accepts the key the reply names
// (a ping: answering at mb.Name with a key is the proof).
func (m *mesh) call(ctx context.Context, mb Member, msg MeshMsg, want ed25519.PublicKey) (MeshMsg, error) {
	_, base, err := nodeid.HostPort(memberURL(mb))
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w", msg.Type, mb.Name, err)
	}
	msg.V, msg.From, msg.To, msg.TS = snapi.ProtocolVersion, m.self, mb.Name, m.s.now().UnixMilli()
	body, err := json.Marshal(msg)
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w", msg.Type, mb.Name, err)
	}
	sig := identity.SignContext(m.key, MeshContext, body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+MeshPath, bytes.NewReader(body))
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w", msg.Type, mb.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(MeshSigHeader, base64.StdEncoding.EncodeToString(sig))
	m.msgsOut.Add(1)
	m.bytesOut.Add(int64(len(body)))
	if msg.Type == MeshPublish {
		m.publishOut.Add(int64(len(body)))
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w: %v", msg.Type, mb.Name, snapi.ErrDisconnected, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxMeshSize+1))
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w: %v", msg.Type, mb.Name, snapi.ErrDisconnected, err)
	}
	m.bytesIn.Add(int64(len(rb)))
	reply, err := DecodeMeshMsg(rb)
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply: %w", msg.Type, mb.Name, err)
	}
	if reply.From.Name != mb.Name || reply.To != m.self.Name || !sameAddr(reply.From, mb.Name) {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply from %q: %w", msg.Type, mb.Name, reply.From.Name, ErrMeshAuth)
	}
	key := ed25519.PublicKey(reply.From.Key)
	if want != nil && !key.Equal(want) {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply signed by another key: %w", msg.Type, mb.Name, ErrMeshAuth)
	}
	rsig, _ := base64.StdEncoding.DecodeString(resp.Header.Get(MeshSigHeader))
	if !identity.VerifyContext(key, MeshReplyContext, replyMessage(sig, rb), rsig) {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply signature: %w", msg.Type, mb.Name, ErrMeshAuth)
	}
	if reply.Type == MeshError {
		return reply, fmt.Errorf("supernode: mesh %s to %s: %w: %s", msg.Type, mb.Name, ErrNotMember, reply.Error)
	}
	return reply, nil
}

// sameAddr reports whether mb's URL (if any) is at name.
func sameAddr(mb Member, name string) bool {
	if mb.URL == "" {
		return true
	}
	hp, _, err := nodeid.HostPort(mb.URL)
	return err == nil && hp == name
}

// memberURL is where mb's mesh endpoint lives: its client URL's server, or
// plain http at its name.
func memberURL(mb Member) string {
	if mb.URL != "" {
		return mb.URL
	}
	return "http://" + mb.Name
}

// serveMesh answers one mesh request.
func (s *Server) serveMesh(w http.ResponseWriter, r *http.Request) {
	m := s.mesh
	if r.Method != http.MethodPost {
		writeMeshErr(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxMeshSize+1))
	if err != nil {
		return
	}
	m.bytesIn.Add(int64(len(body)))
	msg, err := DecodeMeshMsg(body)
	if err != nil {
		writeMeshErr(w, http.StatusBadRequest, err.Error())
		return
	}
	sig, _ := base64.StdEncoding.DecodeString(r.Header.Get(MeshSigHeader))
	now := s.now()
	switch {
	case msg.To != m.self.Name:
		writeMeshErr(w, http.StatusMisdirectedRequest, "this supernode is "+m.self.Name)
		return
	case absDuration(now.Sub(time.UnixMilli(msg.TS))) > identity.Skew:
		writeMeshErr(w, http.StatusBadRequest, "timestamp outside the allowed clock skew")
		return
	case !identity.VerifyContext(msg.From.Key, MeshContext, body, sig):
		writeMeshErr(w, http.StatusUnauthorized, "signature does not verify")
		return
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		writeMeshErr(w, http.StatusServiceUnavailable, "this supernode has left the mesh")
		return
	}
	// A stranger is taken as a candidate only when it speaks from the
	// address it names (so nobody can make this supernode ping third
	// parties), and only verified members' gossip is listened to.
	fromItself := sameIP(msg.From.Name, r.RemoteAddr)
	from, isMember := m.member(msg.From.Name)
	isMember = isMember && bytes.Equal(from.Key, msg.From.Key)
	var reply MeshMsg
	if msg.Type == MeshPing {
		if fromItself {
			m.learn(msg.From, true)
		}
		if isMember {
			for _, mb := range msg.Members {
				m.learn(mb, false)
			}
		}
		reply = MeshMsg{Type: MeshPong}
		if len(msg.Members) > 0 { // gossip is answered with gossip
			m.mu.Lock()
			reply.Members = m.liveMembersLocked()
			m.mu.Unlock()
		}
	} else if !isMember {
		if fromItself {
			m.learn(msg.From, true)
		}
		reply = MeshMsg{Type: MeshError, Error: "not a member of this supernode's mesh (yet)"}
	} else {
		switch msg.Type {
		case MeshLeave:
			m.mu.Lock()
			if st := m.members[msg.From.Name]; st != nil {
				st.verified, st.left, st.since = false, true, now
				m.rebuildLocked()
			}
			m.mu.Unlock()
			s.log.Info("supernode left the mesh", "node", msg.From.Name)
			reply = MeshMsg{Type: MeshOK}
		case MeshPublish:
			m.accept(msg.From.Name, msg.Records, now)
			reply = MeshMsg{Type: MeshOK}
		case MeshLookup:
			reply = MeshMsg{Type: MeshFound, Records: m.held(msg.User, now)}
		case MeshDeliver:
			if msg.Deliver == nil {
				reply = MeshMsg{Type: MeshError, Error: "deliver without a delivery"}
				break
			}
			if !m.deliverAllowed(msg.From.Name) {
				// A member can't flood this supernode's users past what
				// its own clients' send limits would allow.
				reply = MeshMsg{Type: MeshDelivered}
				break
			}
			reply = MeshMsg{Type: MeshDelivered, Delivered: s.deliverLocal(*msg.Deliver, nil)}
		default:
			reply = MeshMsg{Type: MeshError, Error: "unknown type " + truncate(msg.Type, 32)}
		}
	}
	reply.V, reply.From, reply.To, reply.TS = snapi.ProtocolVersion, m.self, msg.From.Name, now.UnixMilli()
	rb, err := json.Marshal(reply)
	if err != nil {
		writeMeshErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(MeshSigHeader, base64.StdEncoding.EncodeToString(
		identity.SignContext(m.key, MeshReplyContext, replyMessage(sig, rb))))
	if reply.Type == MeshError {
		w.WriteHeader(http.StatusForbidden)
	}
	w.Write(rb)
}

// sameIP reports whether name (host:port) has the IP of remote (host:port).
func sameIP(name, remote string) bool {
	n, err1 := netip.ParseAddrPort(name)
	r, err2 := netip.ParseAddrPort(remote)
	return err1 == nil && err2 == nil && n.Addr().Unmap() == r.Addr().Unmap()
}

func writeMeshErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": truncate(msg, 200)})
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
