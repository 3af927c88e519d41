package ledger

import (
	"errors"
	"fmt"
)

// MaxBatchTransfers bounds one batch: the store writes a batch in one database transaction, and
// 16k narrow rows keep that transaction well under a second on one core while amortizing the
// commit's fsync over enough transfers to pass 200k transfers/s.
const MaxBatchTransfers = 16384

// ErrInvariant is wrapped by the error Apply returns when it catches itself breaking double entry.
// It is a programmer error: the batch must not be written.
var ErrInvariant = errors.New("ledger invariant violated")

// State is everything a batch may read, prefetched by the store: the accounts its transfers name,
// the transfers its ids or refs name, and the resolutions of those. Apply reads and updates it in
// place, so consecutive batches can run against one State in memory.
type State struct {
	Accounts map[ID]*Account
	// Transfers holds existing transfers whose id is reused by the batch (for idempotency) or named
	// by a Ref (holds to post, void or expire; transfers to reverse). Apply adds what it creates.
	Transfers map[ID]*Transfer
	// Resolutions says how each resolved transfer in Transfers was resolved; absent means open.
	Resolutions map[ID]ResolutionKind

	batch *batchToken // the current batch, to mark accounts it touched
	undo  []undoEntry
	// sides holds each created transfer's two accounts, parallel to Outcome.Created: the first
	// check of double entry reads their currencies, and they are the accounts the batch touched.
	sides [][2]*Account
}

// NewState returns an empty State with room for about n accounts.
func NewState(n int) *State {
	return &State{
		Accounts:    make(map[ID]*Account, n),
		Transfers:   make(map[ID]*Transfer),
		Resolutions: make(map[ID]ResolutionKind),
	}
}

// Outcome is what a batch did.
type Outcome struct {
	// Results has one entry per transfer of the batch, in order.
	Results []Result
	// Created lists the transfers the batch created, in batch order, with Timestamp set and holds'
	// inherited fields filled in. It is what the store inserts.
	Created []Transfer
	// Resolutions lists the holds posted, voided or expired and the transfers reversed.
	Resolutions []Resolution
	// Touched lists the accounts the created transfers name, holding their new balances: those
	// whose balance changed, and those whose balance came back where it was (a hold placed and
	// released in the batch), as their statements still list those transfers.
	Touched []*Account
}

type undoEntry struct {
	account *Account
	balance Balance
}

// Apply executes batch against s at time now (Unix microseconds), one transfer after another, and
// returns one Result per transfer. Linked chains apply all or nothing. A batch longer than
// MaxBatchTransfers is refused with an error and changes nothing.
func (s *State) Apply(batch []Transfer, now int64) (Outcome, error) {
	if len(batch) > MaxBatchTransfers {
		return Outcome{}, fmt.Errorf("batch of %d transfers exceeds the bound of %d", len(batch), MaxBatchTransfers)
	}
	s.batch = new(batchToken)
	s.sides = s.sides[:0]
	out := Outcome{
		Results: make([]Result, len(batch)),
		// Created never grows past len(batch), so pointers into it stay valid while s.Transfers
		// holds them for the rest of the batch.
		Created: make([]Transfer, 0, len(batch)),
	}

	// A chain still open at the end of the batch is refused whole: find where it starts.
	openChain := len(batch)
	for i := len(batch) - 1; i >= 0 && batch[i].Flags&Linked != 0; i-- {
		openChain = i
	}

	chainStart := -1 // index of the first transfer of the chain being applied, or -1
	var (
		mark        chainMark
		chainExists bool // the chain's first transfer exists: so must every other one
	)
	for i := 0; i < len(batch); i++ {
		if i == openChain {
			for j := i; j < len(batch)-1; j++ {
				out.Results[j] = LinkedEventFailed
			}
			out.Results[len(batch)-1] = LinkedEventChainOpen
			break
		}
		t := &batch[i]
		if chainStart < 0 {
			s.undo = s.undo[:0]
			if t.Flags&Linked != 0 {
				chainStart = i
				mark = chainMark{created: len(out.Created), resolutions: len(out.Resolutions)}
			}
		}
		r := s.create(t, now, &out)
		if chainStart >= 0 && (r == Created || r == Exists) {
			// A transfer that exists was applied before, by this id: a chain replayed whole
			// answers exists for each of its transfers and changes nothing. A chain in which some
			// transfers exist and others are new is not that chain replayed: refused whole.
			if i == chainStart {
				chainExists = r == Exists
			} else if (r == Exists) != chainExists {
				r = LinkedEventChainPartlyExists
			}
		}
		out.Results[i] = r
		if chainStart < 0 {
			continue
		}
		if r != Created && r != Exists {
			s.rollback(&out, mark)
			for j := chainStart; j < i; j++ {
				out.Results[j] = LinkedEventFailed
			}
			for i+1 < len(batch) && batch[i].Flags&Linked != 0 {
				i++
				out.Results[i] = LinkedEventFailed
			}
			chainStart = -1
			continue
		}
		if t.Flags&Linked == 0 {
			chainStart = -1
		}
	}

	// The accounts of the transfers created, each once: an account touched only by a chain that
	// was rolled back is unchanged and named by none of them. A token of its own marks the
	// accounts listed.
	out.Touched = make([]*Account, 0, min(2*len(out.Created), len(s.Accounts)))
	listed := new(batchToken)
	for _, side := range s.sides {
		for _, a := range side {
			if a.touched != listed {
				a.touched = listed
				out.Touched = append(out.Touched, a)
			}
		}
	}
	if err := s.checkBalanced(&out); err != nil {
		return Outcome{}, err
	}
	return out, nil
}

