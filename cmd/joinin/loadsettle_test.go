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
	var before time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT checkpoint_time FROM pg_control_checkpoint()`).Scan(&before); err != nil {
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
	var after time.Time
	if err := st.Pool().QueryRow(ctx, `SELECT checkpoint_time FROM pg_control_checkpoint()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !after.After(before) {
		t.Errorf("checkpoint at %v, the same as before settling", after)
	}
}
