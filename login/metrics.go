package login

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/internal/metrics"
)

// Results and limits, as label values of the login server's metrics.
const (
	resultOK            = "ok"
	resultWrongPassword = "wrong_password" // an unknown user counts here too
	resultRateLimited   = "rate_limited"
	resultTaken         = "taken"
	resultRefused       = "refused"
	resultError         = "error"
	resultFailed        = "failed"
	resultDenied        = "denied"

	limitLogins          = "logins" // failed logins and password changes
	limitRegistrations   = "registrations"
	limitNameLookups     = "name_lookups"
	limitSearches        = "searches"
	limitContactRequests = "contact_requests"
	limitDialBacks       = "dial_backs"

	// scrapeTimeout bounds the database queries of one scrape.
	scrapeTimeout         = 2 * time.Second
	metricsSubsystemLogin = "login"
)

// loginMetrics are the login server's Prometheus collectors
// (parley_login_…, docs/operations.md), registered with Config.Metrics by
// New and unregistered by Close.
type loginMetrics struct {
	logins        *prometheus.CounterVec // result
	registrations *prometheus.CounterVec // result
	refreshes     *prometheus.CounterVec // result
	rateLimited   *prometheus.CounterVec // limit
	dialBacks     *prometheus.CounterVec // result
	credentials   prometheus.Counter
	mailboxPosted prometheus.Counter
	mailboxItems  *prometheus.CounterVec // op
	all           []prometheus.Collector
}

func newLoginMetrics(s *Server) *loginMetrics {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: metricsSubsystemLogin, Name: name, Help: help}
	}
	vec := func(name, help, label string, values ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(opts(name, help), []string{label})
		for _, l := range values {
			v.WithLabelValues(l) // present, at 0, before the first event
		}
		return v
	}
	m := &loginMetrics{
		logins: vec("logins_total", "Logins (POST /api/v1/login), by result.", "result",
			resultOK, resultWrongPassword, resultRateLimited, resultError),
		registrations: vec("registrations_total", "Registrations, by result.", "result",
			resultOK, resultTaken, resultRateLimited, resultError),
		refreshes: vec("refreshes_total", "Credential renewals with a refresh token, by result.", "result",
			resultOK, resultRefused, resultError),
		rateLimited: vec("rate_limited_total", "Requests refused with 429 by a rate limit, by limit.", "limit",
			limitLogins, limitRegistrations, limitNameLookups, limitSearches, limitContactRequests, limitDialBacks),
		dialBacks: vec("dial_backs_total", "Dial-backs to supernodes, by result (denied: a loopback, private or special address).", "result",
			resultOK, resultFailed, resultDenied, resultRateLimited),
		credentials:   prometheus.NewCounter(opts("credentials_issued_total", "Credentials signed (logins and renewals).")),
		mailboxPosted: prometheus.NewCounter(opts("mailbox_posted_bytes_total", "Bytes of mailbox items in accepted posts (duplicates included).")),
		mailboxItems: vec("mailbox_items_total", "Mailbox items stored, fetched and acknowledged (deleted).", "op",
			"stored", "fetched", "acked"),
	}
	m.all = []prometheus.Collector{m.logins, m.registrations, m.refreshes, m.rateLimited, m.dialBacks, m.credentials,
		m.mailboxPosted, m.mailboxItems, newStoreCollector(s)}
	return m
}

// storeCollector reads what the database holds when scraped: the mailbox's
// size and the supernodes listed (each query bounded by 2 s).
type storeCollector struct {
	s                                    *Server
	dbUp, mailboxBytes, mailboxItems, sn *prometheus.Desc
}

func newStoreCollector(s *Server) *storeCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, metricsSubsystemLogin, name), help, nil, nil)
	}
	return &storeCollector{s: s,
		dbUp:         d("database_up", "1 if the database answered this scrape's queries, else 0."),
		mailboxBytes: d("mailbox_bytes", "Bytes waiting in all devices' mailboxes."),
		mailboxItems: d("mailbox_items", "Items waiting in all devices' mailboxes."),
		sn:           d("supernodes_listed", "Supernodes on the list clients are given."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.dbUp
	ch <- c.mailboxBytes
	ch <- c.mailboxItems
	ch <- c.sn
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	up := 1.0
	items, bytes, err := c.s.st.mailboxTotals(ctx)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.mailboxBytes, prometheus.GaugeValue, float64(bytes))
		ch <- prometheus.MustNewConstMetric(c.mailboxItems, prometheus.GaugeValue, float64(items))
	} else {
		up = 0
	}
	if n, err := c.s.listedSupernodes(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.sn, prometheus.GaugeValue, float64(n))
	} else {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.dbUp, prometheus.GaugeValue, up)
}

// listedSupernodes counts the supernodes clients are given now.
func (s *Server) listedSupernodes(ctx context.Context) (int, error) {
	list, err := s.st.supernodes(ctx, s.now().Add(-s.cfg.SupernodeTTL), MaxSupernodes)
	return len(list), err
}
