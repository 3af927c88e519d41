package tariffs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/transit"
)

func base(t *testing.T) (*Base, Files) {
	t.Helper()
	f, err := BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBase(f)
	if err != nil {
		t.Fatal(err)
	}
	return b, f
}

var today = events.Date{Year: 2026, Month: time.March, Day: 15}

func date(s string) events.Date {
	d, err := parseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// edited is a shipped file with one text replaced.
func edited(t *testing.T, files map[string][]byte, name, from, to string) []byte {
	t.Helper()
	s := string(files[name])
	if !strings.Contains(s, from) {
		t.Fatalf("%s has no %q", name, from)
	}
	return []byte(strings.Replace(s, from, to, 1))
}

func TestAcceptDecidesAnUpload(t *testing.T) {
	b, f := base(t)
	shmetro := edited(t, f.Fares, "SHMETRO.json", `"base_fare": "3.00"`, `"base_fare": "4.00"`)
	plan := edited(t, f.FeePlans, "domestic-standard.json", `"rate": "0.0035", "cap": "13.00"`, `"rate": "0.0030", "cap": "13.00"`)
	policy := f.Medical["shanghai-2026.json"]
	at := time.Date(2026, time.March, 15, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		up   Upload
		want string // "" for accepted
		// repriced says the accepted version re-prices the days since
		repriced bool
	}{
		{name: "a fare table from today", up: Upload{Kind: Fares, Body: shmetro, From: today}},
		{name: "a fare table from next month", up: Upload{Kind: Fares, Body: shmetro, From: date("2026-04-01")}},
		{name: "a fare table from last week, not re-priced", up: Upload{Kind: Fares, Body: shmetro, From: date("2026-03-08")},
			want: "effective_from: 2026-03-08 is before today (2026-03-15): ask to re-price (reprice=true)"},
		{name: "a fare table from last week, re-priced", up: Upload{Kind: Fares, Body: shmetro, From: date("2026-03-08"), Reprice: true},
			repriced: true},
		{name: "re-priced from further back than taps are kept", up: Upload{Kind: Fares, Body: shmetro, From: date("2026-02-01"), Reprice: true},
			want: "effective_from: 2026-02-01 is more than 30 days before today"},
		{name: "a year and more ahead", up: Upload{Kind: Fares, Body: shmetro, From: date("2027-03-20")},
			want: "effective_from: 2027-03-20 is more than 366 days ahead"},
		{name: "a fare table that breaks a rule", up: Upload{Kind: Fares, From: today,
			Body: edited(t, f.Fares, "SHMETRO.json", `"max_fare": "10.00"`, `"max_fare": "5.00"`)},
			want: "max_fare: 5.00 is below the highest station-to-station fare 7.00"},
		{name: "a fare table that moves its operator", up: Upload{Kind: Fares, From: today,
			Body: edited(t, f.Fares, "SHMETRO.json", `"travel_day_start_hour": 5`, `"travel_day_start_hour": 4`)},
			want: "travel day starts at 4, its other tables say 5"},
		{name: "a city's shared cap changed for one of its operators", up: Upload{Kind: Fares, From: today,
			Body: edited(t, f.Fares, "HZBUS.json", `"daily": "15.00"`, `"daily": "12.00"`)},
			want: "caps differ from the other operators sharing city/hangzhou"},
		{name: "not json", up: Upload{Kind: Fares, From: today, Body: []byte("operator_id: X")}, want: "not a fare file"},
		{name: "a fee plan from tomorrow", up: Upload{Kind: FeePlans, Body: plan, From: date("2026-03-16")}},
		{name: "a fee plan from today", up: Upload{Kind: FeePlans, Body: plan, From: today},
			want: "effective_from: 2026-03-15 is not after today (2026-03-15): today's and earlier purchases are priced already; ask to re-price (reprice=true)"},
		{name: "a fee plan from the past", up: Upload{Kind: FeePlans, Body: plan, From: date("2026-03-01")},
			want: "ask to re-price (reprice=true) to charge the purchases since by this version, by fee adjustments"},
		{name: "a fee plan re-priced", up: Upload{Kind: FeePlans, Body: plan, From: date("2026-03-01"), Reprice: true}, repriced: true},
		{name: "a fee plan re-priced from today", up: Upload{Kind: FeePlans, Body: plan, From: today, Reprice: true}, repriced: true},
		{name: "a fee plan re-priced from the oldest day", up: Upload{Kind: FeePlans, Body: plan, From: date("2026-02-12"), Reprice: true}, repriced: true},
		{name: "a fee plan re-priced from too long ago", up: Upload{Kind: FeePlans, Body: plan, From: date("2026-02-11"), Reprice: true},
			want: "effective_from: 2026-02-11 is more than 31 days before today: merchants' fees are billed by the month"},
		{name: "a fee plan from tomorrow asking to re-price", up: Upload{Kind: FeePlans, Body: plan, From: date("2026-03-16"), Reprice: true}},
		{name: "a medical policy from today", up: Upload{Kind: MedicalPolicies, Body: policy, From: today},
			want: "a medical policy takes effect from tomorrow at the earliest, with or without reprice: the bills of today and before are split already"},
		{name: "a medical policy re-priced", up: Upload{Kind: MedicalPolicies, Body: policy, From: date("2026-03-01"), Reprice: true},
			want: "effective_from: 2026-03-01 is not after today (2026-03-15): a medical policy takes effect from tomorrow at the earliest, with or without reprice"},
		{name: "a fee plan that describes refunds", up: Upload{Kind: FeePlans, From: date("2026-04-01"),
			Body: edited(t, f.FeePlans, "domestic-standard.json", `"description": "`, `"description": "Refunds return it all. `)},
			want: "description: leave refunds out"},
		{name: "a medical policy from July", up: Upload{Kind: MedicalPolicies, Body: policy, From: date("2026-07-01")}},
		{name: "a medical policy version outside its year", up: Upload{Kind: MedicalPolicies, Body: policy, From: date("2027-01-01")},
			want: "effective_from: 2027-01-01 is not in the policy's year 2026"},
		{name: "a medical policy named in Chinese", up: Upload{Kind: MedicalPolicies, From: date("2026-07-01"),
			Body: []byte(strings.Replace(string(policy), `"city": "shanghai"`, `"city": "上海"`, 1))}},
		{name: "a medical policy of a city numbered like a card", up: Upload{Kind: MedicalPolicies, From: date("2026-07-01"),
			Body: []byte(strings.Replace(string(policy), `"city": "shanghai"`, `"city": "6228 4804 0256 4899"`, 1))},
			want: "city: looks like a card number in clear"},
		{name: "a fare table of an operator numbered like a card", up: Upload{Kind: Fares, From: today,
			Body: edited(t, f.Fares, "SHMETRO.json", `"operator_id": "SHMETRO"`, `"operator_id": "6228480402564899"`)},
			want: "operator_id: looks like a card number in clear"},
		{name: "fee plans together", up: Upload{Kind: FeePlans, From: date("2026-04-01"), Body: []byte("[" + string(plan) + "]")},
			want: "a fee plan is uploaded alone"},
		{name: "one operator twice together", up: Upload{Kind: Fares, From: today, Body: []byte("[" + string(shmetro) + "," + string(shmetro) + "]")},
			want: `[1] operator_id: "SHMETRO" is in the upload twice`},
		{name: "an empty array", up: Upload{Kind: Fares, From: today, Body: []byte("[]")}, want: "0 fare tables, want 1 to 64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs, set, err := b.Accept(nil, c.up, today, 1, at)
			if c.want != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := vs[0]; len(vs) != 1 || v.Seq != 1 || v.Source != SourceUpload || v.Repriced != c.repriced || !v.UploadedAt.Equal(at) || set == nil {
				t.Fatalf("versions %+v", vs)
			}
		})
	}
}

