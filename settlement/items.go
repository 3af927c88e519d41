package settlement

import (
	"crypto/sha256"
	"fmt"
	"math"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
)

// Role is what an account is to settlement: whose money it moves and which bank settles it.
type Role string

const (
	// RoleCardholder is a card's funds: its issuer bank pays what the cardholder spent.
	RoleCardholder Role = "cardholder"
	// RolePersonalMedical is a card's personal medical account: the insurance fund's bank pays
	// what it paid to hospitals and pharmacies, since the account is held in the fund's pool.
	RolePersonalMedical Role = "personal_medical"
	// RoleMerchant is a merchant's, venue's, pharmacy's or hospital's clearing account: its
	// acquiring bank receives what it earned, net of fees and refunds.
	RoleMerchant Role = "merchant"
	// RoleOperator is a transit operator's clearing account: its bank receives the fares.
	RoleOperator Role = "operator"
	// RoleInsuranceFund is a city's pooled medical fund: its bank pays the fund's share.
	RoleInsuranceFund Role = "insurance_fund"
)

// ItemKind is what a settlement item is, as the bank's file names it.
type ItemKind string

const (
	KindCardholderSpend  ItemKind = "cardholder_spend"   // what a bank's cardholder spent, net of refunds
	KindMerchantEarnings ItemKind = "merchant_earnings"  // what a merchant earned, net of fees and refunds
	KindOperatorEarnings ItemKind = "operator_earnings"  // a transit operator's fares
	KindMedicalFundShare ItemKind = "medical_fund_share" // a fund's (or a personal account's) part of medical bills
	KindReoffered        ItemKind = "reoffered"          // an item a bank rejected or that had no bank, offered again
)

// kindOf is the item kind of an account's cycle amount.
func kindOf(r Role) (ItemKind, error) {
	switch r {
	case RoleCardholder:
		return KindCardholderSpend, nil
	case RoleMerchant:
		return KindMerchantEarnings, nil
	case RoleOperator:
		return KindOperatorEarnings, nil
	case RolePersonalMedical, RoleInsuranceFund:
		return KindMedicalFundShare, nil
	}
	return "", fmt.Errorf("account role %q is not settled", r)
}

// CodeSettlementReturn is the transfer that gives an item's money back to its clearing account
// when the bank rejects the item: the settlement posting reversed.
const CodeSettlementReturn ledger.Code = 41

// excluded reports whether a transfer of code moving an account of role r is outside
// settlement: settlement's own postings and returns, funds loaded onto a card (the issuer bank's
// own money mirrored), and contributions into personal medical accounts (the fund's pool moving
// within itself).
func excluded(r Role, code ledger.Code) bool {
	switch code {
	case clearing.CodeSettlement, CodeSettlementReturn:
		return true
	case clearing.CodeFundsLoaded:
		return r == RoleCardholder
	case clearing.CodeMedicalContribution:
		return r == RolePersonalMedical || r == RoleInsuranceFund
	}
	return false
}

// Movement is what one code moved on one side of an account within a cycle: the sum of the
// posted transfers' amounts and their number.
type Movement struct {
	Code   ledger.Code
	Debit  bool // the account was debited (else credited)
	Amount int64
	Count  int64
}

// Account is an account that moved in a cycle, as settlement sees it.
type Account struct {
	ID   ledger.ID
	Role Role
	// Bank is the bank that settles the account: a card's issuer, a merchant's acquirer, an
	// operator's or a fund's bank; for a personal medical account, its fund's bank. Empty: the
	// party has no settlement bank, and its item is held until it has one.
	Bank string
	// Counter is the account a settlement posting moves the item's money against: the clearing
	// account itself for merchants and operators, the fund for personal medical accounts and the
	// fund, the issuer bank's account for cardholders (whose loads debited it).
	Counter ledger.ID
	// Party names the account in the bank's file: a party id, or a masked card number.
	Party     string
	PartyName string
}

// Breakdown splits an item's amount by what moved it, signed from the bank's point of view
// (positive: the bank receives).
type Breakdown struct {
	Transit   int64 // fares and their adjustments
	Purchases int64 // purchases, captures, refunds
	Medical   int64 // medical parts, cancellations, reversals, refunds, stay true-ups
	Fees      int64 // merchant discount and network fees and their adjustments (negative: they reduce earnings)
}

// Total is the breakdown's sum.
func (b Breakdown) Total() int64 { return b.Transit + b.Purchases + b.Medical + b.Fees }

func (b *Breakdown) add(code ledger.Code, amount int64) error {
	var p *int64
	switch code {
	case clearing.CodeTransitFare, clearing.CodeTransitAdjustment:
		p = &b.Transit
	case clearing.CodeMerchantFee, clearing.CodeMerchantFeeAdjustment:
		p = &b.Fees
	case clearing.CodeMedicalFundPart, clearing.CodeMedicalPersonalPart, clearing.CodeMedicalCashPart,
		clearing.CodeMedicalCancel, clearing.CodeMedicalReversal, clearing.CodeMedicalRefund, clearing.CodeMedicalStayAdjustment:
		p = &b.Medical
	default:
		p = &b.Purchases
	}
	s, ok := addChecked(*p, amount)
	if !ok {
		return fmt.Errorf("cycle amount overflows")
	}
	*p = s
	return nil
}

