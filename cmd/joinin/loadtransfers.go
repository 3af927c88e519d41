package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	nethttp "net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/events"
	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

const (
	// loadAccountFunds is what each account of a transfers load run is funded with: 10,000.00
	// CNY, ten thousand of its 1.00 CNY transfers, far more than a run of minutes debits from
	// any one account, so that no transfer is refused for funds.
	loadAccountFunds = 1_000_000
	// loadTransferAmount is every load transfer's amount: 1.00 CNY.
	loadTransferAmount = "1.00"
	// loadOpenBatch is how many accounts one POST /v1/accounts of the run opens: the API's bound.
	loadOpenBatch = 10_000
	// loadFundBatch is how many funding transfers one POST /v1/transfers of the run carries:
	// well within the ledger's batch bound and the API's body bound.
	loadFundBatch = 10_000
	// loadClientTimeout bounds one request of the load client: a commit's own bound and then some.
	loadClientTimeout = 30 * time.Second
)

// transfersLoadReport is what a transfers load run prints, as JSON.
type transfersLoadReport struct {
	Accounts int `json:"accounts"`
	Clients  int `json:"clients"`
	// PerRequest is the transfers each request carried.
	PerRequest int                  `json:"transfers_per_request"`
	Phases     []transfersLoadPhase `json:"phases"`
	// Verified says Store.Verify found the ledger sound after the run; Problems are what it found.
	Verified bool     `json:"verified"`
	Problems []string `json:"problems,omitempty"`
	// The goal on a two-core machine: at least 10,000 transfers/s in each phase, every transfer
	// created, no request failed (no lock timeout, no busy answer).
	GoalTransfersPerSecond float64 `json:"goal_transfers_per_second"`
}

