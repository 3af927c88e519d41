package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement/bankfile"
)

func TestMain(m *testing.M) {
	if os.Getenv(asJoininEnv) == "1" {
		// This test binary stands in for joinin: a process the crash test kills, the settle
		// process the settlement load run starts.
		os.Exit(exitStatus(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
	}
	pgtest.Main(m, "cmd")
}

// The main job, as `make run` runs it: a city day through the embedded broker into the ledger.
func TestDemoRunsACityDayEndToEnd(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	files := t.TempDir()
	if err := run(context.Background(), []string{"demo", "--database-url", url, "--log-level", "warn", "--settlement-out", files}, &out, &errs); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errs.String())
	}
	// On a fresh database the day played is over: nothing is stamped after now, so an engine
	// started on the same database at once writes after all of it.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	if err := conn.QueryRow(context.Background(), `SELECT max(ts) FROM transfers`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	if last.After(time.Now()) {
		t.Errorf("the demo stamped the ledger up to %s, after now", last)
	}
	for _, want := range []string{
		"events/s end to end",
		"card.registered       accepted   1000",
		"funds.loaded          applied    1000",
		"(any)                 duplicate  2",
		"rejected: merchant \"m-unregistered\" is not registered",
		"malformed: event_id",
		"conflict: event id used before",
		"3 the same batch redelivered",
		"verified: every balance recomputes from its transfers",
		"net positions, held items and fee income sum to 0.00",
		"CNY settlement_position",
		"each bank's file (camt.054 XML and CSV) and the manifest are under " + files,
		// The banks' statements, one break of each kind put in, found and listed.
		"6 open breaks", "missing_at_bank", "missing_in_ledger", "amount_mismatch", "duplicate", "timing", "statement_gap",
		"http://127.0.0.1:8080/finance/",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's report lacks %q:\n%s", want, out.String())
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "3 the same batch redelivered") && !strings.Contains(line, "exists") ||
			strings.HasPrefix(line, "4 expiry sweep") && !strings.Contains(line, "created") {
			t.Errorf("%q", line)
		}
	}
	if strings.Contains(out.String(), "linked_event_failed") || strings.Contains(out.String(), "pending_already_resolved") {
		t.Errorf("the redelivered capture batch was not answered exists:\n%s", out.String())
	}
	// The day's files, each checked against the manifest written beside them.
	dirs, err := os.ReadDir(files)
	if err != nil || len(dirs) != 1 {
		t.Fatalf("settlement folders %v, %v", dirs, err)
	}
	folder := filepath.Join(files, dirs[0].Name())
	raw, err := os.ReadFile(filepath.Join(folder, "manifest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := bankfile.ReadManifest(bytes.NewReader(raw))
	if err != nil || len(m.Files) != 6 {
		// three banks, two formats each
		t.Fatalf("manifest %+v, %v", m, err)
	}
	for _, e := range m.Files {
		content, err := os.ReadFile(filepath.Join(folder, e.Name))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Verify(e.Name, content); err != nil {
			t.Error(err)
		}
	}

	// `joinin reconcile import` of a statement the demo imported is a replay; a statement cut
	// short is refused naming where, and keeps nothing.
	stmts, _ := filepath.Glob(filepath.Join(folder, "*.statement.xml"))
	if len(stmts) != 3 {
		t.Fatalf("statements written: %v", stmts)
	}
	var rec strings.Builder
	if err := run(context.Background(), []string{"reconcile", "import", "--database-url", url, "--log-level", "warn", stmts[0]}, &rec, &errs); err != nil {
		t.Fatalf("reconcile import: %v\n%s", err, errs.String())
	}
	if !strings.Contains(rec.String(), "imported before: nothing new") || !strings.Contains(rec.String(), "6 open breaks") {
		t.Errorf("reconcile import again printed:\n%s", rec.String())
	}
	raw, err = os.ReadFile(stmts[1])
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.xml")
	if err := os.WriteFile(cut, raw[:len(raw)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"reconcile", "import", "--database-url", url, "--log-level", "warn", cut}, &rec, &errs); err == nil ||
		!strings.Contains(err.Error(), "line") {
		t.Errorf("a statement cut short: %v", err)
	}
	// A statement whose period ends in the future (a mistyped year) is refused naming the file and
	// the day, and nothing is imported.
	to := regexp.MustCompile(`<ToDt>(\d{4})(-\d\d-\d\d)</ToDt>`).FindSubmatch(raw)
	if to == nil {
		t.Fatalf("no ToDt in %s", stmts[1])
	}
	future := filepath.Join(t.TempDir(), "future.xml")
	ahead := "2062" + string(to[2])
	if err := os.WriteFile(future, bytes.ReplaceAll(raw, append(to[1], to[2]...), []byte(ahead)), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"reconcile", "import", "--database-url", url, "--log-level", "warn", future}, &rec, &errs)
	if !errors.Is(err, postgres.ErrStatementFuture) || !strings.Contains(err.Error(), "future.xml") || !strings.Contains(err.Error(), ahead) {
		t.Errorf("a statement to %s: %v", ahead, err)
	}

	// `joinin settle` on the closed day changes nothing and writes the same files again.
	var settled strings.Builder
	again := t.TempDir()
	if err := run(context.Background(), []string{"settle", "--database-url", url, "--log-level", "warn", "--date", dirs[0].Name(),
		"--out", again}, &settled, &errs); err != nil {
		t.Fatalf("settle: %v\n%s", err, errs.String())
	}
	if !strings.Contains(settled.String(), "settlement cycle "+dirs[0].Name()) {
		t.Errorf("settle printed:\n%s", settled.String())
	}
	for _, e := range m.Files {
		first, _ := os.ReadFile(filepath.Join(folder, e.Name))
		second, err := os.ReadFile(filepath.Join(again, dirs[0].Name(), e.Name))
		if err != nil || !bytes.Equal(first, second) {
			t.Errorf("%s written again differs: %v", e.Name, err)
		}
	}
	for _, bad := range [][]string{{"--date", "2026-13-01"}, {"--date", "2999-01-01"}, {"--cutoff-hour", "24"}} {
		if err := run(context.Background(), append([]string{"settle", "--database-url", url, "--log-level", "warn"}, bad...),
			&settled, &errs); err == nil {
			t.Errorf("settle %v: no error", bad)
		}
	}

	// Run again on the same database: the next day, its own cycle, the ledger still verified.
	out.Reset()
	if err := run(context.Background(), []string{"demo", "--database-url", url, "--log-level", "warn", "--settlement-out", files}, &out, &errs); err != nil {
		t.Fatalf("demo again: %v\n%s\n%s", err, out.String(), errs.String())
	}
	if again, _ := os.ReadDir(files); len(again) != 2 || !strings.Contains(out.String(), "verified: every balance") {
		t.Fatalf("the second run's folders %v:\n%s", again, out.String())
	}
}

