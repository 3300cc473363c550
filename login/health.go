package login

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// healthTimeout bounds the database queries of /healthz.
const healthTimeout = 2 * time.Second

// Health is what GET /healthz answers: 200 with OK true while the database
// answers, 503 with OK false when it does not (a load balancer takes the
// server out); what else is wrong is in Problems, one sentence each.
type Health struct {
	OK bool `json:"ok"`
	// Status is "ok", "degraded" (serving, with Problems) or "down".
	Status string `json:"status"`
	// Database is "ok" or why it does not answer.
	Database string `json:"database"`
	// Supernodes is how many supernodes clients are given now; with none,
	// clients log in but cannot go online.
	Supernodes int      `json:"supernodes"`
	Problems   []string `json:"problems"`
}

// Health checks the database (a ping and the supernode list, at most 2 s)
// and reports as /healthz does.
func (s *Server) Health(ctx context.Context) Health {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	h := Health{OK: true, Status: "ok", Database: "ok", Problems: []string{}}
	n, err := s.listedSupernodes(ctx)
	if err == nil {
		err = s.st.ping(ctx)
	}
	switch {
	case err != nil:
		h.OK, h.Status, h.Database = false, "down", err.Error()
		h.Problems = append(h.Problems, fmt.Sprintf("database %s does not answer: %v", redactDSN(s.cfg.DB), err))
	case n == 0:
		h.Problems = append(h.Problems, "no supernode listed: clients can log in but not go online")
	}
	h.Supernodes = n
	if h.OK && len(h.Problems) > 0 {
		h.Status = "degraded"
	}
	return h
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := s.Health(r.Context())
	status := http.StatusOK
	if !h.OK {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}
