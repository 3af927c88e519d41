package events_test

import (
	"os"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

// A permit's last valid day is at most five years after the day, in Shanghai, of the event that
// registers or renews it: the day itself is accepted, the day after is refused with the field named.
func TestPermitValidityBound(t *testing.T) {
	renewed, err := os.ReadFile("testdata/valid/card_permit_renewed.json")
	if err != nil {
		t.Fatal(err)
	}
	registered, err := os.ReadFile("testdata/valid/card_registered.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, base, occurred, until string
		ok                          bool
	}{
		{"renewed, five years to the day", string(renewed), "2025-05-01T09:00:00+08:00", "2030-05-01", true},
		{"renewed, a day more", string(renewed), "2025-05-01T09:00:00+08:00", "2030-05-02", false},
		// 20:00 UTC on 30 April is 1 May in Shanghai.
		{"renewed, the event's day in Shanghai", string(renewed), "2025-04-30T20:00:00Z", "2030-05-01", true},
		{"registered, five years to the day", string(registered), "2025-02-20T10:00:00+08:00", "2030-02-20", true},
		{"registered, for ever", string(registered), "2025-02-20T10:00:00+08:00", "9999-12-31", false},
	} {
		msg := c.base
		for _, old := range []string{`"2028-06-30"`, `"2027-06-30"`} {
			msg = strings.Replace(msg, old, `"`+c.until+`"`, 1)
		}
		for _, old := range []string{`"2025-05-01T09:00:00+08:00"`, `"2025-02-20T10:00:00+08:00"`} {
			msg = strings.Replace(msg, old, `"`+c.occurred+`"`, 1)
		}
		if !strings.Contains(msg, c.until) || !strings.Contains(msg, c.occurred) {
			t.Fatalf("%s: the sample changed: %s", c.name, msg)
		}
		_, err := events.Decode([]byte(msg))
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "data.permit_valid_until: ")) {
			t.Errorf("%s: %v, want permit_valid_until refused", c.name, err)
		}
	}
}
