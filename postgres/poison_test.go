package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

func TestIsPoison(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("apply: %w", postgres.ErrBatchTooLarge), true},
		{fmt.Errorf("apply: %w", ledger.ErrInvariant), true},
		{fmt.Errorf("read: %w", &pgconn.PgError{Code: "22021"}), true}, // a NUL byte in text
		{&pgconn.PgError{Code: "22003"}, true},                         // numeric out of range
		{&pgconn.PgError{Code: "23514"}, true},                         // check violation
		{&pgconn.PgError{Code: "54000"}, true},                         // a value too large to index
		{&pgconn.PgError{Code: "23505"}, false},                        // a concurrent writer: retried
		{&pgconn.PgError{Code: "40001"}, false},
		{&pgconn.PgError{Code: "57P01"}, false}, // the server shutting down
		{errors.New("connection refused"), false},
		{postgres.ErrCursorMoved, false},
	} {
		if got := postgres.IsPoison(c.err); got != c.want {
			t.Errorf("IsPoison(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A batch that plans more transfers than one ledger batch takes is refused before anything is
// written, cursor included, so the consumer can split it.
func TestIngestRefusesTooManyTransfersAndWritesNothing(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	batch := make([]ledger.Transfer, ledger.MaxBatchTransfers+1)
	for i := range batch {
		batch[i] = ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 1, Code: 10}
	}
	_, err := st.CommitBatch(context.Background(), batch, &postgres.Cursor{Name: "p/0", From: 0, To: 5})
	if !errors.Is(err, postgres.ErrBatchTooLarge) || !postgres.IsPoison(err) {
		t.Fatalf("got %v, want ErrBatchTooLarge", err)
	}
	if pos, err := st.Cursor(context.Background(), "p/0"); err != nil || pos != 0 {
		t.Fatalf("cursor at %d, %v after a refused batch", pos, err)
	}
}

// An event that can never be applied is dead-lettered alone, with its cursor: its bytes as they
// came (a NUL byte and all), its id decided as rejected, so a redelivery is a duplicate.
func TestIngestPoisonDeadLettersOneEvent(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	city := loadtest.NewCity(9, 2, 1, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	if _, err := st.Ingest(ctx, nil, messages(t, "setup/0", 0, append(city.Registrations(), city.Funding(1000, 1000)...)...)); err != nil {
		t.Fatal(err)
	}
	e := city.Purchases(1, 100)[0]
	msg := messages(t, "card-events/3", 41, e)[0]
	msg.Raw = append(append([]byte{}, msg.Raw...), 0, 0xff) // bytes no text column would take
	cause := fmt.Errorf("load cards: %w", &pgconn.PgError{Code: "22021", Message: "invalid byte sequence for encoding \"UTF8\": 0x00"})
	d, err := st.IngestPoison(ctx, postgres.Cursor{Name: "card-events/3", From: 0, To: 42}, msg, cause)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.DeadLetters) != 1 || len(d.Processed) != 1 || d.Processed[0].Status != clearing.Rejected {
		t.Fatalf("decision %+v", d)
	}
	if pos, err := st.Cursor(ctx, "card-events/3"); err != nil || pos != 42 {
		t.Fatalf("cursor %d, %v", pos, err)
	}
	dls, err := st.UnrelayedDeadLetters(ctx)
	if err != nil || len(dls) != 1 || string(dls[0].Raw) != string(msg.Raw) || dls[0].EventID != e.ID {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
	// Redelivered: known, a duplicate, nothing applied.
	again, err := st.Ingest(ctx, nil, messages(t, "card-events/3", 42, e))
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicates != 1 || len(again.Transfers) != 0 {
		t.Fatalf("redelivery: %+v", again)
	}
	// The same event failing again after its id is known keeps its first decision.
	if _, err := st.IngestPoison(ctx, postgres.Cursor{Name: "card-events/3", From: 43, To: 44}, messages(t, "card-events/3", 43, e)[0], cause); err == nil {
		t.Fatal("a poison event over a moved cursor was written")
	}
	if _, err := st.IngestPoison(ctx, postgres.Cursor{Name: "card-events/3", From: 42, To: 43}, messages(t, "card-events/3", 42, e)[0], cause); err != nil {
		t.Fatalf("a known event failing again: %v", err)
	}
}
