package ledger_test

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/joinincard/engine/ledger"
)

// The reference model: a ledger written as plainly as possible, one transfer at a time, sharing
// nothing with engine.go but the types and the contract (the order of the checks). A linked chain
// is applied to the model with a copy of the model kept aside, and a failed chain puts the copy back.

type modelAccount struct {
	currency ledger.Currency
	flags    ledger.AccountFlags
	limit    int64
	ceiling  int64 // the most either side may total; math.MaxInt64 when the account states none
	balance  ledger.Balance
}

func modelAccountOf(a *ledger.Account) modelAccount {
	ceiling := a.Ceiling
	if ceiling == 0 {
		ceiling = math.MaxInt64
	}
	return modelAccount{currency: a.Currency, flags: a.Flags, limit: a.Limit, ceiling: ceiling, balance: a.Balance}
}

type model struct {
	accounts    map[ledger.ID]modelAccount
	transfers   map[ledger.ID]ledger.Transfer
	resolutions map[ledger.ID]ledger.ResolutionKind
}

func newModel(accounts []ledger.Account) *model {
	m := &model{
		accounts:    make(map[ledger.ID]modelAccount),
		transfers:   make(map[ledger.ID]ledger.Transfer),
		resolutions: make(map[ledger.ID]ledger.ResolutionKind),
	}
	for i := range accounts {
		m.accounts[accounts[i].ID] = modelAccountOf(&accounts[i])
	}
	return m
}

func (m *model) copy() *model {
	return &model{
		accounts:    maps.Clone(m.accounts),
		transfers:   maps.Clone(m.transfers),
		resolutions: maps.Clone(m.resolutions),
	}
}

type modelOutcome struct {
	results     []ledger.Result
	created     []ledger.Transfer
	resolutions []ledger.Resolution
}

// applyBatch applies a batch chain by chain. A chain is a run of linked transfers and the one
// after it; a transfer on its own is a chain of one.
func (m *model) applyBatch(batch []ledger.Transfer, now int64) modelOutcome {
	out := modelOutcome{results: make([]ledger.Result, len(batch))}
	start := 0
	for start < len(batch) {
		end := start // the last transfer of the chain
		for end < len(batch) && batch[end].Flags&ledger.Linked != 0 {
			end++
		}
		if end == len(batch) {
			// The batch ends inside the chain: none of it is applied.
			for i := start; i < len(batch); i++ {
				out.results[i] = ledger.LinkedEventFailed
			}
			out.results[len(batch)-1] = ledger.LinkedEventChainOpen
			break
		}

		var saved *model
		if end > start {
			saved = m.copy()
		}
		savedCreated, savedResolutions := len(out.created), len(out.resolutions)
		failed := -1
		for i := start; i <= end; i++ {
			r, created, res := m.apply(batch[i], now)
			// A chain's transfers all exist (a replay) or are all new.
			if end > start && i > start && (r == ledger.Created || r == ledger.Exists) && (r == ledger.Exists) != (out.results[start] == ledger.Exists) {
				r = ledger.LinkedEventChainPartlyExists
			}
			out.results[i] = r
			if r == ledger.Created {
				out.created = append(out.created, created)
				if res.Kind != ledger.ResolutionNone {
					out.resolutions = append(out.resolutions, res)
				}
			}
			if r != ledger.Created && r != ledger.Exists {
				failed = i
				break
			}
		}
		if failed >= 0 && end > start {
			*m = *saved
			out.created = out.created[:savedCreated]
			out.resolutions = out.resolutions[:savedResolutions]
			for i := start; i <= end; i++ {
				if i != failed {
					out.results[i] = ledger.LinkedEventFailed
				}
			}
		}
		start = end + 1
	}
	return out
}

// apply applies one transfer, or says why not.
func (m *model) apply(t ledger.Transfer, now int64) (ledger.Result, ledger.Transfer, ledger.Resolution) {
	const kinds = ledger.Pending | ledger.PostPending | ledger.VoidPending | ledger.ExpirePending | ledger.Reversal
	none := ledger.Resolution{}
	if t.ID == (ledger.ID{}) {
		return ledger.IDMustNotBeZero, t, none
	}
	if t.Flags&^(ledger.Linked|kinds) != 0 {
		return ledger.FlagsInvalid, t, none
	}
	if bits.OnesCount16(uint16(t.Flags&kinds)) > 1 {
		return ledger.FlagsMutuallyExclusive, t, none
	}
	if old, ok := m.transfers[t.ID]; ok {
		r := sameAs(old, t)
		if a, known := m.accounts[old.DebitAccountID]; r == ledger.Exists && t.Currency != "" && known && a.currency != t.Currency {
			return ledger.CurrencyMismatch, t, none
		}
		return r, t, none
	}
	if t.Amount < 0 {
		return ledger.AmountNegative, t, none
	}
	isPost := t.Flags&ledger.PostPending != 0
	isVoid := t.Flags&ledger.VoidPending != 0
	isExpire := t.Flags&ledger.ExpirePending != 0
	isReversal := t.Flags&ledger.Reversal != 0
	if !isPost && !isVoid && !isExpire && !isReversal {
		return m.applyPlain(t, now)
	}
	if t.Ref == (ledger.ID{}) {
		return ledger.RefMustNotBeZero, t, none
	}
	if t.Ref == t.ID {
		return ledger.RefMustBeDifferent, t, none
	}
	if t.TimeoutSeconds != 0 {
		return ledger.TimeoutReservedForPending, t, none
	}
	if isReversal {
		return m.applyReversal(t, now)
	}
	return m.applyResolve(t, now)
}