// The sets built with uploaded versions price each day by its own: Shanghai's metro from March 16
// at 4.00 a base fare, by its table before that; a fee plan's version by the purchase's date; a
// medical policy's by the bill's, whichever name its city is given.
func TestBuildPricesEachDayByItsVersion(t *testing.T) {
	b, f := base(t)
	at := time.Date(2026, time.March, 15, 10, 0, 0, 0, time.UTC)
	var uploaded []Version
	for _, up := range []Upload{
		{Kind: Fares, Body: edited(t, f.Fares, "SHMETRO.json", `"base_fare": "3.00"`, `"base_fare": "4.00"`), From: date("2026-03-16")},
		{Kind: FeePlans, Body: edited(t, f.FeePlans, "domestic-standard.json", `"rate": "0.0035", "cap": "13.00"`, `"rate": "0.0030", "cap": "13.00"`),
			From: date("2026-03-16")},
		{Kind: MedicalPolicies, Body: edited(t, f.Medical, "shanghai-2026.json", `"1": "0.75"`, `"1": "0.80"`), From: date("2026-07-01")},
	} {
		vs, _, err := b.Accept(uploaded, up, today, len(uploaded)+1, at)
		if err != nil {
			t.Fatal(err)
		}
		uploaded = append(uploaded, vs...)
	}
	set, err := b.Build(uploaded)
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]int64{"2026-03-15": 300, "2026-03-16": 400} {
		day, _ := transit.ParseDay(d)
		op, _ := set.Fares.OperatorOn("SHMETRO", day)
		if fare, _ := op.Fare("0101", "0104", ""); fare != want {
			t.Errorf("SHMETRO on %s: %d, want %d", d, fare, want)
		}
	}
	for d, want := range map[string]int64{"2026-03-15": 35, "2026-03-16": 30} {
		p, _ := set.FeePlans.PlanOn("domestic-standard", date(d))
		if fee, _ := p.Fee("5999", 10000); fee.MerchantDiscount != want {
			t.Errorf("domestic-standard on %s: %d, want %d", d, fee.MerchantDiscount, want)
		}
	}
	for d, want := range map[string]string{"2026-06-30": "0.75", "2026-07-01": "0.8"} {
		p, ok := set.Medical.On("上海", date(d))
		if !ok || p.Visits["outpatient"].FundRatio[1].String() != want {
			t.Errorf("Shanghai's policy on %s: %v %v", d, ok, p)
		}
	}
	// The versions the engine started with are listed with their files.
	if fs := b.Files(Fares); len(fs) != 4 || fs[0].Source != SourceBuiltIn || fs[0].SHA256 == ([32]byte{}) {
		t.Fatalf("built-in fare files %+v", fs)
	}
	// A stored version that no longer parses stops the build, naming it.
	broken := append(uploaded, Version{Kind: Fares, ID: "X", Seq: 9, Body: []byte("{}")})
	if _, err := b.Build(broken); err == nil || !strings.Contains(err.Error(), "fare table X version 9") {
		t.Fatalf("a broken stored version: %v", err)
	}
}

