package postgres_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
)

// The medical day of these tests: Monday 2 March 2026 in Shanghai, its last tenth of a second
// and the first tenth of the next day.
var (
	closeDay       = time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
	beforeMidnight = time.Date(2026, 3, 2, 23, 59, 59, 900_000_000, cards.Shanghai)
	afterMidnight  = time.Date(2026, 3, 3, 0, 0, 0, 100_000_000, cards.Shanghai)
)

// waitForLockWaiters waits until n of the database's connections wait for a lock, or done is
// closed (what was to wait finished without waiting), and fails t after ten seconds.
func waitForLockWaiters(t *testing.T, st *postgres.Store, n int, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return
		default:
		}
		var waiting int
		err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections wait for a lock after 10s, want %d", waiting, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dayLines is a fund's day's detail export.
func (w *medWorld) dayLines(t *testing.T, fund string, day events.Date) []medical.DetailLine {
	t.Helper()
	var lines []medical.DetailLine
	if err := w.med.Detail(context.Background(), fund, day, func(l medical.DetailLine) error {
		lines = append(lines, l)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return lines
}

func sameDay(t *testing.T, what string, first, again medical.DayTotals) {
	t.Helper()
	if !first.Closed || !again.Closed {
		t.Errorf("%s: closed %v then %v, want a closed day", what, first.Closed, again.Closed)
	}
	if !reflect.DeepEqual(first, again) {
		t.Errorf("%s: the closed day's totals changed:\nfirst %+v\nthen  %+v", what, first, again)
	}
}

// A settlement that read its business day just before midnight and commits after it, while the
// day's reconciliation runs just after midnight: the reconciliation waits for the settlement, which
// counts in its day, and every later reading of the day gives the same totals.
func TestMedicalDayCloseWaitsForSettlementInFlight(t *testing.T) {
	w := newMedWorld(t, closeDay)
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 10_000_00)
	if _, _, err := w.med.Settle(ctx, w.hospital, "HIS-MORNING", card.Token, basket(t, medical.Outpatient, "A300")); err != nil {
		t.Fatal(err)
	}
	day := medical.DayOf(closeDay)

	// Hold the settlement after it has read its day and before it commits: another transaction
	// takes the accumulators' next version, which the settlement writes last.
	w.clock.Set(beforeMidnight)
	hold, err := w.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(ctx) }()
	if _, err := hold.Exec(ctx, `INSERT INTO medical_accumulators (card_token, city, year, version, amounts, settlement_id, change, ts)
		VALUES ($1, 'jiaxing', 2026, 2, '{}', $2, 'settled', $3)`, card.Token, uuid.New(), beforeMidnight); err != nil {
		t.Fatal(err)
	}
	type settled struct {
		s   medical.Settlement
		err error
	}
	late := make(chan settled, 1)
	go func() {
		s, _, err := w.med.Settle(ctx, w.hospital, "HIS-LATE", card.Token, basket(t, medical.Outpatient, "A200"))
		late <- settled{s, err}
	}()
	waitForLockWaiters(t, w.st, 1, nil)

	// Midnight passes; the day's reconciliation starts while the settlement is in flight.
	w.clock.Set(afterMidnight)
	type reconciled struct {
		d   medical.DayTotals
		err error
	}
	first := make(chan reconciled, 1)
	firstDone := make(chan struct{})
	go func() {
		d, err := w.med.Reconciliation(ctx, "jiaxing", day)
		first <- reconciled{d, err}
		close(firstDone)
	}()
	waitForLockWaiters(t, w.st, 2, firstDone)
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-late
	if got.err != nil {
		t.Fatalf("the settlement in flight at midnight: %v", got.err)
	}
	r := <-first
	if r.err != nil {
		t.Fatal(r.err)
	}
	again, err := w.med.Reconciliation(ctx, "jiaxing", day)
	if err != nil {
		t.Fatal(err)
	}
	sameDay(t, "reconciliation", r.d, again)
	switch got.s.Day {
	case day:
		if r.d.All.Settlements != 2 {
			t.Errorf("the day counts %d settlements, want 2 with the one in flight at midnight", r.d.All.Settlements)
		}
	case medical.DayOf(afterMidnight):
	default:
		t.Errorf("the settlement in flight at midnight counts in %s", got.s.Day)
	}
	if n := len(w.dayLines(t, "jiaxing", day)); int64(n) != again.All.Settlements {
		t.Errorf("the day's detail has %d lines, its totals %d settlements", n, again.All.Settlements)
	}
}

