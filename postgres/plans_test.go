package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
)

// planRows is how many earlier rows each hot table holds for the plan test: enough that a
// sequential scan costs far more than index probes, so a planner that would scan shows it.
const planRows = 200_000

// Every lookup on a hot path stays an index probe however large its table: with each table
// filled, the plan of each lookup, for a batch-sized set of keys, names its index and scans no
// table whole.
func TestHotLookupsAreIndexProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("fills tables with hundreds of thousands of rows")
	}
	ctx := context.Background()
	st := pgtest.NewStore(t)
	// The rows are stand-ins that no ledger would hold (transfers on no account's statement): they
	// are written, planned against and rolled back in one transaction.
	pool, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pool.Rollback(ctx) }()
	// Fill the tables with planRows rows each, as years of traffic would.
	for _, fill := range []string{
		`INSERT INTO purchase_requests (merchant_id, idempotency_key, operation, request_hash, result_id, created_at)
			SELECT 'merchant-' || (g % 500), md5(g::TEXT)::UUID, 'authorize', decode(md5(g::TEXT) || md5(g::TEXT), 'hex'),
				md5('r' || g::TEXT)::UUID, now() FROM generate_series(1, $1) g`,
		`INSERT INTO processed_event_records (event_id, hash, type, status, reason, source, source_offset, processed_at)
			SELECT md5('e' || g::TEXT)::UUID, decode(md5(g::TEXT), 'hex'), 'purchase.cleared', 'applied', '', 'card-events/0', g, now()
			FROM generate_series(1, $1) g`,
		`INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, timeout_seconds, code, flags, ts)
			SELECT md5('t' || g::TEXT)::UUID, md5('a')::UUID, md5('b')::UUID, 1, 0, 21, 0, now() FROM generate_series(1, $1) g`,
		`INSERT INTO transit_taps (operator_id, device_id, device_seq, card_token, tapped_at, travel_day, station_id, line,
				direction, mode, source, source_id, received_at)
			SELECT 'HZMETRO', 'dev-' || (g % 1000), g, 'card-' || (g % 5000), now(), current_date, '0101', '', 'in', 'metro',
				'batch', 'b' || (g / 1000), now() FROM generate_series(1, $1) g`,
		`INSERT INTO purchase_authorizations (authorization_id, merchant_id, card_token, funds_account_id, mcc, amount,
				approved, decline_reason, decline_detail, expires_at, created_at)
			SELECT md5('p' || g::TEXT)::UUID, 'merchant-' || (g % 500), 'card-' || (g % 5000), NULL, '5411', 100, true, '', '',
				now() + INTERVAL '7 days', now() - (g || ' seconds')::INTERVAL FROM generate_series(1, $1) g`,
		`INSERT INTO open_holds (transfer_id, expires_at)
			SELECT md5('t' || g::TEXT)::UUID, now() + (g || ' seconds')::INTERVAL FROM generate_series(1, $1) g`,
		`INSERT INTO cards (card_token, physical_token, digital_token, holder_name, nationality, passport_token,
				passport_masked, ssn_token, ssn_masked, permit_token, permit_masked, permit_valid_until, insurance_city,
				issuer_bank, bank_account_token, bank_account_masked, card_number_masked, declared_status, status_reason,
				funds_account_id, medical_account_id, created_at, updated_at)
			SELECT 'card-' || g, 'phys-' || g, 'dig-' || g, 'Holder', 'DEU', 'p', 'p', 's', 's', 'w', 'w', current_date + 365,
				'hangzhou', 'ICBC', 'b', 'b', '622202******0000', 'active', '', md5('f' || g::TEXT)::UUID,
				md5('m' || g::TEXT)::UUID, now(), now() FROM generate_series(1, $1) g`,
		`INSERT INTO card_status_changes (card_token, changed_at, declared_status, status_reason)
			SELECT 'card-' || (g % 50000), now() - (g || ' seconds')::INTERVAL, 'blocked', 'reported stolen'
			FROM generate_series(1, $1) g`,
	} {
		if _, err := pool.Exec(ctx, fill, planRows); err != nil {
			t.Fatalf("%v\n%s", err, fill)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	// A batch of keys, as the committers send them.
	const batch = 256
	merchants, keys, ids := make([]string, batch), make([]uuid.UUID, batch), make([]uuid.UUID, batch)
	ops, devs, seqs := make([]string, batch), make([]string, batch), make([]int64, batch)
	tokens := make([]string, batch)
	for i := range batch {
		tokens[i] = fmt.Sprintf("card-%d", i)
		merchants[i], keys[i], ids[i] = "merchant-7", uuid.New(), uuid.New()
		ops[i], devs[i], seqs[i] = "HZMETRO", "dev-7", int64(planRows+i)
	}
	for _, tc := range []struct {
		name, query, table, index string
		args                      []any
	}{
		{"idempotency keys", postgres.IdempotencyLookup, "purchase_requests", "purchase_requests_pkey", []any{merchants, keys}},
		// An authorization's card with what it approved today, and the card of the authorization a
		// capture, void or increment names.
		{"approvals by card", postgres.CardsLookup, "purchase_authorizations", "purchase_authorizations_card",
			[]any{tokens, ids[:0], time.Now().Add(-time.Hour), time.Now().Add(time.Hour)}},
		{"approvals by card, a batch of authorizations", postgres.CardsByTokenLookup, "purchase_authorizations",
			"purchase_authorizations_card", []any{tokens, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)}},
		{"authorizations by id", postgres.CardsLookup, "purchase_authorizations", "purchase_authorizations_pkey",
			[]any{tokens[:0], ids, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)}},
		{"processed events", postgres.ProcessedLookup, "processed_event_records", "processed_events_pkey", []any{ids}},
		{"transfers by id", postgres.TransfersLookup, "transfers", "transfers_pkey", []any{ids}},
		{"taps by device and sequence", postgres.TapsSeenLookup, "transit_taps", "transit_taps_pkey", []any{ops, devs, seqs}},
		{"open holds", postgres.ExpiredHoldsLookup, "open_holds", "open_holds_expires_at", []any{time.Now(), 16384}},
		// The status of the cards a batch's offline purchases charge: the card, and its history.
		{"cards' status", postgres.StatusLookup, "cards", "cards_pkey", []any{tokens}},
		{"cards' status history", postgres.StatusLookup, "card_status_changes", "card_status_changes_pkey", []any{tokens}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := pool.Query(ctx, "EXPLAIN "+tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				if len(line) > 200 {
					line = line[:200] + "..." // the keys, spelled out
				}
				plan = append(plan, line)
			}
			rows.Close()
			text := strings.Join(plan, "\n")
			if !strings.Contains(text, tc.index) || strings.Contains(text, "Seq Scan on "+tc.table) {
				t.Fatalf("the lookup of %s at %d rows does not probe %s:\n%s", tc.table, planRows, tc.index, text)
			}
		})
	}
}

