package cards_test

import (
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
)

func TestStatusFollowsDeclarationAndPermitInShanghai(t *testing.T) {
	c := cards.Card{Token: "card-1", Declared: events.StatusActive, PermitValidUntil: events.Date{Year: 2025, Month: time.June, Day: 30}}
	for _, tc := range []struct {
		name     string
		declared events.CardStatus
		at       time.Time
		want     cards.Status
	}{
		{"valid", events.StatusActive, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), cards.StatusActive},
		// 15:59 UTC on the last day is 23:59 in Shanghai: still valid.
		{"last minute of the last day", events.StatusActive, time.Date(2025, 6, 30, 15, 59, 0, 0, time.UTC), cards.StatusActive},
		// 16:00 UTC is midnight in Shanghai: the permit has ended, though it is still June 30 in UTC.
		{"midnight after, in Shanghai", events.StatusActive, time.Date(2025, 6, 30, 16, 0, 0, 0, time.UTC), cards.StatusPermitExpired},
		{"blocked beats a valid permit", events.StatusBlocked, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), cards.StatusBlocked},
		{"closed beats everything", events.StatusClosed, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), cards.StatusClosed},
		{"blocked with an expired permit", events.StatusBlocked, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), cards.StatusBlocked},
	} {
		c.Declared = tc.declared
		if got := c.Status(tc.at); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestRegistrationNamesItsAccountsAndTokens(t *testing.T) {
	r := &events.CardRegistered{PhysicalToken: "tok_phys", DigitalToken: "tok_phone", IssuerBank: "ICBC-JX", InsuranceCity: "jiaxing"}
	c := cards.FromRegistration("card-1", r)
	if c.FundsAccount != cards.AccountID("funds", "card-1") || c.MedicalAccount != cards.AccountID("medical", "card-1") {
		t.Fatal("accounts are not derived from the card token")
	}
	if c.FundsAccount == c.MedicalAccount || cards.AccountID("funds", "card-2") == c.FundsAccount {
		t.Fatal("derived account ids collide")
	}
	if got := c.Tokens(); len(got) != 3 || got[0] != "card-1" {
		t.Fatalf("tokens %v", got)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Accounts() {
		if err := a.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if s := cards.AccountID("funds", "card-1").String(); s[14] != '8' {
		t.Fatalf("%s is not a version 8 UUID", s)
	}
}
