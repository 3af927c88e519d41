package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
)

// TestMedicalRefunds refunds a Jiaxing bill in three pieces, exact to the fen, by transfers back
// from the hospital; replays, a reused refund id and a refund past the bill change nothing; the
// full refund restores the accumulators, so the same purchase splits as it did; the day's
// reconciliation counts the refunds.
func TestMedicalRefunds(t *testing.T) {
	day := time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day)
	ctx := context.Background()
	card := w.card(t, 0)
	fundAcct := clearing.PartyAccount(clearing.PartyInsuranceFund, "jiaxing")
	all := []ledger.ID{card.MedicalAccount, card.FundsAccount, fundAcct, w.hospital.Account}
	w.contribute(t, 0, 500_00)
	w.fund(t, 0, 2_000_00)
	before := w.snapshot(t, 0, all...)

	// A1200 B300 at tier 3: fund 282, personal 500, cash 718; deductible 1000 met.
	b := basket(t, medical.Outpatient, "A1200", "B300")
	s, _, err := w.med.Settle(ctx, w.hospital, "HIS-R1", card.Token, b)
	if err != nil || s.Split.Fund != 282_00 || s.Split.Personal != 500_00 || s.Split.Cash != 718_00 {
		t.Fatalf("settle: %+v, %v", s.Split, err)
	}
	steps := []struct {
		ref, amount              string
		fund, personal, cash     int64
		deductibleLeft, fundLeft int64 // the accumulators after
		status                   string
	}{
		{"R-1", "300", 56_40, 100_00, 143_60, 800_00, 225_60, "partially_refunded"},
		{"R-2", "0.01", 0, 0, 1, 799_99, 225_60, "partially_refunded"},
		{"R-3", "1199.99", 225_60, 400_00, 574_39, 0, 0, "refunded"},
	}
	var refunded medical.Parts
	for _, st := range steps {
		amount, err := medical.ParseAmount(st.amount)
		if err != nil {
			t.Fatal(err)
		}
		r, settled, replayed, err := w.med.Refund(ctx, w.hospital, "HIS-R1", st.ref, amount, "returned unopened")
		if err != nil || replayed {
			t.Fatalf("%s: replayed %v, %v", st.ref, replayed, err)
		}
		if r.Parts != (medical.Parts{Fund: st.fund, Personal: st.personal, Cash: st.cash}) || r.Amount != amount {
			t.Errorf("%s: parts %+v", st.ref, r.Parts)
		}
		if settled.Status() != st.status || settled.Refunds[len(settled.Refunds)-1].ID != r.ID {
			t.Errorf("%s: status %s, refunds %+v", st.ref, settled.Status(), settled.Refunds)
		}
		refunded = refunded.Plus(r.Parts)
		year, err := w.med.CardYear(ctx, card.Token, 2026)
		if err != nil || year.Accumulators.Deductible["outpatient"] != st.deductibleLeft ||
			year.Accumulators.Fund["outpatient"] != st.fundLeft || year.Accumulators.Fund["total"] != st.fundLeft {
			t.Errorf("%s: accumulators %+v, %v", st.ref, year.Accumulators, err)
		}
		for _, tr := range []struct {
			id     ledger.ID
			amount int64
			to     ledger.ID
		}{{r.FundTransfer, st.fund, fundAcct}, {r.PersonalTransfer, st.personal, card.MedicalAccount}, {r.CashTransfer, st.cash, card.FundsAccount}} {
			if tr.amount == 0 {
				if !tr.id.IsZero() {
					t.Errorf("%s: a transfer for a part of zero", st.ref)
				}
				continue
			}
			got, err := w.st.Transfer(ctx, tr.id)
			if err != nil || got.Amount != tr.amount || got.DebitAccountID != w.hospital.Account || got.CreditAccountID != tr.to ||
				got.Code != medical.CodeRefund || got.UserData != ledger.ID(s.ID) {
				t.Errorf("%s: transfer %+v, %v", st.ref, got, err)
			}
		}
		if w.net(t, card.FundsAccount) != 2_000_00-718_00+refunded.Cash || w.net(t, card.MedicalAccount) != refunded.Personal ||
			w.net(t, fundAcct) != before.balances[fundAcct]-282_00+refunded.Fund ||
			w.net(t, w.hospital.Account) != 1500_00-refunded.Total() {
			t.Errorf("%s: ledger: funds %d, personal %d, fund %d, hospital %d", st.ref, w.net(t, card.FundsAccount),
				w.net(t, card.MedicalAccount), w.net(t, fundAcct), w.net(t, w.hospital.Account))
		}
		// The same refund again: the same answer, nothing moved.
		again, _, replayed, err := w.med.Refund(ctx, w.hospital, "HIS-R1", st.ref, amount, "returned unopened")
		if err != nil || !replayed || again.ID != r.ID || again.Parts != r.Parts {
			t.Fatalf("%s replay: %v %+v, %v", st.ref, replayed, again, err)
		}
	}
	// Every balance back, every accumulator back to nothing.
	if after := w.snapshot(t, 0, all...); !maps.Equal(before.balances, after.balances) || !zeroAcc(after.acc) {
		t.Errorf("a full refund left %+v, before %+v", after, before)
	}
	full := w.snapshot(t, 0, all...)
	_, _, _, err = w.med.Refund(ctx, w.hospital, "HIS-R1", "R-1", 300_01, "returned unopened")
	wantRefusal(t, err, medical.ReasonRefundIDReused)
	_, _, _, err = w.med.Refund(ctx, w.hospital, "HIS-R1", "R-4", 1, "one more fen")
	wantRefusal(t, err, medical.ReasonRefundExceedsSettlement)
	_, _, _, err = w.med.Refund(ctx, w.pharmacy, "HIS-R1", "R-4", 1, "not mine")
	wantRefusal(t, err, medical.ReasonUnknownSettlement)
	_, _, err = w.med.End(ctx, w.hospital, "HIS-R1", medical.Cancelled, "refunded already")
	wantRefusal(t, err, medical.ReasonSettlementRefunded)
	if !sameSnapshot(full, w.snapshot(t, 0, all...)) {
		t.Error("a refused request changed balances or accumulators")
	}

	// The same purchase again splits as the first did.
	again, _, err := w.med.Settle(ctx, w.hospital, "HIS-R2", card.Token, b)
	if err != nil || medical.PartsOf(again.Split) != medical.PartsOf(s.Split) || again.Split.Deductible != s.Split.Deductible {
		t.Fatalf("the same purchase after a full refund: %+v, %v", again.Split, err)
	}
	// A refund past what is left of a partly refunded bill is refused; a cancelled one is not refunded.
	if _, _, _, err := w.med.Refund(ctx, w.hospital, "HIS-R2", "R-1", 1000_00, "part"); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = w.med.Refund(ctx, w.hospital, "HIS-R2", "R-2", 500_01, "too much")
	wantRefusal(t, err, medical.ReasonRefundExceedsSettlement)
	if _, _, err := w.med.Settle(ctx, w.hospital, "HIS-R3", card.Token, basket(t, medical.Outpatient, "A10")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.med.End(ctx, w.hospital, "HIS-R3", medical.Cancelled, "wrong card"); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = w.med.Refund(ctx, w.hospital, "HIS-R3", "R-1", 1, "cancelled")
	wantRefusal(t, err, medical.ReasonAlreadyCancelled)

	// The day's reconciliation: two settlements (the third cancelled) less four refunds.
	d, err := w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(day))
	if err != nil {
		t.Fatal(err)
	}
	want := medical.Totals{Settlements: 2, Cancelled: 1, Refunds: 4, Total: 1500_00 + 1500_00 - 1500_00 - 1000_00}
	if d.All.Settlements != want.Settlements || d.All.Cancelled != want.Cancelled || d.All.Refunds != want.Refunds ||
		d.All.Total != want.Total || d.All.Fund+d.All.Personal+d.All.Cash != d.All.Total {
		t.Errorf("reconciliation %+v, want %+v", d.All, want)
	}
	checkDetail(t, w.med, d)
}

