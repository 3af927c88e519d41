package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	// authLoadCardFunds is what each card of an authorization load run is loaded with: 10,000.00
	// CNY, ten thousand of its 1.00 CNY holds, far more than a run of minutes holds on any one
	// card, so that every authorization is approved.
	authLoadCardFunds = 1_000_000
	// authLoadAmount is every load authorization's amount: 1.00 CNY.
	authLoadAmount = "1.00"
	// authLoadIngestBatch is how many registration and funding events one ingest of the setup
	// carries: a few milliseconds of the engine's work each.
	authLoadIngestBatch = 2_000
	// authLoadPrefillChunk is how many earlier requests one prefill statement writes: large enough
	// that statements cost nothing beside the rows, small enough that each stays seconds long.
	authLoadPrefillChunk = 500_000
	// authLoadPrefillDays spreads the earlier requests over the month before the run, so that
	// none counts toward a card's approvals of the run's day, as yesterday's do not.
	authLoadPrefillDays = 30
	// authLoadGoalP99Ms is the latency bound the sweep looks for the highest rate under.
	authLoadGoalP99Ms = 10
	// authLoadMaxOpenConns bounds the open-loop client's connections: rate × latency in flight,
	// with room for a stall of the server, like the gateways of a city's terminals.
	authLoadMaxOpenConns = 512
)

// authLoadReport is what an authorization load run prints, as JSON.
type authLoadReport struct {
	Cards             int     `json:"cards"`
	Merchants         int     `json:"merchants"`
	PrefilledRequests int     `json:"prefilled_requests"`
	PrefillSeconds    float64 `json:"prefill_seconds,omitempty"`
	// Open is the open-loop phase at the offered rate (--rate).
	Open authLoadPhase `json:"open"`
	// Sweep steps the offered rate up until p99 reaches the bound; MaxRateP99Under10Ms is the
	// highest offered rate whose p99 stayed under it, every request approved.
	Sweep               []authLoadPhase `json:"sweep,omitempty"`
	MaxRateP99Under10Ms float64         `json:"max_rate_p99_under_10ms"`
	// Closed is the closed-loop phase: --clients clients, each waiting for its answer.
	Closed authLoadPhase `json:"closed"`
	// Verified says Store.Verify found the ledger sound after the run (not run on prefilled
	// tables, whose earlier holds were written beside the ledger, not through it).
	Verified *bool    `json:"verified,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// The goals: p99 under 5 ms at 2,000/s open loop; 16 clients at least 5,000/s with p99 under 10 ms.
	GoalOpenP99Ms       float64 `json:"goal_open_p99_ms"`
	GoalClosedPerSecond float64 `json:"goal_closed_per_second"`
	GoalClosedP99Ms     float64 `json:"goal_closed_p99_ms"`
	// LoadAverageAtStart is the machine's load average when the run began: the figures are only
	// as quiet as the machine was.
	LoadAverageAtStart string `json:"load_average_at_start,omitempty"`
}

// authLoadPhase is one phase's figures.
type authLoadPhase struct {
	Name string `json:"name"`
	// OfferedRate is the open loop's rate, requests/s; Clients the closed loop's clients.
	OfferedRate       float64 `json:"offered_rate,omitempty"`
	Clients           int     `json:"clients,omitempty"`
	Seconds           float64 `json:"seconds"`
	Requests          int64   `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	P50Ms             float64 `json:"p50_ms"`
	P99Ms             float64 `json:"p99_ms"`
	P999Ms            float64 `json:"p999_ms"`
	MaxMs             float64 `json:"max_ms"`
	// NotApproved counts authorizations answered but not approved, Errors requests that failed
	// (a status other than 201, a broken connection): both must be 0.
	NotApproved int64  `json:"not_approved"`
	Errors      int64  `json:"errors"`
	FirstError  string `json:"first_error,omitempty"`
	// Commits is how many purchase transactions carried the phase; RequestsPerCommit how many
	// requests each carried on average, CommitP50Ms and CommitP99Ms how long each took.
	Commits           int64   `json:"commits"`
	RequestsPerCommit float64 `json:"requests_per_commit"`
	CommitP50Ms       float64 `json:"commit_p50_ms"`
	CommitP99Ms       float64 `json:"commit_p99_ms"`
	// EngineCPUUsPerRequest is this process's CPU (the engine and the load client in it) per
	// request, DatabaseCPUUsPerRequest that of the PostgreSQL backends of the run's database, in
	// microseconds: what a request costs, whatever else loads the machine.
	EngineCPUUsPerRequest   float64 `json:"engine_cpu_us_per_request,omitempty"`
	DatabaseCPUUsPerRequest float64 `json:"database_cpu_us_per_request,omitempty"`
}