type chainMark struct{ created, resolutions int }

// rollback undoes the chain that started at mark: balances, created transfers and resolutions.
func (s *State) rollback(out *Outcome, mark chainMark) {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i].account.Balance = s.undo[i].balance
	}
	s.undo = s.undo[:0]
	for _, t := range out.Created[mark.created:] {
		delete(s.Transfers, t.ID)
	}
	for _, r := range out.Resolutions[mark.resolutions:] {
		delete(s.Resolutions, r.Target)
	}
	out.Created = out.Created[:mark.created]
	s.sides = s.sides[:mark.created]
	out.Resolutions = out.Resolutions[:mark.resolutions]
}

// create applies one transfer, or returns why not. It changes nothing unless it returns Created.
func (s *State) create(t *Transfer, now int64, out *Outcome) Result {
	if t.ID.IsZero() {
		return IDMustNotBeZero
	}
	if t.Flags&^transferFlagsValid != 0 {
		return FlagsInvalid
	}
	if kinds := t.Flags &^ Linked; kinds&(kinds-1) != 0 {
		return FlagsMutuallyExclusive
	}
	if e, ok := s.Transfers[t.ID]; ok {
		r := compareExisting(e, t)
		if a, known := s.Accounts[e.DebitAccountID]; r == Exists && t.Currency != "" && known && a.Currency != t.Currency {
			return CurrencyMismatch
		}
		return r
	}
	if t.Amount < 0 {
		return AmountNegative
	}
	if t.Flags&refFlags == 0 {
		return s.createPlain(t, now, out)
	}
	if t.Ref.IsZero() {
		return RefMustNotBeZero
	}
	if t.Ref == t.ID {
		return RefMustBeDifferent
	}
	if t.TimeoutSeconds != 0 {
		return TimeoutReservedForPending
	}
	if t.Flags&Reversal != 0 {
		return s.createReversal(t, now, out)
	}
	return s.resolvePending(t, now, out)
}