// sameAs compares a transfer with the one created before under its id. A post, void, expire or
// reversal may leave the accounts zero, and a void or expire the amount, as they inherit them.
func sameAs(old, t ledger.Transfer) ledger.Result {
	zero := ledger.ID{}
	refers := t.Flags&(ledger.PostPending|ledger.VoidPending|ledger.ExpirePending|ledger.Reversal) != 0
	releases := t.Flags&(ledger.VoidPending|ledger.ExpirePending) != 0
	switch {
	case old.Flags != t.Flags:
		return ledger.ExistsWithDifferentFlags
	case old.Ref != t.Ref:
		return ledger.ExistsWithDifferentRef
	case old.TimeoutSeconds != t.TimeoutSeconds:
		return ledger.ExistsWithDifferentTimeout
	case old.DebitAccountID != t.DebitAccountID && !(refers && t.DebitAccountID == zero):
		return ledger.ExistsWithDifferentDebitAccountID
	case old.CreditAccountID != t.CreditAccountID && !(refers && t.CreditAccountID == zero):
		return ledger.ExistsWithDifferentCreditAccountID
	case old.Amount != t.Amount && !(releases && t.Amount == 0):
		return ledger.ExistsWithDifferentAmount
	case old.UserData != t.UserData:
		return ledger.ExistsWithDifferentUserData
	case old.Code != t.Code:
		return ledger.ExistsWithDifferentCode
	}
	return ledger.Exists
}

func (m *model) applyPlain(t ledger.Transfer, now int64) (ledger.Result, ledger.Transfer, ledger.Resolution) {
	zero := ledger.ID{}
	none := ledger.Resolution{}
	pending := t.Flags&ledger.Pending != 0
	switch {
	case t.Ref != zero:
		return ledger.RefMustBeZero, t, none
	case t.DebitAccountID == zero:
		return ledger.DebitAccountIDMustNotBeZero, t, none
	case t.CreditAccountID == zero:
		return ledger.CreditAccountIDMustNotBeZero, t, none
	case t.DebitAccountID == t.CreditAccountID:
		return ledger.AccountsSame, t, none
	case t.Amount == 0:
		return ledger.AmountZero, t, none
	case t.TimeoutSeconds != 0 && !pending:
		return ledger.TimeoutReservedForPending, t, none
	}
	if r := m.findAccounts(t.DebitAccountID, t.CreditAccountID, t.Currency); r != ledger.Created {
		return r, t, none
	}
	if r := m.move(t.DebitAccountID, t.CreditAccountID, t.Amount, pending); r != ledger.Created {
		return r, t, none
	}
	t.Timestamp = now
	m.transfers[t.ID] = t
	return ledger.Created, t, none
}

func (m *model) applyReversal(t ledger.Transfer, now int64) (ledger.Result, ledger.Transfer, ledger.Resolution) {
	zero := ledger.ID{}
	none := ledger.Resolution{}
	orig, ok := m.transfers[t.Ref]
	if !ok {
		return ledger.ReversalTargetNotFound, t, none
	}
	// Only posted money can be reversed: a plain transfer, a post, or a reversal.
	if orig.Flags&(ledger.Pending|ledger.VoidPending|ledger.ExpirePending) != 0 {
		return ledger.ReversalTargetNotPosted, t, none
	}
	// A reversal runs the other way: from the original's credit account to its debit account.
	if t.DebitAccountID != zero && t.DebitAccountID != orig.CreditAccountID {
		return ledger.ReversalHasDifferentAccounts, t, none
	}
	if t.CreditAccountID != zero && t.CreditAccountID != orig.DebitAccountID {
		return ledger.ReversalHasDifferentAccounts, t, none
	}
	if t.Amount == 0 {
		return ledger.AmountZero, t, none
	}
	if t.Amount > orig.Amount {
		return ledger.ExceedsOriginalAmount, t, none
	}
	if _, done := m.resolutions[orig.ID]; done {
		return ledger.ReversalAlreadyDone, t, none
	}
	if r := m.findAccounts(orig.CreditAccountID, orig.DebitAccountID, t.Currency); r != ledger.Created {
		return r, t, none
	}
	if r := m.move(orig.CreditAccountID, orig.DebitAccountID, t.Amount, false); r != ledger.Created {
		return r, t, none
	}
	t.DebitAccountID, t.CreditAccountID = orig.CreditAccountID, orig.DebitAccountID
	t.Timestamp = now
	m.transfers[t.ID] = t
	m.resolutions[orig.ID] = ledger.ResolutionReversed
	return ledger.Created, t, ledger.Resolution{Target: orig.ID, By: t.ID, Kind: ledger.ResolutionReversed}
}