// transfersLoadPhase is one phase's figures; latencies are the requests'.
type transfersLoadPhase struct {
	Name               string  `json:"name"`
	Seconds            float64 `json:"seconds"`
	Requests           int64   `json:"requests"`
	Transfers          int64   `json:"transfers"`
	TransfersPerSecond float64 `json:"transfers_per_second"`
	P50Ms              float64 `json:"p50_ms"`
	P99Ms              float64 `json:"p99_ms"`
	MaxMs              float64 `json:"max_ms"`
	// NotCreated counts requests with a transfer the ledger refused, Errors requests that failed (a status other
	// than 200, a broken connection): both must be 0.
	NotCreated int64  `json:"not_created"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Commits is how many transactions carried the phase's transfers; TransfersPerCommit how many
	// each carried on average.
	Commits            int64   `json:"commits"`
	TransfersPerCommit float64 `json:"transfers_per_commit"`
	// HotVersions is how many balance versions the hot account got in the phase: one per commit
	// that credited it, never one per transfer.
	HotVersions int64 `json:"hot_versions,omitempty"`
	// Retries is how many transactions were run again after a conflict with another writer.
	Retries int64 `json:"retries"`
}

func runLoadTransfers(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest-transfers", "drive POST /v1/transfers over HTTP with concurrent clients in a database of its own; print transfers/s and latency as JSON")
	nAccounts := fs.Int("accounts", 10_000, "accounts the transfers move between")
	nClients := fs.Int("clients", 16, "concurrent HTTP clients, each sending a request and waiting for its answer")
	perRequest := fs.Int("per-request", 1, "transfers in each request: 1, as a terminal sends them, or a batch, as other ledgers' load clients send theirs")
	duration := fs.Duration("duration", 20*time.Second, "how long each phase runs")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load before the first phase: connections, caches")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load phases (clients and server in this process) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest-transfers takes no arguments, got %q", fs.Args())
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	if *nAccounts < 2 || *nClients < 1 || *duration <= 0 || *warmup < 0 || *perRequest < 1 || *perRequest > ledger.MaxBatchTransfers {
		return fmt.Errorf("--accounts must be at least 2, --clients at least 1, --duration positive, --warmup not negative, --per-request from 1 to %d", ledger.MaxBatchTransfers)
	}
	// A database of its own on the server DATABASE_URL names: created, loaded, verified, dropped.
	st, _, closeStore, err := openLoadStore(ctx, c.databaseURL, "transfers_load", *keep, log)
	if err != nil {
		return err
	}
	defer closeStore()
	run, err := startTransfersLoad(ctx, st, log, *nClients)
	if err != nil {
		return err
	}
	run.perRequest = *perRequest
	defer run.stop()

	log.Info("opening and funding accounts", "accounts", *nAccounts)
	if err := run.openAccounts(ctx, *nAccounts); err != nil {
		return err
	}
	rep := transfersLoadReport{Accounts: *nAccounts, Clients: *nClients, PerRequest: *perRequest, GoalTransfersPerSecond: 10_000}
	if *warmup > 0 {
		if _, err := run.phase(ctx, "warmup", *warmup, false); err != nil {
			return err
		}
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	for _, hot := range []bool{false, true} {
		name := "uniform"
		if hot {
			name = "hot"
		}
		log.Info("load phase", "phase", name, "clients", *nClients, "duration", *duration)
		p, err := run.phase(ctx, name, *duration, hot)
		if err != nil {
			return err
		}
		rep.Phases = append(rep.Phases, p)
	}
	run.stop()
	v, err := st.Verify(ctx)
	if err != nil {
		return err
	}
	rep.Verified, rep.Problems = v.OK(), v.Problems
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	for _, p := range rep.Phases {
		if p.NotCreated > 0 || p.Errors > 0 {
			return fmt.Errorf("phase %s: %d transfers not created, %d requests failed", p.Name, p.NotCreated, p.Errors)
		}
	}
	if !rep.Verified {
		return fmt.Errorf("the ledger failed verification with %d problems", len(rep.Problems))
	}
	return nil
}

// transfersLoad is a load run: the engine's HTTP edge with the transfers API on a loopback
// listener, and the HTTP client that drives it.
type transfersLoad struct {
	st      *postgres.Store
	base    string
	token   string
	client  *nethttp.Client
	clients int
	// perRequest is the transfers each request carries.
	perRequest int
	commits    atomic.Int64
	bank       uuid.UUID
	hot        uuid.UUID
	ids        []uuid.UUID
	stop       func()
}

func startTransfersLoad(ctx context.Context, st *postgres.Store, log *slog.Logger, clients int) (*transfersLoad, error) {
	key, err := hex.DecodeString(devTokenKey)
	if err != nil {
		return nil, err
	}
	tok, err := events.NewTokenizer(key)
	if err != nil {
		return nil, err
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	run := &transfersLoad{st: st, token: hex.EncodeToString(secret[:]), clients: clients}
	tr := postgres.NewTransfers(st)
	tr.OnCommit = func(int, int, time.Duration) { run.commits.Add(1) }
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		tr.Run(runCtx)
	}()
	srv := joininhttp.NewServer(joininhttp.Config{Store: st, Broker: noBroker{}, Tokenizer: tok, AdminToken: run.token,
		Metrics: prometheus.NewRegistry(), Log: log,
		Features: []joininhttp.Feature{joininhttp.NewAccounts(st), joininhttp.NewTransfers(tr)}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancelRun()
		<-committed
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	hs := &nethttp.Server{Handler: srv.Handler(), ReadHeaderTimeout: httpReadHeaderTimeout, ReadTimeout: httpReadTimeout,
		WriteTimeout: httpWriteTimeout, IdleTimeout: httpIdleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	run.base = "http://" + ln.Addr().String()
	// Keep-alive connections, one per client, as another ledger's load client keeps them.
	run.client = &nethttp.Client{Timeout: loadClientTimeout, Transport: &nethttp.Transport{
		MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, IdleConnTimeout: time.Minute,
		DisableCompression: true, ForceAttemptHTTP2: false,
	}}
	var once sync.Once
	run.stop = func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				log.Warn("http shutdown", "err", err)
			}
			if err := <-served; err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
				log.Warn("http server", "err", err)
			}
			cancelRun()
			<-committed
		})
	}
	return run, nil
}

// noBroker is the readiness check's broker in a run that has none.
type noBroker struct{}

func (noBroker) Ping(context.Context) error { return nil }

// post sends body to path with the admin token and returns the status and the answer.
func (run *transfersLoad) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, run.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+run.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := run.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, got, err
}

// openAccounts opens a bank-like funding account with no constraint, the hot account, which only
// receives, and n accounts that may not spend more than they hold, each funded by the bank, all
// through the API.
func (run *transfersLoad) openAccounts(ctx context.Context, n int) error {
	run.bank, run.hot = uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	open := func(accounts []string) error {
		body := `{"accounts":[` + strings.Join(accounts, ",") + `]}`
		status, got, err := run.post(ctx, "/v1/accounts", []byte(body))
		if err != nil {
			return fmt.Errorf("open accounts: %w", err)
		}
		if status != nethttp.StatusCreated {
			return fmt.Errorf("open accounts: %d %s", status, got)
		}
		return nil
	}
	if err := open([]string{
		fmt.Sprintf(`{"id":%q,"name":"load funding bank","kind":"bank_settlement","currency":"CNY"}`, run.bank),
		fmt.Sprintf(`{"id":%q,"name":"load hot account","kind":"suspense","currency":"CNY"}`, run.hot),
	}); err != nil {
		return err
	}
	run.ids = make([]uuid.UUID, n)
	for i := range run.ids {
		run.ids[i] = uuid.Must(uuid.NewV7())
	}
	for from := 0; from < n; from += loadOpenBatch {
		var accounts []string
		for i := from; i < min(from+loadOpenBatch, n); i++ {
			accounts = append(accounts, fmt.Sprintf(`{"id":%q,"name":"load account %d","kind":"suspense","currency":"CNY",`+
				`"constraint":"debits_must_not_exceed_credits"}`, run.ids[i], i))
		}
		if err := open(accounts); err != nil {
			return err
		}
	}
	funds := ledger.FormatDecimal(loadAccountFunds, "CNY")
	for from := 0; from < n; from += loadFundBatch {
		var transfers []string
		for i := from; i < min(from+loadFundBatch, n); i++ {
			transfers = append(transfers, fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":%q,"currency":"CNY","code":1}`,
				uuid.Must(uuid.NewV7()), run.bank, run.ids[i], funds))
		}
		status, got, err := run.post(ctx, "/v1/transfers", []byte(`{"transfers":[`+strings.Join(transfers, ",")+`]}`))
		if err != nil {
			return fmt.Errorf("fund accounts: %w", err)
		}
		if status != nethttp.StatusOK || bytes.Count(got, []byte(`"result":"created"`)) != len(transfers) {
			return fmt.Errorf("fund accounts: %d %.300s", status, got)
		}
	}
	return nil
}

