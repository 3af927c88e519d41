package reconcile_test

import (
	"strings"
	"testing"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/reconcile"
)

func day(d int) reconcile.Date { return reconcile.Date{Year: 2026, Month: 3, Day: d} }

var rules = reconcile.Rules{AmountTolerance: 0, ValueDateDays: 0, SuggestDays: 3, MissingAfterDays: 1}

func entry(line int64, amount int64, value int, ref string) reconcile.Actual {
	return reconcile.Actual{Statement: "S1", Line: line, EntryRef: ref, Amount: amount, BookingDate: day(value), ValueDate: day(value)}
}

func summary(out []reconcile.Outcome) string {
	var parts []string
	for _, o := range out {
		s := string(o.Status)
		switch o.Status {
		case reconcile.Broken:
			s += ":" + string(o.Break)
		default:
			s += ":" + string(o.Match)
		}
		var lines []string
		for _, a := range o.Actual {
			lines = append(lines, string(rune('0'+a.Line)))
		}
		parts = append(parts, s+"("+strings.Join(lines, ",")+")")
	}
	return strings.Join(parts, " ")
}

func TestDecide(t *testing.T) {
	item := reconcile.Expected{Item: ledger.ID{9}, File: "JIC-1", Cycle: day(3), ValueDate: day(4), Amount: -5000}
	file := reconcile.Expected{File: "JIC-1", Cycle: day(3), ValueDate: day(4), Amount: 25462}
	for _, tc := range []struct {
		name    string
		e       reconcile.Expected
		entries []reconcile.Actual
		matched bool
		want    string
	}{
		{"one entry as expected", item, []reconcile.Actual{entry(1, -5000, 4, "B1")}, false, "matched:one_to_one(1)"},
		{"a file's net position", file, []reconcile.Actual{entry(1, 25462, 4, "B1")}, false, "matched:one_to_many(1)"},
		{"one fen off", item, []reconcile.Actual{entry(1, -4999, 4, "B1")}, false, "break:amount_mismatch(1)"},
		{"a day late", item, []reconcile.Actual{entry(1, -5000, 5, "B1")}, false, "break:timing(1)"},
		{"the same entry twice", item, []reconcile.Actual{entry(1, -5000, 4, "B1"), entry(2, -5000, 4, "B1")}, false,
			"matched:one_to_one(1) break:duplicate(2)"},
		{"paid twice under two references", item, []reconcile.Actual{entry(1, -5000, 4, "B1"), entry(2, -5000, 4, "B2")}, false,
			"matched:one_to_one(1) break:duplicate(2)"},
		{"split in two", item, []reconcile.Actual{entry(1, -3000, 4, "B1"), entry(2, -2000, 4, "B2")}, false,
			"matched:many_to_one(1,2)"},
		{"split in two, one late", item, []reconcile.Actual{entry(1, -3000, 4, "B1"), entry(2, -2000, 6, "B2")}, false,
			"break:timing(1,2)"},
		{"split, short of the amount", item, []reconcile.Actual{entry(1, -3000, 4, "B1"), entry(2, -1000, 4, "B2")}, false,
			"break:amount_mismatch(1,2)"},
		{"an extra entry of another amount", item, []reconcile.Actual{entry(1, -5000, 4, "B1"), entry(2, -700, 4, "B2")}, false,
			"matched:one_to_one(1) break:amount_mismatch(2)"},
		{"booked again after matching", item, []reconcile.Actual{entry(3, -5000, 4, "B3")}, true, "break:duplicate(3)"},
		{"nothing booked", item, nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summary(reconcile.Decide(rules, tc.e, tc.entries, tc.matched)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// Within the tolerances, near enough is a match.
	loose := reconcile.Rules{AmountTolerance: 1, ValueDateDays: 1}
	if got := summary(reconcile.Decide(loose, item, []reconcile.Actual{entry(1, -4999, 5, "B1")}, false)); got != "matched:one_to_one(1)" {
		t.Fatalf("within tolerance: %s", got)
	}
}

func TestSuggest(t *testing.T) {
	candidates := []reconcile.Expected{
		{Item: ledger.ID{1}, ValueDate: day(2), Amount: 100},
		{Item: ledger.ID{2}, ValueDate: day(5), Amount: 100},
		{Item: ledger.ID{3}, ValueDate: day(4), Amount: 200},
	}
	o := reconcile.Suggest(rules, entry(1, 100, 4, "X"), candidates)
	if o.Status != reconcile.Suggested || o.Expected.Item != (ledger.ID{2}) {
		t.Fatalf("suggested %+v", o)
	}
	if o := reconcile.Suggest(rules, entry(1, 100, 12, "X"), candidates); o.Status != reconcile.Broken || o.Break != reconcile.MissingInLedger {
		t.Fatalf("too far from any value date: %+v", o)
	}
	if o := reconcile.Suggest(rules, entry(1, 300, 4, "X"), candidates); o.Break != reconcile.MissingInLedger {
		t.Fatalf("no such amount: %+v", o)
	}
}

func TestMissingAndGapsAndAge(t *testing.T) {
	e := reconcile.Expected{ValueDate: day(4)}
	if reconcile.IsMissing(rules, e, day(4)) || !reconcile.IsMissing(rules, e, day(5)) {
		t.Fatal("an item is missing once the statements run a day past its value date")
	}
	if g := reconcile.Gaps([]int64{1, 2, 4, 7}); len(g) != 3 || g[0] != 3 || g[1] != 5 || g[2] != 6 {
		t.Fatalf("gaps %v", g)
	}
	if g := reconcile.Gaps([]int64{2}); len(g) != 1 || g[0] != 1 {
		t.Fatalf("gaps %v", g)
	}
	for _, tc := range []struct {
		since, today reconcile.Date
		days         int
		bucket       reconcile.AgeBucket
	}{
		{day(4), day(4), 0, reconcile.Age0to1}, {day(4), day(5), 1, reconcile.Age0to1}, {day(4), day(6), 2, reconcile.Age2to7},
		{day(1), day(8), 7, reconcile.Age2to7}, {day(1), day(9), 8, reconcile.Age8to30}, {day(1), day(31), 30, reconcile.Age8to30},
		{reconcile.Date{Year: 2026, Month: 1, Day: 1}, day(3), 61, reconcile.AgeOver30},
	} {
		if d, b := reconcile.Age(tc.since, tc.today); d != tc.days || b != tc.bucket {
			t.Errorf("age of %s at %s: %d %s, want %d %s", tc.since, tc.today, d, b, tc.days, tc.bucket)
		}
	}
	if reconcile.BreakID("A", reconcile.Timing, "k") == reconcile.BreakID("A", reconcile.Duplicate, "k") {
		t.Fatal("break ids collide across kinds")
	}
}

func TestRules(t *testing.T) {
	set, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	if r := set.For("ANY"); r.SuggestDays != 3 || r.MissingAfterDays != 1 {
		t.Fatalf("default rules %+v", r)
	}
	set, err = reconcile.ReadRules(strings.NewReader(`{"default": {"amount_tolerance": "0.00", "value_date_days": 0, "suggest_days": 3, "missing_after_days": 1},
		"banks": {"ACQ-X": {"amount_tolerance": "0.05", "value_date_days": 1, "suggest_days": 3, "missing_after_days": 2}}}`))
	if err != nil || set.For("ACQ-X").AmountTolerance != 5 || set.For("ACQ-Y").AmountTolerance != 0 {
		t.Fatalf("%+v %v", set, err)
	}
	for _, bad := range []string{
		`{}`, `{"default": {"amount_tolerance": "1e3"}}`, `{"default": {"amount_tolerance": "0.00", "value_date_days": -1}}`,
		`{"default": {"amount_tolerance": "500.00"}}`, `{"default": {"amount_tolerance": "0.00"}, "other": 1}`,
	} {
		if _, err := reconcile.ReadRules(strings.NewReader(bad)); err == nil {
			t.Errorf("rules %s accepted", bad)
		}
	}
}

// TestSuggestIsDeterministic offers an entry two items of its amount and value date, in either
// order, and items further off in amount (within the tolerance): the same one is suggested
// whatever order the store read them in, the exact amount before the near one, and then the
// earlier cycle, an item before a file's net of the same amount, and the lower id.
func TestSuggestIsDeterministic(t *testing.T) {
	loose := reconcile.Rules{AmountTolerance: 1, SuggestDays: 3}
	a := reconcile.Expected{Item: ledger.ID{7}, Cycle: day(3), ValueDate: day(4), Amount: 100}
	b := reconcile.Expected{Item: ledger.ID{9}, Cycle: day(3), ValueDate: day(4), Amount: 100}
	near := reconcile.Expected{Item: ledger.ID{1}, Cycle: day(3), ValueDate: day(4), Amount: 101}
	earlier := reconcile.Expected{Item: ledger.ID{8}, Cycle: day(2), ValueDate: day(4), Amount: 100}
	file := reconcile.Expected{File: "JIC-20260303-00000000-000001", Cycle: day(3), ValueDate: day(4), Amount: 100}
	hexItem := reconcile.Expected{Item: ledger.ID{0xf0}, Cycle: day(3), ValueDate: day(4), Amount: 100}
	for _, tc := range []struct {
		candidates []reconcile.Expected
		want       ledger.ID
	}{
		{[]reconcile.Expected{a, b}, a.Item},
		{[]reconcile.Expected{b, a}, a.Item},
		{[]reconcile.Expected{near, b, a}, a.Item},
		{[]reconcile.Expected{b, near, a}, a.Item},
		{[]reconcile.Expected{b, a, earlier}, earlier.Item},
		{[]reconcile.Expected{near}, near.Item},
		{[]reconcile.Expected{file, hexItem}, hexItem.Item},
		{[]reconcile.Expected{hexItem, file}, hexItem.Item},
	} {
		o := reconcile.Suggest(loose, entry(1, 100, 4, "X"), tc.candidates)
		if o.Status != reconcile.Suggested || o.Expected.Item != tc.want {
			t.Errorf("candidates %v: suggested %+v, want %v", tc.candidates, o.Expected, tc.want)
		}
	}
}

// TestDecidePrefersTheExactEntry: within a tolerance of a fen, the entry of the exact amount
// matches, in whichever place the bank booked it, and the one a fen off is the extra one; of two
// entries alike in amount, the one on time matches and the late one is extra.
func TestDecidePrefersTheExactEntry(t *testing.T) {
	loose := reconcile.Rules{AmountTolerance: 1, ValueDateDays: 0}
	item := reconcile.Expected{Item: ledger.ID{1}, ValueDate: day(4), Amount: -5000}
	for _, tc := range []struct {
		name    string
		entries []reconcile.Actual
		want    string
	}{
		{"a fen off first", []reconcile.Actual{entry(1, -4999, 4, "B1"), entry(2, -5000, 4, "B2")},
			"matched:one_to_one(2) break:duplicate(1)"},
		{"exact first", []reconcile.Actual{entry(1, -5000, 4, "B1"), entry(2, -4999, 4, "B2")},
			"matched:one_to_one(1) break:duplicate(2)"},
		{"late first", []reconcile.Actual{entry(1, -5000, 6, "B1"), entry(2, -5000, 4, "B2")},
			"matched:one_to_one(2) break:duplicate(1)"},
		{"only late", []reconcile.Actual{entry(1, -5000, 6, "B1")}, "break:timing(1)"},
		{"at the tolerance", []reconcile.Actual{entry(1, -5001, 4, "B1")}, "matched:one_to_one(1)"},
		{"a fen past it", []reconcile.Actual{entry(1, -5002, 4, "B1")}, "break:amount_mismatch(1)"},
	} {
		if got := summary(reconcile.Decide(loose, item, tc.entries, false)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
