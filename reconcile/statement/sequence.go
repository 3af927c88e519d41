package statement

import "fmt"

// CheckSequence checks that h's statement may follow previous, the sequence number of the last
// statement the bank sent (0 before the first): an original must be previous+1, so that a gap or
// a replay shows; a duplicate copy repeats a statement already sent, so its sequence is 1 to
// previous. The refusal wraps ErrSequence and names both numbers.
func CheckSequence(previous int64, h Header) error {
	switch {
	case previous < 0:
		return fmt.Errorf("%w: previous sequence %d is negative", ErrSequence, previous)
	case h.Copy && (h.Sequence < 1 || h.Sequence > previous):
		return fmt.Errorf("%w: bank %s: a copy of statement %d, but the last statement is %d", ErrSequence, h.BankID, h.Sequence, previous)
	case !h.Copy && h.Sequence != previous+1:
		return fmt.Errorf("%w: bank %s: statement %d after statement %d, want %d", ErrSequence, h.BankID, h.Sequence, previous, previous+1)
	}
	return nil
}
