package logthrottle_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parley/parley/internal/logthrottle"
)

// recorder keeps the records that reach it.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
	attr []slog.Attr // WithAttrs of this handler
	root *recorder
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	root := r
	if r.root != nil {
		root = r.root
	}
	rec = rec.Clone()
	rec.AddAttrs(r.attr...)
	root.mu.Lock()
	defer root.mu.Unlock()
	root.recs = append(root.recs, rec)
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	root := r
	if r.root != nil {
		root = r.root
	}
	return &recorder{root: root, attr: append(append([]slog.Attr(nil), r.attr...), as...)}
}
func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), r.recs...)
}

func attr(rec slog.Record, k string) (slog.Value, bool) {
	var v slog.Value
	found := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == k {
			v, found = a.Value, true
		}
		return true
	})
	return v, found
}

// TestTenThousandIdenticalWarningsInAMinute: 10 go through, then one record
// says 9,990 were suppressed when the minute is over.
func TestTenThousandIdenticalWarningsInAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := logthrottle.New(rec, logthrottle.Options{})
		log := slog.New(h)
		start := time.Now()
		for i := range 10_000 {
			log.Warn("heartbeat to login server failed", "err", "connection refused", "i", i)
			time.Sleep(5 * time.Millisecond) // 50 s in all
		}
		if n := len(rec.records()); n != 10 {
			t.Fatalf("%d records got through during the minute, want 10", n)
		}
		time.Sleep(time.Minute - time.Since(start) + time.Millisecond)
		synctest.Wait()
		recs := rec.records()
		if len(recs) != 11 {
			t.Fatalf("%d records after the minute, want 10 + 1 summary", len(recs))
		}
		sum := recs[10]
		n, ok := attr(sum, logthrottle.SuppressedKey)
		if !ok || n.Int64() != 9990 || sum.Message != "heartbeat to login server failed" || sum.Level != slog.LevelWarn {
			t.Fatalf("summary = %v %q suppressed=%v, want WARN, the message and suppressed=9990", sum.Level, sum.Message, n)
		}
		if last, _ := attr(sum, "i"); last.Int64() != 9999 {
			t.Errorf("summary carries i=%v, want the last held-back record's 9999", last)
		}
		if !sum.Time.Equal(start.Add(time.Minute)) {
			t.Errorf("summary dated %v, want the window's end %v", sum.Time, start.Add(time.Minute))
		}
		// The next minute starts afresh; a quiet window has no summary.
		log.Warn("heartbeat to login server failed")
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if n := len(rec.records()); n != 12 {
			t.Errorf("%d records, want 12 (one more through, no empty summary)", n)
		}
		h.Close()
	})
}

// TestKeysAreLevelAndMessage: other messages and other levels have their own
// allowance; debug records are not throttled.
func TestKeysAreLevelAndMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := logthrottle.New(rec, logthrottle.Options{PerWindow: 3})
		log := slog.New(h)
		for range 20 {
			log.Warn("a")
			log.Error("a")
			log.Warn("b", "x", 1)
			log.Debug("a")
		}
		count := map[string]int{}
		for _, r := range rec.records() {
			count[r.Level.String()+" "+r.Message]++
		}
		want := map[string]int{"WARN a": 3, "ERROR a": 3, "WARN b": 3, "DEBUG a": 20}
		for k, n := range want {
			if count[k] != n {
				t.Errorf("%s: %d through, want %d (all: %v)", k, count[k], n, count)
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		sums := 0
		for _, r := range rec.records() {
			if n, ok := attr(r, logthrottle.SuppressedKey); ok {
				sums++
				if n.Int64() != 17 {
					t.Errorf("%s %s: suppressed=%v, want 17", r.Level, r.Message, n)
				}
			}
		}
		if sums != 3 {
			t.Errorf("%d summaries, want 3", sums)
		}
		h.Close()
	})
}

// TestDerivedHandlersShareCountsAndCloseFlushes: loggers made With
// attributes count with their parent; the summary goes through the handler
// of the last held-back record; Close writes the open windows' summaries.
func TestDerivedHandlersShareCountsAndCloseFlushes(t *testing.T) {
	now := time.Unix(1000, 0)
	var timers []func()
	rec := &recorder{}
	h := logthrottle.New(rec, logthrottle.Options{
		PerWindow: 2,
		Now:       func() time.Time { return now },
		AfterFunc: func(d time.Duration, f func()) func() bool {
			timers = append(timers, f)
			return func() bool { return true }
		},
	})
	base := slog.New(h)
	sub := base.With("component", "mesh")
	base.Warn("x")
	sub.Warn("x")
	sub.Warn("x")
	base.Info("x")
	if n := len(rec.records()); n != 3 {
		t.Fatalf("%d through, want 3 (2 WARN x, 1 INFO x)", n)
	}
	// A record after the window's end (its timer late) ends the window first.
	now = now.Add(time.Minute)
	base.Warn("x")
	recs := rec.records()
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5 (summary, then the new window's first)", len(recs))
	}
	if n, _ := attr(recs[3], logthrottle.SuppressedKey); n.Int64() != 1 {
		t.Errorf("summary suppressed=%v, want 1", n)
	}
	if c, _ := attr(recs[3], "component"); c.String() != "mesh" {
		t.Errorf("summary component=%v, want the sub-logger's mesh", c)
	}
	base.Warn("x")
	base.Warn("x")
	base.Warn("x")
	h.Close()
	recs = rec.records()
	if n, _ := attr(recs[len(recs)-1], logthrottle.SuppressedKey); len(recs) != 7 || n.Int64() != 2 {
		t.Fatalf("after Close: %d records, last suppressed=%v; want 7 and 2", len(recs), n)
	}
	base.Warn("x")
	if len(rec.records()) != 8 {
		t.Error("a record after Close was held back")
	}
	for _, f := range timers {
		f() // late timers of ended windows write nothing
	}
	if len(rec.records()) != 8 {
		t.Error("a late timer wrote a second summary")
	}
}
