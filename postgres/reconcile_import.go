package postgres

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
)

var (
	// ErrStatementConflict is returned for a statement whose id, or sequence number, was imported
	// before with other content.
	ErrStatementConflict = errors.New("statement imported before with other content")
	// ErrStatementReadOnce is returned when the import's transaction had to run again after it
	// read the statement's entries, which a Reader yields once: nothing was kept, and the
	// statement imports when it is sent again.
	ErrStatementReadOnce = errors.New("the import was retried after reading the statement, which cannot be read again: nothing was kept, send it again")
	// ErrStatementFuture is returned for a statement whose period ends after the engine's today
	// plus StatementFutureDays: nothing of it is kept.
	ErrStatementFuture = errors.New("statement's period ends in the future")
)

// StatementFutureDays is how many days after the engine's today, in Asia/Shanghai, a statement's
// period may end: a bank closes its day on its own clock, which may run a little ahead of the
// engine's. The latest period end on file decides when an item is missing at the bank, so a
// statement dated further ahead (a mistyped year) would make every item of the bank missing at
// once; its booking dates lie within its period, so they are bounded too. Value dates are not:
// the bank may value an entry days after booking it.
const StatementFutureDays = 1

// FutureStatementError is a statement refused because its period ends after Latest, the
// engine's today plus StatementFutureDays. It wraps ErrStatementFuture.
type FutureStatementError struct {
	Bank, Statement string
	To, Latest      settlement.Date
}

func (e *FutureStatementError) Error() string {
	return fmt.Sprintf("statement %s of %s: its period ends %s, after %s (today in Asia/Shanghai plus %d day): %v",
		e.Statement, e.Bank, e.To, e.Latest, StatementFutureDays, ErrStatementFuture)
}

func (e *FutureStatementError) Unwrap() error { return ErrStatementFuture }

// CheckStatementPeriod refuses a statement whose period ends after today (now in Asia/Shanghai)
// plus StatementFutureDays, with a *FutureStatementError naming the day. Import checks it.
func CheckStatementPeriod(h statement.Header, now time.Time) error {
	latest := settlement.AddDays(settlement.DateOf(now.In(cards.Shanghai)), StatementFutureDays)
	if settlement.Before(latest, h.To) {
		return &FutureStatementError{Bank: h.BankID, Statement: h.StatementID, To: h.To, Latest: latest}
	}
	return nil
}

// Imported is what an import did.
type Imported struct {
	Bank      string
	Statement string
	Sequence  int64
	Entries   int64
}

