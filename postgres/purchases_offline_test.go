package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
)

// A purchase cleared without an authorization names its own category; at a merchant registered
// in a category the card does not pay (a casino), a record calling it a grocer is refused and the
// card pays nothing. At a merchant registered in a category the card pays, it is applied.
func TestOfflinePurchaseAtAMerchantRegisteredInARefusedCategory(t *testing.T) {
	s := newShop(t, 1, fen1000)
	offline := func(merchant string) events.Event {
		return s.event(0, &events.PurchaseCleared{MerchantID: merchant, Amount: events.Money{Minor: 10000, Currency: "CNY"}, MCC: "5411"})
	}
	d := s.ingestDecision(offline("casino-1"), offline("grocer-1"))
	if len(d.Processed) != 2 || d.Processed[0].Status != clearing.Rejected || d.Processed[1].Status != clearing.Applied {
		t.Fatalf("decisions %+v", d.Processed)
	}
	if !strings.Contains(d.Processed[0].Reason, "registered in category 7995") {
		t.Fatalf("reason %q", d.Processed[0].Reason)
	}
	if av, posted := s.funds(0); av != fen1000-10000 || posted != fen1000-10000 {
		t.Fatalf("card 0: available %s posted %s, want only the grocer's 100.00 paid", cny(av), cny(posted))
	}
}

// An employer's contribution to a closed card's personal medical account is refused, however the
// batch came to know the card: read for the batch, or remembered from an earlier one.
func TestMedicalContributionToAClosedCardIsRefused(t *testing.T) {
	s := newShop(t, 1, fen1000)
	contribution := func() events.Event {
		return s.event(0, &events.MedicalContribution{EmployerID: "EMP-1", Amount: events.Money{Minor: 35000, Currency: "CNY"},
			Period: events.Period{Year: 2026, Month: time.May}})
	}
	s.ingest(contribution())
	s.advance(time.Minute)
	s.ingest(s.event(0, &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left China"}))
	s.advance(time.Minute)
	d := s.ingestDecision(contribution())
	if got, want := statusesOf(d), "rejected(card is closed)"; got != want {
		t.Fatalf("decisions: got %s, want %s", got, want)
	}
}
