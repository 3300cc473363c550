package supernode

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley/parley/wire/snapi"
)

// Admission control: a supernode sheds load at the door rather than fall
// over. Supernodes are run by strangers on ordinary machines; when a third
// of the mesh dies at once, its clients all reconnect to the rest within a
// second (the December 2010 Skype outage was such a wave turning into a
// cascade). Before the websocket upgrade of /v1/ws, serveWS asks admit;
// a refused client gets 503 with a Retry-After (snapi.BusyStatus) and costs
// the supernode one short HTTP answer, no websocket, no goroutines.
//
// Three gates, in this order:
//   - attaching: connections accepted but not yet attached (the attach
//     handshake in flight) are capped at MaxAttaching;
//   - attach_rate: new connections are admitted at AttachRate a second
//     (bursts of AttachBurst), a token bucket;
//   - memory: none is admitted while the Go runtime's memory (what
//     GOMEMLIMIT counts: heap, stacks, runtime structures) is over
//     ShedMemoryBytes.
//
// Sessions already attached are never shed: shedding is only of newcomers.

// Defaults of the admission limits.
const (
	DefaultMaxAttaching = 256
	DefaultAttachRate   = 200
	DefaultRetryAfter   = 2 * time.Second
	// DefaultShedMemoryFraction of the process's memory limit (GOMEMLIMIT)
	// is the default ShedMemoryBytes when a limit is set.
	DefaultShedMemoryFraction = 0.8
)

// Reasons a connection is shed, as label values and in the busy body.
const (
	shedAttaching = "attaching"
	shedRate      = "attach_rate"
	shedMemory    = "memory"
)

// memSampleEvery bounds how often the memory is read (runtime/metrics
// is cheap, but a storm asks thousands of times a second).
const memSampleEvery = 100 * time.Millisecond

// admission is a supernode's admission state.
type admission struct {
	maxAttaching int           // ≤ 0: no cap
	limiter      *rate.Limiter // nil: no rate cap
	shedMem      uint64        // 0: no memory gate
	retryAfter   time.Duration
	now          func() time.Time
	// memory reads the runtime's memory; tests replace it.
	memory func() uint64

	mu        sync.Mutex
	attaching int
	memAt     time.Time
	memLast   uint64
}

// admissionDefaults fills the Config's admission fields.
func admissionDefaults(cfg *Config) {
	if cfg.MaxAttaching == 0 {
		cfg.MaxAttaching = DefaultMaxAttaching
	}
	if cfg.AttachRate == 0 {
		cfg.AttachRate = DefaultAttachRate
	}
	if cfg.AttachBurst <= 0 {
		cfg.AttachBurst = max(1, int(math.Ceil(cfg.AttachRate)))
	}
	if cfg.ShedMemoryBytes == 0 {
		cfg.ShedMemoryBytes = -1
		if lim := debug.SetMemoryLimit(-1); lim > 0 && lim < math.MaxInt64 {
			cfg.ShedMemoryBytes = int64(float64(lim) * DefaultShedMemoryFraction)
		}
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
}

func newAdmission(cfg Config, now func() time.Time) *admission {
	a := &admission{maxAttaching: cfg.MaxAttaching, retryAfter: cfg.RetryAfter, now: now, memory: runtimeMemory}
	if cfg.AttachRate > 0 {
		a.limiter = rate.NewLimiter(rate.Limit(cfg.AttachRate), cfg.AttachBurst)
	}
	if cfg.ShedMemoryBytes > 0 {
		a.shedMem = uint64(cfg.ShedMemoryBytes)
	}
	return a
}

// runtimeMemory is the memory the Go runtime holds from the OS and has not
// given back: what a memory limit (GOMEMLIMIT) counts, heap, stacks and the
// runtime's own structures together.
func runtimeMemory() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// admit takes an attaching slot for a new connection: release gives it
// back (call it once, when the attach has completed or failed). A refused
// connection gets reason ("" when admitted).
func (a *admission) admit() (release func(), reason string) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxAttaching > 0 && a.attaching >= a.maxAttaching {
		return nil, shedAttaching
	}
	if a.shedMem > 0 {
		if now.Sub(a.memAt) >= memSampleEvery || now.Before(a.memAt) {
			a.memAt, a.memLast = now, a.memory()
		}
		if a.memLast > a.shedMem {
			return nil, shedMemory
		}
	}
	if a.limiter != nil && !a.limiter.AllowN(now, 1) {
		return nil, shedRate
	}
	a.attaching++
	return sync.OnceFunc(func() {
		a.mu.Lock()
		a.attaching--
		a.mu.Unlock()
	}), ""
}

// inFlight is the number of connections admitted and not yet attached.
func (a *admission) inFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attaching
}

// wait is the Retry-After of a refusal, in whole seconds: uniform in
// [RetryAfter, 2·RetryAfter], so refused clients come back spread out.
func (a *admission) wait() int {
	base := max(1, int(a.retryAfter/time.Second))
	return min(base+rand.IntN(base+1), int(snapi.MaxRetryAfter/time.Second))
}

// refuseBusy answers a shed upgrade: 503, Retry-After, a JSON body.
func (s *Server) refuseBusy(w http.ResponseWriter, reason string) {
	secs := s.adm.wait()
	s.m.shed.WithLabelValues(reason).Inc()
	s.log.Warn("shedding load: refused a connection", "reason", reason, "retry_after_s", secs)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(snapi.BusyStatus)
	b, _ := json.Marshal(snapi.BusyBody{Error: "supernode busy; retry later or try another supernode", Reason: reason, RetryAfter: secs})
	w.Write(append(b, '\n'))
}
