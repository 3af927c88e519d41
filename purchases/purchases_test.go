package purchases

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
)

var t0 = time.Date(2026, time.March, 3, 10, 0, 0, 0, cards.Shanghai)

func TestParseAmount(t *testing.T) {
	for _, c := range []struct {
		in   string
		fen  int64
		want string // part of the error; "" for none
	}{
		{"12.34", 1234, ""}, {"12.3", 1230, ""}, {"12", 1200, ""}, {"0.01", 1, ""}, {"10000000.00", MaxAmount, ""},
		{"", 0, "empty"}, {"0", 0, "zero"}, {"0.00", 0, "zero"}, {"-1", 0, "not a decimal"}, {"+1", 0, "not a decimal"},
		{"1.234", 0, "3 decimal places"}, {"1e3", 0, "not a decimal"}, {"01.00", 0, "leading zero"}, {"1.", 0, "not a decimal"},
		{".5", 0, "not a decimal"}, {"1,000.00", 0, "not a decimal"}, {"10000000.01", 0, "over the bound"},
		{"999999999999999999999", 0, "over the bound"}, {"NaN", 0, "not a decimal"}, {" 1", 0, "not a decimal"},
	} {
		fen, err := ParseAmount(c.in)
		switch {
		case c.want == "" && (err != nil || fen != c.fen):
			t.Errorf("ParseAmount(%q) = %d, %v, want %d", c.in, fen, err, c.fen)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("ParseAmount(%q) = %d, %v, want an error with %q", c.in, fen, err, c.want)
		}
	}
}

func card(status events.CardStatus, permit events.Date) *cards.Card {
	return &cards.Card{Token: "card-1", Declared: status, PermitValidUntil: permit,
		FundsAccount: cards.AccountID("funds", "card-1"), IssuerBank: "ICBC-JX"}
}

var validPermit = events.Date{Year: 2027, Month: time.June, Day: 30}

// TestDecide declines for each reason, and a request with several faults for the first of them.
func TestDecide(t *testing.T) {
	active := card(events.StatusActive, validPermit)
	limits := Limits{PerTransaction: 10000, PerDay: 30000}
	for _, c := range []struct {
		name string
		c    Check
		want Reason // "" for approved
	}{
		{"approved", Check{MCC: "5912", Card: active, Amount: 10000, Limits: limits, UsedToday: 20000}, ""},
		{"merchant not allowed", Check{MCC: "7995", Card: active, Amount: 100, Limits: limits}, MerchantNotAllowed},
		{"invalid amount", Check{MCC: "5912", Card: active, AmountErr: errors.New("amount is zero"), Limits: limits}, InvalidAmount},
		{"zero amount", Check{MCC: "5912", Card: active, Amount: 0, Limits: limits}, InvalidAmount},
		{"unknown card", Check{MCC: "5912", Amount: 100, Limits: limits}, UnknownCard},
		{"closed", Check{MCC: "5912", Card: card(events.StatusClosed, validPermit), Amount: 100, Limits: limits}, CardClosed},
		{"blocked", Check{MCC: "5912", Card: card(events.StatusBlocked, validPermit), Amount: 100, Limits: limits}, CardBlocked},
		{"permit expired yesterday", Check{MCC: "5912", Card: card(events.StatusActive, events.Date{Year: 2026, Month: time.March, Day: 2}),
			Amount: 100, Limits: limits}, PermitExpired},
		{"permit's last day", Check{MCC: "5912", Card: card(events.StatusActive, events.Date{Year: 2026, Month: time.March, Day: 3}),
			Amount: 100, Limits: limits}, ""},
		{"per transaction", Check{MCC: "5912", Card: active, Amount: 10001, Limits: limits}, LimitExceeded},
		{"per transaction with what is held", Check{MCC: "7011", Card: active, Amount: 5000, Committed: 5001, Limits: limits}, LimitExceeded},
		{"per day", Check{MCC: "5912", Card: active, Amount: 10000, UsedToday: 20001, Limits: limits}, LimitExceeded},
		// the order is the contract: the first fault wins
		{"casino, bad amount, unknown card", Check{MCC: "7995", AmountErr: errors.New("x")}, MerchantNotAllowed},
		{"bad amount, unknown card", Check{MCC: "5912", AmountErr: errors.New("x")}, InvalidAmount},
		{"closed and over the limit", Check{MCC: "5912", Card: card(events.StatusClosed, validPermit), Amount: 99999, Limits: limits}, CardClosed},
		{"blocked with an expired permit", Check{MCC: "5912", Card: card(events.StatusBlocked, events.Date{Year: 2020, Month: 1, Day: 1}), Amount: 1, Limits: limits}, CardBlocked},
	} {
		c.c.Now = t0
		d := Decide(c.c)
		if d.Approved != (c.want == "") || d.Reason != c.want {
			t.Errorf("%s: %+v, want %q", c.name, d, c.want)
		}
		if !d.Approved && d.Detail == "" {
			t.Errorf("%s: a decline without detail", c.name)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, c := range []struct {
		l  Limits
		ok bool
	}{
		{DefaultLimits(), true}, {Limits{1, 1}, true}, {Limits{0, 1}, false}, {Limits{100, 99}, false},
		{Limits{MaxAmount + 1, MaxAmount + 1}, false}, {Limits{MaxAmount, MaxDailyLimit + 1}, false},
	} {
		if err := c.l.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.l, err)
		}
	}
}

