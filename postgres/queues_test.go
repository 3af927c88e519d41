package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
)

// The queue tables carry their vacuum settings on PostgreSQL, and migrating again leaves them.
func TestQueueTablesAreTunedOnPostgreSQL(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	pg, err := st.IsPostgreSQL(ctx)
	if err != nil || !pg {
		t.Fatalf("the test server is PostgreSQL: %v %v", pg, err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"taps", "open_holds", "transit_reprice", "recon_open_entries", "recon_open_items"} {
		var opts []string
		if err := st.Pool().QueryRow(ctx, `SELECT COALESCE(reloptions, '{}') FROM pg_class WHERE relname = $1`, table).Scan(&opts); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=1000",
			"autovacuum_analyze_scale_factor=0", "autovacuum_analyze_threshold=1000"} {
			if !slices.Contains(opts, want) {
				t.Errorf("%s: %v lacks %s", table, opts, want)
			}
		}
	}
	// History tables keep PostgreSQL's defaults: they are never deleted from.
	var opts []string
	if err := st.Pool().QueryRow(ctx, `SELECT COALESCE(reloptions, '{}') FROM pg_class WHERE relname = 'transfers'`).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	if len(opts) != 0 {
		t.Errorf("transfers: %v", opts)
	}
}

// queueDepth is how many rows each queue holds while it churns: a busy city's open holds, or a
// backlog of taps a drain takes in two passes.
const queueDepth = 20_000

// churnRounds is how many times each queue's depth goes through it: ten times its size in
// deleted rows, far past PostgreSQL's default vacuum point (a fifth of the table).
const churnRounds = 10

// The queues live by insert and delete. Churned with ten times their depth, by the engine's own
// claims, they hold no more live rows than their depth, and every claim stays a probe of its
// index rather than a scan of the table with the dead rows in it.
func TestQueuesStaySmallUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churns each queue with hundreds of thousands of rows")
	}
	st := pgtest.NewStore(t)
	ctx := context.Background()
	pool := st.Pool()
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	fill := map[string]string{
		// As the consumer writes the inbox: one row per transit.tap event.
		"taps": `INSERT INTO taps (event_id, card_token, operator_id, device_id, device_seq, tapped_at, station_id, line,
				direction, mode, received_at)
			SELECT md5('tap' || g::TEXT)::UUID, 'card-' || (g % 5000), 'HZMETRO', 'dev-' || (g % 100), g,
				$1::TIMESTAMPTZ + g * INTERVAL '1 millisecond', '0101', '1', 'in', 'metro', $1::TIMESTAMPTZ + g * INTERVAL '1 millisecond'
			FROM generate_series($2::INT, $3::INT) g`,
		// As a batch placing holds with a timeout writes the queue.
		"open_holds": `INSERT INTO open_holds (transfer_id, expires_at)
			SELECT md5('hold' || g::TEXT)::UUID, $1::TIMESTAMPTZ + g * INTERVAL '1 millisecond' FROM generate_series($2::INT, $3::INT) g`,
		// As a late tap marks its card's travel day.
		"transit_reprice": `INSERT INTO transit_reprice (card_token, group_key, travel_day, marked_at)
			SELECT 'card-' || lpad(g::TEXT, 9, '0'), 'hangzhou', DATE '2026-03-01', $1::TIMESTAMPTZ FROM generate_series($2::INT, $3::INT) g`,
	}
	// The engine's claims, which delete what they take.
	drain := map[string]func(tx pgx.Tx) (int64, error){
		"taps": func(tx pgx.Tx) (int64, error) { return deleted(ctx, tx, postgres.TapsDrainClaim, queueDepth) },
		"open_holds": func(tx pgx.Tx) (int64, error) {
			// The sweep's lookup (without its join to the holds' transfers) finds the due holds;
			// the batch that expires them deletes them as every batch resolving holds does.
			rows, err := tx.Query(ctx, `SELECT transfer_id FROM open_holds WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2`,
				time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), queueDepth)
			if err != nil {
				return 0, err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
			if err != nil {
				return 0, err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM open_holds WHERE transfer_id = ANY($1)`, ids)
			return tag.RowsAffected(), err
		},
		"transit_reprice": func(tx pgx.Tx) (int64, error) { return deleted(ctx, tx, postgres.RepriceClaim, queueDepth) },
	}
	for _, table := range []string{"taps", "open_holds", "transit_reprice"} {
		next := 1
		add := func() {
			t.Helper()
			if _, err := pool.Exec(ctx, fill[table], base, next, next+queueDepth-1); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			next += queueDepth
		}
		add()
		for round := range churnRounds {
			add()
			var n int64
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
				n, err = drain[table](tx)
				return err
			})
			if err != nil || n != queueDepth {
				t.Fatalf("%s round %d: drained %d, %v", table, round, n, err)
			}
			if live := count(t, pool, table); live != queueDepth {
				t.Fatalf("%s round %d: %d live rows, want %d", table, round, live, queueDepth)
			}
		}
	}
	// Each claim at the engine's own bound: the inbox drain takes up to 10,000 taps, the sweep
	// looks up 16,384 holds (its join to transfers is in TestHotLookupsAreIndexProbes: these
	// holds are stand-ins with no transfer), a re-price pass 512 marked days.
	for _, tc := range []struct {
		table, index, query string
		args                []any
	}{
		{"taps", "taps_received", postgres.TapsDrainClaim, []any{postgres.MaxDrainTaps}},
		{"open_holds", "open_holds_expires_at", `SELECT transfer_id FROM open_holds WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2`,
			[]any{base.Add(time.Hour), 16384}},
		{"transit_reprice", "transit_reprice_pkey", postgres.RepriceClaim, []any{postgres.MaxRepriceMarks}},
	} {
		plan := explain(t, pool, tc.query, tc.args...)
		if !strings.Contains(plan, tc.index) || strings.Contains(plan, "Seq Scan on "+tc.table) {
			t.Errorf("the claim on %s after churn does not probe %s:\n%s", tc.table, tc.index, plan)
		}
	}
	// Emptied, so that the ledger check at the end finds no open hold without its transfer.
	for _, table := range []string{"taps", "open_holds", "transit_reprice"} {
		if _, err := pool.Exec(ctx, `DELETE FROM `+table); err != nil {
			t.Fatal(err)
		}
	}
}

func deleted(ctx context.Context, tx pgx.Tx, claim string, limit int) (int64, error) {
	rows, err := tx.Query(ctx, claim, limit)
	if err != nil {
		return 0, err
	}
	rows.Close()
	return rows.CommandTag().RowsAffected(), rows.Err()
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func explain(t *testing.T, pool *pgxpool.Pool, query string, args ...any) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
