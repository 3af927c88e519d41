package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/postgres"
)

const (
	// lagInterval is how often the watchdog measures every partition's lag and looks for
	// partitions that stopped moving.
	lagInterval = 5 * time.Second
	// stallWarnAfter is how long a partition's events may wait, its cursor standing still,
	// before the watchdog warns: the consumer group's session timeout, after which the
	// coordinator should have expired a member that died holding the partition.
	stallWarnAfter = kafka.DefaultSessionTimeout
	// stallRejoinAfter is how long a partition's events may wait before this process rejoins the
	// group: the longest a healthy failover takes (a session timeout for the coordinator to
	// expire a dead member, then a rebalance timeout for the others to rejoin). Past it the
	// partition belongs to a member that does not consume it and that the coordinator does not
	// expire: one killed where the broker lost track of it, or one whose work hangs while it
	// heartbeats. Leaving and rejoining makes the coordinator rebalance, and a member that
	// cannot rejoin is dropped from the group.
	stallRejoinAfter = kafka.DefaultSessionTimeout + kafka.DefaultRebalanceTimeout
	// minRejoinInterval bounds the watchdog's rejoins to one a minute. A member that is gone is
	// dropped by the first; a stall a rebalance does not cure (a database refusing every batch)
	// then costs the group one rebalance's pause a minute, not a storm of them.
	minRejoinInterval = time.Minute
)

// watch measures, every lagInterval, how far each partition's database cursor is behind the
// broker and how long ago it last moved, and asks RunGroup (through rejoin) to leave and rejoin
// the group when partitions with events waiting stand still for longer than a failover takes.
// It watches every partition of the topic, not only this process's: a partition held by a member
// that is gone reaches no live fetcher, but its cursor and the broker's end of it are there for
// every process to read. A forced rebalance is safe: a cursor moves only from the position its
// batch read, so a partition's old and new owners never both commit a batch.
func (c *Consumer) watch(ctx context.Context, rejoin chan<- struct{}) {
	w := &watchdog{topic: c.cfg.Topic, log: c.cfg.Log, metrics: c.cfg.Metrics, parts: map[int]*partitionWatch{}}
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		marks, err := kafka.HighWatermarks(ctx, c.cfg.Brokers, c.cfg.Topic)
		if err != nil {
			c.cfg.Log.Debug("measure lag", "err", err)
			continue
		}
		if c.look(ctx, w, marks) {
			select {
			case rejoin <- struct{}{}:
			default: // a rejoin is already asked for
			}
		}
	}
}

// look takes one measurement against the broker's ends of the partitions (marks) and says
// whether to rejoin the group. When the cursors cannot be read (the database is down), none of
// them moves: the lag is the broker's end beyond the cursors last read, and grows as events
// arrive, as does the time since the last commit. The metrics say so rather than keep the values
// of the last look, and nothing is decided on them.
func (c *Consumer) look(ctx context.Context, w *watchdog, marks map[int]int64) bool {
	names := make([]string, 0, len(marks))
	for p := range marks {
		names = append(names, partitionName(c.cfg.Topic, p))
	}
	cursors, err := c.store.Cursors(ctx, names)
	if err != nil {
		c.cfg.Log.Debug("measure lag", "err", err)
		if w.cursors != nil {
			w.measure(c.cfg.Now(), marks, w.cursors)
		}
		return false
	}
	w.cursors = cursors
	return w.observe(c.cfg.Now(), marks, cursors)
}

func partitionName(topic string, p int) string {
	return kafka.Claim{Topic: topic, Partition: p}.String()
}

// watchdog is the state of Consumer.watch between measurements.
type watchdog struct {
	topic   string
	log     *slog.Logger
	metrics *Metrics // nil: no metrics
	parts   map[int]*partitionWatch
	// cursors are the partitions' cursors as last read.
	cursors map[string]postgres.CursorState
	// rejoined is when the watchdog last asked for a rejoin; zero if never.
	rejoined time.Time
}

type partitionWatch struct {
	position int64
	// waitingSince is when the partition's events started waiting: when its cursor last moved,
	// or when events arrived while none were waiting, or when the watchdog first saw it or last
	// asked for a rejoin (each gives the group a full failover's time). Zero while none wait.
	waitingSince time.Time
	warned       bool
}

// observe takes one measurement at now: each partition's end in the broker (marks) and its
// database cursor (cursors, by name; absent if never written). It sets the metrics, warns once
// about each partition whose events have waited for longer than stallWarnAfter, and returns true
// when this process should rejoin the group: some partition's events have waited for
// stallRejoinAfter, and the last rejoin it asked for is minRejoinInterval old.
func (w *watchdog) observe(now time.Time, marks map[int]int64, cursors map[string]postgres.CursorState) bool {
	parts := make([]int, 0, len(marks))
	for p := range marks {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var stalled []string
	for _, p := range parts {
		name := partitionName(w.topic, p)
		cur, committed := cursors[name]
		lag, age := w.measureOne(now, p, marks[p], cur, committed)

		pw, seen := w.parts[p]
		if !seen {
			pw = &partitionWatch{position: cur.Position}
			w.parts[p] = pw
		}
		switch {
		case lag == 0:
			pw.waitingSince, pw.warned = time.Time{}, false
		case cur.Position != pw.position || pw.waitingSince.IsZero():
			pw.waitingSince, pw.warned = now, false
		}
		pw.position = cur.Position
		if lag == 0 {
			continue
		}
		waited := now.Sub(pw.waitingSince)
		if waited >= stallWarnAfter && !pw.warned {
			pw.warned = true
			w.log.Warn("partition with events waiting has not committed for longer than the session timeout",
				"partition", name, "lag", lag, "offset", cur.Position, "waiting", waited.Round(time.Second),
				"since_last_commit", commitAge(committed, age))
		}
		if waited >= stallRejoinAfter {
			stalled = append(stalled, name)
		}
	}
	if len(stalled) == 0 || (!w.rejoined.IsZero() && now.Sub(w.rejoined) < minRejoinInterval) {
		return false
	}
	w.log.Warn("partitions with events waiting have not moved for longer than a failover takes: rejoining the consumer group so that it rebalances",
		"partitions", stalled, "after", stallRejoinAfter)
	w.rejoined = now
	for _, pw := range w.parts {
		if !pw.waitingSince.IsZero() {
			pw.waitingSince, pw.warned = now, false
		}
	}
	if w.metrics != nil {
		w.metrics.ForcedRejoins.Inc()
	}
	return true
}

// measure sets the metrics of every partition from its end in the broker and its cursor.
func (w *watchdog) measure(now time.Time, marks map[int]int64, cursors map[string]postgres.CursorState) {
	for p, mark := range marks {
		cur, committed := cursors[partitionName(w.topic, p)]
		w.measureOne(now, p, mark, cur, committed)
	}
}

// measureOne sets partition p's lag and the age of its last commit, and returns them.
func (w *watchdog) measureOne(now time.Time, p int, mark int64, cur postgres.CursorState, committed bool) (int64, time.Duration) {
	lag := max(mark-cur.Position, 0)
	var age time.Duration
	if committed {
		age = max(now.Sub(cur.UpdatedAt), 0)
	}
	if m := w.metrics; m != nil {
		label := strconv.Itoa(p)
		m.Lag.WithLabelValues(label).Set(float64(lag))
		if committed {
			m.CommitAge.WithLabelValues(label).Set(age.Seconds())
		}
	}
	return lag, age
}

func commitAge(committed bool, age time.Duration) string {
	if !committed {
		return "never"
	}
	return fmt.Sprint(age.Round(time.Second))
}
