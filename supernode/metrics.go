package supernode

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/internal/metrics"
	"github.com/parley/parley/wire/snapi"
)

// snMetrics are a supernode's Prometheus collectors (docs/operations.md lists
// them). Counters are counted here; gauges are read from the server when
// scraped. They are registered with Config.Metrics by New and unregistered by
// Close.
type snMetrics struct {
	framesIn   *prometheus.CounterVec // type
	framesOut  *prometheus.CounterVec // type
	lookups    *prometheus.CounterVec // hops, found
	pushes     prometheus.Counter
	refusals   *prometheus.CounterVec // reason
	drops      *prometheus.CounterVec // reason
	heartbeats *prometheus.CounterVec // result
	shed       *prometheus.CounterVec // reason (admission.go)
	all        []prometheus.Collector
}

// Reasons a supernode refuses or drops, as label values.
const (
	refuseSendRate     = "send_rate"       // a connection sending faster than SendRate
	refuseInFlight     = "requests_queued" // more than requestQueue requests waiting
	refuseUserSessions = "sessions_per_user"
	refuseAddrSessions = "sessions_per_addr"
	refuseAddrConns    = "conns_per_addr" // LimitListener
	refuseIdle         = "idle"
	refuseCredential   = "credential"  // attach or renew with a bad or expired credential
	dropSlowClient     = "slow_client" // a frame for a client whose queue was full (it is disconnected)
	frameTypeOther     = "other"
	heartbeatOK        = "ok"
	heartbeatFailed    = "failed"
)

// Label names, and the subsystem of every supernode metric.
const (
	subsystem      = "supernode"
	labelType      = "type"
	labelReason    = "reason"
	labelResult    = "result"
	labelHops      = "hops"
	labelFound     = "found"
	labelDirection = "direction"
	directionIn    = "in"
	directionOut   = "out"
)

// The frame types counted under their own name, from clients and to them;
// anything else a client sends is counted as "other" (label values stay
// bounded).
var (
	inFrameTypes  = []string{snapi.TypeAttach, snapi.TypeRenew, snapi.TypeSend, snapi.TypeLookup, snapi.TypeDialback, snapi.TypePresence}
	outFrameTypes = []string{snapi.TypeChallenge, snapi.TypeAttached, snapi.TypeDeliver, snapi.TypePresence, snapi.TypeAck,
		snapi.TypeFound, snapi.TypeDialback, snapi.TypeError}
)

func frameLabel(t string, known []string) string {
	if slices.Contains(known, t) {
		return t
	}
	return frameTypeOther
}

func newSNMetrics(s *Server) *snMetrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metrics.Namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), labels)
	}
	m := &snMetrics{
		framesIn:   counter("frames_received_total", "Frames received from attached clients, by type.", labelType),
		framesOut:  counter("frames_sent_total", "Frames queued for attached clients, by type (deliver: signalling and messages; presence: presence pushes).", labelType),
		lookups:    counter("lookups_total", "Directory lookups (a client's lookup, and one per send and presence push), by overlay hops taken and whether a live record was found.", labelHops, labelFound),
		pushes:     prometheus.NewCounter(prometheus.CounterOpts(opts("presence_pushes_total", "Presence changes queued for a watcher's device attached here."))),
		refusals:   counter("refusals_total", "Connections, sessions and requests refused by a limit, by reason.", labelReason),
		drops:      counter("dropped_frames_total", "Frames dropped, by reason.", labelReason),
		heartbeats: counter("login_heartbeats_total", "Heartbeats to the login server, by result.", labelResult),
		shed:       counter("attaches_shed_total", "New connections refused before the websocket upgrade with 503 and a Retry-After (admission control), by reason: attaching, attach_rate, memory.", labelReason),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts(name, help)), f)
	}
	meshBytes := func(dir string, f func() float64) prometheus.Collector {
		o := opts("mesh_bytes_total", "Bytes of mesh request bodies, sent (out) and received (in).")
		o.ConstLabels = prometheus.Labels{labelDirection: dir}
		return prometheus.NewCounterFunc(prometheus.CounterOpts(o), f)
	}
	m.all = []prometheus.Collector{m.framesIn, m.framesOut, m.lookups, m.pushes, m.refusals, m.drops, m.heartbeats, m.shed,
		gauge("attaching", "Connections admitted and not yet attached (capped by MaxAttaching).", func() float64 { return float64(s.adm.inFlight()) }),
		gauge("sessions", "Attached sessions (websocket connections past attach).", func() float64 { return float64(s.Online()) }),
		gauge("users", "Distinct users with at least one session attached here.", func() float64 { return float64(s.userCount()) }),
		gauge("mesh_members", "Live supernodes on this supernode's ring, itself included.", func() float64 { return float64(s.mesh.size()) }),
		gauge("mesh_candidates", "Supernodes heard of that have not (or no longer) answered this one's pings.", func() float64 { return float64(s.mesh.candidates()) }),
		gauge("directory_records", "Presence records this supernode holds for the directory.", func() float64 { return float64(s.mesh.records()) }),
		gauge("login_listed", "1 while the last heartbeat to the login server succeeded (this supernode is listed), else 0.", func() float64 {
			if s.loginState().Listed {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("mesh_requests_total", "Mesh requests sent to other supernodes.")), func() float64 {
			return float64(s.mesh.msgsOut.Load())
		}),
		meshBytes(directionOut, func() float64 { return float64(s.mesh.bytesOut.Load()) }),
		meshBytes(directionIn, func() float64 { return float64(s.mesh.bytesIn.Load()) }),
	}
	// Every label value a dashboard may look for exists from the start.
	for _, t := range append(inFrameTypes, frameTypeOther) {
		m.framesIn.WithLabelValues(t)
	}
	for _, t := range outFrameTypes {
		m.framesOut.WithLabelValues(t)
	}
	for _, r := range []string{refuseSendRate, refuseInFlight, refuseUserSessions, refuseAddrSessions, refuseAddrConns, refuseIdle, refuseCredential} {
		m.refusals.WithLabelValues(r)
	}
	for _, hops := range []string{"0", "1", "2"} {
		m.lookups.WithLabelValues(hops, "true")
		m.lookups.WithLabelValues(hops, "false")
	}
	for _, r := range []string{shedAttaching, shedRate, shedMemory} {
		m.shed.WithLabelValues(r)
	}
	m.drops.WithLabelValues(dropSlowClient)
	m.heartbeats.WithLabelValues(heartbeatOK)
	m.heartbeats.WithLabelValues(heartbeatFailed)
	return m
}

func (m *snMetrics) frameIn(t string) { m.framesIn.WithLabelValues(frameLabel(t, inFrameTypes)).Inc() }
func (m *snMetrics) frameOut(t string) {
	m.framesOut.WithLabelValues(frameLabel(t, outFrameTypes)).Inc()
}
func (m *snMetrics) refused(reason string) { m.refusals.WithLabelValues(reason).Inc() }
func (m *snMetrics) lookup(hops int, found bool) {
	m.lookups.WithLabelValues(strconv.Itoa(hops), strconv.FormatBool(found)).Inc()
}
