package loadtest

import (
	"fmt"
	"slices"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/transit"
)

// FeeIncomeKey keys the engine's fee income in Expectation.Balances.
const FeeIncomeKey = "fee_income"

// The merchants' fee plan, domestic-standard, for the categories the day's merchants are in
// (groceries and general retail price alike): a merchant discount of 0.35% capped at 13.00 CNY
// and a network fee of 0.065% capped at 3.25, each rounded half-even to the fen, then capped.
const (
	MerchantFeePlan       = "domestic-standard"
	mdrPerHundredThousand = 350
	mdrCap                = 13_00
	netPerHundredThousand = 65
	netCap                = 3_25
)

// MerchantFee is what a capture of amount fen costs the merchant under MerchantFeePlan.
func MerchantFee(amount int64) int64 {
	part := func(rate, limit int64) int64 {
		q, r := amount*rate/100_000, amount*rate%100_000
		if 2*r > 100_000 || 2*r == 100_000 && q%2 == 1 {
			q++
		}
		return min(q, limit)
	}
	return part(mdrPerHundredThousand, mdrCap) + part(netPerHundredThousand, netCap)
}

// MedicalSplit is how the engine split a bill: the model takes it from the receipt, since the
// split depends on the cardholder's year so far (deductibles met, caps, the personal account),
// and checks that it sums to the bill.
type MedicalSplit struct{ Fund, Personal, Cash int64 }

// TransferKind names a kind of ledger transfer: its code, and for two-phase transfers what it does
// ("20/pending", "21/post", "22/void", "20/expire"; "21" is a single-phase purchase).
type TransferKind string

// KindOf names the kind of a stored transfer.
func KindOf(code ledger.Code, flags ledger.TransferFlags) TransferKind {
	phase := ""
	switch {
	case flags&ledger.Pending != 0:
		phase = "/pending"
	case flags&ledger.PostPending != 0:
		phase = "/post"
	case flags&ledger.VoidPending != 0:
		phase = "/void"
	case flags&ledger.ExpirePending != 0:
		phase = "/expire"
	}
	return TransferKind(fmt.Sprintf("%d%s", code, phase))
}

// Expectation is the end state the plan must leave, computed from the plan alone (and the
// medical splits): the net balance (credits less debits posted) of every account it moves,
// keyed as Expected keys them (with FeeIncomeKey and "operator/ID"), and how many transfers of
// each kind the ledger must hold.
type Expectation struct {
	Balances  map[string]int64
	Transfers map[TransferKind]int
	// CardDays is how many card, operator and travel day charges the close must post; Adjusted
	// how many of them the late taps change.
	CardDays, Adjusted int
}

// Model computes the day's end state. It prices the journeys itself, by the rules the shipped
// tables state (docs/transit.md): the station-to-station fare (the table's shortest-path fare),
// then the transfer discount within the window after the group's previous journey ended, then
// the daily cap's room. The plan keeps Beijing's riders below the monthly spend discount's first
// tier, and every journey complete, which Model checks.
func (p *Plan) Model(tables *transit.Tables, splits map[string]MedicalSplit) (*Expectation, error) {
	x := &Expectation{Balances: map[string]int64{}, Transfers: map[TransferKind]int{}}
	add := func(debit, credit string, amount int64) {
		x.Balances[debit] -= amount
		x.Balances[credit] += amount
	}
	count := func(k TransferKind) { x.Transfers[k]++ }
	c := p.City

	// Kafka: the setup and the day's purchases and refunds, each event once.
	all := append(slices.Clone(p.Setup), p.DayEvents...)
	for k, v := range c.Expected(all) {
		x.Balances[k] += v
	}
	for _, e := range all {
		switch e.Type {
		case events.TypeFundsLoaded:
			count(KindOf(clearing.CodeFundsLoaded, 0))
		case events.TypeMedicalContribution:
			count(KindOf(clearing.CodeMedicalContribution, 0))
		case events.TypePurchaseCleared:
			count(KindOf(clearing.CodePurchase, 0))
		case events.TypePurchaseRefunded:
			count(KindOf(clearing.CodeRefund, 0))
		}
	}

	// Authorizations: every one approved and held; captures post part or all of the hold and
	// charge the fee; voids and expiries release it.
	for _, a := range p.Auths {
		m := "merchant/" + p.Merchants[a.Merchant].ID
		count(KindOf(clearing.CodeAuthorization, ledger.Pending))
		switch a.Outcome {
		case AuthCaptureFull, AuthCapturePartial:
			got := a.Captured()
			add(a.Card, m, got)
			count(KindOf(clearing.CodePurchase, ledger.PostPending))
			if fee := MerchantFee(got); fee > 0 {
				add(m, FeeIncomeKey, fee)
				count(KindOf(clearing.CodeMerchantFee, 0))
			}
		case AuthVoid:
			count(KindOf(clearing.CodeAuthorizationVoid, ledger.VoidPending))
		case AuthExpire:
			count(KindOf(clearing.CodeAuthorization, ledger.ExpirePending))
		}
	}

	// Medical bills: the three parts from the fund, the personal account and the card's funds,
	// to the institution, summing to the bill.
	for _, b := range p.Bills {
		s, ok := splits[b.ID]
		if !ok {
			return nil, fmt.Errorf("medical bill %s: no split", b.ID)
		}
		if s.Fund < 0 || s.Personal < 0 || s.Cash < 0 || s.Fund+s.Personal+s.Cash != b.Total() {
			return nil, fmt.Errorf("medical bill %s of %d fen split %+v: the parts do not sum to it", b.ID, b.Total(), s)
		}
		inst := "merchant/" + p.Institutions[b.Institution].ID
		for _, part := range []struct {
			from   string
			amount int64
			code   ledger.Code
		}{
			{"insurance_fund/" + c.cityOf[b.Card], s.Fund, clearing.CodeMedicalFundPart},
			{"medical/" + b.Card, s.Personal, clearing.CodeMedicalPersonalPart},
			{b.Card, s.Cash, clearing.CodeMedicalCashPart},
		} {
			if part.amount > 0 {
				add(part.from, inst, part.amount)
				count(KindOf(part.code, 0))
			}
		}
	}

	// Transit: each card's day priced per pricing group, first without the late journeys (the
	// close), then with them (the re-pricing posts the difference).
	closed, final, err := p.fares(tables)
	if err != nil {
		return nil, err
	}
	for k, v := range final {
		add(k.card, "operator/"+k.op, v)
		// A card's day at an operator posts its fare first, then an adjustment for each change;
		// a day first charged by its late taps posts them as its fare.
		switch was := closed[k]; {
		case was > 0:
			x.CardDays++
			count(KindOf(clearing.CodeTransitFare, 0))
			if v != was {
				x.Adjusted++
				count(KindOf(clearing.CodeTransitAdjustment, 0))
			}
		case v > 0:
			x.Adjusted++
			count(KindOf(clearing.CodeTransitFare, 0))
		}
	}
	for k, v := range x.Balances {
		if v == 0 {
			delete(x.Balances, k)
		}
	}
	return x, nil
}

