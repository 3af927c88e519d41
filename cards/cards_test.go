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

// A card's status at an instant is the declared status the engine had recorded by then, or
// permit_expired past the permit's last day; the cause says why it may not pay, and since when.
func TestStatusAtFollowsRecordedChangesAndThePermit(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, cards.Shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	permit := events.Date{Year: 2026, Month: time.March, Day: 31}
	history := []cards.StatusChange{
		{At: at("2026-03-02 09:00"), Declared: events.StatusBlocked, Reason: "Reported LOST by the cardholder"},
		{At: at("2026-03-02 12:00"), Declared: events.StatusActive, Reason: "found"},
		{At: at("2026-03-05 08:00"), Declared: events.StatusBlocked, Reason: "suspected fraud"},
		{At: at("2026-03-06 08:00"), Declared: events.StatusClosed, Reason: "left the country"},
	}
	for _, tc := range []struct {
		at      string
		history []cards.StatusChange
		status  cards.Status
		cause   cards.Cause
		since   string
	}{
		{"2026-03-02 08:59", history, cards.StatusActive, "", ""},
		{"2026-03-02 09:00", history, cards.StatusBlocked, cards.CauseLost, "2026-03-02 09:00"},
		{"2026-03-02 11:59", history, cards.StatusBlocked, cards.CauseLost, "2026-03-02 09:00"},
		{"2026-03-02 12:00", history, cards.StatusActive, "", ""},
		{"2026-03-05 10:00", history, cards.StatusBlocked, cards.CauseBlocked, "2026-03-05 08:00"},
		{"2026-03-07 10:00", history, cards.StatusClosed, cards.CauseClosed, "2026-03-06 08:00"},
		{"2026-03-31 23:59", nil, cards.StatusActive, "", ""},
		{"2026-04-01 00:00", nil, cards.StatusPermitExpired, cards.CausePermitExpired, "2026-04-01 00:00"},
		// A block outranks the expired permit; once reactivated the permit speaks again.
		{"2026-04-02 00:00", history[:1], cards.StatusBlocked, cards.CauseLost, "2026-03-02 09:00"},
		{"2026-04-02 00:00", history[:2], cards.StatusPermitExpired, cards.CausePermitExpired, "2026-04-01 00:00"},
	} {
		st, cause, since := cards.StatusAt(tc.history, permit, at(tc.at))
		var sinceText string
		if !since.IsZero() {
			sinceText = since.In(cards.Shanghai).Format("2006-01-02 15:04")
		}
		if st != tc.status || cause != tc.cause || sinceText != tc.since {
			t.Errorf("at %s with %d changes: %s %s since %q, want %s %s since %q", tc.at, len(tc.history), st, cause, sinceText,
				tc.status, tc.cause, tc.since)
		}
	}
}

func TestCauseOfABlockReadsItsReason(t *testing.T) {
	for reason, want := range map[string]cards.Cause{
		"reported lost by the cardholder": cards.CauseLost,
		"lost":                            cards.CauseLost,
		"Card missing":                    cards.CauseLost,
		"reported stolen":                 cards.CauseStolen,
		"lost, then stolen":               cards.CauseStolen,
		"theft at the station":            cards.CauseStolen,
		"suspected fraud":                 cards.CauseBlocked,
		"lostness is not a word we read":  cards.CauseBlocked,
	} {
		if got := cards.CauseOf(cards.StatusBlocked, reason); got != want {
			t.Errorf("blocked %q: %s, want %s", reason, got, want)
		}
	}
	if got := cards.CauseOf(cards.StatusActive, "lost"); got != "" {
		t.Errorf("an active card has cause %q", got)
	}
	if got := cards.CauseOf(cards.StatusClosed, "lost"); got != cards.CauseClosed {
		t.Errorf("a closed card: %s", got)
	}
}

// A card registered with its insurance city's Chinese or English name is insured in the city's
// canonical id: the fund that pays its medical parts and the policy that splits its bills.
func TestRegistrationRecordsTheCanonicalInsuranceCity(t *testing.T) {
	for name, want := range map[string]string{"上海": "shanghai", "Shanghai": "shanghai", "嘉兴市": "jiaxing", "jiaxing": "jiaxing",
		"Nowhere Town": "Nowhere Town"} {
		c := cards.FromRegistration("card-1", &events.CardRegistered{IssuerBank: "ICBC-JX", InsuranceCity: name})
		if c.InsuranceCity != want {
			t.Errorf("%q: insured in %q, want %q", name, c.InsuranceCity, want)
		}
	}
}
