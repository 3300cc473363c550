// Package logthrottle keeps a repeated log record from flooding the log: a
// [log/slog] Handler wrapper that lets through at most N records per window
// (default 10 a minute) for each (level, message) and counts the rest. When
// a window in which records were held back ends, one record reports how many:
// the message again, with the last held-back record's attributes and
// "suppressed"=count.
//
// A window starts with the first record of its key and lasts Window; a key
// that stays quiet for a window is forgotten. Attributes do not make records
// different: "heartbeat to login server failed" with two different errors is
// one key.
package logthrottle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults of [Options].
const (
	DefaultPerWindow = 10
	DefaultWindow    = time.Minute
	DefaultMaxKeys   = 4096
)

// SuppressedKey is the attribute of a summary record that holds the number of
// records held back in its window.
const SuppressedKey = "suppressed"

// Options configures [New]. Zero values mean the defaults.
type Options struct {
	// PerWindow is how many records of one (level, message) pass per
	// Window. Default 10.
	PerWindow int
	// Window is how long a key's allowance lasts. Default one minute.
	Window time.Duration
	// MinLevel: records below it pass untouched. nil means slog.LevelInfo,
	// so debug logging, which an operator turns on to see everything, is
	// never throttled.
	MinLevel slog.Leveler
	// MaxKeys bounds the keys followed at once; records of further keys
	// pass untouched. Default 4096.
	MaxKeys int
	// Now is the clock records are timed by; nil means time.Now.
	Now func() time.Time
	// AfterFunc schedules f after d (the summary at a window's end) and
	// returns a function that cancels it; nil means time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

// Handler is the throttling wrapper. Handlers derived by WithAttrs and
// WithGroup share their parent's counts.
type Handler struct {
	inner slog.Handler
	st    *state
}

type key struct {
	level slog.Level
	msg   string
}

type window struct {
	end        time.Time
	passed     int
	suppressed int
	last       slog.Record  // the last record held back
	h          slog.Handler // the handler it was for (its attributes and groups)
	stop       func() bool
}

type state struct {
	opt    Options
	min    slog.Leveler
	mu     sync.Mutex
	keys   map[key]*window
	closed bool
}

// New wraps inner.
func New(inner slog.Handler, opt Options) *Handler {
	if opt.PerWindow <= 0 {
		opt.PerWindow = DefaultPerWindow
	}
	if opt.Window <= 0 {
		opt.Window = DefaultWindow
	}
	if opt.MaxKeys <= 0 {
		opt.MaxKeys = DefaultMaxKeys
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.AfterFunc == nil {
		opt.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	st := &state{opt: opt, min: opt.MinLevel, keys: map[key]*window{}}
	if st.min == nil {
		st.min = slog.LevelInfo
	}
	return &Handler{inner: inner, st: st}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(as), st: h.st}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), st: h.st}
}

// Handle implements slog.Handler: it passes r on, or counts it when its key
// has used up its allowance for the current window.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	st := h.st
	if r.Level < st.min.Level() {
		return h.inner.Handle(ctx, r)
	}
	k := key{r.Level, r.Message}
	now := st.opt.Now()
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return h.inner.Handle(ctx, r)
	}
	var due *window // a window that ended but whose timer has not run yet
	w := st.keys[k]
	if w != nil && !now.Before(w.end) {
		w.stop()
		delete(st.keys, k)
		due, w = w, nil
	}
	if w == nil {
		if len(st.keys) >= st.opt.MaxKeys {
			st.mu.Unlock()
			emit(ctx, k, due, now)
			return h.inner.Handle(ctx, r)
		}
		w = &window{end: now.Add(st.opt.Window)}
		st.keys[k] = w
		w.stop = st.opt.AfterFunc(st.opt.Window, func() { st.expire(k, w) })
	}
	pass := w.passed < st.opt.PerWindow
	if pass {
		w.passed++
	} else {
		w.suppressed++
		w.last, w.h = r.Clone(), h.inner
	}
	st.mu.Unlock()
	emit(ctx, k, due, now)
	if !pass {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

// expire ends w, the window of k, at its timer.
func (st *state) expire(k key, w *window) {
	st.mu.Lock()
	if st.keys[k] != w {
		st.mu.Unlock()
		return // ended already (by a record after its end, or Close)
	}
	delete(st.keys, k)
	st.mu.Unlock()
	emit(context.Background(), k, w, w.end)
}

// emit writes the summary of w, if it held records back.
func emit(ctx context.Context, k key, w *window, at time.Time) {
	if w == nil || w.suppressed == 0 {
		return
	}
	r := slog.NewRecord(at, k.level, k.msg, 0)
	w.last.Attrs(func(a slog.Attr) bool {
		r.AddAttrs(a)
		return true
	})
	r.AddAttrs(slog.Int(SuppressedKey, w.suppressed))
	w.h.Handle(ctx, r)
}

// Close stops the timers and writes the summaries of the windows still
// open, so no count is lost at shutdown. Records handled after Close pass
// untouched.
func (h *Handler) Close() {
	st := h.st
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.closed = true
	open := st.keys
	st.keys = nil
	st.mu.Unlock()
	now := st.opt.Now()
	for k, w := range open {
		w.stop()
		emit(context.Background(), k, w, now)
	}
}
