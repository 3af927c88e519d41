package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
)

// ErrBatchTooLarge is returned for a batch that plans more transfers than one ledger batch takes
// (ledger.MaxBatchTransfers). Nothing was written: the caller splits the batch and tries again.
var ErrBatchTooLarge = errors.New("batch plans more transfers than one ledger batch takes")

// IsPoison reports whether err comes from what a batch holds rather than from the database's
// state or availability, so that the same batch would fail the same way on every attempt: too many
// transfers, a value the database refuses (a data exception or a constraint other than a unique
// key, which is a race and retried), or the ledger catching itself breaking double entry. Such a
// batch is split, down to the event that causes it, which becomes a dead letter.
func IsPoison(err error) bool {
	if errors.Is(err, ErrBatchTooLarge) || errors.Is(err, ledger.ErrInvariant) {
		return true
	}
	code := pgCode(err)
	switch {
	case code == "23505": // unique_violation: a concurrent writer, retried
		return false
	case strings.HasPrefix(code, "22"), // data_exception: invalid text, a number out of range
		strings.HasPrefix(code, "23"), // integrity_constraint_violation
		strings.HasPrefix(code, "54"): // program_limit_exceeded: a value too large to index
		return true
	}
	return false
}

// maxPoisonReasonBytes bounds the reason stored with a poison event: the database's message is
// enough to find the cause; a longer one only repeats the event.
const maxPoisonReasonBytes = 512

// IngestPoison records msg as an event that can never be applied, in one transaction with cur (a
// cursor over msg alone): a dead letter with the reason, and the event's id as rejected when it
// has one, so that a redelivery is known. Nothing of the event reaches the ledger.
func (s *Store) IngestPoison(ctx context.Context, cur Cursor, msg clearing.Message, cause error) (*clearing.Decision, error) {
	reason := "cannot be applied: " + cause.Error()
	// The reason is stored as text: no NUL, valid UTF-8, bounded.
	reason = strings.ToValidUTF8(strings.ReplaceAll(reason, "\x00", `\x00`), "?")
	if len(reason) > maxPoisonReasonBytes {
		cut := maxPoisonReasonBytes
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	var fingerprint func([]byte) []byte
	if s.Tokenizer != nil {
		fingerprint = s.Tokenizer.Fingerprint
	}
	d := clearing.Poison(msg, reason, fingerprint)
	err := s.InTx(ctx, []Cursor{cur}, func(ctx context.Context, tx *Tx) error {
		w := *d
		if len(w.Processed) == 1 {
			// An id decided before (the event failed only after it was known) stays as decided.
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE event_id = $1`, w.Processed[0].EventID).Scan(&n); err != nil {
				return fmt.Errorf("look up the event: %w", err)
			}
			if n > 0 {
				w.Processed = nil
			}
		}
		return tx.writeDecision(ctx, &w, s.Now())
	})
	if err != nil {
		return nil, fmt.Errorf("dead-letter the event at %s offset %d: %w", msg.Source, msg.Offset, err)
	}
	return d, nil
}