// TestMedicalConcurrentRefunds races refunds of one bill, replays of one refund and new bills of
// the same card: the refunds never pass the bill, each refund id applies once, and the
// accumulators end exactly at the new bills' contributions plus what is left of the first.
func TestMedicalConcurrentRefunds(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 6, 1, 11, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 20_000_00)
	w.contribute(t, 0, 300_00)
	first, _, err := w.med.Settle(ctx, w.hospital, "B-0", card.Token, basket(t, medical.Outpatient, "A1500", "B500", "C100.01"))
	if err != nil {
		t.Fatal(err)
	}
	// racers: more refunds of 300 than the bill of 2100.01 holds (seven, and the fen of SAME),
	// with new bills of the card between.
	const racers = 10
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		refunds  []medical.Refund
		exceeded int
		bills    []medical.Settlement
	)
	for i := range racers {
		wg.Go(func() {
			r, _, replayed, err := w.med.Refund(ctx, w.hospital, "B-0", fmt.Sprintf("R-%d", i), 300_00, "returned")
			mu.Lock()
			defer mu.Unlock()
			var ref *medical.Refusal
			switch {
			case err == nil && !replayed:
				refunds = append(refunds, r)
			case errors.As(err, &ref) && ref.Reason == medical.ReasonRefundExceedsSettlement:
				exceeded++
			default:
				t.Errorf("refund racer %d: replayed %v, %v", i, replayed, err)
			}
		})
		wg.Go(func() {
			s, _, err := w.med.Settle(ctx, w.pharmacy, fmt.Sprintf("P-%d", i), card.Token, basket(t, medical.Pharmacy, "A120", "B35.55"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("bill racer %d: %v", i, err)
				return
			}
			bills = append(bills, s)
		})
		wg.Go(func() {
			if _, _, _, err := w.med.Refund(ctx, w.hospital, "B-0", "SAME", 0_01, "one fen"); err != nil {
				t.Errorf("replay racer: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	settled, err := w.med.Settlement(ctx, w.hospital, "B-0")
	if err != nil {
		t.Fatal(err)
	}
	// Seven refunds of 300 and the fen: the bill refunded in full, whatever the order.
	if len(settled.Refunds) != len(refunds)+1 || settled.Refunded() > first.Split.Total || exceeded+len(refunds) != racers {
		t.Fatalf("%d refunds recorded, %d applied, %d refused; refunded %d of %d", len(settled.Refunds), len(refunds), exceeded,
			settled.Refunded(), first.Split.Total)
	}
	if len(refunds) != 7 || settled.Refunded() != first.Split.Total || settled.Status() != "refunded" {
		t.Errorf("refunded %d", settled.Refunded())
	}
	left, err := medical.RefundableOf(settled.Split, settled.Refunds)
	if err != nil {
		t.Fatal(err)
	}
	want := medical.Accumulators{}.Clone().Plus(left.Delta)
	personal := 300_00 - first.Split.Personal
	for _, s := range bills {
		want = want.Plus(s.Split.Delta)
		personal -= s.Split.Personal
	}
	for _, r := range settled.Refunds {
		personal += r.Parts.Personal
	}
	year, err := w.med.CardYear(ctx, card.Token, 2026)
	if err != nil || !maps.Equal(year.Accumulators.Deductible, want.Deductible) || !maps.Equal(year.Accumulators.Fund, want.Fund) {
		t.Errorf("accumulators %+v, want %+v, %v", year.Accumulators, want, err)
	}
	if got := w.net(t, card.MedicalAccount); got != personal {
		t.Errorf("personal account %d, want %d", got, personal)
	}
	t.Logf("%d refunds applied, %d refused past the bill, %d bills settled between", len(refunds), exceeded, len(bills))
}

// TestMedicalStay settles a Jiaxing inpatient stay at the tier 3 hospital in two interim bills
// and a final one, each meeting the per-admission deductible of 800 again; the final bill trues
// the stay up to one bill: the fund pays 1360 more and the card gets 1360 back, and the
// accumulators hold one deductible.
func TestMedicalStay(t *testing.T) {
	day := time.Date(2026, 4, 1, 9, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day)
	ctx := context.Background()
	card := w.card(t, 0)
	fundAcct := clearing.PartyAccount(clearing.PartyInsuranceFund, "jiaxing")
	w.fund(t, 0, 20_000_00)
	fundBefore := w.net(t, fundAcct)
	stay := func(kind medical.StayBillKind) medical.StayBill { return medical.StayBill{Ref: "ADM-7", Kind: kind} }
	bills := []struct {
		ref   string
		items []string
		kind  medical.StayBillKind
		fund  int64
		cash  int64
	}{
		{"IP-1", []string{"A10000"}, medical.StayInterim, 7820_00, 2180_00},
		{"IP-2", []string{"A5000", "B2000"}, medical.StayInterim, 5100_00, 1900_00},
		{"IP-3", []string{"A3000", "C500"}, medical.StayFinal, 1870_00, 1630_00},
	}
	var last medical.Settlement
	for i, b := range bills {
		w.clock.Set(day.Add(time.Duration(i) * 24 * time.Hour))
		s, replayed, err := w.med.SettleStay(ctx, w.hospital, b.ref, card.Token, basket(t, medical.Inpatient, b.items...), stay(b.kind))
		if err != nil || replayed {
			t.Fatalf("%s: %v", b.ref, err)
		}
		if s.Split.Fund != b.fund || s.Split.Cash != b.cash || s.Stay == nil || *s.Stay != stay(b.kind) {
			t.Errorf("%s: %+v, stay %+v", b.ref, medical.PartsOf(s.Split), s.Stay)
		}
		last = s
	}
	u := last.TrueUp
	if u == nil {
		t.Fatal("the final bill has no true-up")
	}
	if u.Adjustment != (medical.Parts{Fund: 1360_00, Cash: -1360_00}) || medical.PartsOf(u.Whole) != (medical.Parts{Fund: 16150_00, Cash: 4350_00}) ||
		u.Billed != (medical.Parts{Fund: 14790_00, Cash: 5710_00}) || len(u.Bills) != 3 || u.Whole.Deductible != 800_00 {
		t.Errorf("true-up %+v", *u)
	}
	for _, x := range []struct {
		id     ledger.ID
		debit  ledger.ID
		credit ledger.ID
	}{{u.FundTransfer, fundAcct, w.hospital.Account}, {u.CashTransfer, w.hospital.Account, card.FundsAccount}} {
		tr, err := w.st.Transfer(ctx, x.id)
		if err != nil || tr.Amount != 1360_00 || tr.DebitAccountID != x.debit || tr.CreditAccountID != x.credit ||
			tr.Code != medical.CodeStayAdjustment {
			t.Errorf("adjustment transfer %+v, %v", tr, err)
		}
	}
	if !u.PersonalTransfer.IsZero() {
		t.Error("a personal adjustment of zero has a transfer")
	}
	// The stay as one bill: the card paid 4350 in cash, the fund 16150, the hospital has 20500.
	if w.net(t, card.FundsAccount) != 20_000_00-4350_00 || w.net(t, fundAcct) != fundBefore-16150_00 ||
		w.net(t, w.hospital.Account) != 20500_00 {
		t.Errorf("ledger: funds %d, fund %d, hospital %d", w.net(t, card.FundsAccount), w.net(t, fundAcct), w.net(t, w.hospital.Account))
	}
	year, err := w.med.CardYear(ctx, card.Token, 2026)
	if err != nil || year.Accumulators.Deductible["inpatient"] != 800_00 || year.Accumulators.Fund["total"] != 16150_00 {
		t.Errorf("accumulators %+v, %v", year.Accumulators, err)
	}
	// The final bill again answers the same receipt, true-up included.
	again, replayed, err := w.med.SettleStay(ctx, w.hospital, "IP-3", card.Token, basket(t, medical.Inpatient, "A3000", "C500"), stay(medical.StayFinal))
	if err != nil || !replayed || again.TrueUp == nil || again.TrueUp.ID != u.ID {
		t.Fatalf("replay: %v %+v, %v", replayed, again.TrueUp, err)
	}
	// A closed stay takes no bill; its bills are neither refunded, cancelled nor reversed.
	snap := w.snapshot(t, 0, card.FundsAccount, fundAcct, w.hospital.Account)
	_, _, err = w.med.SettleStay(ctx, w.hospital, "IP-4", card.Token, basket(t, medical.Inpatient, "A10"), stay(medical.StayInterim))
	wantRefusal(t, err, medical.ReasonStayClosed)
	_, _, _, err = w.med.Refund(ctx, w.hospital, "IP-1", "R-1", 100_00, "returned")
	wantRefusal(t, err, medical.ReasonStayBill)
	_, _, err = w.med.End(ctx, w.hospital, "IP-1", medical.Reversed, "wrong card")
	wantRefusal(t, err, medical.ReasonStayClosed)
	_, _, err = w.med.End(ctx, w.hospital, "IP-3", medical.Cancelled, "wrong card")
	wantRefusal(t, err, medical.ReasonStayClosed)
	if !sameSnapshot(snap, w.snapshot(t, 0, card.FundsAccount, fundAcct, w.hospital.Account)) {
		t.Error("a refused request changed balances or accumulators")
	}
	// Another card's bill does not join the stay.
	w.fund(t, 2, 100_00)
	_, _, err = w.med.SettleStay(ctx, w.hospital, "IP-X", w.card(t, 2).Token, basket(t, medical.Inpatient, "A10"), medical.StayBill{Ref: "ADM-8", Kind: medical.StayInterim})
	if err != nil {
		t.Fatalf("another stay: %v", err)
	}
	w.fund(t, 0, 100_00)
	_, _, err = w.med.SettleStay(ctx, w.hospital, "IP-Y", card.Token, basket(t, medical.Inpatient, "A10"), medical.StayBill{Ref: "ADM-8", Kind: medical.StayFinal})
	wantRefusal(t, err, medical.ReasonStayMismatch)

	// The final bill's day counts the final bill and the true-up.
	d, err := w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(day.Add(48*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if d.All.Settlements != 1 || d.All.TrueUps != 1 || d.All.Total != 3500_00 || d.All.Fund != 1870_00+1360_00 || d.All.Cash != 1630_00-1360_00 {
		t.Errorf("reconciliation %+v", d.All)
	}
	checkDetail(t, w.med, d)

	// The stay is refunded through its final bill, as the one bill it ended as: 2050 of 20500
	// gives back a tenth of the whole stay's parts (fund 1615, cash 435) and 80 of its deductible;
	// the rest gives back everything, and the year is as before the stay.
	w.clock.Set(day.Add(72 * time.Hour))
	r, settled, _, err := w.med.Refund(ctx, w.hospital, "IP-3", "R-1", 2050_00, "billed to the wrong admission")
	if err != nil || r.Parts != (medical.Parts{Fund: 1615_00, Cash: 435_00}) || r.Delta.Deductible["inpatient"] != 80_00 ||
		settled.Status() != "partially_refunded" {
		t.Fatalf("refund of the stay: %+v %s, %v", r, settled.Status(), err)
	}
	_, _, _, err = w.med.Refund(ctx, w.hospital, "IP-3", "R-2", 18450_01, "too much")
	wantRefusal(t, err, medical.ReasonRefundExceedsSettlement)
	if _, settled, _, err = w.med.Refund(ctx, w.hospital, "IP-3", "R-2", 18450_00, "billed to the wrong admission"); err != nil ||
		settled.Status() != "refunded" {
		t.Fatalf("the rest of the stay: %s, %v", settled.Status(), err)
	}
	year, err = w.med.CardYear(ctx, card.Token, 2026)
	if err != nil || !zeroAcc(year.Accumulators) {
		t.Errorf("accumulators after the stay's refund %+v, %v", year.Accumulators, err)
	}
	if w.net(t, card.FundsAccount) != 20_100_00 || w.net(t, fundAcct) != fundBefore {
		t.Errorf("ledger after the stay's refund: funds %d, fund %d", w.net(t, card.FundsAccount), w.net(t, fundAcct))
	}
	d, err = w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(day.Add(72*time.Hour)))
	if err != nil || d.All.Refunds != 2 || d.All.Total != -20500_00 || d.All.Fund != -16150_00 {
		t.Errorf("reconciliation of the refunds %+v, %v", d.All, err)
	}
	checkDetail(t, w.med, d)
}

// A stay's interim bill cancelled before the final bill is left out of the stay; a final bill
// alone trues up to nothing.
func TestMedicalStayCancelledInterim(t *testing.T) {
	day := time.Date(2026, 5, 4, 9, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day)
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 5_000_00)
	st := func(ref string, kind medical.StayBillKind) medical.StayBill {
		return medical.StayBill{Ref: ref, Kind: kind}
	}
	if _, _, err := w.med.SettleStay(ctx, w.hospital, "IP-1", card.Token, basket(t, medical.Inpatient, "A2000"), st("ADM-1", medical.StayInterim)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.med.End(ctx, w.hospital, "IP-1", medical.Cancelled, "entered on the wrong stay"); err != nil {
		t.Fatal(err)
	}
	// A3000 at tier 3: 800 deductible, 85% of 2200 = 1870; cash 1130.
	s, _, err := w.med.SettleStay(ctx, w.hospital, "IP-2", card.Token, basket(t, medical.Inpatient, "A3000"), st("ADM-1", medical.StayFinal))
	if err != nil || s.TrueUp == nil {
		t.Fatalf("final: %+v, %v", s.TrueUp, err)
	}
	if s.TrueUp.Adjustment != (medical.Parts{}) || len(s.TrueUp.Bills) != 1 || s.TrueUp.Whole.Fund != 1870_00 ||
		!s.TrueUp.FundTransfer.IsZero() || !s.TrueUp.CashTransfer.IsZero() {
		t.Errorf("true-up %+v", *s.TrueUp)
	}
	if w.net(t, card.FundsAccount) != 5_000_00-1130_00 {
		t.Errorf("funds %d", w.net(t, card.FundsAccount))
	}
	year, err := w.med.CardYear(ctx, card.Token, 2026)
	if err != nil || year.Accumulators.Deductible["inpatient"] != 800_00 || year.Accumulators.Fund["total"] != 1870_00 {
		t.Errorf("accumulators %+v, %v", year.Accumulators, err)
	}
	// A stay bill of an outpatient basket is invalid.
	_, _, err = w.med.SettleStay(ctx, w.hospital, "IP-3", card.Token, basket(t, medical.Outpatient, "A10"), st("ADM-2", medical.StayInterim))
	if !errors.Is(err, medical.ErrInvalid) {
		t.Errorf("an outpatient stay bill: %v", err)
	}
}

// zeroAcc reports whether every accumulator holds nothing.
func zeroAcc(a medical.Accumulators) bool {
	for _, m := range []map[string]int64{a.Deductible, a.Fund} {
		for _, v := range m {
			if v != 0 {
				return false
			}
		}
	}
	return true
}

// TestMedicalStayRacesOtherBills races a stay's final bill with new bills and a refund of the same
// card: the true-up reads the accumulators and balances the others left under the card's lock, so
// the year ends with exactly the whole stay's contribution and the others'.
func TestMedicalStayRacesOtherBills(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 7, 1, 9, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 50_000_00)
	w.contribute(t, 0, 400_00)
	stay := func(kind medical.StayBillKind) medical.StayBill { return medical.StayBill{Ref: "ADM-R", Kind: kind} }
	if _, _, err := w.med.SettleStay(ctx, w.hospital, "IP-1", card.Token, basket(t, medical.Inpatient, "A6000", "B1000"), stay(medical.StayInterim)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.med.Settle(ctx, w.pharmacy, "P-0", card.Token, basket(t, medical.Pharmacy, "A300", "B80")); err != nil {
		t.Fatal(err)
	}
	// racers: pharmacy bills of the same card, enough to queue on its lock with the final bill.
	const racers = 6
	var (
		wg    sync.WaitGroup
		final medical.Settlement
	)
	wg.Go(func() {
		s, _, err := w.med.SettleStay(ctx, w.hospital, "IP-2", card.Token, basket(t, medical.Inpatient, "A2500", "C300"), stay(medical.StayFinal))
		if err != nil || s.TrueUp == nil {
			t.Errorf("final bill: %v", err)
		}
		final = s
	})
	wg.Go(func() {
		if _, _, _, err := w.med.Refund(ctx, w.pharmacy, "P-0", "R-1", 100_00, "returned"); err != nil {
			t.Errorf("refund: %v", err)
		}
	})
	for i := range racers {
		wg.Go(func() {
			if _, _, err := w.med.Settle(ctx, w.pharmacy, fmt.Sprintf("P-%d", i+1), card.Token, basket(t, medical.Pharmacy, "A150", "B20")); err != nil {
				t.Errorf("pharmacy bill %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// What the year holds: the whole stay's contribution, and the pharmacy bills' less the refund's.
	want := medical.Accumulators{}.Clone().Plus(final.TrueUp.Whole.Delta)
	personal := int64(400_00) - final.TrueUp.Whole.Personal
	for i := range racers + 1 {
		s, err := w.med.Settlement(ctx, w.pharmacy, fmt.Sprintf("P-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		left, err := medical.RefundableOf(s.Split, s.Refunds)
		if err != nil {
			t.Fatal(err)
		}
		want = want.Plus(left.Delta)
		personal -= left.Parts.Personal
	}
	year, err := w.med.CardYear(ctx, card.Token, 2026)
	if err != nil || !maps.Equal(year.Accumulators.Fund, want.Fund) || !maps.Equal(year.Accumulators.Deductible, want.Deductible) {
		t.Errorf("accumulators %+v, want %+v, %v", year.Accumulators, want, err)
	}
	if got := w.net(t, card.MedicalAccount); got != personal {
		t.Errorf("personal account %d, want %d", got, personal)
	}
	if year.Accumulators.Deductible["inpatient"] != 800_00 {
		t.Errorf("the stay met the per-admission deductible %d times over", year.Accumulators.Deductible["inpatient"])
	}
}

// BenchmarkMedicalRefund measures one partial refund end to end on PostgreSQL: a transaction that
// reads the settlement with its refunds, locks the card, apportions the refund, applies up to three
// linked transfers back from the hospital and writes the refund and the accumulators. Each
// settlement takes a hundred refunds of one fen, so the refunds read grow as a long bill's would.
func BenchmarkMedicalRefund(b *testing.B) {
	w := newMedWorldB(b)
	ctx := context.Background()
	items := basket(b, medical.Outpatient, "A3000", "B200", "C10")
	const perBill = 100
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ref := fmt.Sprintf("B-%d", i/perBill)
		if i%perBill == 0 {
			b.StopTimer()
			if _, _, err := w.med.Settle(ctx, w.hospital, ref, w.city.Cards[2*(i/perBill%2)], items); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if _, _, _, err := w.med.Refund(ctx, w.hospital, ref, fmt.Sprintf("R-%d", i), 1, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMedicalStayAcrossTheNewYear settles a stay admitted in December and discharged in January:
// its bills fall in two policy years, and the stay counts in the year of its discharge, as one
// bill of that year. The final bill trues it up on the new year's accumulators and policy, and
// takes what the December bill had added out of the old year, which ends as if the stay had not
// been there. A refund of the whole stay then leaves both years empty.
func TestMedicalStayAcrossTheNewYear(t *testing.T) {
	day := time.Date(2025, 12, 30, 9, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day)
	ctx := context.Background()
	card := w.card(t, 0)
	fundAcct := clearing.PartyAccount(clearing.PartyInsuranceFund, "jiaxing")
	w.fund(t, 0, 30_000_00)
	fundBefore, fundsBefore := w.net(t, fundAcct), w.net(t, card.FundsAccount)
	stay := func(kind medical.StayBillKind) medical.StayBill { return medical.StayBill{Ref: "ADM-NY", Kind: kind} }
	bills := []struct {
		ref   string
		at    time.Time
		items []string
		kind  medical.StayBillKind
		year  int
	}{
		{"IP-NY1", day, []string{"A10000"}, medical.StayInterim, 2025},
		{"IP-NY2", time.Date(2026, 1, 2, 10, 0, 0, 0, cards.Shanghai), []string{"A4000", "B1000"}, medical.StayInterim, 2026},
		{"IP-NY3", time.Date(2026, 1, 5, 11, 0, 0, 0, cards.Shanghai), []string{"A3000", "C500"}, medical.StayFinal, 2026},
	}
	var (
		billed medical.Parts
		last   medical.Settlement
	)
	for _, b := range bills {
		w.clock.Set(b.at)
		s, replayed, err := w.med.SettleStay(ctx, w.hospital, b.ref, card.Token, basket(t, medical.Inpatient, b.items...), stay(b.kind))
		if err != nil || replayed {
			t.Fatalf("%s: %v", b.ref, err)
		}
		if s.PolicyYear != b.year {
			t.Errorf("%s: policy year %d, want %d", b.ref, s.PolicyYear, b.year)
		}
		billed = billed.Plus(medical.PartsOf(s.Split))
		last = s
	}
	u := last.TrueUp
	if u == nil {
		t.Fatal("the final bill has no true-up")
	}
	// The stay as one 2026 bill at tier 3: C500 and B's 10% (100) self-paid, one deductible of
	// 800, 85% of 17900 - 800 = 14535 to the fund, cash 3965 of 18500.
	if medical.PartsOf(u.Whole) != (medical.Parts{Fund: 14535_00, Cash: 3965_00}) || u.Whole.Deductible != 800_00 ||
		u.Billed != billed || u.Adjustment != medical.PartsOf(u.Whole).Minus(billed) || len(u.Bills) != 3 {
		t.Errorf("true-up %+v, billed %+v", *u, billed)
	}
	old, err := w.med.CardYear(ctx, card.Token, 2025)
	if err != nil || !zeroAcc(old.Accumulators) {
		t.Errorf("2025 after the stay moved to its discharge year: %+v, %v", old.Accumulators, err)
	}
	year, err := w.med.CardYear(ctx, card.Token, 2026)
	if err != nil || year.Accumulators.Deductible["inpatient"] != 800_00 || year.Accumulators.Fund["total"] != 14535_00 {
		t.Errorf("2026 accumulators %+v, %v", year.Accumulators, err)
	}
	if w.net(t, card.FundsAccount) != fundsBefore-3965_00 || w.net(t, fundAcct) != fundBefore-14535_00 ||
		w.net(t, w.hospital.Account) != 18500_00 {
		t.Errorf("ledger: funds %d, fund %d, hospital %d", w.net(t, card.FundsAccount), w.net(t, fundAcct), w.net(t, w.hospital.Account))
	}
	// The final bill again is a replay: nothing moves a second time.
	again, replayed, err := w.med.SettleStay(ctx, w.hospital, "IP-NY3", card.Token, basket(t, medical.Inpatient, "A3000", "C500"), stay(medical.StayFinal))
	if err != nil || !replayed || again.TrueUp == nil || again.TrueUp.ID != u.ID {
		t.Fatalf("replay: %v %+v, %v", replayed, again.TrueUp, err)
	}
	if old, err = w.med.CardYear(ctx, card.Token, 2025); err != nil || !zeroAcc(old.Accumulators) {
		t.Errorf("2025 after the replay: %+v, %v", old.Accumulators, err)
	}
	// The whole stay refunded through its final bill: both years as before the stay.
	w.clock.Set(time.Date(2026, 1, 8, 9, 0, 0, 0, cards.Shanghai))
	if _, settled, _, err := w.med.Refund(ctx, w.hospital, "IP-NY3", "R-NY", 18500_00, "admission billed to the wrong card"); err != nil ||
		settled.Status() != "refunded" {
		t.Fatalf("refund of the stay: %v", err)
	}
	for _, y := range []int{2025, 2026} {
		if got, err := w.med.CardYear(ctx, card.Token, y); err != nil || !zeroAcc(got.Accumulators) {
			t.Errorf("%d after the stay's refund: %+v, %v", y, got.Accumulators, err)
		}
	}
	if w.net(t, card.FundsAccount) != fundsBefore || w.net(t, fundAcct) != fundBefore || w.net(t, w.hospital.Account) != 0 {
		t.Errorf("ledger after the refund: funds %d, fund %d, hospital %d", w.net(t, card.FundsAccount), w.net(t, fundAcct), w.net(t, w.hospital.Account))
	}
}