func (s *State) createPlain(t *Transfer, now int64, out *Outcome) Result {
	switch {
	case !t.Ref.IsZero():
		return RefMustBeZero
	case t.DebitAccountID.IsZero():
		return DebitAccountIDMustNotBeZero
	case t.CreditAccountID.IsZero():
		return CreditAccountIDMustNotBeZero
	case t.DebitAccountID == t.CreditAccountID:
		return AccountsSame
	case t.Amount == 0:
		return AmountZero
	case t.TimeoutSeconds != 0 && t.Flags&Pending == 0:
		return TimeoutReservedForPending
	}
	dr, cr, r := s.accounts(t.DebitAccountID, t.CreditAccountID, t.Currency)
	if r != Created {
		return r
	}
	pending := t.Flags&Pending != 0
	if r := s.move(dr, cr, t.Amount, pending); r != Created {
		return r
	}
	c := *t
	c.Timestamp = now
	s.record(&c, out, Resolution{}, dr, cr)
	return Created
}

func (s *State) createReversal(t *Transfer, now int64, out *Outcome) Result {
	o, ok := s.Transfers[t.Ref]
	switch {
	case !ok:
		return ReversalTargetNotFound
	case o.Flags&(Pending|VoidPending|ExpirePending) != 0:
		return ReversalTargetNotPosted
	case (!t.DebitAccountID.IsZero() && t.DebitAccountID != o.CreditAccountID) ||
		(!t.CreditAccountID.IsZero() && t.CreditAccountID != o.DebitAccountID):
		return ReversalHasDifferentAccounts
	case t.Amount == 0:
		return AmountZero
	case t.Amount > o.Amount:
		return ExceedsOriginalAmount
	case s.Resolutions[o.ID] != ResolutionNone:
		return ReversalAlreadyDone
	}
	dr, cr, r := s.accounts(o.CreditAccountID, o.DebitAccountID, t.Currency)
	if r != Created {
		return r
	}
	if r := s.move(dr, cr, t.Amount, false); r != Created {
		return r
	}
	c := *t
	c.DebitAccountID, c.CreditAccountID = o.CreditAccountID, o.DebitAccountID
	c.Timestamp = now
	s.record(&c, out, Resolution{Target: o.ID, By: c.ID, Kind: ResolutionReversed}, dr, cr)
	return Created
}

// resolvePending posts, voids or expires the hold named by t.Ref.
func (s *State) resolvePending(t *Transfer, now int64, out *Outcome) Result {
	p, ok := s.Transfers[t.Ref]
	switch {
	case !ok:
		return PendingNotFound
	case p.Flags&Pending == 0:
		return PendingNotPending
	case !t.DebitAccountID.IsZero() && t.DebitAccountID != p.DebitAccountID:
		return PendingHasDifferentDebitAccount
	case !t.CreditAccountID.IsZero() && t.CreditAccountID != p.CreditAccountID:
		return PendingHasDifferentCreditAccount
	}
	post := t.Flags&PostPending != 0
	amount := p.Amount
	if post {
		switch {
		case t.Amount == 0:
			return AmountZero
		case t.Amount > p.Amount:
			return ExceedsPendingAmount
		}
		amount = t.Amount
	} else if t.Amount != 0 && t.Amount != p.Amount {
		return VoidAmountMustMatch
	}
	switch s.Resolutions[p.ID] {
	case ResolutionNone:
	case ResolutionExpired:
		// A post or void after the timeout is refused as expired whether or not the sweep has
		// expired the hold yet: the answer must not depend on when the sweep ran.
		if t.Flags&ExpirePending == 0 {
			return PendingExpired
		}
		return PendingAlreadyResolved
	default:
		return PendingAlreadyResolved
	}
	expires := p.ExpiresAt()
	if t.Flags&ExpirePending != 0 {
		if expires == 0 || now < expires {
			return PendingNotExpired
		}
	} else if expires != 0 && now >= expires {
		return PendingExpired
	}
	dr, cr, r := s.accounts(p.DebitAccountID, p.CreditAccountID, t.Currency)
	if r != Created {
		return r
	}
	s.touch(dr)
	s.touch(cr)
	// Releasing the hold never raises exposure, and posting at most the held amount keeps the
	// totals within what the hold already proved fits: no limit or overflow check is needed.
	dr.DebitsPending -= p.Amount
	cr.CreditsPending -= p.Amount
	if post {
		dr.DebitsPosted += amount
		cr.CreditsPosted += amount
	}
	c := *t
	c.DebitAccountID, c.CreditAccountID = p.DebitAccountID, p.CreditAccountID
	c.Amount = amount
	c.Timestamp = now
	s.record(&c, out, Resolution{Target: p.ID, By: c.ID, Kind: resolutionOf(t.Flags)}, dr, cr)
	return Created
}