func runLoadAuth(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest-auth", "drive POST /v1/authorizations over HTTP in a database of its own: open loop at a rate, a rate sweep, closed loop with concurrent clients; print latency and authorizations/s as JSON")
	nCards := fs.Int("cards", 10_000, "cards the authorizations are spread over, each funded far beyond what the run holds")
	nMerchants := fs.Int("merchants", 1, "merchants taking the authorizations, in turn")
	rate := fs.Float64("rate", 2000, "open-loop phase: authorizations/s offered, each sent on schedule whatever the answers before it")
	duration := fs.Duration("duration", 10*time.Second, "how long the open-loop and closed-loop phases run")
	sweep := fs.String("sweep", "1000,2000,3000,4000,5000,6000,8000,10000", "open-loop rates stepped up, comma-separated, until p99 reaches 10 ms; empty skips the sweep")
	sweepDuration := fs.Duration("sweep-duration", 4*time.Second, "how long each step of the sweep runs")
	nClients := fs.Int("clients", 16, "closed-loop phase: concurrent clients, each sending one authorization and waiting for its answer")
	prefill := fs.Int("prefill-requests", 0, "earlier authorizations written into the purchase and hold tables before the run, unmeasured: the run then measures tables that are not empty")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load before the first phase: connections, caches")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured phases to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest-auth takes no arguments, got %q", fs.Args())
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	rates, err := parseRates(*sweep)
	if err != nil {
		return fmt.Errorf("--sweep: %w", err)
	}
	if *nCards < 1 || *nMerchants < 1 || *nClients < 1 || *rate <= 0 || *duration <= 0 || *sweepDuration <= 0 || *prefill < 0 || *warmup < 0 {
		return errors.New("--cards, --merchants and --clients at least 1, --rate and the durations positive, --prefill-requests and --warmup not negative")
	}
	// The engine runs with the memory settings serve gives it.
	engineMemory(defaultMemoryLimitMiB)
	rep := authLoadReport{Cards: *nCards, Merchants: *nMerchants, PrefilledRequests: *prefill,
		GoalOpenP99Ms: 5, GoalClosedPerSecond: 5000, GoalClosedP99Ms: authLoadGoalP99Ms, LoadAverageAtStart: loadAverage()}

	st, url, closeStore, err := openLoadStore(ctx, c.databaseURL, "auth_load", *keep, log)
	if err != nil {
		return err
	}
	defer closeStore()
	run, err := startAuthLoad(ctx, st, log)
	if err != nil {
		return err
	}
	defer run.stop()
	if cfg, err := pgx.ParseConfig(url); err == nil {
		run.dbName = cfg.Database
	}
	log.Info("registering cards and merchants", "cards", *nCards, "merchants", *nMerchants)
	if err := run.register(ctx, *nCards, *nMerchants); err != nil {
		return err
	}
	if *prefill > 0 {
		log.Info("prefilling earlier authorizations", "requests", *prefill)
		began := time.Now()
		if err := run.prefill(ctx, url, *prefill); err != nil {
			return err
		}
		if err := settleTables(ctx, st); err != nil {
			return err
		}
		rep.PrefillSeconds = time.Since(began).Seconds()
	}
	if *warmup > 0 {
		if _, err := run.openLoop(ctx, "warmup", min(*rate, 1000), *warmup); err != nil {
			return err
		}
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	log.Info("open loop", "rate", *rate, "duration", *duration)
	if rep.Open, err = run.openLoop(ctx, "open", *rate, *duration); err != nil {
		return err
	}
	for _, r := range rates {
		log.Info("sweep", "rate", r, "duration", *sweepDuration)
		p, err := run.openLoop(ctx, "sweep", r, *sweepDuration)
		if err != nil {
			return err
		}
		rep.Sweep = append(rep.Sweep, p)
		if p.P99Ms >= authLoadGoalP99Ms || p.Errors > 0 || p.NotApproved > 0 {
			break
		}
		rep.MaxRateP99Under10Ms = r
	}
	log.Info("closed loop", "clients", *nClients, "duration", *duration)
	if rep.Closed, err = run.closedLoop(ctx, *nClients, *duration); err != nil {
		return err
	}
	run.stop()
	if *prefill == 0 {
		v, err := st.Verify(ctx)
		if err != nil {
			return err
		}
		ok := v.OK()
		rep.Verified, rep.Problems = &ok, v.Problems
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	for _, p := range append([]authLoadPhase{rep.Open, rep.Closed}, rep.Sweep...) {
		if p.NotApproved > 0 || p.Errors > 0 {
			return fmt.Errorf("phase %s at %.0f/s: %d authorizations not approved, %d requests failed: %s", p.Name, p.OfferedRate,
				p.NotApproved, p.Errors, p.FirstError)
		}
	}
	if rep.Verified != nil && !*rep.Verified {
		return fmt.Errorf("the ledger failed verification with %d problems", len(rep.Problems))
	}
	return nil
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("%q is not a positive rate", f)
		}
		out = append(out, r)
	}
	return out, nil
}