// applyResolve posts, voids or expires a hold.
func (m *model) applyResolve(t ledger.Transfer, now int64) (ledger.Result, ledger.Transfer, ledger.Resolution) {
	zero := ledger.ID{}
	none := ledger.Resolution{}
	hold, ok := m.transfers[t.Ref]
	if !ok {
		return ledger.PendingNotFound, t, none
	}
	if hold.Flags&ledger.Pending == 0 {
		return ledger.PendingNotPending, t, none
	}
	if t.DebitAccountID != zero && t.DebitAccountID != hold.DebitAccountID {
		return ledger.PendingHasDifferentDebitAccount, t, none
	}
	if t.CreditAccountID != zero && t.CreditAccountID != hold.CreditAccountID {
		return ledger.PendingHasDifferentCreditAccount, t, none
	}
	post := t.Flags&ledger.PostPending != 0
	amount := hold.Amount
	if post {
		if t.Amount == 0 {
			return ledger.AmountZero, t, none
		}
		if t.Amount > hold.Amount {
			return ledger.ExceedsPendingAmount, t, none
		}
		amount = t.Amount
	} else if t.Amount != 0 && t.Amount != hold.Amount {
		return ledger.VoidAmountMustMatch, t, none
	}
	if kind, done := m.resolutions[hold.ID]; done {
		// A hold the sweep expired answers a post or void as one past its timeout does.
		if kind == ledger.ResolutionExpired && t.Flags&ledger.ExpirePending == 0 {
			return ledger.PendingExpired, t, none
		}
		return ledger.PendingAlreadyResolved, t, none
	}
	expired := hold.TimeoutSeconds > 0 && now >= hold.Timestamp+int64(hold.TimeoutSeconds)*1_000_000
	if t.Flags&ledger.ExpirePending != 0 {
		if !expired {
			return ledger.PendingNotExpired, t, none
		}
	} else if expired {
		return ledger.PendingExpired, t, none
	}
	if r := m.findAccounts(hold.DebitAccountID, hold.CreditAccountID, t.Currency); r != ledger.Created {
		return r, t, none
	}
	dr, cr := m.accounts[hold.DebitAccountID], m.accounts[hold.CreditAccountID]
	dr.balance.DebitsPending -= hold.Amount
	cr.balance.CreditsPending -= hold.Amount
	if post {
		dr.balance.DebitsPosted += amount
		cr.balance.CreditsPosted += amount
	}
	m.accounts[hold.DebitAccountID], m.accounts[hold.CreditAccountID] = dr, cr

	kind := ledger.ResolutionVoided
	switch {
	case post:
		kind = ledger.ResolutionPosted
	case t.Flags&ledger.ExpirePending != 0:
		kind = ledger.ResolutionExpired
	}
	t.DebitAccountID, t.CreditAccountID, t.Amount = hold.DebitAccountID, hold.CreditAccountID, amount
	t.Timestamp = now
	m.transfers[t.ID] = t
	m.resolutions[hold.ID] = kind
	return ledger.Created, t, ledger.Resolution{Target: hold.ID, By: t.ID, Kind: kind}
}

func (m *model) findAccounts(debit, credit ledger.ID, want ledger.Currency) ledger.Result {
	dr, ok := m.accounts[debit]
	if !ok {
		return ledger.DebitAccountNotFound
	}
	cr, ok := m.accounts[credit]
	if !ok {
		return ledger.CreditAccountNotFound
	}
	if dr.currency != cr.currency || want != "" && dr.currency != want {
		return ledger.CurrencyMismatch
	}
	return ledger.Created
}