// accounts looks up a transfer's two accounts and checks they can trade with each other, in the
// currency the transfer states, if it states one.
func (s *State) accounts(debit, credit ID, want Currency) (dr, cr *Account, r Result) {
	dr, ok := s.Accounts[debit]
	if !ok {
		return nil, nil, DebitAccountNotFound
	}
	cr, ok = s.Accounts[credit]
	if !ok {
		return nil, nil, CreditAccountNotFound
	}
	if dr.Currency != cr.Currency || want != "" && dr.Currency != want {
		return nil, nil, CurrencyMismatch
	}
	return dr, cr, Created
}

// move debits dr and credits cr by amount, pending or posted, if no total passes its ceiling and neither
// account's constraint is broken. It changes nothing unless it returns Created.
func (s *State) move(dr, cr *Account, amount int64, pending bool) Result {
	// The room each side has for more than amount; negative when amount alone passes its ceiling.
	// A positive ceiling less a positive amount cannot overflow.
	drRoom, crRoom := dr.ceiling()-amount, cr.ceiling()-amount
	if pending {
		if dr.DebitsPending > drRoom {
			return OverflowsDebitsPending
		}
		if cr.CreditsPending > crRoom {
			return OverflowsCreditsPending
		}
	} else {
		if dr.DebitsPosted > drRoom {
			return OverflowsDebitsPosted
		}
		if cr.CreditsPosted > crRoom {
			return OverflowsCreditsPosted
		}
	}
	// Both rooms are non-negative now (a non-negative total was not above them), and both sums
	// are of non-negative totals already known to fit one by one.
	if dr.DebitsPending > drRoom-dr.DebitsPosted {
		return OverflowsDebits
	}
	if cr.CreditsPending > crRoom-cr.CreditsPosted {
		return OverflowsCredits
	}
	debits := dr.DebitsPending + dr.DebitsPosted + amount
	credits := cr.CreditsPending + cr.CreditsPosted + amount
	// Subtracting two non-negative int64 values cannot overflow, where adding the limit could.
	if dr.Flags&DebitsMustNotExceedCredits != 0 && debits-dr.CreditsPosted > dr.Limit {
		return InsufficientFunds
	}
	if cr.Flags&CreditsMustNotExceedDebits != 0 && credits-cr.DebitsPosted > cr.Limit {
		return ExceedsLimit
	}
	s.touch(dr)
	s.touch(cr)
	if pending {
		dr.DebitsPending += amount
		cr.CreditsPending += amount
	} else {
		dr.DebitsPosted += amount
		cr.CreditsPosted += amount
	}
	return Created
}

// touch remembers a's balance before its first change in this batch and before each change in a
// linked chain, so a failed chain can be undone.
func (s *State) touch(a *Account) {
	if a.touched != s.batch {
		a.touched = s.batch
		a.before = a.Balance
	}
	s.undo = append(s.undo, undoEntry{account: a, balance: a.Balance})
}

func (s *State) record(c *Transfer, out *Outcome, res Resolution, dr, cr *Account) {
	out.Created = append(out.Created, *c)
	s.sides = append(s.sides, [2]*Account{dr, cr})
	s.Transfers[c.ID] = &out.Created[len(out.Created)-1]
	if res.Kind != ResolutionNone {
		out.Resolutions = append(out.Resolutions, res)
		s.Resolutions[res.Target] = res.Kind
	}
}

