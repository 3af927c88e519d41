package ledger

import "fmt"

// Result is the outcome of one transfer. Exactly one is returned per transfer; only Created
// changes the ledger. The order of the checks, and so which Result a transfer with several faults
// gets, is part of the contract and is pinned by the table tests.
type Result uint8

const (
	Created Result = iota
	LinkedEventFailed
	LinkedEventChainOpen
	// LinkedEventChainPartlyExists refuses a chain in which some transfers exist and others are
	// new: a client that regenerated one transfer's id on retry would otherwise apply the rest a
	// second time. A chain whose transfers all exist, as they were, answers exists for each.
	LinkedEventChainPartlyExists
	IDMustNotBeZero
	FlagsInvalid
	FlagsMutuallyExclusive

	// Idempotency: the id was used before.
	Exists
	ExistsWithDifferentFlags
	ExistsWithDifferentRef
	ExistsWithDifferentTimeout
	ExistsWithDifferentDebitAccountID
	ExistsWithDifferentCreditAccountID
	ExistsWithDifferentAmount
	ExistsWithDifferentUserData
	ExistsWithDifferentCode

	// Shape of the request.
	DebitAccountIDMustNotBeZero
	CreditAccountIDMustNotBeZero
	AccountsSame
	AmountZero
	AmountNegative
	TimeoutReservedForPending
	RefMustNotBeZero
	RefMustBeZero
	RefMustBeDifferent

	// Accounts.
	DebitAccountNotFound
	CreditAccountNotFound
	CurrencyMismatch

	// Holds and reversals.
	PendingNotFound
	PendingNotPending
	PendingHasDifferentDebitAccount
	PendingHasDifferentCreditAccount
	ExceedsPendingAmount
	VoidAmountMustMatch
	PendingAlreadyResolved
	PendingExpired
	PendingNotExpired
	ReversalTargetNotFound
	ReversalTargetNotPosted
	ReversalAlreadyDone
	ExceedsOriginalAmount
	ReversalHasDifferentAccounts

	// Balances.
	OverflowsDebitsPending
	OverflowsCreditsPending
	OverflowsDebitsPosted
	OverflowsCreditsPosted
	OverflowsDebits
	OverflowsCredits
	InsufficientFunds
	ExceedsLimit

	resultCount
)

var resultNames = [resultCount]string{
	"created", "linked_event_failed", "linked_event_chain_open", "linked_event_chain_partly_exists", "id_must_not_be_zero",
	"flags_invalid", "flags_mutually_exclusive",
	"exists", "exists_with_different_flags", "exists_with_different_ref",
	"exists_with_different_timeout", "exists_with_different_debit_account_id",
	"exists_with_different_credit_account_id", "exists_with_different_amount",
	"exists_with_different_user_data", "exists_with_different_code",
	"debit_account_id_must_not_be_zero", "credit_account_id_must_not_be_zero", "accounts_same",
	"amount_zero", "amount_negative", "timeout_reserved_for_pending", "ref_must_not_be_zero",
	"ref_must_be_zero", "ref_must_be_different",
	"debit_account_not_found", "credit_account_not_found", "currency_mismatch",
	"pending_not_found", "pending_not_pending", "pending_has_different_debit_account",
	"pending_has_different_credit_account",
	"exceeds_pending_amount", "void_amount_must_match", "pending_already_resolved",
	"pending_expired", "pending_not_expired", "reversal_target_not_found",
	"reversal_target_not_posted", "reversal_already_done", "exceeds_original_amount", "reversal_has_different_accounts",
	"overflows_debits_pending", "overflows_credits_pending", "overflows_debits_posted",
	"overflows_credits_posted", "overflows_debits", "overflows_credits",
	"insufficient_funds", "exceeds_limit",
}

// String is the result's stable snake_case name, used in APIs, logs and metrics.
func (r Result) String() string {
	if r < resultCount {
		return resultNames[r]
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// ParseResult returns the Result named s.
func ParseResult(s string) (Result, error) {
	for r := Result(0); r < resultCount; r++ {
		if resultNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown result %q", s)
}

// Results lists every result code, in order.
func Results() []Result {
	rs := make([]Result, resultCount)
	for i := range rs {
		rs[i] = Result(i)
	}
	return rs
}

// IsIdempotent reports whether r answers a replay: the transfer was created before, by this id.
func (r Result) IsIdempotent() bool { return r == Exists }

// DependsOnBalance reports whether r refuses a transfer because of an account's balance (funds,
// a limit, a total that would overflow): a refusal that the same transfer against more recent
// balances might not get.
func (r Result) DependsOnBalance() bool {
	switch r {
	case OverflowsDebitsPending, OverflowsCreditsPending, OverflowsDebitsPosted, OverflowsCreditsPosted,
		OverflowsDebits, OverflowsCredits, InsufficientFunds, ExceedsLimit:
		return true
	}
	return false
}
