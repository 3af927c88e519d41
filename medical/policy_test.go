package medical

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/joinincard/engine/events"
)

func TestSamplePolicies(t *testing.T) {
	ps := samples(t)
	var ids []string
	for _, p := range ps.All() {
		ids = append(ids, p.ID())
	}
	if got := strings.Join(ids, " "); got != "jiaxing-2025 jiaxing-2026 shanghai-2025 shanghai-2026" {
		t.Errorf("sample policies %s", got)
	}
	if _, ok := ps.For("hangzhou", 2026); ok {
		t.Error("a policy for a city without a file")
	}
	p := policy(t, "jiaxing", 2026)
	if p.Caps["total"] != 400_000_00 || p.Deductibles["inpatient"].ByTier[3] != 800_00 || p.Visits[Outpatient].FundRatio[1].String() != "0.8" {
		t.Errorf("jiaxing-2026 read as %+v", p)
	}
}

const validPolicy = `{
  "city": "testcity", "year": 2026, "name": "test", "currency": "CNY",
  "class_b_self_pay_ratio": "0.10",
  "deductibles": {"outpatient": {"scope": "year", "amount": "1000.00"},
                  "inpatient": {"scope": "visit", "amount_by_tier": {"1": "300", "2": "600", "3": "800"}}},
  "fund_caps": {"total": "400000.00"},
  "visit_kinds": {
    "outpatient": {"personal_account_first": false, "deductible": "outpatient", "caps": ["total"], "fund_ratio_by_tier": {"1": "0.8", "2": "0.7", "3": "0.6"}},
    "pharmacy": {"personal_account_first": true, "deductible": "outpatient", "caps": ["total"], "fund_ratio_by_tier": {"1": "0.5", "2": "0.5", "3": "0.5"}},
    "inpatient": {"personal_account_first": false, "deductible": "inpatient", "caps": ["total"], "fund_ratio_by_tier": {"1": "0.9", "2": "0.87", "3": "0.85"}}
  }
}`

