package bankfile

import "fmt"

// CheckSequence checks that h's file may follow previous, the sequence number of the last file
// the bank was sent (0 before the first): an original must be previous+1, so that a gap or a
// replay shows; a duplicate copy repeats a file already sent, so its sequence is 1 to previous.
// The refusal wraps ErrSequence and names both numbers.
func CheckSequence(previous int64, h Header) error {
	switch {
	case previous < 0:
		return fmt.Errorf("%w: previous sequence %d is negative", ErrSequence, previous)
	case h.Copy && (h.Sequence < 1 || h.Sequence > previous):
		return fmt.Errorf("%w: bank %s: a copy of file %d, but the last file sent is %d", ErrSequence, h.BankID, h.Sequence, previous)
	case !h.Copy && h.Sequence != previous+1:
		return fmt.Errorf("%w: bank %s: file %d after file %d, want %d", ErrSequence, h.BankID, h.Sequence, previous, previous+1)
	}
	return nil
}