type cardOp struct{ card, op string }

// fareRules are a pricing group's rules as the model applies them.
type fareRules struct {
	window   time.Duration
	discount int64
	dailyCap int64 // 0: none
}

// fares prices every card's day by operator: closed leaves the late journeys out, final has
// them all.
func (p *Plan) fares(tables *transit.Tables) (closed, final map[cardOp]int64, err error) {
	closed, final = map[cardOp]int64{}, map[cardOp]int64{}
	type groupDay struct{ card, group string }
	days := map[groupDay][]int{}
	var order []groupDay
	groupOf := func(op string) string {
		if f := p.fareFiles[op]; f.Caps != nil && f.Caps.Scope == "city" {
			o, _ := tables.OperatorOn(op, p.Day)
			return "city/" + o.City
		}
		return "operator/" + op
	}
	for i, j := range p.Journeys {
		k := groupDay{j.Card, groupOf(j.Operator)}
		if days[k] == nil {
			order = append(order, k)
		}
		days[k] = append(days[k], i)
	}
	for _, k := range order {
		js := days[k]
		slices.SortStableFunc(js, func(a, b int) int { return p.Journeys[a].In.Compare(p.Journeys[b].In) })
		var onDay []int
		for _, i := range js {
			if !p.Journeys[i].Late {
				onDay = append(onDay, i)
			}
		}
		for _, pass := range []struct {
			js  []int
			out map[cardOp]int64
		}{{onDay, closed}, {js, final}} {
			if err := p.priceGroupDay(tables, pass.js, pass.out); err != nil {
				return nil, nil, err
			}
		}
	}
	return closed, final, nil
}

func (p *Plan) rulesOf(op string) (fareRules, error) {
	f := p.fareFiles[op]
	var r fareRules
	if f.Transfer != nil {
		d, err := ledger.ParseAmount(f.Transfer.Discount, "CNY")
		if err != nil {
			return r, fmt.Errorf("%s transfer.discount: %w", op, err)
		}
		r.window, r.discount = time.Duration(f.Transfer.WindowMinutes)*time.Minute, d
	}
	if f.Caps != nil && f.Caps.Daily != "" {
		d, err := ledger.ParseAmount(f.Caps.Daily, "CNY")
		if err != nil {
			return r, fmt.Errorf("%s caps.daily: %w", op, err)
		}
		r.dailyCap = d
	}
	return r, nil
}

// modelTierFloor is Beijing's first monthly spend tier (100.00 CNY): the plan stays below it.
const modelTierFloor = 100_00

func (p *Plan) priceGroupDay(tables *transit.Tables, js []int, out map[cardOp]int64) error {
	var paid int64
	var prevEnd time.Time
	for n, i := range js {
		j := p.Journeys[i]
		op, ok := tables.OperatorOn(j.Operator, p.Day)
		if !ok {
			return fmt.Errorf("no fare table of %s", j.Operator)
		}
		r, err := p.rulesOf(j.Operator)
		if err != nil {
			return err
		}
		fare, ok := op.Fare(j.From, j.To, j.Line)
		if !ok {
			return fmt.Errorf("journey %d: %s has no fare from %s to %s", i, j.Operator, j.From, j.To)
		}
		if n > 0 && r.window > 0 {
			gap := j.In.Sub(prevEnd)
			if d := gap - r.window; d > -time.Minute && d < time.Minute {
				return fmt.Errorf("journey %d of %s starts %s after the last ended: too near the transfer window to be sure of", i, j.Card, gap)
			}
			if gap >= 0 && gap <= r.window {
				fare = max(fare-r.discount, 0)
			}
		}
		if r.dailyCap > 0 {
			fare = min(fare, r.dailyCap-paid)
		}
		paid += fare
		prevEnd = j.Out
		out[cardOp{j.Card, j.Operator}] += fare
	}
	if p.fareFiles[p.Journeys[js[0]].Operator].OperatorID == "BJSUBWAY" && paid >= modelTierFloor {
		return fmt.Errorf("card %s spends %d fen in Beijing in a day: past the monthly spend discount the model leaves out", p.Journeys[js[0]].Card, paid)
	}
	return nil
}