// A lookup by key that PostgreSQL first planned while its table was small probes the index once
// the table has grown, in a transaction of the purchase committer's, which asks for plans made
// for each execution (customPlans). Left to PostgreSQL's plan cache, the same prepared lookup
// keeps the generic plan it settled on while the table was small.
func TestLookupPlannedWhileSmallProbesOnceGrown(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	if pg, err := st.IsPostgreSQL(ctx); err != nil || !pg {
		t.Skipf("PostgreSQL's plan cache: %v", err)
	}
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	fill := func(from, to int) {
		if _, err := tx.Exec(ctx, `INSERT INTO purchase_requests (merchant_id, idempotency_key, operation, request_hash, result_id, created_at)
			SELECT 'merchant-' || (g % 50), md5(g::TEXT)::UUID, 'authorize', decode(md5(g::TEXT) || md5(g::TEXT), 'hex'),
				md5('r' || g::TEXT)::UUID, now() FROM generate_series($1::INT, $2::INT) g`, from, to); err != nil {
			t.Fatal(err)
		}
	}
	fill(1, 10)
	if _, err := tx.Exec(ctx, `PREPARE lookup (TEXT[], UUID[]) AS `+postgres.IdempotencyLookup); err != nil {
		t.Fatal(err)
	}
	const execute = `EXECUTE lookup (ARRAY['merchant-1', 'merchant-2', 'merchant-3'], ARRAY[gen_random_uuid(), gen_random_uuid(), gen_random_uuid()])`
	// Ten executions on the small table: PostgreSQL settles on a plan for it.
	for range 10 {
		if _, err := tx.Exec(ctx, execute); err != nil {
			t.Fatal(err)
		}
	}
	fill(11, 60_000)
	plan := func() string {
		rows, err := tx.Query(ctx, `EXPLAIN `+execute)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n")
	}
	t.Logf("left to the plan cache, at 60,000 rows:\n%s", plan())
	if _, err := tx.Exec(ctx, postgres.CustomPlans); err != nil {
		t.Fatal(err)
	}
	if p := plan(); !strings.Contains(p, "purchase_requests_pkey") || strings.Contains(p, "Seq Scan on purchase_requests") {
		t.Fatalf("with plans for each execution, at 60,000 rows the lookup does not probe the key:\n%s", p)
	}
}