// move books amount from debit to credit, pending or posted, unless a total would pass its
// account's ceiling (math.MaxInt64 unless it states one) or an account's constraint would break. The arithmetic is done in big integers, so
// that no check can itself overflow.
func (m *model) move(debit, credit ledger.ID, amount int64, pending bool) ledger.Result {
	dr, cr := m.accounts[debit], m.accounts[credit]
	d, c := dr.balance, cr.balance
	if pending {
		if !fits(dr.ceiling, d.DebitsPending, amount) {
			return ledger.OverflowsDebitsPending
		}
		if !fits(cr.ceiling, c.CreditsPending, amount) {
			return ledger.OverflowsCreditsPending
		}
	} else {
		if !fits(dr.ceiling, d.DebitsPosted, amount) {
			return ledger.OverflowsDebitsPosted
		}
		if !fits(cr.ceiling, c.CreditsPosted, amount) {
			return ledger.OverflowsCreditsPosted
		}
	}
	if !fits(dr.ceiling, d.DebitsPending, d.DebitsPosted, amount) {
		return ledger.OverflowsDebits
	}
	if !fits(cr.ceiling, c.CreditsPending, c.CreditsPosted, amount) {
		return ledger.OverflowsCredits
	}
	// debits pending + debits posted + amount > credits posted + limit
	if dr.flags&ledger.DebitsMustNotExceedCredits != 0 &&
		sum(d.DebitsPending, d.DebitsPosted, amount).Cmp(sum(d.CreditsPosted, dr.limit)) > 0 {
		return ledger.InsufficientFunds
	}
	// credits pending + credits posted + amount > debits posted + limit
	if cr.flags&ledger.CreditsMustNotExceedDebits != 0 &&
		sum(c.CreditsPending, c.CreditsPosted, amount).Cmp(sum(c.DebitsPosted, cr.limit)) > 0 {
		return ledger.ExceedsLimit
	}
	if pending {
		dr.balance.DebitsPending += amount
		cr.balance.CreditsPending += amount
	} else {
		dr.balance.DebitsPosted += amount
		cr.balance.CreditsPosted += amount
	}
	m.accounts[debit], m.accounts[credit] = dr, cr
	return ledger.Created
}

func sum(xs ...int64) *big.Int {
	s := new(big.Int)
	for _, x := range xs {
		s.Add(s, big.NewInt(x))
	}
	return s
}

// fits reports whether xs total at most ceiling.
func fits(ceiling int64, xs ...int64) bool { return sum(xs...).Cmp(big.NewInt(ceiling)) <= 0 }

// The fuzz input is a list of 8-byte operations over fuzzAccounts and a pool of fuzzTransferIDs
// transfer ids, so that ids are reused and refs find their targets. The first byte of an
// operation says what it is: its low 4 bits the kind (opEndBatch ... opRawFlags), bits 4 and 6
// both set the Linked flag, bit 5 whether a post, void, expire or reversal names its accounts. The
// other bytes are the id, the debit and credit accounts, the amount, the ref, the timeout, and the
// user data, code and stated currency.
const (
	opEndBatch   = iota // byte 1 moves now forward by that many tenths of a second
	opPlain             // 1, 2, 3
	opPending    = 4    // 4, 5
	opPost       = 6    // 6, 7
	opVoid       = 8
	opExpire     = 9
	opReversal   = 10 // 10, 11
	opReplay     = 12 // replay a transfer submitted before, byte 1 picks it
	opReplayBare = 13 // the same, with the fields a resolving transfer inherits left zero
	opReplayDiff = 14 // the same, with the field byte 2 picks changed
	opRawFlags   = 15 // a transfer with the flags byte 2 gives, often invalid or exclusive

	opLinked   = 0x50 // both bits: a quarter of random operations are linked
	opExplicit = 0x20

	fuzzTransferIDs = 40
	fuzzStartNow    = 1_700_000_000_000_000 // Unix microseconds
	fuzzMaxOps      = 512
	fuzzMaxBatch    = 64
)

// fuzzAccounts are two currencies' worth of accounts: a bank without constraints, cardholders
// with DebitsMustNotExceedCredits, merchants with CreditsMustNotExceedDebits or a ceiling.
var fuzzAccounts = []ledger.Account{
	{ID: id("cny-bank"), Currency: "CNY", Kind: ledger.KindBankSettlement},
	{ID: id("cny-card"), Currency: "CNY", Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits},
	{ID: id("cny-card-od"), Currency: "CNY", Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits, Limit: 500},
	{ID: id("cny-prepaid"), Currency: "CNY", Kind: ledger.KindMedicalPersonal, Flags: ledger.CreditsMustNotExceedDebits, Limit: 1000},
	// A merchant's balance is kept in shards summed on read: each shard has a ceiling below int64.
	{ID: id("cny-merchant"), Currency: "CNY", Kind: ledger.KindMerchantClearing, Ceiling: 4_000},
	{ID: id("usd-bank"), Currency: "USD", Kind: ledger.KindBankSettlement},
	{ID: id("usd-card"), Currency: "USD", Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits, Limit: math.MaxInt64/2 + 16},
	{ID: id("usd-capped"), Currency: "USD", Kind: ledger.KindSuspense, Flags: ledger.CreditsMustNotExceedDebits, Limit: math.MaxInt64},
}

type fuzzBatch struct {
	transfers []ledger.Transfer
	now       int64
}

