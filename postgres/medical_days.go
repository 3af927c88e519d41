package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/medical"
)

// A fund's business day closes at midnight in Shanghai, but a write that read its day just before
// midnight may commit just after, and a reconciliation of the day run in between would report
// totals the write then changes. The day's row of medical_days settles which comes first:
//
//   - every write that counts in a day (a settlement, a stay's final bill with its true-up, a
//     cancellation, a reversal, a refund) holds the day's row FOR SHARE from the moment it has
//     locked the card's accounts until it commits, and writes nothing if the day is closed;
//   - the first report of a past day (its reconciliation or its detail) sets closed_at under the
//     row's exclusive lock, which waits for the writes holding it, and reads the day after that
//     commits.
//
// So a write counts in a reported day only if it committed before the report, and a closed day's
// totals never change. Lock order: card accounts, then the day's row, then the ledger's balances;
// the report takes the day's row alone, in a transaction of its own, so it waits for writes and no
// write waits for a report holding anything a write holds.

// dayGateRead reads a fund's day under its shared lock, held until the transaction ends.
const dayGateRead = `SELECT closed_at FROM medical_days WHERE fund_city = $1 AND business_day = $2 FOR SHARE`

// holdDay holds fund's business day day open for the transaction's write and reports whether it
// is: false once the day has been reported closed. The day's first writer makes its row; a
// writer that finds none and one racing it to make it read it, under its lock, once made.
func holdDay(ctx context.Context, tx *Tx, fund string, day events.Date) (bool, error) {
	date := time.Date(day.Year, day.Month, day.Day, 0, 0, 0, 0, time.UTC)
	var closed *time.Time
	err := tx.QueryRow(ctx, dayGateRead, fund, date).Scan(&closed)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO medical_days (fund_city, business_day) VALUES ($1, $2)
			ON CONFLICT (fund_city, business_day) DO NOTHING`, fund, date); err != nil {
			return false, fmt.Errorf("open medical day: %w", err)
		}
		err = tx.QueryRow(ctx, dayGateRead, fund, date).Scan(&closed)
	}
	if err != nil {
		return false, fmt.Errorf("read medical day: %w", err)
	}
	return closed == nil, nil
}

// dayGate is what a write's attempts found of its day. An attempt that finds its day closed runs
// the write again, once, on a new reading of the clock: a write that read its day just before
// midnight and reached the day after the report lands in the next day, as if it had started after
// midnight (a cancellation is then refused day_closed, as any after midnight). An attempt that
// still reads the closed day (its clock lags the reporter's by more than the write took) is
// refused day_closed, with nothing written.
type dayGate struct{ ranAgain bool }

// enter holds fund's day open for the attempt (holdDay). A closed day fails the attempt as a
// conflict the first time, and with the refusal refused returns the second.
func (g *dayGate) enter(ctx context.Context, tx *Tx, fund string, day events.Date, refused func() error) error {
	open, err := holdDay(ctx, tx, fund, day)
	switch {
	case err != nil:
		return err
	case open:
		return nil
	case !g.ranAgain:
		g.ranAgain = true
		return conflictError{fmt.Errorf("medical day %s of %s closed under the write: run again on the clock", day, fund)}
	}
	return refused()
}

// refuseClosedDay is the refusal of a write that still reads a day reported closed.
func refuseClosedDay(fund string, day events.Date) func() error {
	return func() error {
		return medical.Refuse(medical.ReasonDayClosed, "%s's business day %s has closed and been reported: nothing was written; "+
			"send the request again to count it in the next day", fund, day)
	}
}

// closeDay marks fund's business day day closed before it is reported. It waits for the writes
// holding the day (holdDay) to commit; once it returns, no write counts in the day any more. A
// day already closed costs one read.
func (m *Medical) closeDay(ctx context.Context, fund string, day events.Date) error {
	date := time.Date(day.Year, day.Month, day.Day, 0, 0, 0, 0, time.UTC)
	var closed *time.Time
	err := m.store.pool.QueryRow(ctx, `SELECT closed_at FROM medical_days WHERE fund_city = $1 AND business_day = $2`,
		fund, date).Scan(&closed)
	switch {
	case err == nil && closed != nil:
		return nil
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("read medical day: %w", err)
	}
	now := m.store.Now().UTC().Truncate(time.Microsecond)
	return m.store.retryTx(ctx, "close medical day", false, func(ctx context.Context, tx pgx.Tx, _ int) error {
		_, err := tx.Exec(ctx, `INSERT INTO medical_days (fund_city, business_day, closed_at) VALUES ($1, $2, $3)
			ON CONFLICT (fund_city, business_day) DO UPDATE SET closed_at = COALESCE(medical_days.closed_at, excluded.closed_at)`,
			fund, date, now)
		if err != nil {
			return fmt.Errorf("close medical day: %w", err)
		}
		return nil
	})
}

// reportDay prepares the report of fund's business day day: a day before today (on the store's
// clock) is closed first (closeDay), so that the report is final. It returns whether the day is
// closed. The caller has checked that the fund exists.
func (m *Medical) reportDay(ctx context.Context, fund string, day events.Date) (bool, error) {
	if !dayAfter(medical.DayOf(m.store.Now()), day) {
		return false, nil
	}
	return true, m.closeDay(ctx, fund, day)
}
