package relay

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/internal/metrics"
)

// counters are the relay's Prometheus counters beyond Stats and the
// allocations' own packet counters, read when the registry is scraped.
type counters struct {
	allocsCreated atomic.Uint64
}

// collector exports a Server's counters as parley_relay_… metrics
// (docs/operations.md), read at each scrape.
type collector struct {
	s                                            *Server
	allocs, users, conns                         *prometheus.Desc
	allocsTotal, bytes, packets, drops, refusals *prometheus.Desc
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "relay", name), help, labels, nil)
	}
	return &collector{s: s,
		allocs:      d("allocations", "Live TURN allocations."),
		users:       d("users", "Users holding at least one allocation."),
		conns:       d("connections", "Open TURN-over-TCP and TURN-over-TLS connections."),
		allocsTotal: d("allocations_total", "TURN allocations created."),
		bytes:       d("bytes_total", "Payload bytes relayed: from allocations to peers (to_peer) and from peers to allocations (from_peer).", "direction"),
		packets:     d("packets_total", "Datagrams relayed, by direction as for bytes_total.", "direction"),
		drops:       d("dropped_packets_total", "Datagrams dropped: the user over its bandwidth (bandwidth), to the relay host itself (self), from a peer without a permission (no_permission).", "reason"),
		refusals:    d("refusals_total", "Requests refused: bad or expired credentials (auth), peers on the deny list (peer), allocations over the per-user quota (quota).", "reason"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.allocs, c.users, c.conns, c.allocsTotal, c.bytes, c.packets, c.drops, c.refusals} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st := s.Stats()
	t := s.traffic()
	g := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	n := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	g(c.allocs, st.Allocations)
	g(c.users, st.Users)
	g(c.conns, st.Conns)
	n(c.allocsTotal, s.c.allocsCreated.Load())
	n(c.bytes, t.bytesOut, "to_peer")
	n(c.bytes, t.bytesIn, "from_peer")
	n(c.packets, t.pktsOut, "to_peer")
	n(c.packets, t.pktsIn, "from_peer")
	n(c.drops, st.DroppedBandwidth, "bandwidth")
	n(c.drops, st.DroppedSelf, "self")
	n(c.drops, t.dropNoPerm, "no_permission")
	n(c.refusals, st.RefusedAuth, "auth")
	n(c.refusals, st.RefusedPeers, "peer")
	n(c.refusals, st.RefusedQuota, "quota")
}

// listenerFailing is how long after a failed read or accept a listener
// counts as failing in Health.
const listenerFailing = 30 * time.Second

// listenerHealth is what Health knows of one listener.
type listenerHealth struct {
	failedAt atomic.Int64 // Unix ns of the last failed read or accept; 0: none
	lastErr  atomic.Pointer[string]
	stopped  atomic.Bool // its loop ended while the relay was not closing
}

func (h *listenerHealth) failed(err error) {
	msg := err.Error()
	h.lastErr.Store(&msg)
	h.failedAt.Store(time.Now().UnixNano())
}

// Health reports whether the relay serves: nil, or what is wrong (closed, a
// listener that stopped, or one whose reads or accepts failed in the last
// 30 s). It takes no network round trip.
func (s *Server) Health() error {
	if s.isClosing() {
		return ErrClosed
	}
	var errs []error
	for _, l := range []struct {
		name string
		h    *listenerHealth
		on   bool
	}{{"udp", &s.udpHealth, len(s.udp) > 0}, {"tcp", &s.tcpHealth, s.tcp != nil}, {"tls", &s.tlsHealth, s.tls != nil}} {
		if !l.on {
			continue
		}
		if l.h.stopped.Load() {
			errs = append(errs, fmt.Errorf("the %s listener stopped", l.name))
			continue
		}
		if at := l.h.failedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < listenerFailing {
			errs = append(errs, fmt.Errorf("the %s listener is failing: %s", l.name, *l.h.lastErr.Load()))
		}
	}
	return errors.Join(errs...)
}