func TestEveryCommandExplainsItself(t *testing.T) {
	for _, c := range commands() {
		var out, errs strings.Builder
		err := run(context.Background(), []string{c.name, "--help"}, &out, &errs)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v", c.name, err)
		}
	}
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"no-such-command"}, &out, &errs); err == nil || !strings.Contains(errs.String(), "Commands:") {
		t.Errorf("an unknown command: %v, usage %q", err, errs.String())
	}
	if err := run(context.Background(), []string{"verify", "--log-level", "loud"}, &out, &errs); err == nil {
		t.Error("a bad --log-level was accepted")
	}
	for _, n := range []string{"0", "-1", "16"} {
		err := run(context.Background(), []string{"serve", "--committers", n, "--database-url", pgtest.NewDatabase(t)}, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), "--committers "+n+": must be 1 to 15") {
			t.Errorf("serve --committers %s: %v", n, err)
		}
	}
}

// The consumer's load run, small: a city's events through the embedded broker into a database of
// its own, every figure reported, the ledger verified, the database dropped, and the database
// DATABASE_URL names left as it was.
func TestLoadtestReportsEveryFigure(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"loadtest", "--database-url", url, "--log-level", "warn",
		"--events", "6000", "--cards", "500", "--merchants", "5", "--latency", "1s"}, &out, &errs); err != nil {
		t.Fatalf("loadtest: %v\n%s", err, errs.String())
	}
	var rep loadReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Events != 6000 || rep.EventsPerSecond <= 0 || !rep.Verified || rep.RatioToCeiling <= 0 || rep.CeilingRowsPerSecond <= 0 ||
		rep.LatencyP99Millis <= 0 || rep.LatencyP50Millis > rep.LatencyP99Millis || rep.WALBytesPerEvent <= 0 || rep.Batches < 1 ||
		rep.BufferBlocksPerEvent <= 0 || rep.SharedBuffersMiB <= 0 || rep.BalanceIndexMiB <= 0 {
		t.Fatalf("report %+v", rep)
	}
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var accounts int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&accounts); err != nil {
		t.Fatal(err)
	}
	if accounts != 0 {
		t.Errorf("the run wrote %d accounts into the database it was given, not one of its own", accounts)
	}
}