// Import imports the statement rd reads, streaming its entries into the store in one
// transaction: a statement the reader refuses (its totals, its balances, a malformed element or
// line) is refused whole and nothing of it is kept. The same statement again (bank and id, the
// same content) is a replay (replayed true); its id or sequence number with other content fails
// with ErrStatementConflict.
//
// A Reader yields each entry once, and the store may run the transaction again (a conflict with
// a concurrent writer). A replay goes on reading where the attempt before stopped, its
// fingerprint kept across attempts; an import that must write entries already read fails with
// ErrStatementReadOnce, having kept nothing.
func (r *Reconciler) Import(ctx context.Context, rd *statement.Reader) (Imported, bool, error) {
	h := rd.Header()
	res := Imported{Bank: h.BankID, Statement: h.StatementID, Sequence: h.Sequence}
	if err := CheckStatementPeriod(h, r.store.Now()); err != nil {
		return res, false, err
	}
	replayed := false
	var (
		first error // the reader's refusal, if any: it sticks, so a retried attempt sees it again
		// sum is the fingerprint of the entries read, and read their number, over every attempt.
		sum  = sha256.New()
		read int64
	)
	// next reads the next entry into the fingerprint; false after the last.
	next := func() (statement.Entry, bool, error) {
		e, err := rd.Next()
		if err == io.EOF {
			return e, false, nil
		}
		if err != nil {
			first = err
			return e, false, err
		}
		hashEntry(sum, e)
		read++
		return e, true, nil
	}
	err := r.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		if first != nil {
			return first
		}
		replayed, res.Entries = false, 0
		var bankFound bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM parties WHERE kind = 'bank' AND party_id = $1)`, h.BankID).Scan(&bankFound); err != nil {
			return fmt.Errorf("look up the statement's bank: %w", err)
		}
		if !bankFound {
			return fmt.Errorf("statement of %q: %w", h.BankID, ErrUnknownBank)
		}
		var prior *string
		if err := tx.QueryRow(ctx, `SELECT content_hash FROM bank_statements WHERE bank_id = $1 AND statement_id = $2`,
			h.BankID, h.StatementID).Scan(&prior); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("look up the statement: %w", err)
		}
		if prior != nil {
			// Imported before: read it through to compare, keep nothing.
			for {
				_, ok, err := next()
				if err != nil {
					return err
				}
				if !ok {
					break
				}
			}
			res.Entries = read
			if r.afterEntries != nil {
				if err := r.afterEntries(); err != nil {
					return err
				}
			}
			h = rd.Header()
			fingerprint, err := finishHash(sum, h)
			if err != nil {
				return err
			}
			if fingerprint != *prior {
				return fmt.Errorf("statement %s of %s: %w", h.StatementID, h.BankID, ErrStatementConflict)
			}
			replayed = true
			return nil
		}
		if read > 0 {
			// An attempt before wrote entries it read, and rolled back: they cannot be read again.
			return fmt.Errorf("statement %s of %s: %w", h.StatementID, h.BankID, ErrStatementReadOnce)
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"statement_entries"},
			[]string{"bank_id", "statement_id", "line", "entry_ref", "ref", "item_id", "file_id", "amount", "booking_date", "value_date", "info"},
			pgx.CopyFromFunc(func() ([]any, error) {
				e, ok, err := next()
				if err != nil || !ok {
					return nil, err
				}
				var (
					item *[16]byte
					file *string
				)
				switch statement.ClassifyRef(e.EndToEndRef) {
				case statement.RefItem:
					if id, err := settlement.ParseFileItemID(e.EndToEndRef); err == nil {
						u := [16]byte(id)
						item = &u
					}
				case statement.RefFile:
					f := e.EndToEndRef
					file = &f
				}
				// The bank's free text repeats what the payer wrote: a personal number in it is
				// withheld, the rest kept for the people who reconcile. (A card number there refuses
				// the statement as it is read.)
				return []any{h.BankID, h.StatementID, read, e.EntryRef, e.EndToEndRef, item, file, e.Signed(),
					settlement.DateTime(e.BookingDate), settlement.DateTime(e.ValueDate), events.RedactWords(e.AdditionalInfo)}, nil
			}))
		if first != nil {
			return first
		}
		if err != nil {
			return fmt.Errorf("import the statement's entries: %w", err)
		}
		res.Entries = read
		if r.afterEntries != nil {
			if err := r.afterEntries(); err != nil {
				return err
			}
		}
		h = rd.Header() // a CSV statement's totals come in its trailer
		if err := CheckStatementPeriod(h, r.store.Now()); err != nil {
			return err
		}
		fingerprint, err := finishHash(sum, h)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
				opening, closing, entries, control_sum, net, content_hash, imported_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (bank_id, sequence) DO NOTHING`,
			h.BankID, h.StatementID, h.Sequence, h.CreatedAt.UTC(), settlement.DateTime(h.From), settlement.DateTime(h.To),
			h.OpeningBalance, h.ClosingBalance, h.NumberOfEntries, h.Sum, h.Net, fingerprint, r.store.Now().UTC())
		if err != nil {
			return fmt.Errorf("record the statement: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("statement %s of %s: sequence %d was imported as another statement: %w",
				h.StatementID, h.BankID, h.Sequence, ErrStatementConflict)
		}
		// Every entry waits for the bank's next reconciliation: lines 1 to read, as written above.
		tag, err = tx.Exec(ctx, `INSERT INTO recon_open_entries (bank_id, statement_id, line)
			SELECT $1, $2, g FROM generate_series(1, $3::BIGINT) g`, h.BankID, h.StatementID, read)
		if err != nil {
			return fmt.Errorf("queue the statement's entries for reconciliation: %w", err)
		}
		if tag.RowsAffected() != read {
			return fmt.Errorf("statement %s of %s: %d entries imported, %d queued for reconciliation", h.StatementID, h.BankID, read, tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return res, false, err
	}
	return res, replayed, nil
}

// finishHash is the statement's fingerprint: the entries' sum completed with the header, on a
// copy of sum, which a retried attempt goes on using.
func finishHash(sum hash.Hash, h statement.Header) (string, error) {
	state, err := sum.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("copy the statement's fingerprint: %w", err)
	}
	c := sha256.New()
	if err := c.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return "", fmt.Errorf("copy the statement's fingerprint: %w", err)
	}
	return hashHeader(c, h), nil
}

// hashEntry adds an entry's content to a statement's fingerprint.
func hashEntry(h hash.Hash, e statement.Entry) {
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\n", e.Amount, e.Direction, e.BookingDate, e.ValueDate,
		e.EntryRef, e.EndToEndRef, e.AdditionalInfo)
}

// hashHeader completes a statement's fingerprint with its header (a duplicate copy's marker
// aside: a copy is the statement it copies) and returns it.
func hashHeader(sum hash.Hash, h statement.Header) string {
	fmt.Fprintf(sum, "%s\x00%s\x00%d\x00%s\x00%s\x00%s\x00%d\x00%d\x00%d\x00%d\x00%d", h.BankID, h.StatementID, h.Sequence,
		h.CreatedAt.UTC().Format("2006-01-02T15:04:05.999999999Z"), h.From, h.To, h.OpeningBalance, h.ClosingBalance,
		h.NumberOfEntries, h.Sum, h.Net)
	return hex.EncodeToString(sum.Sum(nil))
}
