package callscript

// This file is the answering side of a script, as `parley listen` does: it
// declines every incoming call, or answers one at a time — after letting it
// ring a while, so that another device of the user may take it — telling a
// second caller "busy"; and it counts the calls that have ended, answered or
// not.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/client"
)

// AnswerConfig is an answering policy. The zero value declines every call.
type AnswerConfig struct {
	// Answer answers calls, one at a time; false declines each with
	// "declined".
	Answer bool
	// RingFor lets a call ring this long before answering it; 0 = at once.
	// A call answered meanwhile on another device stops ringing here.
	RingFor time.Duration
	// Media returns what an answered call says and where what it hears
	// goes; nil = silence, nowhere.
	Media func() client.Media
	// Limit closes Done once this many calls have ended; 0 = never.
	Limit int
}

// Answerer applies an AnswerConfig to incoming calls. Its methods are safe for
// concurrent use.
type Answerer struct {
	cfg   AnswerConfig
	busy  sync.Mutex // held while a call is answered
	ended atomic.Int64
	done  chan struct{}
	once  sync.Once
}

// NewAnswerer returns an Answerer for cfg.
func NewAnswerer(cfg AnswerConfig) *Answerer {
	if cfg.Media == nil {
		cfg.Media = func() client.Media { return client.Media{} }
	}
	return &Answerer{cfg: cfg, done: make(chan struct{})}
}

// Handler returns the client.SessionConfig.OnIncoming that applies the
// policy. Ringing and answered calls end with ctx. Each call runs on the
// goroutine the session calls the handler on, which returns when the call
// has ended.
func (m *Answerer) Handler(ctx context.Context) func(*client.Incoming) {
	return func(in *client.Incoming) {
		defer m.callEnded()
		if !m.cfg.Answer {
			in.Decline("declined")
			return
		}
		if !m.rang(ctx, in.Cancelled()) {
			return
		}
		if !m.busy.TryLock() {
			in.Decline("busy")
			return
		}
		defer m.busy.Unlock()
		if call, err := in.Answer(ctx, m.cfg.Media()); err == nil {
			<-call.Done()
		}
	}
}

// ConfHandler returns the client.SessionConfig.OnConfInvite that applies the
// policy to conference invitations: joined after RingFor when answering (a
// conference counts as a call: one at a time, and toward Limit), declined
// otherwise or while busy.
func (m *Answerer) ConfHandler(ctx context.Context) func(*client.ConfInvite) {
	return func(inv *client.ConfInvite) {
		defer m.callEnded()
		if !m.cfg.Answer {
			inv.Decline()
			return
		}
		if !m.rang(ctx, inv.Cancelled()) {
			return
		}
		if !m.busy.TryLock() {
			inv.Decline()
			return
		}
		defer m.busy.Unlock()
		if cf, err := inv.Join(ctx, m.cfg.Media()); err == nil {
			<-cf.Done()
		}
	}
}

// rang lets a call or invitation ring for RingFor, and reports whether it is
// still there to answer (not cancelled, ctx not done).
func (m *Answerer) rang(ctx context.Context, cancelled <-chan struct{}) bool {
	if m.cfg.RingFor <= 0 {
		return true
	}
	t := time.NewTimer(m.cfg.RingFor)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cancelled:
	case <-ctx.Done():
	}
	return false
}

func (m *Answerer) callEnded() {
	if n := m.ended.Add(1); m.cfg.Limit > 0 && n >= int64(m.cfg.Limit) {
		m.once.Do(func() { close(m.done) })
	}
}

// Ended returns how many calls have ended, answered or not.
func (m *Answerer) Ended() int { return int(m.ended.Load()) }

// Done is closed once AnswerConfig.Limit calls have ended.
func (m *Answerer) Done() <-chan struct{} { return m.done }
