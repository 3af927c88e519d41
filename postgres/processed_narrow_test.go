package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

// processedRow is an event's record as the view processed_events shows it.
type processedRow struct {
	hash         []byte
	typ, status  string
	reason       string
	transfer     *uuid.UUID
	source       *string
	offset       *int64
	processedAt  *time.Time
	narrowStored bool // the stored record is narrow
}

func readProcessed(t *testing.T, st *postgres.Store, id uuid.UUID) processedRow {
	t.Helper()
	var r processedRow
	if err := st.Pool().QueryRow(context.Background(), `SELECT v.hash, v.type, v.status, v.reason, v.transfer_id, v.source,
			v.source_offset, v.processed_at, p.type IS NULL
		FROM processed_events v JOIN processed_event_records p ON p.event_id = v.event_id WHERE v.event_id = $1`, id).
		Scan(&r.hash, &r.typ, &r.status, &r.reason, &r.transfer, &r.source, &r.offset, &r.processedAt, &r.narrowStored); err != nil {
		t.Fatalf("event %s: %v", id, err)
	}
	return r
}

func countRows(t *testing.T, st *postgres.Store, sql string) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// An event applied as a transfer of its own kind is stored narrow (its id, hash and transfer) and
// read whole through processed_events, completed from its transfer; every other decision is
// stored whole. A redelivery of either is a duplicate, and an event id reused with another
// amount or another time is a conflict: nothing moves.
func TestAppliedEventsAreRecordedNarrow(t *testing.T) {
	st := pgtest.NewStore(t)
	pgtest.ClockFrom(st, time.Date(2024, 12, 3, 9, 0, 0, 0, time.UTC)) // the day after the city's events
	ctx := context.Background()
	city := loadtest.NewCity(3, 3, 2, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	regs := city.Registrations()
	funds := city.Funding(50000, 50000)
	buys := city.Purchases(3, 5000)
	contribution := city.Contribution(city.Cards[1], 12000)
	tap := city.Tap(city.Cards[2], events.DirectionIn, 7)
	stranger := city.Purchases(1, 100)[0]
	stranger.Data.(*events.PurchaseCleared).MerchantID = "m-unknown"

	first := append(append(append(append([]events.Event{}, regs...), funds...), buys...), contribution, tap, stranger)
	msgs := messages(t, "card-events/0", 0, first...)
	d, err := st.Ingest(ctx, nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	// A refund in a later batch reads its purchase's narrow record for the purchase's transfer.
	refund := city.Refund(buys[0], 1000)
	if d2, err := st.Ingest(ctx, nil, messages(t, "card-events/0", int64(len(msgs)), refund)); err != nil {
		t.Fatal(err)
	} else if len(d2.Processed) != 1 || d2.Processed[0].Status != clearing.Applied {
		t.Fatalf("refund of a narrow purchase: %+v", d2.Processed)
	}
	d.Merge(&clearing.Decision{Processed: []clearing.Processed{{EventID: refund.ID, Type: refund.Type, Status: clearing.Applied,
		Hash: mustDecode(t, refund).Hash, Source: "card-events/0", Offset: int64(len(msgs))}}})

	narrow := 0
	for _, p := range d.Processed {
		r := readProcessed(t, st, p.EventID)
		if r.typ != string(p.Type) || r.status != string(p.Status) || r.reason != p.Reason || string(r.hash) != string(p.Hash[:]) {
			t.Errorf("%s %s: read back %s %s %q", p.Type, p.Status, r.typ, r.status, r.reason)
		}
		if r.processedAt == nil {
			t.Errorf("%s %s: no processed_at", p.Type, p.Status)
		}
		wantNarrow := p.Status == clearing.Applied
		if r.narrowStored != wantNarrow {
			t.Errorf("%s %s: stored narrow %v, want %v", p.Type, p.Status, r.narrowStored, wantNarrow)
		}
		if wantNarrow {
			narrow++
			if r.transfer == nil || r.source != nil || r.offset != nil {
				t.Errorf("%s: narrow record reads transfer %v source %v offset %v", p.Type, r.transfer, r.source, r.offset)
			}
			continue
		}
		if r.source == nil || *r.source != p.Source || r.offset == nil || *r.offset != p.Offset {
			t.Errorf("%s %s: whole record reads source %v offset %v, want %s %d", p.Type, p.Status, r.source, r.offset, p.Source, p.Offset)
		}
	}
	if want := len(funds) + len(buys) + 2; narrow != want {
		t.Errorf("%d narrow records, want %d (funds, purchases, contribution, refund)", narrow, want)
	}

	transfers := countRows(t, st, `SELECT count(*) FROM transfers`)
	records := countRows(t, st, `SELECT count(*) FROM processed_event_records`)
	// Every event again, each decided by its record: duplicates.
	all := append(first, refund)
	again, err := st.Ingest(ctx, nil, messages(t, "card-events/1", 0, all...))
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicates != len(all) || len(again.Processed) != 0 || len(again.DeadLetters) != 0 {
		t.Fatalf("redelivery: %d duplicates of %d, %d processed, %d dead letters", again.Duplicates, len(all),
			len(again.Processed), len(again.DeadLetters))
	}
	// A purchase with another amount, a funding at another time, and a contribution with both:
	// conflicts, dead-lettered, each naming the transfer the event was applied as.
	otherAmount := buys[1]
	otherAmount.Data = &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 1, Currency: "CNY"}, MCC: "5411"}
	otherTime := funds[0]
	otherTime.OccurredAt = otherTime.OccurredAt.Add(time.Hour)
	otherBoth := contribution
	otherBoth.OccurredAt = otherBoth.OccurredAt.Add(-time.Minute)
	changedContribution := *contribution.Data.(*events.MedicalContribution)
	changedContribution.Amount.Minor = 1
	otherBoth.Data = &changedContribution
	conflicts, err := st.Ingest(ctx, nil, messages(t, "card-events/1", int64(len(all)), otherAmount, otherTime, otherBoth))
	if err != nil {
		t.Fatal(err)
	}
	if conflicts.Duplicates != 0 || len(conflicts.Processed) != 0 || len(conflicts.DeadLetters) != 3 {
		t.Fatalf("conflicts: %d duplicates, %d processed, %d dead letters", conflicts.Duplicates, len(conflicts.Processed), len(conflicts.DeadLetters))
	}
	for _, dl := range conflicts.DeadLetters {
		if dl.Kind != clearing.Conflict || !strings.Contains(dl.Reason, "applied as transfer ") {
			t.Errorf("dead letter %s: %s %q", dl.EventID, dl.Kind, dl.Reason)
		}
	}
	if n := countRows(t, st, `SELECT count(*) FROM transfers`); n != transfers {
		t.Errorf("%d transfers after the redeliveries, want %d", n, transfers)
	}
	if n := countRows(t, st, `SELECT count(*) FROM processed_event_records`); n != records {
		t.Errorf("%d records after the redeliveries, want %d", n, records)
	}
}

