package postgres

import (
	"context"
	"errors"
	"testing"
)

// A commit built on another waits for that one's first attempt: it goes on if it committed, is
// decided again if it did not, and stops with its context; the first outcome recorded stands.
func TestFirstOutcome(t *testing.T) {
	for _, c := range []struct {
		name     string
		resolved []bool // outcomes recorded, in order; only the first counts
		want     error
	}{
		{"committed", []bool{true}, nil},
		{"failed", []bool{false}, errPredecessorFailed},
		{"committed, then said to have failed", []bool{true, false}, nil},
		{"failed, then said to have committed", []bool{false, true}, errPredecessorFailed},
		{"not known when the context ends", nil, context.Canceled},
	} {
		o := &firstOutcome{known: make(chan struct{})}
		if o.ready() {
			t.Errorf("%s: ready before any outcome", c.name)
		}
		for _, committed := range c.resolved {
			o.resolve(committed)
		}
		if o.ready() != (len(c.resolved) > 0) {
			t.Errorf("%s: ready %v after %d outcomes", c.name, o.ready(), len(c.resolved))
		}
		ctx, cancel := context.WithCancel(context.Background())
		if c.resolved == nil {
			cancel()
		}
		if err := o.await(ctx); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: await %v, want %v", c.name, err, c.want)
		}
		cancel()
	}
}
