package supernode

import (
	"runtime/debug"
	"testing"
	"testing/synctest"
	"time"
)

// admitN tries n admissions and returns the reasons of the refused ones
// (by reason) and the releases of the admitted ones.
func admitN(a *admission, n int) (map[string]int, []func()) {
	shed := map[string]int{}
	var rel []func()
	for range n {
		r, reason := a.admit()
		if reason != "" {
			shed[reason]++
			continue
		}
		rel = append(rel, r)
	}
	return shed, rel
}

func testAdmission(cfg Config) *admission {
	admissionDefaults(&cfg)
	return newAdmission(cfg, time.Now)
}

func TestAdmissionRateRefillsOverTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := testAdmission(Config{AttachRate: 10, MaxAttaching: -1, ShedMemoryBytes: -1})
		shed, ok := admitN(a, 15)
		if got, want := len(ok), 10; got != want { // the burst is the rate
			t.Fatalf("admitted at once: got %d, want %d", got, want)
		}
		if got, want := shed[shedRate], 5; got != want {
			t.Fatalf("shed for %s: got %d, want %d", shedRate, got, want)
		}
		time.Sleep(time.Second) // ten more tokens
		if shed, ok := admitN(a, 12); len(ok) != 10 || shed[shedRate] != 2 {
			t.Fatalf("a second later: admitted %d, shed %v; want 10 and 2", len(ok), shed)
		}
	})
}

func TestAdmissionCapsAttachesInFlight(t *testing.T) {
	a := testAdmission(Config{MaxAttaching: 3, AttachRate: -1, ShedMemoryBytes: -1})
	shed, ok := admitN(a, 5)
	if len(ok) != 3 || shed[shedAttaching] != 2 {
		t.Fatalf("admitted %d, shed %v; want 3 and attaching=2", len(ok), shed)
	}
	if got := a.inFlight(); got != 3 {
		t.Fatalf("in flight: got %d, want 3", got)
	}
	ok[0]()
	ok[0]() // a release counts once
	if got := a.inFlight(); got != 2 {
		t.Fatalf("in flight after one release: got %d, want 2", got)
	}
	if _, reason := a.admit(); reason != "" {
		t.Fatalf("after a release: refused (%s)", reason)
	}
}

func TestAdmissionShedsOverTheMemoryThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := testAdmission(Config{ShedMemoryBytes: 100 << 20, MaxAttaching: -1, AttachRate: -1})
		heap := uint64(50 << 20)
		reads := 0
		a.memory = func() uint64 { reads++; return heap }
		if _, reason := a.admit(); reason != "" {
			t.Fatalf("under the threshold: refused (%s)", reason)
		}
		heap = 150 << 20
		if _, reason := a.admit(); reason != "" {
			t.Fatalf("within the sampling interval: refused (%s); memory is read at most every %v", reason, memSampleEvery)
		}
		time.Sleep(memSampleEvery)
		for range 100 {
			if _, reason := a.admit(); reason != shedMemory {
				t.Fatalf("over the threshold: got %q, want %q", reason, shedMemory)
			}
		}
		if reads != 2 {
			t.Errorf("memory read %d times, want 2 (sampled)", reads)
		}
		heap = 10 << 20
		time.Sleep(memSampleEvery)
		if _, reason := a.admit(); reason != "" {
			t.Fatalf("back under: refused (%s)", reason)
		}
	})
}

func TestAdmissionDefaults(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	tests := []struct {
		name     string
		limit    int64 // the process's memory limit
		cfg      Config
		wantShed int64
		wantRate float64
		wantMax  int
	}{
		{"no memory limit", -1, Config{}, -1, DefaultAttachRate, DefaultMaxAttaching},
		{"GOMEMLIMIT 1 GiB", 1 << 30, Config{}, 858993459, DefaultAttachRate, DefaultMaxAttaching},
		{"set", 1 << 30, Config{ShedMemoryBytes: 5 << 20, AttachRate: 7, MaxAttaching: 9}, 5 << 20, 7, 9},
		{"off", 1 << 30, Config{ShedMemoryBytes: -1, AttachRate: -1, MaxAttaching: -1}, -1, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.limit < 0 {
				debug.SetMemoryLimit(1<<63 - 1)
			} else {
				debug.SetMemoryLimit(tt.limit)
			}
			cfg := tt.cfg
			admissionDefaults(&cfg)
			if cfg.ShedMemoryBytes != tt.wantShed || cfg.AttachRate != tt.wantRate || cfg.MaxAttaching != tt.wantMax || cfg.RetryAfter != DefaultRetryAfter {
				t.Errorf("got shed %d rate %v max %d retry %v, want %d %v %d %v", cfg.ShedMemoryBytes, cfg.AttachRate, cfg.MaxAttaching, cfg.RetryAfter,
					tt.wantShed, tt.wantRate, tt.wantMax, DefaultRetryAfter)
			}
		})
	}
}

func TestRetryAfterIsSpread(t *testing.T) {
	a := testAdmission(Config{RetryAfter: 3 * time.Second})
	seen := map[int]bool{}
	for range 1000 {
		s := a.wait()
		if s < 3 || s > 6 {
			t.Fatalf("Retry-After %d s, want within [3, 6]", s)
		}
		seen[s] = true
	}
	if len(seen) != 4 {
		t.Errorf("Retry-After took %d values over 1,000 refusals, want all 4 of 3..6 s", len(seen))
	}
}