func TestKindSegments(t *testing.T) {
	for seg, want := range map[string]Kind{"fares": Fares, "fee-plans": FeePlans, "medical-policies": MedicalPolicies,
		"medical-catalogues": MedicalCatalogues} {
		if k, ok := KindOf(seg); !ok || k != want || k.Segment() != seg {
			t.Errorf("%s: %s %v", seg, k, ok)
		}
	}
	if _, ok := KindOf("fee_plans"); ok {
		t.Error("fee_plans is not a path segment")
	}
}

// A medical catalogue is uploaded as the other kinds are: checked as at start (a refused file
// names the field), from tomorrow at the earliest, and the set classifies each bill's date by
// the version in force on it, whatever name the city is given.
func TestMedicalCatalogueVersions(t *testing.T) {
	b, f := base(t)
	at := time.Date(2026, time.March, 15, 10, 0, 0, 0, time.UTC)
	fs := b.Files(MedicalCatalogues)
	if len(fs) != 2 {
		t.Fatalf("%d built-in catalogues, want 2", len(fs))
	}
	for _, v := range fs {
		if v.ID != "jiaxing" && v.ID != "shanghai" || v.From != date("2025-01-01") || v.Source != SourceBuiltIn {
			t.Errorf("built-in catalogue %s from %s, %s", v.ID, v.From, v.Source)
		}
	}
	// The MRI's ceiling raised from April.
	mri := edited(t, f.Catalogues, "shanghai@2025-01-01.json", `"price_ceiling": "600.00"`, `"price_ceiling": "650.00"`)
	for _, c := range []struct {
		name string
		up   Upload
		want string
	}{
		{"today", Upload{Kind: MedicalCatalogues, Body: mri, From: today}, "effective_from: 2026-03-15 is not after today"},
		{"yesterday, re-priced", Upload{Kind: MedicalCatalogues, Body: mri, From: date("2026-03-14"), Reprice: true},
			"a medical catalogue takes effect from tomorrow at the earliest, with or without reprice"},
		{"a bad class", Upload{Kind: MedicalCatalogues, Body: edited(t, f.Catalogues, "shanghai@2025-01-01.json", `"class": "A"}`, `"class": "AA"}`),
			From: date("2026-04-01")}, `items[0].class: "AA"`},
		{"a negative ceiling", Upload{Kind: MedicalCatalogues, Body: edited(t, f.Catalogues, "shanghai@2025-01-01.json", `"price_ceiling": "600.00"`,
			`"price_ceiling": "-600.00"`), From: date("2026-04-01")}, "items[13].price_ceiling"},
		{"an array", Upload{Kind: MedicalCatalogues, Body: []byte("[" + string(mri) + "]"), From: date("2026-04-01")}, "uploaded alone"},
	} {
		if _, _, err := b.Accept(nil, c.up, today, 1, at); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	vs, _, err := b.Accept(nil, Upload{Kind: MedicalCatalogues, Body: mri, From: date("2026-04-01"), By: "Wang Li"}, today, 1, at)
	if err != nil || len(vs) != 1 || vs[0].ID != "shanghai" {
		t.Fatalf("accepted %+v %v", vs, err)
	}
	set, err := b.Build(vs)
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]int64{"2026-03-31": 600_00, "2026-04-01": 650_00} {
		c, ok := set.Catalogues.On("上海", date(d))
		if !ok {
			t.Fatalf("no catalogue on %s", d)
		}
		if it, _ := c.Item("002103010010000"); it.Ceiling != want {
			t.Errorf("the MRI's ceiling on %s: %d, want %d", d, it.Ceiling, want)
		}
	}
	if _, ok := set.Catalogues.On("jiaxing", date("2026-04-01")); !ok {
		t.Error("Jiaxing's catalogue lost")
	}
}
