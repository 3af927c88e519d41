package consumer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the consumer's Prometheus series.
type Metrics struct {
	// Events counts consumed events by type and result: applied, accepted, rejected (its reason is
	// in the dead letter), duplicate, conflict, malformed.
	Events *prometheus.CounterVec
	// BatchEvents is the number of events per committed transaction.
	BatchEvents prometheus.Histogram
	// Seconds times the phases of a batch: decode, ingest (read, decide, apply, write) and commit.
	Seconds *prometheus.HistogramVec
	// Lag is, per partition, how many offsets the broker holds beyond the database's cursor.
	Lag *prometheus.GaugeVec
	// CommitAge is, per partition, the seconds since a transaction last moved its database
	// cursor (by whichever engine process): with Lag above zero, how long its events have been
	// waiting. A partition never committed has no value.
	CommitAge *prometheus.GaugeVec
	// ForcedRejoins counts the times the watchdog made this process leave and rejoin the
	// consumer group because partitions with lag stopped moving.
	ForcedRejoins prometheus.Counter
	// DeadLetters counts dead letters relayed to the dead-letter topic.
	DeadLetters prometheus.Counter
	// Retries counts batches that failed and were tried again.
	Retries prometheus.Counter
	// ConflictRetries counts the transaction attempts of batches after their first: a batch's
	// transaction run again whole because it collided with another writer (another process's
	// batch, the authorization committer, the expiry sweep) on an account's balance version. Over
	// joinin_batch_events_count it is the retries per batch.
	ConflictRetries prometheus.Counter
	// Splits counts batches committed in halves because they could not be applied whole (too
	// many transfers for one ledger batch, or an event the database refuses).
	Splits prometheus.Counter
	// Poison counts events that could never be applied and became dead letters alone.
	Poison prometheus.Counter
}

// NewMetrics creates the consumer's series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "joinin_events_total", Help: "Card events consumed, by type and result.",
		}, []string{"type", "result"}),
		BatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "joinin_batch_events", Help: "Events per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 .. 16384
		}),
		Seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "joinin_batch_seconds", Help: "Time per batch phase: decode, ingest, commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
		}, []string{"phase"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "joinin_partition_lag", Help: "Offsets in the broker beyond the database cursor, per partition.",
		}, []string{"partition"}),
		CommitAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "joinin_partition_commit_age_seconds", Help: "Seconds since the partition's database cursor last moved, per partition.",
		}, []string{"partition"}),
		ForcedRejoins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_consumer_forced_rejoins_total", Help: "Times this process rejoined the consumer group because partitions with lag stopped moving.",
		}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_dead_letters_total", Help: "Dead letters relayed to the dead-letter topic.",
		}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_batch_retries_total", Help: "Batches that failed and were tried again.",
		}),
		ConflictRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_batch_conflict_retries_total", Help: "Transaction attempts of batches after their first, each after a conflict with another writer.",
		}),
		Splits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_batch_splits_total", Help: "Batches committed in halves because they could not be applied whole.",
		}),
		Poison: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "joinin_poison_events_total", Help: "Events that could never be applied and became dead letters alone.",
		}),
	}
	reg.MustRegister(m.Events, m.BatchEvents, m.Seconds, m.Lag, m.CommitAge, m.ForcedRejoins, m.DeadLetters, m.Retries,
		m.ConflictRetries, m.Splits, m.Poison)
	return m
}
