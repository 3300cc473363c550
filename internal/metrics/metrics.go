// Package metrics is what Parley's servers share for Prometheus metrics
// (github.com/prometheus/client_golang): a registry with the Go runtime and
// process collectors, the /metrics handler, and registering a server's
// collectors into the registry its Config names, and out of it again at
// Close. There is no package-level registry: every server is handed the one
// it reports into (internal/cluster makes one per process), so two servers in
// one process or one test never share counters by accident.
package metrics

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every Parley metric: parley_login_…, parley_supernode_…,
// parley_relay_….
const Namespace = "parley"

// NewRegistry returns a fresh registry holding the Go runtime (go_…) and
// process (process_…) collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g in the Prometheus text exposition format (or OpenMetrics
// when the scraper asks for it). A collector that fails is reported in the
// answer and the others are still served.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
}

// Register registers cs with reg and returns the function that unregisters
// them. A nil reg registers nothing (the collectors still count, unseen).
// When one collector cannot be registered (a name taken by another server
// on the same registry), the ones registered before it are unregistered and
// the error is returned.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) (unregister func(), err error) {
	if reg == nil {
		return func() {}, nil
	}
	var done []prometheus.Collector
	unregister = func() {
		for _, c := range done {
			reg.Unregister(c)
		}
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			unregister()
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return func() {}, fmt.Errorf("metrics: %w (two servers of one kind on one registry?)", err)
			}
			return func() {}, fmt.Errorf("metrics: %w", err)
		}
		done = append(done, c)
	}
	return unregister, nil
}