func TestCategoryRules(t *testing.T) {
	for mcc, want := range map[string]time.Duration{"5912": 7 * 24 * time.Hour, "7011": 30 * 24 * time.Hour,
		"8062": 30 * 24 * time.Hour, "4111": 24 * time.Hour, "5411": DefaultHoldTimeout} {
		if got := HoldTimeout(mcc); got != want {
			t.Errorf("hold timeout of %s: %s, want %s", mcc, got, want)
		}
	}
	if MerchantAllowed("7995") || !MerchantAllowed("5912") || !IncrementalAllowed("7011") || IncrementalAllowed("5912") {
		t.Error("category rules")
	}
}

func TestDay(t *testing.T) {
	// 23:59 in Shanghai is still the day; 00:00 is the next, whatever UTC says.
	late := time.Date(2026, 3, 3, 23, 59, 0, 0, cards.Shanghai)
	start, end := Day(late)
	if !start.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, cards.Shanghai)) || !end.Equal(time.Date(2026, 3, 4, 0, 0, 0, 0, cards.Shanghai)) {
		t.Errorf("day of %s: %s to %s", late, start, end)
	}
	if s, _ := Day(end); !s.Equal(end) {
		t.Errorf("midnight belongs to the day it starts")
	}
}

// world is a ledger in memory with a funded card, the merchant and fee income: plans are applied
// to it exactly as the store applies them.
type world struct {
	t       *testing.T
	state   *ledger.State
	card    *cards.Card
	plan    *fees.Plan
	foreign fees.ForeignCard
	next    byte
	now     time.Time
}

func newWorld(t *testing.T, funds int64) *world {
	cat, err := fees.Load()
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := cat.Plan("domestic-standard")
	w := &world{t: t, state: ledger.NewState(4), card: card(events.StatusActive, validPermit), plan: plan, foreign: cat.Foreign, now: t0}
	bank := cards.AccountID("bank", "b")
	for _, a := range []ledger.Account{
		{ID: w.card.FundsAccount, Currency: "CNY", Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits},
		{ID: clearing.PartyAccount(clearing.PartyMerchant, "hotel-1"), Currency: "CNY", Kind: ledger.KindMerchantClearing},
		{ID: clearing.FeeIncomeAccount, Currency: "CNY", Kind: ledger.KindFeeIncome},
		{ID: bank, Currency: "CNY", Kind: ledger.KindBankSettlement},
	} {
		a := a
		w.state.Accounts[a.ID] = &a
	}
	w.apply(ledger.Transfer{ID: w.id(), DebitAccountID: bank, CreditAccountID: w.card.FundsAccount, Amount: funds, Code: clearing.CodeFundsLoaded})
	return w
}

func (w *world) id() ledger.ID {
	w.next++
	return ledger.ID{15: w.next, 0: 1}
}

func (w *world) apply(ts ...ledger.Transfer) []ledger.Result {
	w.t.Helper()
	out, err := w.state.Apply(ts, w.now.UnixMicro())
	if err != nil {
		w.t.Fatal(err)
	}
	return out.Results
}

func (w *world) account(id ledger.ID) *ledger.Account { return w.state.Accounts[id] }

var hotel = Merchant{ID: "hotel-1", Name: "West Lake Hotel", MCC: "7011", City: "hangzhou", AcquiringBank: "ABC-HZ", FeePlan: "domestic-standard"}

func allCreated(rs []ledger.Result) bool {
	for _, r := range rs {
		if r != ledger.Created {
			return false
		}
	}
	return true
}