// loadAverage is the machine's load average as /proc says it, "" where it does not.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(raw)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// authLoad is an authorization load run: the engine's HTTP edge with the purchase API on a
// loopback listener, the purchase committer behind it, and the client that drives it.
type authLoad struct {
	st     *postgres.Store
	base   string
	admin  string
	client *nethttp.Client
	cards  []string
	keys   []string // the merchants' API keys
	ids    []string // the merchants' ids
	seq    atomic.Int64
	mu     sync.Mutex
	commit []time.Duration // every commit's time, as the committer reports them
	dbName string          // the run's database, whose backends' CPU each phase reports
	stop   func()
}

func startAuthLoad(ctx context.Context, st *postgres.Store, log *slog.Logger) (*authLoad, error) {
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
	run := &authLoad{st: st, admin: hex.EncodeToString(secret[:])}
	p, err := postgres.NewPurchases(st)
	if err != nil {
		return nil, err
	}
	p.OnCommit = func(_ int, took time.Duration) {
		run.mu.Lock()
		run.commit = append(run.commit, took)
		run.mu.Unlock()
	}
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		p.Run(runCtx)
	}()
	srv, err := startHTTP(ctx, httpConfig{addr: "127.0.0.1:0", store: st, tokenizer: tok, adminToken: run.admin,
		metrics: prometheus.NewRegistry(), log: log, features: []joininhttp.Feature{joininhttp.NewPurchases(p)}})
	if err != nil {
		cancelRun()
		<-committed
		return nil, err
	}
	run.base = "http://" + srv.addr
	// Keep-alive connections, as the gateways of a city's terminals keep them.
	run.client = &nethttp.Client{Timeout: loadClientTimeout, Transport: &nethttp.Transport{
		MaxIdleConns: authLoadMaxOpenConns, MaxIdleConnsPerHost: authLoadMaxOpenConns, MaxConnsPerHost: authLoadMaxOpenConns,
		IdleConnTimeout: time.Minute, DisableCompression: true, ForceAttemptHTTP2: false,
	}}
	var once sync.Once
	run.stop = func() {
		once.Do(func() {
			srv.stop()
			cancelRun()
			<-committed
		})
	}
	return run, nil
}

// post sends body to path with the bearer key and the Idempotency-Key idem (none when empty),
// and returns the status and the answer.
func (run *authLoad) post(ctx context.Context, path, key, idem string, body []byte) (int, []byte, error) {
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, run.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := run.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, got, err
}

