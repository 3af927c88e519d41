package bankfile

import (
	"errors"
	"fmt"
	"time"

	"github.com/joinincard/engine/internal/bankformat"
)

const (
	// reasonCodeLen: ISO 20022 status reason codes (ExternalStatusReason1Code) are four letters
	// or digits, e.g. AC04 (account closed), AM04 (insufficient funds), FF01 (invalid file).
	reasonCodeLen = 4
	// maxReasonRunes: a reason's text travels in Max105Text (StsRsnInf/AddtlInf).
	maxReasonRunes = 105
)

// Status is a bank's verdict on a settlement file or one of its items.
type Status string

const (
	StatusAccepted Status = "ACCP" // the whole file, or the item, is accepted
	StatusRejected Status = "RJCT" // the whole file, or the item, is rejected
	StatusPartial  Status = "PART" // the file is accepted but for the items listed as rejected
)

// Ack is a bank's acknowledgement of a settlement file (a pain.002-style status report). An
// item the acknowledgement does not list takes the group status, except under PART, where an
// item not listed is accepted: so ACCP lists no rejected item, RJCT rejects every item whether
// listed or not, and PART lists at least one rejected item.
type Ack struct {
	MessageID     string    // the acknowledgement's own id, 1 to 35 printable ASCII characters
	CreatedAt     time.Time // when the bank created it
	FileMessageID string    // the MessageID of the file acknowledged
	BankID        string    // the bank acknowledging
	Status        Status
	// ReasonCode and Reason say why a whole file is rejected: only with RJCT, and optional.
	ReasonCode string
	Reason     string
	Items      []ItemStatus
}

// ItemStatus is the bank's verdict on one item. A rejected item has a reason code.
type ItemStatus struct {
	ItemID     string
	Accepted   bool
	ReasonCode string // four letters or digits, for a rejected item only
	Reason     string // optional text, for a rejected item only
}

// Accepts returns whether the bank accepted the item with the given id, by the rule of Ack. It
// indexes the items once, for many lookups.
func (a *Ack) Accepts() func(itemID string) bool {
	rejected := make(map[string]bool)
	for _, s := range a.Items {
		if !s.Accepted {
			rejected[s.ItemID] = true
		}
	}
	status := a.Status
	return func(itemID string) bool {
		switch status {
		case StatusAccepted:
			return true
		case StatusRejected:
			return false
		}
		return !rejected[itemID]
	}
}

// validate checks every field, the item statuses against the group status, and refuses
// duplicate item ids.
func (a *Ack) validate() error {
	fail := func(field string, err error) error {
		return &FieldError{Record: recordAck, Field: field, Err: err}
	}
	if err := bankformat.CheckID(a.MessageID, maxIDBytes); err != nil {
		return fail("MessageID", err)
	}
	if err := bankformat.CheckTime(a.CreatedAt); err != nil {
		return fail("CreatedAt", err)
	}
	if err := bankformat.CheckID(a.FileMessageID, maxIDBytes); err != nil {
		return fail("FileMessageID", err)
	}
	if err := checkAccountID(a.BankID, maxAccountIDBytes); err != nil {
		return fail("BankID", err)
	}
	switch a.Status {
	case StatusAccepted, StatusRejected, StatusPartial:
	default:
		return fail("Status", errors.New("want ACCP, RJCT or PART"))
	}
	if a.ReasonCode != "" || a.Reason != "" {
		if a.Status != StatusRejected {
			return fail("ReasonCode", fmt.Errorf("%w: a group reason is given only with RJCT", ErrAckStatus))
		}
		if field, err := checkReason(a.ReasonCode, a.Reason); err != nil {
			return fail(field, err)
		}
	}
	if len(a.Items) > MaxItems {
		return fail("Items", fmt.Errorf("more than %d item statuses", MaxItems))
	}
	seen := make(map[string]struct{}, len(a.Items))
	rejected := 0
	for i, s := range a.Items {
		if err := s.validate(i + 1); err != nil {
			return err
		}
		if _, dup := seen[s.ItemID]; dup {
			return &FieldError{Record: recordItemStatus, Entry: i + 1, Field: "ItemID", Err: ErrDuplicateItem}
		}
		seen[s.ItemID] = struct{}{}
		if !s.Accepted {
			rejected++
		}
	}
	switch {
	case a.Status == StatusAccepted && rejected > 0:
		return fail("Status", fmt.Errorf("%w: ACCP with %d rejected items", ErrAckStatus, rejected))
	case a.Status == StatusRejected && rejected < len(a.Items):
		return fail("Status", fmt.Errorf("%w: RJCT with %d accepted items", ErrAckStatus, len(a.Items)-rejected))
	case a.Status == StatusPartial && rejected == 0:
		return fail("Status", fmt.Errorf("%w: PART without a rejected item", ErrAckStatus))
	}
	return nil
}

func (s ItemStatus) validate(entry int) error {
	fail := func(field string, err error) error {
		return &FieldError{Record: recordItemStatus, Entry: entry, Field: field, Err: err}
	}
	if err := bankformat.CheckID(s.ItemID, maxIDBytes); err != nil {
		return fail("ItemID", err)
	}
	if s.Accepted {
		if s.ReasonCode != "" || s.Reason != "" {
			return fail("ReasonCode", errors.New("an accepted item has no reason"))
		}
		return nil
	}
	if field, err := checkReason(s.ReasonCode, s.Reason); err != nil {
		return fail(field, err)
	}
	return nil
}

// checkReason checks a rejection's reason: a code, and optional text.
func checkReason(code, text string) (string, error) {
	if len(code) != reasonCodeLen {
		return "ReasonCode", fmt.Errorf("want %d upper-case letters or digits", reasonCodeLen)
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "ReasonCode", fmt.Errorf("want %d upper-case letters or digits", reasonCodeLen)
		}
	}
	if err := checkReasonText(text); err != nil {
		return "Reason", err
	}
	return "", nil
}

func checkReasonText(s string) error {
	if err := checkText(s, false); err != nil {
		return err
	}
	n := 0
	for range s {
		n++
	}
	if n > maxReasonRunes {
		return fmt.Errorf("is %d characters, more than %d", n, maxReasonRunes)
	}
	return nil
}

func parseStatus(s string, item bool) (Status, error) {
	switch st := Status(s); st {
	case StatusAccepted, StatusRejected:
		return st, nil
	case StatusPartial:
		if !item {
			return st, nil
		}
	}
	if item {
		return "", errors.New("want ACCP or RJCT")
	}
	return "", errors.New("want ACCP, RJCT or PART")
}