// decodeFuzz turns fuzz bytes into batches. It looks only at what it submitted, never at results.
func decodeFuzz(data []byte) []fuzzBatch {
	var (
		batches  []fuzzBatch
		cur      []ledger.Transfer
		history  []ledger.Transfer // every transfer submitted, in order
		holds    []ledger.ID       // ids submitted as Pending
		postings []ledger.ID       // ids submitted as plain, post or reversal
		now      = int64(fuzzStartNow)
	)
	endBatch := func() {
		batches = append(batches, fuzzBatch{transfers: cur, now: now})
		cur = nil
	}
	lastWith := func(x ledger.ID) (ledger.Transfer, bool) {
		for i := len(history) - 1; i >= 0; i-- {
			if history[i].ID == x {
				return history[i], true
			}
		}
		return ledger.Transfer{}, false
	}
	for n := 0; len(data) > 0 && n < fuzzMaxOps; n++ {
		var b [8]byte
		copy(b[:], data)
		data = data[min(len(data), 8):]
		op, kind := b[0], b[0]&0x0f
		if kind == opEndBatch {
			endBatch()
			now += int64(b[1]) * 100_000
			continue
		}

		t := ledger.Transfer{
			ID:              fuzzTransferID(b[1]),
			DebitAccountID:  fuzzAccount(b[2]),
			CreditAccountID: fuzzCreditAccount(b[3], b[2]),
			Amount:          fuzzAmount(b[4]),
			UserData:        fuzzUserData(b[7]),
			Code:            ledger.Code(b[7] >> 2 & 3),
		}
		if b[6]%16 == 15 {
			t.TimeoutSeconds = 1 // reserved for holds: mostly refused
		}
		// A post, void, expire or reversal picks its target among the holds or postings submitted
		// before (the decoder does not know whether they were created), or any id of the pool.
		pick := func(from []ledger.ID) ledger.ID {
			if b[5] < 200 && len(from) > 0 {
				return from[int(b[5])%len(from)]
			}
			return fuzzTransferID(b[5])
		}
		resolving := func(from []ledger.ID) {
			t.Ref = pick(from)
			if op&opExplicit == 0 {
				t.DebitAccountID, t.CreditAccountID = ledger.ID{}, ledger.ID{}
			} else if target, ok := lastWith(t.Ref); ok && b[2]&1 == 0 {
				t.DebitAccountID, t.CreditAccountID = target.DebitAccountID, target.CreditAccountID
				if kind >= opReversal && kind < opReplay {
					t.DebitAccountID, t.CreditAccountID = target.CreditAccountID, target.DebitAccountID
				}
			}
		}
		switch {
		case kind < opPending:
		case kind < opPost:
			t.Flags |= ledger.Pending
			t.TimeoutSeconds = [8]uint32{0, 0, 1, 1, 2, 3, 5, 0}[b[6]%8]
		case kind < opVoid:
			t.Flags |= ledger.PostPending
			resolving(holds)
		case kind == opVoid || kind == opExpire:
			t.Flags |= ledger.VoidPending
			if kind == opExpire {
				t.Flags = ledger.ExpirePending
			}
			if b[4] < 128 {
				t.Amount = 0 // inherit the hold's amount
			}
			resolving(holds)
		case kind < opReplay:
			t.Flags |= ledger.Reversal
			resolving(postings)
		case kind <= opReplayDiff:
			if len(history) == 0 {
				continue
			}
			t = history[int(b[1])%len(history)]
			t.Flags &^= ledger.Linked
			switch {
			case kind == opReplayBare && t.Flags&(ledger.PostPending|ledger.VoidPending|ledger.ExpirePending|ledger.Reversal) != 0:
				t.DebitAccountID, t.CreditAccountID = ledger.ID{}, ledger.ID{}
				if t.Flags&(ledger.VoidPending|ledger.ExpirePending) != 0 {
					t.Amount = 0
				}
			case kind == opReplayDiff:
				switch b[2] % 8 {
				case 0:
					t.Flags ^= ledger.Pending
				case 1:
					t.Ref = fuzzTransferID(b[3])
				case 2:
					t.TimeoutSeconds ^= 1
				case 3:
					t.DebitAccountID = fuzzAccount(b[3])
				case 4:
					t.CreditAccountID = fuzzAccount(b[3])
				case 5:
					t.Amount++
				case 6:
					t.UserData = fuzzUserData(b[3])
				case 7:
					t.Code++
				}
			}
		default: // opRawFlags
			t.Flags = ledger.TransferFlags(b[2] & 0x7f)
			t.DebitAccountID = fuzzAccount(b[3])
			t.CreditAccountID = fuzzAccount(b[3] >> 3)
			if b[5]&1 == 1 {
				t.Ref = fuzzTransferID(b[5] >> 1)
			}
		}
		// The currency the caller states, from the high bits of byte 7: mostly none, sometimes
		// a currency the accounts hold or not. A replay keeps the one it was sent with unless
		// another is stated.
		if c := fuzzCurrency(b[7]); c != "" || kind < opReplay || kind == opRawFlags {
			t.Currency = c
		}
		if op&opLinked == opLinked {
			t.Flags |= ledger.Linked
		}
		// Whatever the caller puts in Timestamp is ignored.
		t.Timestamp = int64(b[6])

		cur = append(cur, t)
		history = append(history, t)
		switch {
		case t.Flags&ledger.Pending != 0:
			holds = append(holds, t.ID)
		case t.Flags&(ledger.VoidPending|ledger.ExpirePending) == 0:
			postings = append(postings, t.ID)
		}
		if len(cur) == fuzzMaxBatch {
			endBatch()
		}
	}
	if len(cur) > 0 {
		endBatch()
	}
	return batches
}

