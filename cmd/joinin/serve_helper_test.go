package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// inProcessServe is `joinin serve` running in the test's process.
type inProcessServe struct {
	addr    string // where it serves HTTP
	brokers string // the brokers it consumes from, comma-separated
	out     *lockedBuffer
	errs    *lockedBuffer
	cancel  context.CancelFunc
	done    chan error
}

// startServe runs serve with args (those after "serve") and waits until it serves HTTP.
func startServe(t *testing.T, args ...string) *inProcessServe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &inProcessServe{out: &lockedBuffer{}, errs: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, append([]string{"serve"}, args...), s.out, s.errs) }()
	for deadline := time.Now().Add(60 * time.Second); s.addr == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start:\n%s\n%s", s.out.String(), s.errs.String())
		}
		select {
		case err := <-s.done:
			cancel()
			t.Fatalf("serve stopped: %v\n%s", err, s.errs.String())
		default:
		}
		// "serving HTTP on ADDR, consuming TOPIC from BROKERS\n"
		line, _, complete := strings.Cut(s.out.String(), "\n")
		if rest, ok := strings.CutPrefix(line, "serving HTTP on "); ok && complete {
			s.addr, rest, _ = strings.Cut(rest, ",")
			_, s.brokers, _ = strings.Cut(rest, " from ")
		}
	}
	return s
}

// stop stops serve and returns how it ended.
func (s *inProcessServe) stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("serve did not stop")
	}
}