// The settlement load run, small: a database of its own, filled, settled by a joinin process,
// measured and dropped.
func TestLoadSettleMeasuresACycle(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	// The close runs as `joinin settle` in a child process: this test binary stands in for joinin.
	t.Setenv(asJoininEnv, "1")
	if err := run(context.Background(), []string{"loadtest-settle", "--database-url", url, "--log-level", "warn",
		"--transfers", "30000", "--cards", "500", "--merchants", "20", "--banks", "4"}, &out, &errs); err != nil {
		t.Fatalf("loadtest-settle: %v\n%s", err, errs.String())
	}
	var rep settleLoadReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Items != 520 || rep.Files != 4 || rep.SettleSeconds <= 0 || rep.SettlePeakRSSMiB <= 0 {
		t.Fatalf("report %+v", rep)
	}
}

// The transfers load run, small: a database of its own, accounts opened and funded over HTTP,
// both phases driven by concurrent clients, every transfer created, the ledger verified, dropped;
// with one transfer per request and with batches.
func TestLoadTransfersDrivesTheAPI(t *testing.T) {
	for _, perRequest := range []int{1, 5} {
		t.Run(fmt.Sprintf("per-request-%d", perRequest), func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			var out, errs strings.Builder
			if err := run(context.Background(), []string{"loadtest-transfers", "--database-url", url, "--log-level", "warn",
				"--accounts", "50", "--clients", "4", "--duration", "300ms", "--warmup", "0s",
				"--per-request", strconv.Itoa(perRequest)}, &out, &errs); err != nil {
				t.Fatalf("loadtest-transfers: %v\n%s\n%s", err, out.String(), errs.String())
			}
			var rep transfersLoadReport
			if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
				t.Fatalf("%v:\n%s", err, out.String())
			}
			if len(rep.Phases) != 2 || !rep.Verified || rep.Accounts != 50 || rep.Clients != 4 || rep.PerRequest != perRequest {
				t.Fatalf("report %+v", rep)
			}
			for _, p := range rep.Phases {
				if p.Requests == 0 || p.Transfers != p.Requests*int64(perRequest) || p.NotCreated != 0 || p.Errors != 0 ||
					p.Commits == 0 || p.P99Ms <= 0 || p.TransfersPerSecond <= 0 {
					t.Errorf("phase %+v", p)
				}
			}
			if hot := rep.Phases[1]; hot.Name != "hot" || hot.HotVersions != hot.Commits {
				t.Errorf("hot phase: %d versions of the hot account in %d commits", hot.HotVersions, hot.Commits)
			}
		})
	}
	var out, errs strings.Builder
	err := run(context.Background(), []string{"loadtest-transfers", "--per-request", "0"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "--per-request") {
		t.Errorf("--per-request 0: got %v, want a refusal naming the flag", err)
	}
}

// The authorization load run, small: cards and a merchant registered in a database of its own,
// a few earlier requests prefilled, then the open loop, a two-step sweep and the closed loop,
// every authorization approved, dropped.
func TestLoadAuthDrivesTheAPI(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"loadtest-auth", "--database-url", url, "--log-level", "warn",
		"--cards", "50", "--merchants", "2", "--rate", "200", "--duration", "300ms", "--sweep", "100,200",
		"--sweep-duration", "200ms", "--clients", "4", "--warmup", "0s", "--prefill-requests", "1000"}, &out, &errs); err != nil {
		t.Fatalf("loadtest-auth: %v\n%s\n%s", err, out.String(), errs.String())
	}
	var rep authLoadReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Cards != 50 || rep.Merchants != 2 || rep.PrefilledRequests != 1000 || len(rep.Sweep) == 0 {
		t.Fatalf("report %+v", rep)
	}
	for _, p := range append([]authLoadPhase{rep.Open, rep.Closed}, rep.Sweep...) {
		if p.Requests == 0 || p.NotApproved != 0 || p.Errors != 0 || p.Commits == 0 || p.P99Ms <= 0 || p.RequestsPerSecond <= 0 {
			t.Errorf("phase %+v", p)
		}
	}
	if rep.Closed.Clients != 4 || rep.Open.OfferedRate != 200 {
		t.Errorf("report %+v", rep)
	}
}

// The authorization load run on empty tables verifies the ledger after it.
func TestLoadAuthVerifiesTheLedger(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"loadtest-auth", "--database-url", url, "--log-level", "warn",
		"--cards", "20", "--rate", "100", "--duration", "200ms", "--sweep", "", "--clients", "2", "--warmup", "0s"}, &out, &errs); err != nil {
		t.Fatalf("loadtest-auth: %v\n%s\n%s", err, out.String(), errs.String())
	}
	var rep authLoadReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Verified == nil || !*rep.Verified || len(rep.Sweep) != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// The verification load run, small: transfers over three days in a database of its own, the two