// fuzzTransferID is one of fuzzTransferIDs ids; 0 gives the zero id.
func fuzzTransferID(b byte) ledger.ID {
	n := b % fuzzTransferIDs
	if n == 0 {
		return ledger.ID{}
	}
	return seqID('t', uint64(n))
}

// fuzzAccount is one of fuzzAccounts mostly, sometimes the zero id or an account not prefetched.
func fuzzAccount(b byte) ledger.ID {
	switch v := b % 32; {
	case v < 28:
		return fuzzAccounts[int(v)%len(fuzzAccounts)].ID
	case v < 30:
		return ledger.ID{}
	default:
		return id("unknown")
	}
}

// fuzzCreditAccount is mostly an account in the currency of fuzzAccount(debit), else any.
func fuzzCreditAccount(b, debit byte) ledger.ID {
	d := debit % 32
	if b&0xc0 == 0 || d >= 28 {
		return fuzzAccount(b)
	}
	// fuzzAccounts holds the CNY accounts, then the USD ones.
	lo, hi := 0, 5
	if int(d)%len(fuzzAccounts) >= 5 {
		lo, hi = 5, len(fuzzAccounts)
	}
	return fuzzAccounts[lo+int(b)%(hi-lo)].ID
}

// fuzzAmount is mostly small, sometimes zero, negative or close to math.MaxInt64 to reach overflows.
func fuzzAmount(b byte) int64 {
	low := int64(b & 31)
	switch b >> 5 {
	case 0, 1, 2:
		return 1 + low*7
	case 7:
		if low < 4 {
			return -low
		}
		return low
	case 3:
		return low
	case 4:
		return 100 + low*50
	case 5:
		return math.MaxInt64 - low
	case 6:
		return math.MaxInt64/2 + low
	}
	panic("unreachable")
}

// fuzzCurrency is the currency a transfer states: none for three quarters of b, else CNY, USD
// (the accounts' currencies) or JPY, which no account holds.
func fuzzCurrency(b byte) ledger.Currency {
	return [16]ledger.Currency{12: "CNY", 13: "CNY", 14: "USD", 15: "JPY"}[b>>4]
}

func fuzzUserData(b byte) ledger.ID {
	if b&3 == 0 {
		return ledger.ID{}
	}
	return seqID('u', uint64(b&3))
}