func TestParsePolicyRefuses(t *testing.T) {
	if _, err := ParsePolicy([]byte(validPolicy)); err != nil {
		t.Fatalf("the valid policy: %v", err)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"unknown field", `"currency"`, `"colour": "red", "currency"`, "unknown field"},
		{"other currency", `"CNY"`, `"USD"`, "currency"},
		{"year out of range", `2026`, `1999`, "out of range"},
		{"ratio over 1", `"0.10"`, `"1.10"`, "between 0 and 1"},
		{"ratio negative", `"0.10"`, `"-0.10"`, "plain decimal"},
		{"ratio with five decimals", `"0.10"`, `"0.12345"`, "more than 4"},
		{"ratio with an exponent", `"0.10"`, `"1e-1"`, "plain decimal"},
		{"amount with three decimals", `"1000.00"`, `"1000.001"`, "decimals"},
		{"amount negative", `"400000.00"`, `"-1"`, "not a decimal"},
		{"yearly deductible by tier", `"scope": "year", "amount": "1000.00"`, `"scope": "year", "amount_by_tier": {"1": "1", "2": "1", "3": "1"}`, "one amount"},
		{"per-visit deductible with one amount", `"scope": "visit", "amount_by_tier": {"1": "300", "2": "600", "3": "800"}`, `"scope": "visit", "amount": "300"`, "amount_by_tier"},
		{"unknown scope", `"scope": "year"`, `"scope": "month"`, "scope"},
		{"missing tier", `"1": "0.8", "2": "0.7", "3": "0.6"`, `"1": "0.8", "2": "0.7"`, "tiers 1, 2 and 3"},
		{"tier 4", `"1": "0.8", "2": "0.7", "3": "0.6"`, `"1": "0.8", "2": "0.7", "4": "0.6"`, "tiers 1, 2 and 3"},
		{"unknown deductible", `"deductible": "inpatient"`, `"deductible": "hospital"`, "unknown deductible"},
		{"unknown cap", `"caps": ["total"], "fund_ratio_by_tier": {"1": "0.9"`, `"caps": ["yearly"], "fund_ratio_by_tier": {"1": "0.9"`, "unknown fund cap"},
		{"no cap", `"caps": ["total"], "fund_ratio_by_tier": {"1": "0.9"`, `"caps": [], "fund_ratio_by_tier": {"1": "0.9"`, "no fund cap"},
		{"cap twice", `"caps": ["total"], "fund_ratio_by_tier": {"1": "0.9"`, `"caps": ["total", "total"], "fund_ratio_by_tier": {"1": "0.9"`, "twice"},
		{"missing visit kind", `"pharmacy": {"personal_account_first": true, "deductible": "outpatient", "caps": ["total"], "fund_ratio_by_tier": {"1": "0.5", "2": "0.5", "3": "0.5"}},`, ``, "no rule for visit kind pharmacy"},
		{"unknown visit kind", `"visit_kinds": {`, `"visit_kinds": {"dental": {"deductible": "outpatient", "caps": ["total"], "fund_ratio_by_tier": {"1": "0.5", "2": "0.5", "3": "0.5"}},`, "unknown visit kind"},
		{"bucket name with capitals", `"fund_caps": {"total"`, `"fund_caps": {"Total"`, "lowercase"},
		{"two objects", `}
}`, `}
}{}`, "after the policy"},
	} {
		body := strings.Replace(validPolicy, c.from, c.to, 1)
		if body == validPolicy {
			t.Fatalf("%s: the replacement did not apply", c.name)
		}
		_, err := ParsePolicy([]byte(body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}

func TestLoadPolicies(t *testing.T) {
	good := fstest.MapFS{"testcity-2026.json": {Data: []byte(validPolicy)}}
	ps, err := LoadPolicies(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps.For("testcity", 2026); !ok {
		t.Error("the loaded policy is not found by city and year")
	}
	if _, err := LoadPolicies(fstest.MapFS{"othercity-2026.json": {Data: []byte(validPolicy)}}); err == nil || !strings.Contains(err.Error(), "name the file testcity-2026.json") {
		t.Errorf("a misnamed file: %v", err)
	}
	if _, err := LoadPolicies(fstest.MapFS{}); err == nil {
		t.Error("no policy files loaded without an error")
	}
	p, _ := ParsePolicy([]byte(validPolicy))
	if _, err := NewPolicies(p, p); err == nil {
		t.Error("two policies for one city and year")
	}
}

func TestParseAmount(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"12.34", 1234, true}, {"12", 1200, true}, {"12.3", 1230, true}, {"0.05", 5, true}, {"0", 0, true},
		{"100000000.00", MaxAmount, true},
		{"100000000.01", 0, false}, {"1000000000", 0, false},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1e3", 0, false}, {"01", 0, false},
		{"1.234", 0, false}, {".5", 0, false}, {"5.", 0, false}, {"1,000", 0, false}, {" 1", 0, false},
	} {
		got, err := ParseAmount(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	// An amount field may hold a card or passport number: the error describes it, never repeats it.
	for _, in := range []string{"6228480402564899", "E12345678", "6228480402564899.001", "062284804025648"} {
		if _, err := ParseAmount(in); err == nil || strings.Contains(err.Error(), in) {
			t.Errorf("ParseAmount(%q): %v", in, err)
		}
	}
	for _, c := range []struct {
		fen  int64
		want string
	}{{0, "0.00"}, {5, "0.05"}, {123456, "1234.56"}, {-5, "-0.05"}, {-123456, "-1234.56"}} {
		if got := FormatAmount(c.fen); got != c.want {
			t.Errorf("FormatAmount(%d) = %q, want %q", c.fen, got, c.want)
		}
	}
}

// A city is found by any of its names, and a policy's versions each settle the bills from their
// first date on.
func TestPoliciesByCityNameAndDate(t *testing.T) {
	ps := samples(t)
	for _, name := range []string{"jiaxing", "嘉兴", "嘉兴市", "Jiaxing"} {
		if p, ok := ps.For(name, 2026); !ok || p.ID() != "jiaxing-2026" {
			t.Errorf("%q: %v %v", name, p, ok)
		}
	}
	july := strings.Replace(validPolicy, `"1": "0.8", "2": "0.7"`, `"1": "0.85", "2": "0.7"`, 1)
	chinese := strings.Replace(validPolicy, `"city": "testcity"`, `"city": "上海"`, 1)
	fsys := fstest.MapFS{
		"testcity-2026.json":            {Data: []byte(validPolicy)},
		"testcity-2026@2026-07-01.json": {Data: []byte(july)},
		"shanghai-2026.json":            {Data: []byte(chinese)},
	}
	loaded, err := LoadPolicies(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		day  events.Date
		want string
	}{
		{events.Date{Year: 2026, Month: 1, Day: 1}, "0.8"},
		{events.Date{Year: 2026, Month: 6, Day: 30}, "0.8"},
		{events.Date{Year: 2026, Month: 7, Day: 1}, "0.85"},
	} {
		p, ok := loaded.On("testcity", c.day)
		if !ok || p.Visits[Outpatient].FundRatio[1].String() != c.want {
			t.Errorf("%s: %v %v", c.day, p, ok)
		}
	}
	if _, ok := loaded.On("testcity", events.Date{Year: 2027, Month: 1, Day: 1}); ok {
		t.Error("a 2026 policy settles a 2027 bill")
	}
	// The policy file written with the city's Chinese name is Shanghai's.
	if p, ok := loaded.On("Shanghai", events.Date{Year: 2026, Month: 3, Day: 1}); !ok || p.City != "shanghai" {
		t.Errorf("Shanghai's policy: %v %v", p, ok)
	}
	fsys["testcity-2026@2027-01-01.json"] = &fstest.MapFile{Data: []byte(july)}
	if _, err := LoadPolicies(fsys); err == nil || !strings.Contains(err.Error(), "not in the policy's year") {
		t.Errorf("a version in another year: %v", err)
	}
}

// A city whose policy settles today's bills and that has none for a day of the coming weeks (a
// new year whose file is not added yet) is found, with that day; a city covered through the
// window is not.
func TestPoliciesFirstUncovered(t *testing.T) {
	next := strings.Replace(validPolicy, `"year": 2026`, `"year": 2027`, 1)
	if next == validPolicy {
		t.Fatal("the sample names no year 2026")
	}
	shanghai := strings.Replace(validPolicy, `"city": "testcity"`, `"city": "shanghai"`, 1)
	loaded, err := LoadPolicies(fstest.MapFS{
		"testcity-2026.json": {Data: []byte(validPolicy)},
		"testcity-2027.json": {Data: []byte(next)},
		"shanghai-2026.json": {Data: []byte(shanghai)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		today events.Date
		want  []Uncovered
	}{
		{events.Date{Year: 2026, Month: 12, Day: 7}, []Uncovered{{City: "shanghai", Day: events.Date{Year: 2027, Month: 1, Day: 1}}}},
		{events.Date{Year: 2026, Month: 12, Day: 31}, []Uncovered{{City: "shanghai", Day: events.Date{Year: 2027, Month: 1, Day: 1}}}},
		{events.Date{Year: 2026, Month: 10, Day: 1}, nil},
		// 60 days from 2027-11-02 reach 2027-12-31 and no further.
		{events.Date{Year: 2027, Month: 11, Day: 2}, nil},
		{events.Date{Year: 2027, Month: 11, Day: 3}, []Uncovered{{City: "testcity", Day: events.Date{Year: 2028, Month: 1, Day: 1}}}},
	} {
		got := loaded.FirstUncovered(c.today, 60)
		if len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] {
			t.Errorf("from %s: %v, want %v", c.today, got, c.want)
		}
	}
}
