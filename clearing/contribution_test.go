package clearing_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/loadtest"
)

// TestDecideRefusesContributionPeriodsOutsideTheirWindow: a contribution is for the month it is
// paid in, the next one at most (MedicalContributionMaxLeadMonths), or a month of arrears at
// most MedicalContributionMaxArrearsMonths back. A period outside (9999-12, 0001-01, a typing
// error) is rejected and dead-lettered, naming the window; the months it bounds are counted in
// Shanghai, and ahead from the engine's today when a producer's clock put occurred_at later.
func TestDecideRefusesContributionPeriodsOutsideTheirWindow(t *testing.T) {
	city := loadtest.NewCity(5, 1, 1, day)
	v := world(city)
	clearing.Decide(decoded(t, city.Registrations()...), v, day)
	card := city.Cards[0]
	// day is 2024-12-02 09:00 UTC: December in Shanghai. The last evening of November in UTC is
	// December there too.
	contribution := func(at time.Time, period string) events.Event {
		var p events.Period
		if _, err := fmt.Sscanf(period, "%04d-%02d", &p.Year, &p.Month); err != nil {
			t.Fatal(err)
		}
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypeMedicalContribution, OccurredAt: at, CardToken: card,
			Data: &events.MedicalContribution{EmployerID: "EMP-1", Amount: events.Money{Minor: 300_00, Currency: "CNY"}, Period: p}}
	}
	novemberUTC := time.Date(2024, 11, 30, 20, 0, 0, 0, time.UTC)
	d := clearing.Decide(decoded(t,
		contribution(day, "2024-12"),
		contribution(day, "2025-01"),
		contribution(day, "2025-02"),
		contribution(day, "9999-12"),
		contribution(day, "2021-12"),
		contribution(day, "2021-11"),
		contribution(day, "0001-01"),
		contribution(novemberUTC, "2025-01"),
		contribution(day.AddDate(3, 0, 0), "2027-12"),
	), v, day)
	checkOutcomes(t, d, []string{
		"medical.contribution applied",
		"medical.contribution applied",
		"medical.contribution rejected: period 2025-02 is after 2025-01: a contribution is for the month it is paid in or at most 1 month ahead",
		"medical.contribution rejected: period 9999-12 is after 2025-01: a contribution is for the month it is paid in or at most 1 month ahead",
		"medical.contribution applied",
		"medical.contribution rejected: period 2021-11 is before 2021-12: arrears are paid for at most 36 months back",
		"medical.contribution rejected: period 0001-01 is before 2021-12: arrears are paid for at most 36 months back",
		"medical.contribution applied",
		"medical.contribution rejected: period 2027-12 is after 2025-01: a contribution is for the month it is paid in or at most 1 month ahead",
	})
	if len(d.Transfers) != 4 || len(d.DeadLetters) != 5 {
		t.Fatalf("%d transfers, %d dead letters; want 4 and 5", len(d.Transfers), len(d.DeadLetters))
	}
}

// docs/events.md states the contribution window the engine applies.
func TestContributionWindowDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("from %d months before the month of `occurred_at` (arrears) to the month after it", clearing.MedicalContributionMaxArrearsMonths),
		fmt.Sprintf("at least %d months before it (arrears, `clearing.MedicalContributionMaxArrearsMonths`)", clearing.MedicalContributionMaxArrearsMonths),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("docs/events.md does not say %q", want)
		}
	}
	if clearing.MedicalContributionMaxLeadMonths != 1 {
		t.Error("docs/events.md says a period may be the month after its payment's, and no later")
	}
}