// checkAgainstModel runs the batches data decodes to through Apply and through the model, fails on
// the first difference, and returns how often each result came up.
func checkAgainstModel(t *testing.T, data []byte) (seen [256]int) {
	t.Helper()
	s := ledger.NewState(len(fuzzAccounts))
	for i := range fuzzAccounts {
		a := fuzzAccounts[i]
		s.Accounts[a.ID] = &a
	}
	m := newModel(fuzzAccounts)
	for n, b := range decodeFuzz(data) {
		before := make(map[ledger.ID]ledger.Balance, len(s.Accounts))
		for k, a := range s.Accounts {
			before[k] = a.Balance
		}
		out, err := s.Apply(slices.Clone(b.transfers), b.now)
		if err != nil {
			t.Fatalf("batch %d: %v\n%s", n, err, fmtBatch(b.transfers))
		}
		want := m.applyBatch(b.transfers, b.now)
		if !slices.Equal(out.Results, want.results) {
			t.Fatalf("batch %d at %d:\n%sengine %v\nmodel  %v", n, b.now, fmtBatch(b.transfers), out.Results, want.results)
		}
		for _, r := range out.Results {
			seen[r]++
		}
		if !slices.Equal(out.Created, want.created) {
			t.Fatalf("batch %d: created\nengine %v\nmodel  %v", n, out.Created, want.created)
		}
		if !slices.Equal(out.Resolutions, want.resolutions) {
			t.Fatalf("batch %d: resolutions\nengine %v\nmodel  %v", n, out.Resolutions, want.resolutions)
		}

		named := make(map[ledger.ID]bool)
		for _, c := range want.created {
			named[c.DebitAccountID], named[c.CreditAccountID] = true, true
		}
		touched := make(map[ledger.ID]bool)
		for _, a := range out.Touched {
			if touched[a.ID] || s.Accounts[a.ID] != a {
				t.Fatalf("batch %d: touched %s twice or not the State's", n, name(a.ID))
			}
			touched[a.ID] = true
		}
		pending := make(map[ledger.Currency]*big.Int)
		posted := make(map[ledger.Currency]*big.Int)
		for k, a := range s.Accounts {
			if got, want := a.Balance, m.accounts[k].balance; got != want {
				t.Fatalf("batch %d: %s balance\nengine %s\nmodel  %s\n%s", n, name(k), fmtBalance(got), fmtBalance(want), fmtBatch(b.transfers))
			}
			// Touched are the accounts the created transfers name: all whose balance changed,
			// and any whose balance came back where it was (a hold placed and released).
			if changed := a.Balance != before[k]; named[k] != touched[k] || changed && !touched[k] {
				t.Fatalf("batch %d: %s changed %v, named by a transfer created %v, touched %v", n, name(k), changed, named[k], touched[k])
			}
			if pending[a.Currency] == nil {
				pending[a.Currency], posted[a.Currency] = new(big.Int), new(big.Int)
			}
			pending[a.Currency].Add(pending[a.Currency], sum(a.CreditsPending, -a.DebitsPending))
			posted[a.Currency].Add(posted[a.Currency], sum(a.CreditsPosted, -a.DebitsPosted))
		}
		for c := range pending {
			if pending[c].Sign() != 0 || posted[c].Sign() != 0 {
				t.Fatalf("batch %d: %s credits minus debits: pending %s, posted %s", n, c, pending[c], posted[c])
			}
		}
		if len(s.Transfers) != len(m.transfers) || len(s.Resolutions) != len(m.resolutions) {
			t.Fatalf("batch %d: engine holds %d transfers and %d resolutions, model %d and %d",
				n, len(s.Transfers), len(s.Resolutions), len(m.transfers), len(m.resolutions))
		}
	}
	return seen
}

func fmtBatch(ts []ledger.Transfer) string {
	s := ""
	for _, t := range ts {
		s += fmt.Sprintf("  %s %s->%s %d ref=%s flags=%#x timeout=%d user=%s code=%d currency=%q\n",
			name(t.ID), name(t.DebitAccountID), name(t.CreditAccountID), t.Amount, name(t.Ref),
			uint16(t.Flags), t.TimeoutSeconds, name(t.UserData), t.Code, t.Currency)
	}
	return s
}

// fuzzOp encodes one operation for the seed corpus.
func fuzzOp(op byte, idx, debit, credit, amount, ref, timeout, user byte) []byte {
	return []byte{op, idx, debit, credit, amount, ref, timeout, user}
}

