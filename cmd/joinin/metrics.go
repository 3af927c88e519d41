package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serveMetrics are serve's own series, beside the consumer's, the purchase committer's and the
// clock's.
type serveMetrics struct {
	// httpSeconds times answered requests by route (the pattern, never the path) and status class.
	httpSeconds *prometheus.HistogramVec
	// holdsExpired counts holds the sweep released after their timeout.
	holdsExpired prometheus.Counter
	// cyclesClosed counts settlement cycles closed by serve; closeSeconds times each close;
	// closeFailed counts closes that failed and wait for the next try.
	cyclesClosed prometheus.Counter
	closeSeconds prometheus.Histogram
	closeFailed  prometheus.Counter
	// verifications counts serve's verifications of the ledger by result (ok, problems, error);
	// verifyProblems is the last finished one's count of problems; checkpointedDays counts the
	// closed days they checkpointed.
	verifications    *prometheus.CounterVec
	verifyProblems   prometheus.Gauge
	checkpointedDays prometheus.Counter
	// sharedBuffers and balanceKey are PostgreSQL's shared buffers and the balance history's
	// key, in bytes, as serve last read them: the key outgrowing the buffers slows the consumer.
	sharedBuffers prometheus.Gauge
	balanceKey    prometheus.Gauge
	// calendarDaysLeft is how many days are left before the first cycle whose value date the
	// business-day calendar cannot give (calendarWarnAhead: that many or more).
	calendarDaysLeft prometheus.Gauge
	// medicalPolicyDaysLeft is how many days are left before the first day on which a city whose
	// medical policy is in force today has none (policyWarnAhead: that many or more).
	medicalPolicyDaysLeft prometheus.Gauge
}

func newServeMetrics(reg prometheus.Registerer) *serveMetrics {
	m := &serveMetrics{
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "joinin_http_request_seconds", Help: "Time to answer an HTTP request, by route and status class.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
		}, []string{"route", "status"}),
		holdsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_holds_expired_total", Help: "Holds released by the expiry sweep after their timeout.",
		}),
		cyclesClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_settlement_cycles_closed_total", Help: "Settlement cycles closed by serve after their cut-off.",
		}),
		closeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "joinin_settlement_close_seconds", Help: "Time to close a settlement cycle: items, postings and files.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 12), // 0.1 s .. 3.4 min
		}),
		closeFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_settlement_close_failures_total", Help: "Closes of a due settlement cycle that failed and wait for the next try.",
		}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "joinin_ledger_verifications_total", Help: "Verifications of the ledger serve ran, by result: ok, problems or error.",
		}, []string{"result"}),
		verifyProblems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "joinin_ledger_verification_problems", Help: "Problems the last finished verification of the ledger found: anything above 0 is an incident.",
		}),
		checkpointedDays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_ledger_checkpointed_days_total", Help: "Closed days serve verified and checkpointed.",
		}),
		sharedBuffers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "joinin_database_shared_buffers_bytes", Help: "PostgreSQL's shared buffers (0 on CockroachDB).",
		}),
		balanceKey: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "joinin_database_balance_key_bytes", Help: "Size of the balance history's primary key (0 on CockroachDB): above the shared buffers, each batch reads its cards' balance pages from outside them.",
		}),
		calendarDaysLeft: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "joinin_settlement_calendar_days_left",
			Help: "Days before the first settlement cycle whose value date the business-day calendar cannot give, a year it has no file for (60: that many or more).",
		}),
		medicalPolicyDaysLeft: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "joinin_medical_policy_days_left",
			Help: "Days before the first day on which a city whose medical policy settles today's bills has none, a year not added yet (60: that many or more).",
		}),
	}
	reg.MustRegister(m.httpSeconds, m.holdsExpired, m.cyclesClosed, m.closeSeconds, m.closeFailed,
		m.verifications, m.verifyProblems, m.checkpointedDays, m.sharedBuffers, m.balanceKey, m.calendarDaysLeft,
		m.medicalPolicyDaysLeft)
	return m
}

// observeRequest records an answered request.
func (m *serveMetrics) observeRequest(route string, status int, took time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.httpSeconds.WithLabelValues(route, strconv.Itoa(status/100)+"xx").Observe(took.Seconds())
}