// An authorization writes a row to each of these tables, and every index on them costs it an
// entry and its WAL record: each index has a reader on some path, named here. A new index on one
// of them, or one kept after its reader went, fails this test until it names its reader.
func TestAuthorizationWritesOnlyIndexesSomethingReads(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	readers := map[string]string{
		"transfers_pkey":                   "lookups of a transfer by id",
		"transfers_ts":                     "settlement and verification checkpoints, by time",
		"open_holds_pkey":                  "a hold's resolution deletes its queue entry",
		"open_holds_expires_at":            "the expiry sweep",
		"account_balances_pkey":            "a balance's current version",
		"purchase_authorizations_pkey":     "increments, captures, voids and refunds name their authorization",
		"purchase_authorizations_card":     "a card's approvals of the day, for its daily limit",
		"purchase_authorizations_merchant": "a merchant's list of its authorizations",
		"purchase_requests_pkey":           "idempotency keys",
	}
	rows, err := st.Pool().Query(ctx, `SELECT indexname FROM pg_indexes
		WHERE tablename IN ('transfers', 'open_holds', 'account_balances', 'purchase_authorizations', 'purchase_requests')
		ORDER BY indexname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		found[name] = true
		if _, ok := readers[name]; !ok {
			t.Errorf("index %s is written by every authorization and names no reader", name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for name := range readers {
		if !found[name] {
			t.Errorf("index %s, read by %s, is missing", name, readers[name])
		}
	}
}

// The usual batch of authorizations looks its cards up through one plan per connection
// (pinnedPlans), made whenever PostgreSQL first runs or plans the lookup again: on empty tables,
// on tables grown since without statistics, and on large analyzed tables, that plan probes each
// table's index and scans none.
func TestCardsByTokenPlanPinned(t *testing.T) {
	if testing.Short() {
		t.Skip("fills tables with hundreds of thousands of rows")
	}
	ctx := context.Background()
	st := pgtest.NewStore(t)
	if pg, err := st.IsPostgreSQL(ctx); err != nil || !pg {
		t.Skipf("PostgreSQL's plan cache: %v", err)
	}
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, q := range postgres.PinnedPlans {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, `PREPARE cards (TEXT[], TIMESTAMPTZ, TIMESTAMPTZ) AS `+postgres.CardsByTokenLookup); err != nil {
		t.Fatal(err)
	}
	probes := map[string]string{"card_tokens": "card_tokens_pkey", "cards": "cards_pkey", "card_limits": "card_limits_pkey",
		"purchase_authorizations": "purchase_authorizations_card", "purchase_increments": "purchase_increments_card",
		"purchase_closes": "purchase_closes_released"}
	check := func(when string) {
		t.Helper()
		rows, err := tx.Query(ctx, `EXPLAIN EXECUTE cards (ARRAY['card-1', 'card-2'], now() - INTERVAL '1 day', now())`)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		for table, index := range probes {
			if !strings.Contains(text, index) || strings.Contains(text, "Seq Scan on "+table) {
				t.Errorf("%s, the lookup does not probe %s by %s:\n%s", when, table, index, text)
			}
		}
		if n := strings.Count(text, "Index Cond: "); n < len(probes) {
			t.Errorf("%s, %d of the lookup's %d index reads are probes by a key:\n%s", when, n, len(probes), text)
		}
		if !strings.Contains(text, "$1") {
			t.Errorf("%s, the plan is not the one plan kept for every batch:\n%s", when, text)
		}
	}
	check("on empty tables")
	fills := []string{
		`INSERT INTO cards (card_token, physical_token, digital_token, holder_name, nationality, passport_token, passport_masked,
				ssn_token, ssn_masked, permit_token, permit_masked, permit_valid_until, insurance_city, issuer_bank,
				bank_account_token, bank_account_masked, card_number_masked, declared_status, status_reason, funds_account_id,
				medical_account_id, created_at, updated_at)
			SELECT 'card-' || g, 'p-' || g, 'd-' || g, 'holder', 'CN', 'x', 'x', 'x', 'x', 'x', 'x', current_date + 365, 'HZ',
				'bank', 'x', 'x', 'x', 'active', '', md5('f' || g::TEXT)::UUID, md5('m' || g::TEXT)::UUID, now(), now()
			FROM generate_series($1::INT, $2::INT) g`,
		`INSERT INTO card_tokens (token, card_token) SELECT 'card-' || g, 'card-' || g FROM generate_series($1::INT, $2::INT) g`,
		`INSERT INTO card_limits (card_token, per_transaction, per_day, updated_at)
			SELECT 'card-' || g, 100, 1000, now() FROM generate_series($1::INT, $2::INT) g`,
		`INSERT INTO purchase_authorizations (authorization_id, merchant_id, card_token, funds_account_id, mcc, amount,
				approved, decline_reason, decline_detail, expires_at, created_at)
			SELECT md5('p' || g::TEXT)::UUID, 'merchant-' || (g % 500), 'card-' || (g % 5000), NULL, '5411', 100, true, '', '',
				now() + INTERVAL '7 days', now() - (g || ' seconds')::INTERVAL FROM generate_series($1::INT, $2::INT) g`,
		`INSERT INTO purchase_increments (increment_id, authorization_id, card_token, amount, approved, decline_reason,
				decline_detail, created_at)
			SELECT md5('i' || g::TEXT)::UUID, md5('p' || g::TEXT)::UUID, 'card-' || (g % 5000), 100, true, '', '',
				now() - (g || ' seconds')::INTERVAL FROM generate_series($1::INT, $2::INT) g`,
		`INSERT INTO purchase_closes (authorization_id, close_id, kind, merchant_id, card_token, amount, released, fee_mdr,
				fee_network, foreign_surcharge, foreign_fx_margin, created_at)
			SELECT md5('p' || g::TEXT)::UUID, md5('c' || g::TEXT)::UUID, 'voided', 'merchant-' || (g % 500), 'card-' || (g % 5000),
				0, 100, 0, 0, 0, 0, now() FROM generate_series($1::INT, $2::INT, 2) g`,
	}
	fill := func(from, to int) {
		for _, q := range fills {
			if _, err := tx.Exec(ctx, q, from, to); err != nil {
				t.Fatalf("%v\n%s", err, q)
			}
		}
	}
	// A table of a row or two, analyzed: where a scan of a whole table costs as little as a probe.
	fill(1, 2)
	if _, err := tx.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	check("on analyzed tables of two rows")
	fill(3, planRows)
	check("with the plan made on tables of two rows kept, at 200,000 rows")
	if _, err := tx.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	check("planned again on analyzed tables of 200,000 rows")
}

// A card's approvals of the day are read by card: its authorizations, its increments and the
// closes that released part of a hold, each a range of one index. Only a close that released
// something is followed to the holds it released, so the reads of the lookup stay the same in
// number however many authorizations the card has had in the day, and the total is exact: the
// day's holds less what the merchants released of them.
func TestDayApprovalsReadsGrowWithReleasesNotApprovals(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	if pg, err := st.IsPostgreSQL(ctx); err != nil || !pg {
		t.Skipf("PostgreSQL's EXPLAIN ANALYZE: %v", err)
	}
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	const approvals = 40
	fills := []string{
		`INSERT INTO cards (card_token, physical_token, digital_token, holder_name, nationality, passport_token, passport_masked,
				ssn_token, ssn_masked, permit_token, permit_masked, permit_valid_until, insurance_city, issuer_bank,
				bank_account_token, bank_account_masked, card_number_masked, declared_status, status_reason, funds_account_id,
				medical_account_id, created_at, updated_at)
			VALUES ('card-1', 'p-1', 'd-1', 'holder', 'CN', 'x', 'x', 'x', 'x', 'x', 'x', current_date + 365, 'HZ',
				'bank', 'x', 'x', 'x', 'active', '', md5('f1')::UUID, md5('m1')::UUID, now(), now())`,
		`INSERT INTO card_tokens (token, card_token) VALUES ('card-1', 'card-1')`,
		// The day's authorizations of 1.00 each; the first is voided, the second captured at 0.40
		// (0.60 released), the third captured whole (nothing released).
		`INSERT INTO purchase_authorizations (authorization_id, merchant_id, card_token, funds_account_id, mcc, amount,
				approved, decline_reason, decline_detail, expires_at, created_at)
			SELECT md5('p' || g::TEXT)::UUID, 'merchant-1', 'card-1', NULL, '5411', 100, true, '', '',
				now() + INTERVAL '7 days', now() - (g || ' seconds')::INTERVAL FROM generate_series(1, ` + fmt.Sprint(approvals) + `) g`,
		`INSERT INTO purchase_closes (authorization_id, close_id, kind, merchant_id, card_token, amount, released, fee_mdr,
				fee_network, foreign_surcharge, foreign_fx_margin, created_at)
			VALUES (md5('p1')::UUID, md5('c1')::UUID, 'voided', 'merchant-1', 'card-1', 0, 100, 0, 0, 0, 0, now()),
				(md5('p2')::UUID, md5('c2')::UUID, 'captured', 'merchant-1', 'card-1', 40, 60, 0, 0, 0, 0, now()),
				(md5('p3')::UUID, md5('c3')::UUID, 'captured', 'merchant-1', 'card-1', 100, 0, 0, 0, 0, 0, now())`,
	}
	for _, q := range fills {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, q := range postgres.PinnedPlans {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, `PREPARE cards (TEXT[], TIMESTAMPTZ, TIMESTAMPTZ) AS `+postgres.CardsByTokenLookup); err != nil {
		t.Fatal(err)
	}
	const args = `(ARRAY['card-1'], now() - INTERVAL '1 day', now() + INTERVAL '1 second')`
	var (
		tok, card, declared, reason string
		until                       time.Time
		funds                       uuid.UUID
		perTx, perDay               *int64
		used                        int64
	)
	if err := tx.QueryRow(ctx, `EXECUTE cards `+args).Scan(&tok, &card, &declared, &reason, &until, &funds, &perTx, &perDay, &used); err != nil {
		t.Fatal(err)
	}
	if want := int64(approvals*100 - 100 - 60); used != want {
		t.Errorf("the day's approvals read %d, want %d: %d authorizations of 100, one voided, one captured at 40", used, want, approvals)
	}
	rows, err := tx.Query(ctx, `EXPLAIN (ANALYZE, COSTS false, TIMING false) EXECUTE cards `+args)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Each execution of an index read: a node's loops, never executed counting none.
	reads := 0
	for _, line := range plan {
		if !strings.Contains(line, "Index Scan") && !strings.Contains(line, "Index Only Scan") {
			continue
		}
		var loops int
		if i := strings.Index(line, "loops="); i >= 0 {
			if _, err := fmt.Sscanf(line[i:], "loops=%d", &loops); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
		}
		reads += loops
	}
	// The card's token, the card, its limits, its authorizations, increments and releasing
	// closes, and for each of the two releasing closes its authorization and that one's
	// increments, twice (what they took and which of them are of the day).
	if limit := 6 + 2*3; reads > limit {
		t.Errorf("the lookup of one card with %d approvals in the day ran %d index reads, want at most %d:\n%s",
			approvals, reads, limit, strings.Join(plan, "\n"))
	}
}

// BenchmarkCardsLookup runs the usual commit's cards lookup, under its pinned plan, for five
// cards of 2,000 that each had 10 authorizations in the day, one in ten of them voided: the
// database's work for the cards of a commit of five authorizations.
func BenchmarkCardsLookup(b *testing.B) {
	ctx := context.Background()
	st := pgtest.NewStore(b)
	if pg, err := st.IsPostgreSQL(ctx); err != nil || !pg {
		b.Skipf("PostgreSQL's plan settings: %v", err)
	}
	conn, err := st.Pool().Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	const cards, perCard = 2000, 10
	for _, q := range []string{
		`INSERT INTO cards (card_token, physical_token, digital_token, holder_name, nationality, passport_token, passport_masked,
				ssn_token, ssn_masked, permit_token, permit_masked, permit_valid_until, insurance_city, issuer_bank,
				bank_account_token, bank_account_masked, card_number_masked, declared_status, status_reason, funds_account_id,
				medical_account_id, created_at, updated_at)
			SELECT 'card-' || g, 'p-' || g, 'd-' || g, 'holder', 'CN', 'x', 'x', 'x', 'x', 'x', 'x', current_date + 365, 'HZ',
				'bank', 'x', 'x', 'x', 'active', '', md5('f' || g::TEXT)::UUID, md5('m' || g::TEXT)::UUID, now(), now()
			FROM generate_series(1, ` + fmt.Sprint(cards) + `) g`,
		`INSERT INTO card_tokens (token, card_token) SELECT 'card-' || g, 'card-' || g FROM generate_series(1, ` + fmt.Sprint(cards) + `) g`,
		`INSERT INTO purchase_authorizations (authorization_id, merchant_id, card_token, funds_account_id, mcc, amount,
				approved, decline_reason, decline_detail, expires_at, created_at)
			SELECT md5('p' || g::TEXT)::UUID, 'merchant-1', 'card-' || (g % ` + fmt.Sprint(cards) + ` + 1), NULL, '5411', 100, true, '', '',
				now() + INTERVAL '7 days', now() - (g || ' milliseconds')::INTERVAL FROM generate_series(1, ` + fmt.Sprint(cards*perCard) + `) g`,
		`INSERT INTO purchase_closes (authorization_id, close_id, kind, merchant_id, card_token, amount, released, fee_mdr,
				fee_network, foreign_surcharge, foreign_fx_margin, created_at)
			SELECT md5('p' || g::TEXT)::UUID, md5('c' || g::TEXT)::UUID, 'voided', 'merchant-1', 'card-' || (g % ` + fmt.Sprint(cards) + ` + 1),
				0, 100, 0, 0, 0, 0, now() FROM generate_series(1, ` + fmt.Sprint(cards*perCard) + `, 10) g`,
		`ANALYZE`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatalf("%v\n%s", err, q)
		}
	}
	for _, q := range postgres.PinnedPlans {
		if _, err := conn.Exec(ctx, strings.Replace(q, "SET LOCAL", "SET", 1)); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	from, to := now.Add(-24*time.Hour), now.Add(time.Second)
	tokens := make([]string, 5)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range tokens {
			tokens[j] = fmt.Sprintf("card-%d", (i*5+j)*7%cards+1)
		}
		rows, err := conn.Query(ctx, postgres.CardsByTokenLookup, tokens, from, to)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil || n != len(tokens) {
			b.Fatalf("%d cards of %d: %v", n, len(tokens), err)
		}
	}
}