func fuzzSeeds() [][]byte {
	const (
		bank, card, cardOD, prepaid, merchant, usdBank, usdCard, usdCapped = 0, 1, 2, 3, 4, 5, 6, 7
		zero, unknown                                                      = 28, 30
		small                                                              = 10   // amount 71
		huge                                                               = 0xa0 // math.MaxInt64
	)
	join := func(ops ...[]byte) []byte { return slices.Concat(ops...) }
	end := func(tenths byte) []byte { return fuzzOp(opEndBatch, tenths, 0, 0, 0, 0, 0, 0) }
	seeds := [][]byte{
		// Fund a card, pay a merchant, overdraw.
		join(fuzzOp(opPlain, 1, bank, card, small, 0, 0, 0), fuzzOp(opPlain, 2, card, merchant, 5, 0, 0, 1),
			fuzzOp(opPlain, 3, card, merchant, small, 0, 0, 0), end(1), fuzzOp(opPlain, 4, cardOD, merchant, 0x90, 0, 0, 0)),
		// Holds: place, post part of one, void one, let one expire.
		join(fuzzOp(opPlain, 1, bank, card, 0x85, 0, 0, 0), fuzzOp(opPending, 2, card, merchant, small, 0, 2, 0),
			fuzzOp(opPending, 3, card, merchant, small, 0, 4, 0), fuzzOp(opPending, 4, card, merchant, small, 0, 3, 0), end(5),
			fuzzOp(opPost, 5, 0, 0, 3, 0, 0, 0), fuzzOp(opVoid, 6, 0, 0, 0, 1, 0, 0), end(30),
			fuzzOp(opExpire, 7, 0, 0, 0, 2, 0, 0), fuzzOp(opPost, 8, 0, 0, 3, 2, 0, 0), fuzzOp(opPost, 9, 0, 0, 3, 0, 0, 0)),
		// A linked chain with a failing middle member, then the chain replayed.
		join(fuzzOp(opPlain|opLinked, 1, bank, card, small, 0, 0, 0), fuzzOp(opPlain|opLinked, 2, card, merchant, 0x90, 0, 0, 0),
			fuzzOp(opPlain, 3, merchant, bank, 1, 0, 0, 0), fuzzOp(opPlain|opLinked, 4, bank, card, small, 0, 0, 0),
			fuzzOp(opPlain, 5, card, merchant, 3, 0, 0, 0), end(0), fuzzOp(opReplay, 3, 0, 0, 0, 0, 0, 0),
			fuzzOp(opReplay|opLinked, 3, 0, 0, 0, 0, 0, 0), fuzzOp(opReplay, 4, 0, 0, 0, 0, 0, 0), fuzzOp(opPlain|opLinked, 6, bank, card, 1, 0, 0, 0)),
		// Reversals: partial, twice, of a hold.
		join(fuzzOp(opPlain, 1, bank, cardOD, small, 0, 0, 0), fuzzOp(opPlain, 2, cardOD, merchant, small, 0, 0, 0),
			fuzzOp(opPending, 3, cardOD, merchant, 4, 0, 0, 0), end(1), fuzzOp(opReversal, 4, 0, 0, 2, 1, 0, 0),
			fuzzOp(opReversal|opExplicit, 5, 0, 0, 2, 1, 0, 0), fuzzOp(opReversal, 6, 0, 0, 2, 0, 0, 0)),
		// Overflows, limits and currencies.
		join(fuzzOp(opPlain, 1, bank, merchant, huge, 0, 0, 0), fuzzOp(opPlain, 2, bank, merchant, 1, 0, 0, 0),
			fuzzOp(opPending, 3, usdBank, usdCapped, huge, 0, 0, 0), fuzzOp(opPending, 4, usdBank, usdCapped, 1, 0, 0, 0),
			fuzzOp(opPlain, 5, usdBank, usdCard, 0xc0, 0, 0, 0), fuzzOp(opPlain, 6, usdBank, usdCard, 0xc0, 0, 0, 0),
			fuzzOp(opPlain, 7, bank, prepaid, 0x95, 0, 0, 0), fuzzOp(opPlain, 8, card, usdBank, 1, 0, 0, 0),
			fuzzOp(opPlain, 9, zero, unknown, 1, 0, 0, 0), fuzzOp(opPlain, 10, unknown, card, 1, 0, 15, 0)),
		// Replays with each field changed, and invalid flags.
		join(fuzzOp(opPlain, 1, bank, card, small, 0, 0, 1), fuzzOp(opPending, 2, bank, card, small, 0, 0, 2), end(0),
			fuzzOp(opPost|opExplicit, 3, 0, 0, small, 0, 0, 0), end(0), fuzzOp(opReplayBare, 2, 0, 0, 0, 0, 0, 0),
			fuzzOp(opReplayDiff, 0, 0, 3, 0, 0, 0, 0), fuzzOp(opReplayDiff, 1, 1, 5, 0, 0, 0, 0), fuzzOp(opReplayDiff, 0, 2, 0, 0, 0, 0, 0),
			fuzzOp(opReplayDiff, 0, 3, 2, 0, 0, 0, 0), fuzzOp(opReplayDiff, 0, 4, 2, 0, 0, 0, 0), fuzzOp(opReplayDiff, 0, 5, 0, 0, 0, 0, 0),
			fuzzOp(opReplayDiff, 0, 6, 2, 0, 0, 0, 0), fuzzOp(opReplayDiff, 0, 7, 0, 0, 0, 0, 0),
			fuzzOp(opRawFlags, 4, 0x46, 0x08, 1, 0, 0, 0), fuzzOp(opRawFlags, 5, 0x0c, 0x08, 1, 3, 0, 0)),
	}
	// And a few longer random inputs, from fixed seeds.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		b := make([]byte, 8*200)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		seeds = append(seeds, b)
	}
	return seeds
}

func FuzzApplyMatchesReference(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkAgainstModel(t, data) })
}

// TestApplyMatchesReference runs many more random inputs than the seed corpus on every go test,
// and checks that they reach every result code, so that the decoder keeps exploring all of Apply.
func TestApplyMatchesReference(t *testing.T) {
	var seen [256]int
	n := 2000
	if testing.Short() {
		n = 200
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		b := make([]byte, 8*(1+rng.IntN(300)))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		// Keep batches going: make most operations transfers, with a batch end now and then.
		for j := 0; j < len(b); j += 8 {
			if b[j]&0x0f == opEndBatch && rng.IntN(4) != 0 {
				b[j] |= opPlain
			}
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			for r, n := range checkAgainstModel(t, b) {
				seen[r] += n
			}
		})
	}
	if testing.Short() || t.Failed() {
		return
	}
	for _, r := range ledger.Results() {
		if _, skip := unreachable[r]; !skip && seen[r] == 0 {
			t.Errorf("no random input produced %s", r)
		}
	}
}