// TestLifecycleOnTheLedger runs an authorization's whole life on an in-memory ledger: hold,
// increment, partial capture with its fee in one group, refunds returning the plan's share, and
// the refusals of what its state no longer allows.
func TestLifecycleOnTheLedger(t *testing.T) {
	w := newWorld(t, 100000)
	funds := w.account(w.card.FundsAccount)
	merchant := w.account(hotel.Account())
	income := w.account(clearing.FeeIncomeAccount)

	d := Decide(Check{MCC: hotel.MCC, Card: w.card, Amount: 50000, Limits: DefaultLimits(), Now: w.now})
	a, hold := PlanAuthorization(w.id(), &hotel, w.card, 50000, d, w.now)
	if hold == nil || hold.ID != a.ID || hold.TimeoutSeconds != uint32(30*24*3600) || !a.ExpiresAt.Equal(w.now.Add(30*24*time.Hour)) {
		t.Fatalf("authorization %+v hold %+v", a, hold)
	}
	if !allCreated(w.apply(*hold)) {
		t.Fatal("hold refused")
	}
	a.Approve()
	if funds.Available() != 50000 {
		t.Fatalf("available %d", funds.Available())
	}

	w.now = w.now.Add(time.Hour)
	inc, ih, rf := PlanIncrement(&a, w.id(), IncrementCheck{Card: w.card, Amount: 30000, Limits: DefaultLimits(), UsedToday: 50000, Now: w.now})
	if rf != nil || ih == nil || ih.TimeoutSeconds != uint32(30*24*3600-3600) {
		t.Fatalf("increment %+v %+v %v", inc, ih, rf)
	}
	if !allCreated(w.apply(*ih)) {
		t.Fatal("increment hold refused")
	}
	a.ApplyIncrement(inc)
	if a.Held() != 80000 || funds.Available() != 20000 {
		t.Fatalf("held %d available %d", a.Held(), funds.Available())
	}

	// 700.00 of 800.00: the first hold posted whole, 200.00 of the second; 0.35% is 2.45 and the
	// network's 0.065% is 0.455, 0.46 half-even.
	c, ts, rf := PlanCapture(&a, w.id(), 70000, w.plan, w.foreign, w.id, w.now)
	if rf != nil || len(ts) != 3 || ts[0].Amount != 50000 || ts[1].Amount != 20000 || ts[2].Amount != 291 {
		t.Fatalf("capture %+v %+v %v", c, ts, rf)
	}
	if ts[0].Flags&ledger.Linked == 0 || ts[1].Flags&ledger.Linked == 0 || ts[2].Flags&ledger.Linked != 0 {
		t.Fatal("the capture is not one linked group")
	}
	if c.Released != 10000 || c.Fee != (fees.Fee{MerchantDiscount: 245, Network: 46}) || c.Foreign != (fees.ForeignCost{Surcharge: 2100, FXMargin: 1050}) {
		t.Fatalf("capture %+v", c)
	}
	if !allCreated(w.apply(ts...)) {
		t.Fatal("capture refused")
	}
	a.ApplyClose(c)
	if funds.Net() != 30000 || funds.Available() != 30000 || merchant.Net() != 70000-291 || income.Net() != 291 {
		t.Fatalf("after capture: funds %d/%d merchant %d income %d", funds.Net(), funds.Available(), merchant.Net(), income.Net())
	}
	if _, _, rf := PlanCapture(&a, w.id(), 1, w.plan, w.foreign, w.id, w.now); rf == nil || rf.Code != RefusedConflict {
		t.Errorf("a second capture: %v", rf)
	}
	if _, _, rf := PlanVoid(&a, w.id(), w.id, w.now); rf == nil || rf.Code != RefusedConflict {
		t.Errorf("a void after capture: %v", rf)
	}

	// Two refunds: 200.00 leaves 500.00 (1.75 of discount: 0.70 back), then 500.00 returns the rest.
	r1, ts, rf := PlanRefund(&a, w.id(), 20000, w.plan, w.foreign, w.id, w.now)
	if rf != nil || len(ts) != 2 || r1.FeeReturned != (fees.Fee{MerchantDiscount: 70}) || r1.ForeignNet != (fees.ForeignCost{Surcharge: 1500, FXMargin: 750}) {
		t.Fatalf("refund %+v %+v %v", r1, ts, rf)
	}
	if !allCreated(w.apply(ts...)) {
		t.Fatal("refund refused")
	}
	a.ApplyRefund(r1)
	if _, _, rf := PlanRefund(&a, w.id(), 50001, w.plan, w.foreign, w.id, w.now); rf == nil || rf.Code != RefusedConflict {
		t.Errorf("refund over what remains: %v", rf)
	}
	r2, ts, rf := PlanRefund(&a, w.id(), 50000, w.plan, w.foreign, w.id, w.now)
	if rf != nil || r2.Seq != 2 || r2.RefundedTotal != 70000 || r2.FeeReturned.MerchantDiscount != 175 {
		t.Fatalf("second refund %+v %v", r2, rf)
	}
	if !allCreated(w.apply(ts...)) {
		t.Fatal("second refund refused")
	}
	a.ApplyRefund(r2)
	// Refunded whole: the card has its 1,000.00 back and the merchant kept only the network fee.
	if funds.Net() != 100000 || merchant.Net() != -46 || income.Net() != 46 {
		t.Errorf("after refunds: funds %d merchant %d income %d", funds.Net(), merchant.Net(), income.Net())
	}
	if _, _, rf := PlanRefund(&a, w.id(), 1, w.plan, w.foreign, w.id, w.now); rf == nil {
		t.Error("a refund past the capture")
	}
}