// register registers a city's cards and funds them, through the engine as the issuer banks'
// events would, and registers merchants over the admin API, keeping their keys.
func (run *authLoad) register(ctx context.Context, nCards, nMerchants int) error {
	city := loadtest.NewCity(12, nCards, 0, time.Now().Add(-time.Hour))
	for _, p := range city.Parties() {
		if _, err := run.st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			return err
		}
	}
	evs := append(city.Registrations(), city.Funding(authLoadCardFunds, authLoadCardFunds)...)
	for from := 0; from < len(evs); from += authLoadIngestBatch {
		var msgs []clearing.Message
		for i := from; i < min(from+authLoadIngestBatch, len(evs)); i++ {
			raw := loadtest.Encode(evs[i])
			dec, err := events.Decode(raw)
			if err != nil {
				return err
			}
			msgs = append(msgs, clearing.Message{Source: "auth-load", Offset: int64(i), Raw: raw, Event: dec})
		}
		d, err := run.st.Ingest(ctx, nil, msgs)
		if err != nil {
			return fmt.Errorf("register and fund cards: %w", err)
		}
		for _, p := range d.Processed {
			if p.Status != clearing.Applied && p.Status != clearing.Accepted {
				return fmt.Errorf("register and fund cards: an event was %s", p.Status)
			}
		}
	}
	run.cards = city.Cards
	for i := range nMerchants {
		id := fmt.Sprintf("load-shop-%03d", i+1)
		body, err := json.Marshal(map[string]string{"id": id, "name": "load shop " + strconv.Itoa(i+1), "mcc": "5411",
			"city": city.Cities[0], "acquiring_bank": city.Banks[0], "fee_plan": loadtest.MerchantFeePlan})
		if err != nil {
			return err
		}
		status, got, err := run.post(ctx, "/v1/merchants", run.admin, "", body)
		if err != nil {
			return fmt.Errorf("register merchant: %w", err)
		}
		var v struct {
			APIKey string `json:"api_key"`
		}
		if status != nethttp.StatusCreated || json.Unmarshal(got, &v) != nil || v.APIKey == "" {
			return fmt.Errorf("register merchant: %d %.300s", status, got)
		}
		run.keys, run.ids = append(run.keys, v.APIKey), append(run.ids, id)
	}
	return nil
}