// Once a day has been reported closed, a write whose clock still reads the day (it read the time
// before midnight, or its clock lags the reporter's) is refused day_closed: a settlement, a final
// bill, a cancellation, a refund. Nothing of it is written, the day's totals and detail stay as
// reported, and the same requests after midnight count in the next day.
func TestMedicalWritesAfterTheDayIsReportedAreRefused(t *testing.T) {
	w := newMedWorld(t, closeDay)
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 10_000_00)
	for _, ref := range []string{"HIS-1", "HIS-2"} {
		if _, _, err := w.med.Settle(ctx, w.hospital, ref, card.Token, basket(t, medical.Outpatient, "A300")); err != nil {
			t.Fatal(err)
		}
	}
	stay := medical.StayBill{Ref: "ADM-1", Kind: medical.StayInterim}
	if _, _, err := w.med.SettleStay(ctx, w.hospital, "HIS-STAY-1", card.Token, basket(t, medical.Inpatient, "A1000"), stay); err != nil {
		t.Fatal(err)
	}
	day := medical.DayOf(closeDay)
	w.clock.Set(afterMidnight)
	reported, err := w.med.Reconciliation(ctx, "jiaxing", day)
	if err != nil {
		t.Fatal(err)
	}
	lines := w.dayLines(t, "jiaxing", day)
	before := w.snapshot(t, 0, card.FundsAccount, card.MedicalAccount, w.hospital.Account)

	w.clock.Set(beforeMidnight)
	_, _, err = w.med.Settle(ctx, w.hospital, "HIS-3", card.Token, basket(t, medical.Outpatient, "A100"))
	wantRefusal(t, err, medical.ReasonDayClosed)
	_, _, err = w.med.SettleStay(ctx, w.hospital, "HIS-STAY-2", card.Token, basket(t, medical.Inpatient, "A500"),
		medical.StayBill{Ref: "ADM-1", Kind: medical.StayFinal})
	wantRefusal(t, err, medical.ReasonDayClosed)
	_, _, err = w.med.End(ctx, w.hospital, "HIS-2", medical.Cancelled, "wrong patient")
	wantRefusal(t, err, medical.ReasonDayClosed)
	_, _, _, err = w.med.Refund(ctx, w.hospital, "HIS-1", "R-1", 50_00, "test not done")
	wantRefusal(t, err, medical.ReasonDayClosed)
	if after := w.snapshot(t, 0, card.FundsAccount, card.MedicalAccount, w.hospital.Account); !sameSnapshot(before, after) {
		t.Errorf("refused writes changed the card: %+v, then %+v", before, after)
	}

	w.clock.Set(afterMidnight)
	again, err := w.med.Reconciliation(ctx, "jiaxing", day)
	if err != nil {
		t.Fatal(err)
	}
	sameDay(t, "reconciliation", reported, again)
	if got := w.dayLines(t, "jiaxing", day); !reflect.DeepEqual(got, lines) {
		t.Errorf("the closed day's detail changed: %d lines, then %d", len(lines), len(got))
	}

	// After midnight the same requests count in the next day.
	next := medical.DayOf(afterMidnight)
	s, _, err := w.med.Settle(ctx, w.hospital, "HIS-3", card.Token, basket(t, medical.Outpatient, "A100"))
	if err != nil || s.Day != next {
		t.Fatalf("settle after midnight: day %s, %v", s.Day, err)
	}
	f, _, err := w.med.SettleStay(ctx, w.hospital, "HIS-STAY-2", card.Token, basket(t, medical.Inpatient, "A500"),
		medical.StayBill{Ref: "ADM-1", Kind: medical.StayFinal})
	if err != nil || f.Day != next || f.TrueUp == nil || f.TrueUp.Day != next {
		t.Fatalf("final bill after midnight: %+v, %v", f, err)
	}
	rf, _, _, err := w.med.Refund(ctx, w.hospital, "HIS-1", "R-1", 50_00, "test not done")
	if err != nil || rf.Day != next {
		t.Fatalf("refund after midnight: day %s, %v", rf.Day, err)
	}
	_, _, err = w.med.End(ctx, w.hospital, "HIS-2", medical.Cancelled, "wrong patient")
	wantRefusal(t, err, medical.ReasonDayClosed)
	e, _, err := w.med.End(ctx, w.hospital, "HIS-2", medical.Reversed, "wrong patient")
	if err != nil || e.End.Day != next {
		t.Fatalf("reversal after midnight: %+v, %v", e.End, err)
	}
	final, err := w.med.Reconciliation(ctx, "jiaxing", day)
	if err != nil {
		t.Fatal(err)
	}
	sameDay(t, "reconciliation after the next day's writes", reported, final)
}

// A cancellation that read its day just before midnight and waits for the card (another of its
// writes holds it) while the day is reported just after midnight: it is refused day_closed, as
// any cancellation after midnight, and the day's totals stay as reported. A reversal then counts
// in the next day.
func TestMedicalCancellationInFlightAtMidnightIsRefused(t *testing.T) {
	w := newMedWorld(t, closeDay)
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 10_000_00)
	if _, _, err := w.med.Settle(ctx, w.hospital, "HIS-1", card.Token, basket(t, medical.Outpatient, "A300")); err != nil {
		t.Fatal(err)
	}
	day := medical.DayOf(closeDay)

	w.clock.Set(beforeMidnight)
	hold, err := w.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(ctx) }()
	if _, err := hold.Exec(ctx, `SELECT id FROM accounts WHERE id = ANY($1) FOR UPDATE`,
		[][16]byte{card.MedicalAccount, card.FundsAccount}); err != nil {
		t.Fatal(err)
	}
	type ended struct {
		s   medical.Settlement
		err error
	}
	cancel := make(chan ended, 1)
	go func() {
		s, _, err := w.med.End(ctx, w.hospital, "HIS-1", medical.Cancelled, "wrong patient")
		cancel <- ended{s, err}
	}()
	waitForLockWaiters(t, w.st, 1, nil)

	w.clock.Set(afterMidnight)
	reported, err := w.med.Reconciliation(ctx, "jiaxing", day)
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-cancel
	if got.err == nil {
		t.Fatalf("a cancellation committed after its day was reported: %+v", got.s.End)
	}
	wantRefusal(t, got.err, medical.ReasonDayClosed)
	again, err := w.med.Reconciliation(ctx, "jiaxing", day)
	if err != nil {
		t.Fatal(err)
	}
	sameDay(t, "reconciliation", reported, again)
	if reported.All.Settlements != 1 || reported.All.Cancelled != 0 {
		t.Errorf("the day counts %d settlements and %d cancelled, want 1 and 0", reported.All.Settlements, reported.All.Cancelled)
	}
	r, _, err := w.med.End(ctx, w.hospital, "HIS-1", medical.Reversed, "wrong patient")
	if err != nil || r.End.Day != medical.DayOf(afterMidnight) {
		t.Fatalf("reversal after midnight: %+v, %v", r.End, err)
	}
}
