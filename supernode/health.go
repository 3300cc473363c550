package supernode

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// LoginState is what the supernode's last heartbeat to the login server
// said.
type LoginState struct {
	// Listed: the last heartbeat succeeded, so clients are given this
	// supernode.
	Listed bool
	// Err is why the last heartbeat failed ("" when it did not, or none was
	// sent yet); Unreachable tells a login server that did not answer from
	// one that refused (a failed dial-back, a certificate it does not
	// trust, ...).
	Err         string
	Unreachable bool
	// At is when the last heartbeat was answered or failed; zero before the
	// first.
	At time.Time
}

// loginState returns the last heartbeat's outcome.
func (s *Server) loginState() LoginState { return *s.login.Load() }

// setLoginState records a heartbeat's outcome.
func (s *Server) setLoginState(err error) {
	st := LoginState{Listed: err == nil, At: s.now()}
	if err != nil {
		st.Err = err.Error()
		st.Unreachable = errors.Is(err, loginapi.ErrUnreachable)
		s.m.heartbeats.WithLabelValues(heartbeatFailed).Inc()
	} else {
		s.m.heartbeats.WithLabelValues(heartbeatOK).Inc()
	}
	s.login.Store(&st)
}

// Health is what /healthz answers. OK is true whenever the supernode is
// serving (clients time /healthz to choose a supernode, and skip one that
// does not answer 200); what is wrong is in Problems, one sentence each, and
// in the fields.
type Health struct {
	OK      bool   `json:"ok"`
	Name    string `json:"name"`
	Online  int    `json:"online"`  // attached sessions
	Users   int    `json:"users"`   // distinct users attached
	Members int    `json:"members"` // live supernodes on the ring, this one included
	// Status is "ok", or "degraded" when Problems is not empty.
	Status string `json:"status"`
	// Login is "listed", "unreachable" (the login server did not answer),
	// "refused" (it answered but does not list this supernode: LoginError
	// says why), "pending" (no heartbeat answered yet) or "off" (no login
	// server configured).
	Login      string `json:"login"`
	LoginError string `json:"login_error,omitempty"`
	// Mesh is "joined" (other supernodes answer), or "alone"; Candidates
	// counts supernodes heard of that do not answer.
	Mesh       string `json:"mesh"`
	Candidates int    `json:"candidates"`
	// Relay is "up", "down" (RelayError says why) or "none".
	Relay      string   `json:"relay"`
	RelayError string   `json:"relay_error,omitempty"`
	Problems   []string `json:"problems"`
}

// Health returns the supernode's health as /healthz reports it. It takes no
// network round trip: it reports what the heartbeat, the pings and the
// relay last saw.
func (s *Server) Health() Health {
	h := Health{OK: true, Name: s.cfg.Name, Online: s.Online(), Users: s.userCount(), Members: s.mesh.size(),
		Candidates: s.mesh.candidates(), Problems: []string{}}
	ls := s.loginState()
	switch {
	case s.cfg.Login == nil || s.cfg.Advertise == "":
		h.Login = "off"
	case ls.Listed:
		h.Login = "listed"
	case ls.At.IsZero():
		h.Login = "pending"
	case ls.Unreachable:
		h.Login, h.LoginError = "unreachable", ls.Err
		h.Problems = append(h.Problems, "login server unreachable: "+ls.Err)
	default:
		h.Login, h.LoginError = "refused", ls.Err
		h.Problems = append(h.Problems, "not listed by the login server: "+ls.Err)
	}
	h.Mesh = "joined"
	if h.Members <= 1 {
		h.Mesh = "alone"
		switch {
		case h.Candidates == 1:
			h.Problems = append(h.Problems, "alone in the mesh: the one other supernode it knows does not answer its pings")
		case h.Candidates > 1:
			h.Problems = append(h.Problems, fmt.Sprintf("alone in the mesh: the %d other supernodes it knows do not answer its pings", h.Candidates))
		}
	}
	h.Relay = "none"
	if s.cfg.RelayHealth != nil {
		h.Relay = "up"
		if err := s.cfg.RelayHealth(); err != nil {
			h.Relay, h.RelayError = "down", err.Error()
			h.Problems = append(h.Problems, "relay down: "+err.Error())
		}
	}
	h.Status = "ok"
	if len(h.Problems) > 0 {
		h.Status = "degraded"
	}
	return h
}

// serveHealth answers /healthz: always 200 while serving (clients time it),
// with what is wrong in the body.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	b, _ := json.Marshal(s.Health())
	w.Write(append(b, '\n'))
}