func TestRefusals(t *testing.T) {
	w := newWorld(t, 100000)
	approved := func() Authorization {
		a, _ := PlanAuthorization(w.id(), &hotel, w.card, 10000, Decision{Approved: true}, w.now)
		a.Approve()
		return a
	}
	declined, _ := PlanAuthorization(w.id(), &hotel, w.card, 10000, Decision{Reason: InsufficientFunds}, w.now)
	expired := approved()
	pharmacy := approved()
	pharmacy.MCC = "5912"
	full := approved()
	full.Increments = MaxIncrements
	later := w.now.Add(30*24*time.Hour - ExpiryMargin)
	check := func(name string, rf *Refusal, want RefusalCode) {
		t.Helper()
		if rf == nil || rf.Code != want {
			t.Errorf("%s: %v, want %s", name, rf, want)
		}
	}
	ok := approved()
	_, _, rf := PlanCapture(&declined, w.id(), 1, w.plan, w.foreign, w.id, w.now)
	check("capture of a declined authorization", rf, RefusedConflict)
	_, _, rf = PlanCapture(&expired, w.id(), 1, w.plan, w.foreign, w.id, later)
	check("capture a second before expiry", rf, RefusedConflict)
	_, _, rf = PlanCapture(&ok, w.id(), 10001, w.plan, w.foreign, w.id, w.now)
	check("capture over the hold", rf, RefusedConflict)
	_, _, rf = PlanCapture(&ok, w.id(), 0, w.plan, w.foreign, w.id, w.now)
	check("capture of nothing", rf, RefusedInvalid)
	_, _, rf = PlanIncrement(&pharmacy, w.id(), IncrementCheck{Card: w.card, Amount: 1, Limits: DefaultLimits(), Now: w.now})
	check("increment at a pharmacy", rf, RefusedConflict)
	_, _, rf = PlanIncrement(&full, w.id(), IncrementCheck{Card: w.card, Amount: 1, Limits: DefaultLimits(), Now: w.now})
	check("increment past the bound", rf, RefusedConflict)
	_, _, rf = PlanVoid(&declined, w.id(), w.id, w.now)
	check("void of a declined authorization", rf, RefusedConflict)
	_, _, rf = PlanRefund(&ok, w.id(), 1, w.plan, w.foreign, w.id, w.now)
	check("refund before capture", rf, RefusedConflict)

	// An increment the card can no longer make is declined, not refused: it is recorded.
	blocked := *w.card
	blocked.Declared = events.StatusBlocked
	inc, hold, rf := PlanIncrement(&ok, w.id(), IncrementCheck{Card: &blocked, Amount: 100, Limits: DefaultLimits(), Now: w.now})
	if rf != nil || hold != nil || inc.Reason != CardBlocked {
		t.Errorf("increment on a blocked card: %+v %v %v", inc, hold, rf)
	}
	if got := (&expired).Status(later); got != StatusExpired {
		t.Errorf("status a second before expiry: %s", got)
	}
}

func TestFromLedger(t *testing.T) {
	if d, err := FromLedger(ledger.InsufficientFunds); err != nil || d.Reason != InsufficientFunds {
		t.Errorf("insufficient funds: %+v %v", d, err)
	}
	if _, err := FromLedger(ledger.DebitAccountNotFound); err == nil {
		t.Error("a missing account is a fault of the plan, not a decline")
	}
}