// compareExisting answers a transfer whose id was used before. Fields a resolving transfer may
// leave zero (the accounts and a void's amount, inherited from the hold) match what they inherited.
func compareExisting(e, t *Transfer) Result {
	inherits := t.Flags&refFlags != 0
	switch {
	case e.Flags != t.Flags:
		return ExistsWithDifferentFlags
	case e.Ref != t.Ref:
		return ExistsWithDifferentRef
	case e.TimeoutSeconds != t.TimeoutSeconds:
		return ExistsWithDifferentTimeout
	case e.DebitAccountID != t.DebitAccountID && !(inherits && t.DebitAccountID.IsZero()):
		return ExistsWithDifferentDebitAccountID
	case e.CreditAccountID != t.CreditAccountID && !(inherits && t.CreditAccountID.IsZero()):
		return ExistsWithDifferentCreditAccountID
	case e.Amount != t.Amount && !(t.Flags&(VoidPending|ExpirePending) != 0 && t.Amount == 0):
		return ExistsWithDifferentAmount
	case e.UserData != t.UserData:
		return ExistsWithDifferentUserData
	case e.Code != t.Code:
		return ExistsWithDifferentCode
	}
	return Exists
}

// currencyTotals is the change a batch made to one currency's debits and credits, pending and posted.
type currencyTotals struct {
	currency                      Currency
	debitsPending, debitsPosted   int64
	creditsPending, creditsPosted int64
}

func totalsFor(ts []currencyTotals, c Currency) ([]currencyTotals, *currencyTotals) {
	for i := range ts {
		if ts[i].currency == c {
			return ts, &ts[i]
		}
	}
	ts = append(ts, currencyTotals{currency: c})
	return ts, &ts[len(ts)-1]
}

// checkBalanced checks double entry twice, independently: once from the transfers the batch
// created (each one balanced, in one currency, within its hold), and once from the balances of the
// accounts it touched. Both must agree, and debits must equal credits in every currency.
func (s *State) checkBalanced(out *Outcome) error {
	var want, got []currencyTotals
	for i := range out.Created {
		c := &out.Created[i]
		side := s.sides[i]
		if side[0].Currency != side[1].Currency || c.Amount <= 0 {
			return fmt.Errorf("%w: transfer %s is not a positive amount between two accounts of one currency", ErrInvariant, c.ID)
		}
		var t *currencyTotals
		want, t = totalsFor(want, side[0].Currency)
		released := int64(0)
		if c.Flags&(PostPending|VoidPending|ExpirePending) != 0 {
			p := s.Transfers[c.Ref]
			if p == nil || c.Amount > p.Amount {
				return fmt.Errorf("%w: transfer %s resolves %s beyond its hold", ErrInvariant, c.ID, c.Ref)
			}
			released = p.Amount
		}
		switch {
		case c.Flags&Pending != 0:
			t.debitsPending += c.Amount
			t.creditsPending += c.Amount
		case c.Flags&PostPending != 0:
			t.debitsPending -= released
			t.creditsPending -= released
			t.debitsPosted += c.Amount
			t.creditsPosted += c.Amount
		case c.Flags&(VoidPending|ExpirePending) != 0:
			t.debitsPending -= released
			t.creditsPending -= released
		default:
			t.debitsPosted += c.Amount
			t.creditsPosted += c.Amount
		}
	}
	for _, a := range out.Touched {
		var t *currencyTotals
		got, t = totalsFor(got, a.Currency)
		t.debitsPending += a.DebitsPending - a.before.DebitsPending
		t.debitsPosted += a.DebitsPosted - a.before.DebitsPosted
		t.creditsPending += a.CreditsPending - a.before.CreditsPending
		t.creditsPosted += a.CreditsPosted - a.before.CreditsPosted
	}
	for _, g := range got {
		if g.debitsPending != g.creditsPending || g.debitsPosted != g.creditsPosted {
			return fmt.Errorf("%w: %s debits and credits differ: %+v", ErrInvariant, g.currency, g)
		}
		_, w := totalsFor(want, g.currency)
		if *w != g {
			return fmt.Errorf("%w: %s balances moved %+v but transfers say %+v", ErrInvariant, g.currency, g, *w)
		}
	}
	for _, w := range want {
		_, g := totalsFor(got, w.currency)
		if *g != w {
			return fmt.Errorf("%w: %s balances moved %+v but transfers say %+v", ErrInvariant, w.currency, *g, w)
		}
	}
	return nil
}