// prefill writes n earlier authorizations of the run's merchants and cards, spread over the month
// before the run, as the engine would have written them: each with its idempotency record, its
// hold and the hold's expiry. They are written by the database itself, in a few statements, beside
// the ledger rather than through it: the balances do not include them, which is why a prefilled
// run is not verified. Their secondary indexes are built after the rows, under the names and
// definitions the migrations gave them, and the tables analyzed, as autovacuum would after so many
// rows.
func (run *authLoad) prefill(ctx context.Context, url string, n int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The funds account of each card, by the card's position in the run's list.
	if _, err := conn.Exec(ctx, `CREATE TEMPORARY TABLE prefill_cards AS
		SELECT k.n - 1 AS n, c.card_token, c.funds_account_id
		FROM unnest($1::TEXT[]) WITH ORDINALITY AS k(card_token, n) JOIN cards c ON c.card_token = k.card_token`, run.cards); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	// The secondary indexes of the tables are dropped while the rows go in and built again after,
	// under their own names and definitions: one sort each rather than ten million probes at
	// random places.
	const tables = `'purchase_authorizations', 'purchase_requests', 'transfers', 'transfer_resolutions'`
	var names, defs []string
	rows, err := conn.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND i.tablename IN (`+tables+`)
			AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`)
	if err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
		names, defs = append(names, name), append(defs, def)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	for _, name := range names {
		if _, err := conn.Exec(ctx, "DROP INDEX "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("prefill: drop index %s: %w", name, err)
		}
	}
	end := time.Now().UTC().Add(-24 * time.Hour)
	span := time.Duration(authLoadPrefillDays) * 24 * time.Hour
	for from := 0; from < n; from += authLoadPrefillChunk {
		to := min(from+authLoadPrefillChunk, n)
		// Row g of the prefill: its time t (ascending with g over the month), its UUIDv7 id of
		// that time, its card, merchant and idempotency key.
		const series = `WITH g AS (
				SELECT g, $3::TIMESTAMPTZ + (g::FLOAT8 / $4::FLOAT8) * $5::INTERVAL AS t FROM generate_series($1::BIGINT, $2::BIGINT - 1) AS g),
			r AS (
				SELECT g.g, g.t,
					(lpad(to_hex((extract(epoch FROM g.t) * 1000)::BIGINT), 12, '0') || '7' || substr(md5(g.g::TEXT), 1, 3) || '8' ||
						substr(md5(g.g::TEXT), 4, 15))::UUID AS id,
					(lpad(to_hex((extract(epoch FROM g.t) * 1000)::BIGINT), 12, '0') || '7' || substr(md5('k' || g.g::TEXT), 1, 3) || '9' ||
						substr(md5('k' || g.g::TEXT), 4, 15))::UUID AS idem,
					c.card_token, c.funds_account_id,
					($6::TEXT[])[1 + g.g % cardinality($6::TEXT[])] AS merchant_id
				FROM g JOIN prefill_cards c ON c.n = g.g % $7)`
		args := []any{from, to, end.Add(-span), n, fmt.Sprintf("%d seconds", int64(span/time.Second)), run.ids, len(run.cards)}
		for _, q := range []string{
			series + ` INSERT INTO purchase_authorizations (authorization_id, merchant_id, card_token, funds_account_id, mcc, amount,
				approved, decline_reason, decline_detail, expires_at, created_at)
				SELECT id, merchant_id, card_token, funds_account_id, '5411', 100, true, '', '', t + INTERVAL '7 days', t FROM r`,
			series + ` INSERT INTO purchase_requests (merchant_id, idempotency_key, operation, request_hash, result_id, created_at)
				SELECT merchant_id, idem, 'authorize', sha256(idem::TEXT::BYTEA), id, t FROM r`,
			series + ` INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, ref_id, user_data, timeout_seconds, code,
				flags, ts, expires_at)
				SELECT r.id, r.funds_account_id, m.account_id, 100, NULL, r.id, 604800, ` + strconv.Itoa(int(clearing.CodeAuthorization)) + `, ` + strconv.Itoa(int(ledger.Pending)) + `, t,
					t + INTERVAL '7 days' FROM r JOIN merchants m ON m.merchant_id = r.merchant_id`,
			series + ` INSERT INTO transfer_resolutions (target_id, transfer_id, kind, ts)
				SELECT id, id, 'expired', t + INTERVAL '7 days' FROM r`,
		} {
			if _, err := conn.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("prefill rows %d to %d: %w", from, to, err)
			}
		}
	}
	if _, err := conn.Exec(ctx, "SET maintenance_work_mem = '256MB'"); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	for i, def := range defs {
		if _, err := conn.Exec(ctx, def); err != nil {
			return fmt.Errorf("prefill: build index %s again: %w", names[i], err)
		}
	}
	for _, t := range []string{"purchase_authorizations", "purchase_requests", "transfers", "transfer_resolutions"} {
		if _, err := conn.Exec(ctx, "ANALYZE "+t); err != nil {
			return fmt.Errorf("prefill: analyze %s: %w", t, err)
		}
	}
	return nil
}

// authorize sends the run's next authorization: 1.00 CNY on the next card, at the next merchant.
func (run *authLoad) authorize(ctx context.Context) (approved bool, why string, err error) {
	i := int(run.seq.Add(1))
	m := i % len(run.keys)
	body := fmt.Appendf(nil, `{"card_token":%q,"amount":%q,"currency":"CNY"}`, run.cards[i%len(run.cards)], authLoadAmount)
	status, got, err := run.post(ctx, "/v1/authorizations", run.keys[m], uuid.Must(uuid.NewV7()).String(), body)
	if err != nil {
		return false, "", err
	}
	if status != nethttp.StatusCreated {
		return false, "", fmt.Errorf("%d %.200s", status, got)
	}
	if !bytes.Contains(got, []byte(`"decision":"approved"`)) {
		return false, fmt.Sprintf("%.200s", got), nil
	}
	return true, "", nil
}

// authLoadSample is one request's outcome.
type authLoadSample struct {
	took     time.Duration
	approved bool
	why      string
	err      error
}

// openLoop offers rate authorizations/s for d, each sent on schedule in its own goroutine
// whatever the answers before it, and measures each from its send to its answer.
func (run *authLoad) openLoop(ctx context.Context, name string, rate float64, d time.Duration) (authLoadPhase, error) {
	n := int(rate * d.Seconds())
	samples := make([]authLoadSample, n)
	commits, cpu := run.commitMark(), readCPUMark(run.dbName)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			return authLoadPhase{}, ctx.Err()
		}
		wg.Go(func() {
			sent := time.Now()
			s := &samples[i]
			s.approved, s.why, s.err = run.authorize(ctx)
			s.took = time.Since(sent)
		})
	}
	wg.Wait()
	p := run.figures(name, samples, time.Since(start), commits, cpu)
	p.OfferedRate = rate
	return p, nil
}

// closedLoop runs clients for d, each sending one authorization at a time.
func (run *authLoad) closedLoop(ctx context.Context, clients int, d time.Duration) (authLoadPhase, error) {
	per := make([][]authLoadSample, clients)
	commits, cpu := run.commitMark(), readCPUMark(run.dbName)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				var s authLoadSample
				sent := time.Now()
				s.approved, s.why, s.err = run.authorize(ctx)
				s.took = time.Since(sent)
				per[c] = append(per[c], s)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return authLoadPhase{}, ctx.Err()
	}
	p := run.figures("closed", slices.Concat(per...), time.Since(start), commits, cpu)
	p.Clients = clients
	return p, nil
}

// commitMark is where the commits of a phase start in the committer's record.
func (run *authLoad) commitMark() int {
	run.mu.Lock()
	defer run.mu.Unlock()
	return len(run.commit)
}

func (run *authLoad) figures(name string, samples []authLoadSample, elapsed time.Duration, commitsFrom int, cpuFrom cpuMark) authLoadPhase {
	p := authLoadPhase{Name: name, Seconds: elapsed.Seconds(), Requests: int64(len(samples))}
	if cpu := readCPUMark(run.dbName); cpu.ok && cpuFrom.ok && len(samples) > 0 {
		perRequest := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(samples)) }
		p.EngineCPUUsPerRequest = perRequest(cpu.engine - cpuFrom.engine)
		p.DatabaseCPUUsPerRequest = perRequest(cpu.database - cpuFrom.database)
	}
	lat := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		lat = append(lat, s.took)
		switch {
		case s.err != nil:
			p.Errors++
			if p.FirstError == "" {
				p.FirstError = s.err.Error()
			}
		case !s.approved:
			p.NotApproved++
			if p.FirstError == "" {
				p.FirstError = s.why
			}
		}
	}
	p.RequestsPerSecond = float64(len(samples)) / elapsed.Seconds()
	p.P50Ms, p.P99Ms, p.P999Ms, p.MaxMs = percentilesMs(lat)
	run.mu.Lock()
	commits := slices.Clone(run.commit[commitsFrom:])
	run.mu.Unlock()
	p.Commits = int64(len(commits))
	if len(commits) > 0 {
		p.RequestsPerCommit = float64(len(samples)) / float64(len(commits))
		p.CommitP50Ms, p.CommitP99Ms, _, _ = percentilesMs(commits)
	}
	return p
}

// percentilesMs sorts d and returns its 50th, 99th and 99.9th percentiles and its maximum, in
// milliseconds; zeros when d is empty.
func percentilesMs(d []time.Duration) (p50, p99, p999, max float64) {
	if len(d) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	at := func(q int) float64 { return ms(d[min(len(d)-1, len(d)*q/1000)]) }
	return at(500), at(990), at(999), ms(d[len(d)-1])
}