func addChecked(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// Item is one line of a bank's settlement: an account's amount in a cycle.
type Item struct {
	ID      ledger.ID // also the id of its settlement posting
	Cycle   Date
	Bank    string
	Account ledger.ID
	Counter ledger.ID
	Kind    ItemKind
	Party   string
	// PartyName is shown as stored, Chinese or English.
	PartyName string
	// Amount is signed from the bank's point of view: positive, the bank receives it (its
	// merchants earned it); negative, the bank pays it (its cardholders spent it).
	Amount    int64
	Breakdown Breakdown
	// Entries is the number of ledger transfers behind the item.
	Entries int64
	// Reoffers names the item this one offers again (a kind reoffered), zero otherwise.
	Reoffers ledger.ID
}

// Itemize turns an account's movements in cycle c into its settlement item: the credits less the
// debits of every posted transfer settlement counts, from the bank's point of view. An account
// whose movements cancel out has no item (ok false).
func Itemize(c Date, a Account, moves []Movement) (Item, bool, error) {
	kind, err := kindOf(a.Role)
	if err != nil {
		return Item{}, false, err
	}
	it := Item{Cycle: c, Bank: a.Bank, Account: a.ID, Counter: a.Counter, Kind: kind, Party: a.Party, PartyName: a.PartyName}
	for _, m := range moves {
		if m.Amount <= 0 || m.Count <= 0 {
			return Item{}, false, fmt.Errorf("account %s: movement of code %d with amount %d over %d transfers", a.ID, m.Code, m.Amount, m.Count)
		}
		if excluded(a.Role, m.Code) {
			continue
		}
		amount := m.Amount
		if m.Debit {
			amount = -amount
		}
		if err := it.Breakdown.add(m.Code, amount); err != nil {
			return Item{}, false, fmt.Errorf("account %s: %w", a.ID, err)
		}
		it.Entries += m.Count
	}
	it.Amount = it.Breakdown.Total()
	if it.Amount == 0 {
		return Item{}, false, nil
	}
	it.ID = ItemID(c, a.ID, kind, ledger.ID{})
	return it, true, nil
}

// Reoffer is item it offered again in cycle c: the same account, bank and amount, flagged as
// reoffered, with an id of its own.
func Reoffer(c Date, it Item, bank string) Item {
	again := it
	again.Cycle, again.Bank, again.Kind, again.Reoffers = c, bank, KindReoffered, it.ID
	again.ID = ItemID(c, it.Account, KindReoffered, it.ID)
	return again
}

// ItemID derives an item's id, which is also its settlement posting's, from its cycle, account,
// kind and the item it reoffers: a close run again after a crash derives the same ids, and the
// ledger answers exists for postings already written.
func ItemID(c Date, account ledger.ID, kind ItemKind, reoffers ledger.ID) ledger.ID {
	h := sha256.New()
	fmt.Fprintf(h, "joinin settlement item\x00%s\x00%s\x00%s\x00%s", c, account, kind, reoffers)
	var sum [sha256.Size]byte
	var id ledger.ID
	copy(id[:], h.Sum(sum[:0]))
	id[6] = id[6]&0x0f | 0x80 // version 8: a custom, name-based layout
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// PositionAccount is bank's settlement position: settlement postings credit it with what the
// bank's merchants and operators earned and debit it with what its cardholders and funds paid,
// cycle by cycle, so its movement in a cycle is the bank's net position.
func PositionAccount(bank string) ledger.ID { return cards.AccountID("settlement_position", bank) }

// Posting is the transfer that settles item it: the item's money moved between its counter
// account and the bank's position, with the item's id. A bank that receives has its position
// credited; one that pays, debited.
func Posting(it Item) (ledger.Transfer, error) {
	if it.Bank == "" {
		return ledger.Transfer{}, fmt.Errorf("item %s has no bank", it.ID)
	}
	if it.Amount == 0 || it.Amount == math.MinInt64 {
		return ledger.Transfer{}, fmt.Errorf("item %s: amount %d cannot be posted", it.ID, it.Amount)
	}
	t := ledger.Transfer{ID: it.ID, Amount: it.Amount, UserData: it.Account, Code: clearing.CodeSettlement,
		DebitAccountID: it.Counter, CreditAccountID: PositionAccount(it.Bank)}
	if it.Amount < 0 {
		t.Amount, t.DebitAccountID, t.CreditAccountID = -it.Amount, t.CreditAccountID, t.DebitAccountID
	}
	return t, nil
}

// Return is the transfer that gives a rejected item's money back: its posting reversed, under
// an id of its own.
func Return(it Item, posting ledger.Transfer) ledger.Transfer {
	return ledger.Transfer{ID: ItemID(it.Cycle, it.Account, "return", it.ID), Ref: posting.ID, Amount: posting.Amount,
		Code: CodeSettlementReturn, Flags: ledger.Reversal}
}