// closed days checkpointed, verify --full and verify from the checkpoint timed, both finding every
// transfer, dropped.
func TestLoadVerifyTimesBothChecks(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"loadtest-verify", "--database-url", url, "--log-level", "warn",
		"--transfers", "6000", "--days", "3", "--accounts", "50"}, &out, &errs); err != nil {
		t.Fatalf("loadtest-verify: %v\n%s", err, errs.String())
	}
	var rep verifyLoadReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Checkpoints != 2 || rep.Transfers != 6000 || rep.BalanceRows <= 50 || rep.FullSeconds <= 0 || rep.IncrementalSeconds <= 0 {
		t.Fatalf("report %+v", rep)
	}
}

// The city day, small: every door of the engine at once in a database of its own, the end state
// compared with the model of the day; nothing lost, nothing applied twice, every account as
// the model says, and every kind of traffic there.
func TestLoadCityDayAddsUp(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"loadtest-cityday", "--database-url", url, "--log-level", "warn", "--progress=false",
		"--cards", "400", "--merchants", "12", "--purchases", "1500", "--authorizations", "400", "--medical-bills", "300"}, &out, &errs); err != nil {
		t.Fatalf("loadtest-cityday: %v\n%s\n%s", err, out.String(), errs.String())
	}
	var rep cityDayReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Lost != 0 || rep.AppliedTwice != 0 || rep.Mismatched != 0 || rep.Unexpected != 0 || !rep.Verified {
		t.Fatalf("the day does not add up: %+v", rep)
	}
	if rep.AccountsChecked < rep.Cards*3/2 {
		t.Errorf("%d accounts checked for %d cards", rep.AccountsChecked, rep.Cards)
	}
	for _, kind := range []string{"kafka_setup", "kafka_day", "taps_http", "taps_kafka", "taps_late", "authorizations", "captures",
		"voids", "expiries", "medical_settlements", "kafka_duplicates_sent"} {
		if rep.Events[kind] == 0 {
			t.Errorf("no %s in the day: %v", kind, rep.Events)
		}
	}
	for _, kind := range []string{"1", "10", "11", "20/pending", "20/expire", "21", "21/post", "22/void", "23", "30", "50", "52", "53"} {
		if rep.Transfers[kind][1] == 0 {
			t.Errorf("no transfer of kind %s in the ledger: %v", kind, rep.Transfers)
		}
	}
	for _, seen := range []string{"kafka_duplicates", "kafka_dead_letters", "tap_duplicates", "tap_rejected", "tap_batches_resent",
		"authorization_replays", "authorizations_declined_invalid", "medical_replays", "medical_refused_400"} {
		if rep.Observed[seen] == 0 {
			t.Errorf("nothing observed of %s: %v", seen, rep.Observed)
		}
	}
	if rep.CardDays == 0 || rep.DayCloseSeconds <= 0 || rep.AuthP99Millis <= 0 || rep.TapsPerSecond <= 0 || rep.EngineRSSPeakMiB <= 0 {
		t.Errorf("figures missing: %+v", rep)
	}
}

// The taps run, small: a day of taps through each door, every tap accepted, both figures there,
// with the consumer deciding the Kafka taps and with the inbox drained after.
func TestLoadTapsBothDoors(t *testing.T) {
	for _, intake := range []string{"consumer", "inbox"} {
		t.Run(intake, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			var out, errs strings.Builder
			if err := run(context.Background(), []string{"loadtest-taps", "--database-url", url, "--log-level", "warn",
				"--cards", "300", "--journeys", "2", "--kafka-intake", intake}, &out, &errs); err != nil {
				t.Fatalf("loadtest-taps: %v\n%s\n%s", err, out.String(), errs.String())
			}
			var rep tapsReport
			if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
				t.Fatalf("%v:\n%s", err, out.String())
			}
			if rep.TapsPerDoor != 1200 || rep.HTTPAccepted != 1200 || rep.KafkaAccepted != 1200 || rep.KafkaIntake != intake ||
				rep.HTTPTapsPerSecond <= 0 || rep.KafkaTapsPerSecond <= 0 || rep.KafkaToHTTP <= 0 {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

// The load client spells a transfer's id as uuid does.
func TestAppendUUIDSpellsAsString(t *testing.T) {
	for range 100 {
		id := uuid.Must(uuid.NewV7())
		if got := string(appendUUID([]byte("x"), id)); got != "x"+id.String() {
			t.Fatalf("appendUUID %s, want %s", got, id)
		}
	}
}