func mustDecode(t *testing.T, e events.Event) events.Event {
	t.Helper()
	dec, err := events.Decode(loadtest.Encode(e))
	if err != nil {
		t.Fatal(err)
	}
	return dec
}

// The view processed_events says each narrow record's type from its transfer's code, as the
// engine pairs them (postgres.NarrowCodes): one type per code, every pair.
func TestNarrowCodesMatchTheView(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	seen := map[ledger.Code]events.Type{}
	for typ, code := range postgres.NarrowCodes {
		if other, ok := seen[code]; ok {
			t.Fatalf("code %d says both %s and %s", code, other, typ)
		}
		seen[code] = typ
		event, transfer := uuid.New(), uuid.New()
		// Stand-ins rolled back at the end: a transfer of the code, on no account.
		if _, err := tx.Exec(ctx, `INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, timeout_seconds, code, flags, ts)
			VALUES ($1, $2, $3, 1, 0, $4, 0, now())`, transfer, uuid.New(), uuid.New(), int32(code)); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO processed_event_records (event_id, hash, transfer_id) VALUES ($1, $2, $3)`,
			event, []byte("0123456789abcdef0123456789abcdef"), transfer); err != nil {
			t.Fatal(err)
		}
		var got, status string
		if err := tx.QueryRow(ctx, `SELECT type, status FROM processed_events WHERE event_id = $1`, event).Scan(&got, &status); err != nil {
			t.Fatal(err)
		}
		if got != string(typ) || status != string(clearing.Applied) {
			t.Errorf("code %d: the view says %s %s, want %s applied", code, got, status, typ)
		}
	}
	// A record is whole or narrow, nothing between.
	if _, err := tx.Exec(ctx, `INSERT INTO processed_event_records (event_id, hash, type, transfer_id) VALUES ($1, $2, 'funds.loaded', $3)`,
		uuid.New(), []byte("x"), uuid.New()); err == nil {
		t.Fatal("a record neither whole nor narrow was stored")
	}
}

// A database migrated before narrow records keeps what its records say: after migration 0034
// each old record reads the same through processed_events, and still decides a redelivery of
// its event (a duplicate) or of another event under its id (a conflict naming where it came from).
func TestOldRecordsKeepTheirMeaningAfterMigration(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	// Back to the schema before 0034: the table under its old name, every column required.
	if _, err := st.Pool().Exec(ctx, `
		DROP VIEW processed_events;
		ALTER TABLE processed_event_records DROP CONSTRAINT processed_event_records_whole_or_narrow;
		ALTER TABLE processed_event_records RENAME TO processed_events;
		ALTER TABLE processed_events ALTER COLUMN type SET NOT NULL;
		ALTER TABLE processed_events ALTER COLUMN status SET NOT NULL;
		ALTER TABLE processed_events ALTER COLUMN reason SET NOT NULL;
		ALTER TABLE processed_events ALTER COLUMN source SET NOT NULL;
		ALTER TABLE processed_events ALTER COLUMN source_offset SET NOT NULL;
		ALTER TABLE processed_events ALTER COLUMN processed_at SET NOT NULL;
		DELETE FROM schema_migrations WHERE version = '0034_narrow_processed_events'`); err != nil {
		t.Fatal(err)
	}
	city := loadtest.NewCity(5, 2, 1, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	regs := city.Registrations()
	funds := city.Funding(50000, 50000)
	same, changed := mustDecode(t, funds[0]), mustDecode(t, funds[1])
	at := time.Date(2024, 12, 1, 8, 0, 0, 0, time.UTC)
	old := []struct {
		id       uuid.UUID
		hash     []byte
		status   string
		reason   string
		transfer *uuid.UUID
		offset   int64
	}{
		{same.ID, same.Hash[:], "applied", "", nil, 4},
		{changed.ID, []byte("another content's hash, 32 bytes"), "rejected", "unknown card", nil, 5},
	}
	for _, o := range old {
		if _, err := st.Pool().Exec(ctx, `INSERT INTO processed_events (event_id, hash, type, status, reason, transfer_id, source, source_offset, processed_at)
			VALUES ($1, $2, 'funds.loaded', $3, $4, $5, 'card-events/9', $6, $7)`, o.id, o.hash, o.status, o.reason, o.transfer, o.offset, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, o := range old {
		r := readProcessed(t, st, o.id)
		if string(r.hash) != string(o.hash) || r.typ != "funds.loaded" || r.status != o.status || r.reason != o.reason || r.transfer != nil ||
			r.source == nil || *r.source != "card-events/9" || r.offset == nil || *r.offset != o.offset ||
			r.processedAt == nil || !r.processedAt.Equal(at) || r.narrowStored {
			t.Errorf("old record %s reads %+v", o.id, r)
		}
	}
	d, err := st.Ingest(ctx, nil, messages(t, "card-events/0", 0, append(regs, funds...)...))
	if err != nil {
		t.Fatal(err)
	}
	if d.Duplicates != 1 || len(d.Processed) != len(regs)+len(funds)-2 || len(d.DeadLetters) != 1 {
		t.Fatalf("%d duplicates, %d processed, %d dead letters", d.Duplicates, len(d.Processed), len(d.DeadLetters))
	}
	if dl := d.DeadLetters[0]; dl.Kind != clearing.Conflict || dl.EventID != changed.ID ||
		!strings.Contains(dl.Reason, "(funds.loaded at card-events/9 offset 5)") {
		t.Fatalf("dead letter %+v", dl)
	}
}