// phase runs the clients for d, each sending requests of perRequest transfers of 1.00 CNY: between
// two accounts drawn at random, or, hot, from a random account to the hot one. Latencies are per
// request; a request counts as created when every one of its transfers was.
func (run *transfersLoad) phase(ctx context.Context, name string, d time.Duration, hot bool) (transfersLoadPhase, error) {
	p := transfersLoadPhase{Name: name}
	var hotBefore int64
	if hot {
		b, err := run.st.Balance(ctx, ledger.ID(run.hot))
		if err != nil {
			return p, err
		}
		hotBefore = b.Version
	}
	type clientFigures struct {
		latencies        []time.Duration
		notCreated, errs int64
		firstErr         string
	}
	figures := make([]clientFigures, run.clients)
	// The accounts' ids as the requests spell them, once for the run rather than per request.
	names := make([]string, len(run.ids))
	for i, id := range run.ids {
		names[i] = id.String()
	}
	hotName := run.hot.String()
	commitsBefore, retriesBefore := run.commits.Load(), run.st.TxStats().Retries
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for c := range run.clients {
		wg.Go(func() {
			f := &figures[c]
			rng := mrand.New(mrand.NewPCG(uint64(c), uint64(start.UnixNano())))
			buf := make([]byte, 0, 256*run.perRequest)
			n := len(run.ids)
			conn := &loadConn{addr: strings.TrimPrefix(run.base, "http://"), token: run.token}
			defer func() {
				if err := conn.close(); err != nil && f.firstErr == "" {
					f.firstErr = fmt.Sprintf("close: %v", err)
				}
			}()
			for time.Now().Before(deadline) {
				buf = append(buf[:0], `{"transfers":[`...)
				for k := range run.perRequest {
					from := rng.IntN(n)
					to := hotName
					if !hot {
						i := rng.IntN(n - 1)
						if i >= from {
							i++
						}
						to = names[i]
					}
					if k > 0 {
						buf = append(buf, ',')
					}
					buf = append(buf, `{"id":"`...)
					buf = appendUUID(buf, uuid.Must(uuid.NewV7()))
					buf = append(buf, `","debit_account_id":"`...)
					buf = append(buf, names[from]...)
					buf = append(buf, `","credit_account_id":"`...)
					buf = append(buf, to...)
					buf = append(buf, `","amount":"`+loadTransferAmount+`","currency":"CNY"}`...)
				}
				buf = append(buf, "]}"...)
				sent := time.Now()
				status, got, err := conn.post("/v1/transfers", buf)
				f.latencies = append(f.latencies, time.Since(sent))
				switch {
				case err != nil || status != nethttp.StatusOK:
					f.errs++
					if f.firstErr == "" {
						f.firstErr = fmt.Sprintf("%d %v %.200s", status, err, got)
					}
				case bytes.Count(got, []byte(`"result":"created"`)) != run.perRequest:
					f.notCreated++
					if f.firstErr == "" {
						f.firstErr = fmt.Sprintf("%.200s", got)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, f := range figures {
		all = append(all, f.latencies...)
		p.NotCreated += f.notCreated
		p.Errors += f.errs
		if p.FirstError == "" {
			p.FirstError = f.firstErr
		}
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p.Seconds = elapsed.Seconds()
	p.Requests = int64(len(all))
	p.Transfers = p.Requests * int64(run.perRequest)
	p.TransfersPerSecond = float64(p.Transfers) / elapsed.Seconds()
	if len(all) > 0 {
		p.P50Ms, p.P99Ms, p.MaxMs = ms(all[len(all)/2]), ms(all[min(len(all)-1, len(all)*99/100)]), ms(all[len(all)-1])
	}
	p.Commits = run.commits.Load() - commitsBefore
	p.Retries = run.st.TxStats().Retries - retriesBefore
	if p.Commits > 0 {
		p.TransfersPerCommit = float64(p.Transfers) / float64(p.Commits)
	}
	if hot {
		b, err := run.st.Balance(ctx, ledger.ID(run.hot))
		if err != nil {
			return p, err
		}
		p.HotVersions = b.Version - hotBefore
	}
	return p, nil
}

// loadConn is one load client's keep-alive HTTP/1.1 connection to the engine: a request written
// whole, its response read whole, the next request only after that, as a terminal or another
// ledger's load client sends them. It spares the client the goroutines and channel hops of
// net/http's Transport, and net/http's parsing of every header into a map, which on a small
// machine take CPU from the server it measures. A connection that fails or that the server
// closes is dialled again.
type loadConn struct {
	addr, token string
	conn        net.Conn
	r           *bufio.Reader
	// deadline is when the connection's deadline falls: moved on only once less than
	// loadClientTimeout is left, so that a request has at least that long and most requests
	// pay no deadline of their own.
	deadline time.Time
	out      []byte
	got      []byte
}

// post sends body to path and returns the status and the answer, valid until the next post.
func (lc *loadConn) post(path string, body []byte) (int, []byte, error) {
	if lc.conn == nil {
		c, err := net.DialTimeout("tcp", lc.addr, loadClientTimeout)
		if err != nil {
			return 0, nil, err
		}
		lc.conn, lc.r, lc.deadline = c, bufio.NewReader(c), time.Time{}
	}
	if now := time.Now(); lc.deadline.Sub(now) < loadClientTimeout {
		lc.deadline = now.Add(2 * loadClientTimeout)
		if err := lc.conn.SetDeadline(lc.deadline); err != nil {
			return 0, nil, errors.Join(err, lc.close())
		}
	}
	out := append(lc.out[:0], "POST "...)
	out = append(out, path...)
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, lc.addr...)
	out = append(out, "\r\nAuthorization: Bearer "...)
	out = append(out, lc.token...)
	out = append(out, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n\r\n"...)
	out = append(out, body...)
	lc.out = out
	if _, err := lc.conn.Write(out); err != nil {
		return 0, nil, errors.Join(err, lc.close())
	}
	status, closing, err := lc.readResponse()
	if err != nil || closing {
		err = errors.Join(err, lc.close())
	}
	return status, lc.got, err
}

// readResponse reads one response into lc.got: its status, and whether the connection ends
// with it (Connection: close, HTTP/1.0, or a body that runs to the end of the connection). The
// body is framed by Content-Length or chunked, as net/http frames a server's answers. A line of
// the head longer than the reader's buffer (4 KiB; the engine's are under a hundred bytes)
// fails the response.
func (lc *loadConn) readResponse() (status int, closing bool, err error) {
	line, err := lc.r.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("read status line: %w", err)
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %.80q", line)
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("malformed status line %.80q", line)
		}
		status = status*10 + int(c-'0')
	}
	closing = line[7] == '0'
	length, chunked := int64(-1), false
	for {
		line, err := lc.r.ReadSlice('\n')
		if err != nil {
			return status, closing, fmt.Errorf("read header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, closing, fmt.Errorf("malformed header %.80q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return status, closing, fmt.Errorf("malformed Content-Length %.40q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return status, closing, fmt.Errorf("unsupported Transfer-Encoding %.40q", value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			closing = closing || bytes.EqualFold(value, []byte("close"))
		}
	}
	lc.got = lc.got[:0]
	switch {
	case chunked:
		if lc.got, err = readAppend(lc.got, httputil.NewChunkedReader(lc.r)); err != nil {
			return status, closing, fmt.Errorf("read chunked body: %w", err)
		}
		// The trailer, if any, ends with an empty line.
		for {
			line, err := lc.r.ReadSlice('\n')
			if err != nil {
				return status, closing, fmt.Errorf("read trailer: %w", err)
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				return status, closing, nil
			}
		}
	case length >= 0:
		lc.got = slices.Grow(lc.got, int(length))[:length]
		if _, err := io.ReadFull(lc.r, lc.got); err != nil {
			return status, closing, fmt.Errorf("read body: %w", err)
		}
		return status, closing, nil
	default:
		lc.got, err = readAppend(lc.got, lc.r)
		return status, true, err
	}
}

// readAppend appends what r holds, to its end, to b.
func readAppend(b []byte, r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(b)
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// close gives the connection up; the next post dials again.
func (lc *loadConn) close() error {
	if lc.conn == nil {
		return nil
	}
	err := lc.conn.Close()
	lc.conn, lc.r = nil, nil
	return err
}

// appendUUID appends id in its 8-4-4-4-12 form.
func appendUUID(b []byte, id uuid.UUID) []byte { return ledger.ID(id).Append(b) }
