package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/settlement"
)

const (
	// policyWarnAhead is how many days ahead serve looks for a day on which a city whose medical
	// policy settles today's bills has none: cities publish a year's policy weeks before it
	// starts, and two months leave time to upload it once it is out.
	policyWarnAhead = 60
	// policyCheckInterval is how often serve looks again: the horizon moves a day a day, and an
	// upload is seen at the next look.
	policyCheckInterval = 24 * time.Hour
)

// watchMedicalPolicies looks at start and then every interval, until ctx is done, for the cities
// whose medical policy is in force today and that have none on a day of the next policyWarnAhead
// (a new year whose policy is not added): from that day on, their insured cardholders' medical
// settlements are refused with no_policy. It warns once per such city and sets the days left
// before the first of those days as a gauge. policies gives the policies in force now, uploads
// included.
func watchMedicalPolicies(ctx context.Context, policies func() *medical.Policies, now func() time.Time, every time.Duration,
	log *slog.Logger, m *serveMetrics) {
	for {
		today := medical.DayOf(now())
		left := policyWarnAhead
		for i, u := range policies().FirstUncovered(today, policyWarnAhead) {
			days := int(settlement.DateTime(u.Day).Sub(settlement.DateTime(today)) / (24 * time.Hour))
			if i == 0 {
				left = days
			}
			log.Warn("a city's medical policy ends: from that day on, the medical settlements of the cardholders it insures "+
				"are refused (no_policy) until its policy for the day is added (a file in the directory named by "+
				"--medical-policies, or an upload)", "city", u.City, "day", u.Day.String(), "days_left", days)
		}
		m.medicalPolicyDaysLeft.Set(float64(left))
		if !waitOrDone(ctx, every) {
			return
		}
	}
}
