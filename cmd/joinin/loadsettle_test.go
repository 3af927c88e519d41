package main

import (
	"context"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
)

// After a pre-fill, the tables are vacuumed and analyzed and a checkpoint is taken before the
// run measures: the rows written the minute before cost the measured seconds no maintenance.
func TestSettleTablesVacuumsAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	if pg, err := st.IsPostgreSQL(ctx); err != nil || !pg {
		t.Skipf("VACUUM and CHECKPOINT are PostgreSQL's: %v", err)
	}
	for _, q := range []string{`CREATE TABLE prefilled (n INT PRIMARY KEY)`, `INSERT INTO prefilled SELECT generate_series(1, 1000)`} {
		if _, err := st.Pool().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// The checkpoint's position in the WAL, not its time: the time has whole seconds, and a
	// checkpoint another test asked for may fall in the same second.
	var before string
	if err := st.Pool().QueryRow(ctx, `SELECT CAST(checkpoint_lsn AS TEXT) FROM pg_control_checkpoint()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := settleTables(ctx, st); err != nil {
		t.Fatal(err)
	}
	var vacuumed, analyzed *time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = 'prefilled'`).Scan(&vacuumed, &analyzed); err != nil {
		t.Fatal(err)
	}
	if vacuumed == nil || analyzed == nil {
		t.Errorf("prefilled: last vacuum %v, last analyze %v; want both", vacuumed, analyzed)
	}
	var (
		after string
		moved bool
	)
	if err := st.Pool().QueryRow(ctx, `SELECT CAST(checkpoint_lsn AS TEXT), checkpoint_lsn > CAST($1 AS pg_lsn) FROM pg_control_checkpoint()`,
		before).Scan(&after, &moved); err != nil {
		t.Fatal(err)
	}
	if !moved {
		t.Errorf("checkpoint at %s, no later than before settling (%s)", after, before)
	}
}