// The rules docs/purchases.md states are the ones the code applies: which categories may take
// incremental authorizations and how many, which the card refuses, the default limits and the
// hold timeouts.
func TestDocumentedRules(t *testing.T) {
	b, err := os.ReadFile("../docs/purchases.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var wants []string
	for _, mcc := range incrementalMCCs {
		wants = append(wants, mcc+" (")
	}
	for _, mcc := range refusedMCCs {
		wants = append(wants, "("+mcc+")")
	}
	l := DefaultLimits()
	wants = append(wants, fmt.Sprintf("at most %d per authorization", MaxIncrements),
		fmt.Sprintf("at most %d per purchase", MaxRefunds),
		ledger.FormatAmount(l.PerTransaction, Currency)+" CNY per transaction", ledger.FormatAmount(l.PerDay, Currency)+" CNY per",
		fmt.Sprintf("| hotels (7011), car rental (7512) | %d days |", int(HoldTimeout("7011")/(24*time.Hour))),
		fmt.Sprintf("| hospitals (8062) | %d days |", int(HoldTimeout("8062")/(24*time.Hour))),
		fmt.Sprintf("| transit (4111, 4131) | %d day |", int(HoldTimeout("4111")/(24*time.Hour))),
		fmt.Sprintf("| every other category | %d days |", int(DefaultHoldTimeout/(24*time.Hour))))
	for _, w := range wants {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/purchases.md does not say %q", w)
		}
	}
	for _, mcc := range []string{"7011", "7512", "8062", "4111", "4131"} {
		if HoldTimeout(mcc) == DefaultHoldTimeout {
			t.Errorf("%s holds for the default: the table lists it apart", mcc)
		}
	}
	if len(incrementalMCCs) != 4 || len(refusedMCCs) != 3 {
		t.Errorf("the categories changed: update docs/purchases.md and this test (%v, %v)", incrementalMCCs, refusedMCCs)
	}
}

// A fee adjustment moves its sum from the merchant when it owes more, back when it owes less,
// and nothing when its components cancel out.
func TestPlanFeeAdjustment(t *testing.T) {
	transfer, id, merchant := ledger.ID{1}, ledger.ID{2}, ledger.ID{3}
	for _, tc := range []struct {
		name        string
		adj         fees.Fee
		debit, cred ledger.ID
		amount      int64
	}{
		{"owes more", fees.Fee{MerchantDiscount: 15, Network: 2}, merchant, clearing.FeeIncomeAccount, 17},
		{"owes less", fees.Fee{MerchantDiscount: -30}, clearing.FeeIncomeAccount, merchant, 30},
		{"mixed, more", fees.Fee{MerchantDiscount: -3, Network: 5}, merchant, clearing.FeeIncomeAccount, 2},
	} {
		got := PlanFeeAdjustment(transfer, id, merchant, tc.adj)
		if got == nil || got.ID != transfer || got.DebitAccountID != tc.debit || got.CreditAccountID != tc.cred || got.Amount != tc.amount ||
			got.UserData != id || got.Code != clearing.CodeMerchantFeeAdjustment || got.Flags != 0 {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
	if got := PlanFeeAdjustment(transfer, id, merchant, fees.Fee{MerchantDiscount: 4, Network: -4}); got != nil {
		t.Errorf("components that cancel out moved %+v", got)
	}
}

// What a capture or void releases comes from the latest holds first, and counts back on the day
// each released hold was approved.
func TestReleasedWithinCountsEachHoldOnItsDay(t *testing.T) {
	day1 := time.Date(2026, time.March, 3, 10, 0, 0, 0, cards.Shanghai)
	day2 := day1.Add(24 * time.Hour)
	a := &Authorization{ID: ledger.ID{1}, Amount: 300_00, CreatedAt: day1}
	a.Approve()
	a.ApplyIncrement(Increment{ID: ledger.ID{2}, Amount: 200_00, Decision: Decision{Approved: true}, CreatedAt: day2})
	s1, e1 := Day(day1)
	s2, e2 := Day(day2)
	for _, c := range []struct {
		name       string
		released   int64
		day1, day2 int64
	}{
		{"a void", 500_00, 300_00, 200_00},
		{"a capture of 400.00", 100_00, 0, 100_00},
		{"a capture of 250.00", 250_00, 50_00, 200_00},
		{"a capture of everything", 0, 0, 0},
	} {
		if got1, got2 := a.ReleasedWithin(c.released, s1, e1), a.ReleasedWithin(c.released, s2, e2); got1 != c.day1 || got2 != c.day2 {
			t.Errorf("%s: released %d on the first day and %d on the second, want %d and %d", c.name, got1, got2, c.day1, c.day2)
		}
	}
}
