package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

// The HTTP doors' crash tests share this harness: a `joinin serve` process on a database of the
// test's own, killed with SIGKILL httpCrashKills times while clients send, started again each
// time on the same address; then every request sent again until it is answered.
const (
	// httpCrashKills is how many times the server is killed while the clients send.
	httpCrashKills = 3
	// httpCrashRequestTimeout bounds one request: a server killed mid-request answers nothing.
	httpCrashRequestTimeout = 3 * time.Second
	// httpCrashRetries bound the retries of a request that was never answered, once the server is
	// up for good.
	httpCrashRetries = 50
	// httpCrashPause is how long a client waits after a request that got no answer, as a
	// terminal would before trying again.
	httpCrashPause = 20 * time.Millisecond
)

// crashServer is the server a crash test kills, with the client that talks to it.
type crashServer struct {
	t      *testing.T
	url    string // the database's
	addr   string // the server's, the same after every restart
	admin  string // the admin's bearer token
	proc   *engineProc
	client *nethttp.Client
}

// startCrashServer starts `joinin serve` on the database at url.
func startCrashServer(t *testing.T, url string) *crashServer {
	s := &crashServer{t: t, url: url, addr: freeTCPAddr(t), admin: "crash-test-admin",
		client: &nethttp.Client{Timeout: httpCrashRequestTimeout}}
	s.start()
	return s
}

// start starts the server (again), with extra flags.
func (s *crashServer) start(extra ...string) {
	args := append([]string{"serve", "--database-url", s.url, "--http-addr", s.addr, "--admin-token", s.admin,
		"--token-key", devTokenKey, "--settle-grace", "0", "--log-level", "warn"}, extra...)
	s.proc = startJoinin(s.t, "serve", args...)
}

// post sends body to path with the bearer key and, unless idem is empty, the Idempotency-Key.
func (s *crashServer) post(key, path, idem string, body []byte) (int, nethttp.Header, []byte, error) {
	req, err := nethttp.NewRequestWithContext(context.Background(), nethttp.MethodPost, "http://"+s.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, got, err
}

// get reads path without credentials.
func (s *crashServer) get(path string) ([]byte, error) {
	resp, err := s.client.Get("http://" + s.addr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// crashCall is one request a client made. send sends it (again), checks the answer against the
// one before, if any, and reports whether an answer came: a server that is down, or goes down
// while it works, gives none.
type crashCall interface {
	send() (answered bool, err error)
}

// driveThroughKills has clients send calls made by next, each waiting for its answer, until the
// server has been killed and started again httpCrashKills times. It returns every call made and
// how many got no answer.
func (s *crashServer) driveThroughKills(clients int, next func(rng *rand.Rand) crashCall) ([]crashCall, int) {
	var (
		mu         sync.Mutex
		calls      []crashCall
		unanswered int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 17))
			for {
				select {
				case <-stop:
					return
				default:
				}
				call := next(rng)
				ok, err := call.send()
				mu.Lock()
				calls = append(calls, call)
				if !ok {
					unanswered++
				}
				mu.Unlock()
				if err != nil {
					s.t.Error(err)
				}
				if !ok {
					time.Sleep(httpCrashPause)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range httpCrashKills {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		s.proc.kill(s.t)
		s.start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if unanswered == 0 {
		s.t.Errorf("%d requests, every one answered: the kills should land mid-request", len(calls))
	}
	return calls, unanswered
}

// resend sends every call again until it is answered.
func (s *crashServer) resend(calls []crashCall) {
	for _, call := range calls {
		for attempt := 0; ; attempt++ {
			ok, err := call.send()
			if err != nil {
				s.t.Fatal(err)
			}
			if ok {
				break
			}
			if attempt == httpCrashRetries {
				s.t.Fatalf("no answer after %d retries:\n%s", httpCrashRetries, s.proc.errs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// fundedCity registers a city of n cards on the database at url, each funded with funds fen,
// through the engine as the issuer banks' events would, and returns it with a store on the
// database, closed when the test ends.
func fundedCity(t *testing.T, url string, seed uint64, n int, funds int64) (*loadtest.City, *postgres.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	city := loadtest.NewCity(seed, n, 0, time.Now().Add(-time.Hour))
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []clearing.Message
	for i, e := range append(city.Registrations(), city.Funding(funds, funds)...) {
		raw := loadtest.Encode(e)
		dec, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, clearing.Message{Source: "crash-test", Offset: int64(i), Raw: raw, Event: dec})
	}
	if _, err := st.Ingest(ctx, nil, msgs); err != nil {
		t.Fatal(err)
	}
	return city, st
}
