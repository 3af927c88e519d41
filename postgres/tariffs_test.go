package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
	"github.com/joinincard/engine/tariffs"
	"github.com/joinincard/engine/transit"
)

// builtIn returns the files built into the binary, with an edit made to one of a kind's files
// returned as an upload's body.
func builtIn(t testing.TB) tariffs.Files {
	t.Helper()
	f, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// edit returns files[name] with one text replaced.
func edit(t *testing.T, files map[string][]byte, name string, pairs ...string) []byte {
	t.Helper()
	s := string(files[name])
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s has no %q", name, pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return []byte(s)
}

func date(s string) events.Date {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return events.Date{Year: d.Year(), Month: d.Month(), Day: d.Day()}
}

// withTariffs loads the built-in tariffs into the world's store: the world prices by them.
func (w *transitWorld) withTariffs(t *testing.T) *postgres.Tariffs {
	t.Helper()
	tr, err := w.st.LoadTariffs(context.Background(), builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	w.ts = tr.Fares()
	return tr
}

func (w *transitWorld) uploadTariff(t *testing.T, tr *postgres.Tariffs, up tariffs.Upload) tariffs.Version {
	t.Helper()
	if up.By == "" {
		up.By = "Wang Li"
	}
	vs, replayed, err := tr.Upload(context.Background(), up)
	if err != nil || replayed || len(vs) != 1 {
		t.Fatalf("upload: %v (replayed %v, %d versions)", err, replayed, len(vs))
	}
	w.ts = tr.Fares()
	return vs[0]
}

// Versions are kept in the database with who uploaded them and when; the same upload again
// changes nothing; a bad one changes nothing and says why; another process finds the versions on
// Refresh.
func TestTariffVersionsInTheDatabase(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 10000)
	w.clock.Set(sh("2026-03-10 12:00"))
	tr := w.withTariffs(t)
	files := builtIn(t)
	body := edit(t, files.Fares, "SHMETRO.json", `"base_fare": "3.00"`, `"base_fare": "4.00"`)
	v := w.uploadTariff(t, tr, tariffs.Upload{Kind: tariffs.Fares, Body: body, From: date("2026-03-12")})
	if v.Seq != 1 || v.ID != "SHMETRO" || v.UploadedBy != "Wang Li" || !v.UploadedAt.Equal(sh("2026-03-10 12:00")) || v.Repriced {
		t.Fatalf("version %+v", v)
	}
	list, err := tr.Versions(ctx, tariffs.Fares, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range list {
		got = append(got, string(l.Source)+":"+l.ID+":"+l.From.String())
	}
	if strings.Join(got, " ") != "built_in:BJSUBWAY:0000-00-00 built_in:HZBUS:0000-00-00 built_in:HZMETRO:0000-00-00 "+
		"built_in:SHMETRO:0000-00-00 upload:SHMETRO:2026-03-12" {
		t.Fatalf("versions %s", got)
	}
	if only, _ := tr.Versions(ctx, tariffs.Fares, "SHMETRO"); len(only) != 2 || string(only[1].Body) != string(body) {
		t.Fatalf("SHMETRO's versions %+v", only)
	}
	// The same upload again: the same version, nothing new.
	again, replayed, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.Fares, Body: body, From: date("2026-03-12"), By: "Someone Else"})
	if err != nil || !replayed || len(again) != 1 || again[0].Seq != 1 || again[0].UploadedBy != "Wang Li" {
		t.Fatalf("again: %+v %v %v", again, replayed, err)
	}
	// A bad upload: refused naming the field, nothing written, the tables unchanged.
	tables := tr.Fares()
	bad := edit(t, files.Fares, "SHMETRO.json", `"every_m": 10000`, `"every_m": 0`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.Fares, Body: bad, From: date("2026-03-20"), By: "Wang Li"}); !errors.Is(err, tariffs.ErrInvalid) ||
		!strings.Contains(err.Error(), "distance_fare.bands[0].every_m: 0, want a positive number of meters") {
		t.Fatalf("a bad upload: %v", err)
	}
	if after, _ := tr.Versions(ctx, tariffs.Fares, ""); len(after) != len(list) || tr.Fares() != tables {
		t.Fatalf("the bad upload changed the versions: %d, %d", len(after), len(list))
	}
	// Another process's tariffs find the version on Refresh.
	other, err := w.st.LoadTariffs(ctx, builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	fee := edit(t, files.FeePlans, "domestic-standard.json", `"rate": "0.0035", "cap": "13.00"`, `"rate": "0.0030", "cap": "13.00"`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.FeePlans, Body: fee, From: date("2026-03-11"), By: "Wang Li"}); err != nil {
		t.Fatal(err)
	}
	if len(other.FeePlans().Versions("domestic-standard")) != 1 {
		t.Fatal("the other process knew of the version before it refreshed")
	}
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(other.FeePlans().Versions("domestic-standard")) != 2 || other.Fares().Seq() != 1 {
		t.Fatalf("after Refresh: %d plan versions, fares seq %d", len(other.FeePlans().Versions("domestic-standard")), other.Fares().Seq())
	}
}

// A table versioned mid-month prices the days on each side of the change by their own version.
func TestTariffVersionMidMonthPricesEachSideByItsOwn(t *testing.T) {
	w := newTransitWorld(t, 1, 10000)
	w.clock.Set(sh("2026-03-10 12:00"))
	tr := w.withTariffs(t)
	body := edit(t, builtIn(t).Fares, "SHMETRO.json", `"base_fare": "3.00"`, `"base_fare": "4.00"`)
	w.uploadTariff(t, tr, tariffs.Upload{Kind: tariffs.Fares, Body: body, From: date("2026-03-12")})
	w.clock.Set(sh("2026-03-12 12:00"))
	w.upload(t, "days", `
		SHMETRO 0 2026-03-11 09:00 in 0101
		SHMETRO 0 2026-03-11 09:30 out 0104
		SHMETRO 0 2026-03-12 09:00 in 0101
		SHMETRO 0 2026-03-12 09:30 out 0104`)
	w.close(t, sh("2026-03-13 11:00"))
	_, days, err := w.st.TransitTrips(context.Background(), w.ts, w.cards[0], transit.DayOf(2026, 3, 11), transit.DayOf(2026, 3, 12))
	if err != nil || len(days) != 2 {
		t.Fatalf("trips %v %+v", err, days)
	}
	if days[0].Priced != 300 || days[1].Priced != 400 || days[1].Journeys[0].Fare != 400 {
		t.Fatalf("March 11 %d, March 12 %d: want 3.00 by the old table, 4.00 by the new", days[0].Priced, days[1].Priced)
	}
}

// A table that takes effect in the past, when the admin asks to re-price, re-prices the closed
// days since as late taps do: adjustments, never edits. Tables older than an upload price nothing.
func TestTariffUploadInThePastRepricesByAdjustments(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 10000)
	w.clock.Set(sh("2026-03-05 08:00"))
	tr := w.withTariffs(t)
	w.upload(t, "days", `
		SHMETRO 0 2026-03-02 09:00 in 0101
		SHMETRO 0 2026-03-02 09:30 out 0104
		SHMETRO 0 2026-03-03 09:00 in 0101
		SHMETRO 0 2026-03-03 09:30 out 0104
		SHMETRO 0 2026-03-04 09:00 in 0101
		SHMETRO 0 2026-03-04 09:30 out 0104`)
	w.close(t, sh("2026-03-05 11:00"))
	if got := w.funds(t, 0); got != 10000-900 {
		t.Fatalf("funds after three days %d", got)
	}
	old := w.ts
	body := edit(t, builtIn(t).Fares, "SHMETRO.json", `"base_fare": "3.00"`, `"base_fare": "4.00"`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.Fares, Body: body, From: date("2026-03-03"), By: "Wang Li"}); err == nil ||
		!strings.Contains(err.Error(), "ask to re-price") {
		t.Fatalf("a past version without re-pricing: %v", err)
	}
	v := w.uploadTariff(t, tr, tariffs.Upload{Kind: tariffs.Fares, Body: body, From: date("2026-03-03"), Reprice: true})
	if !v.Repriced {
		t.Fatalf("version %+v", v)
	}
	// A process still on the tables before the upload prices nothing.
	if _, _, err := w.st.RepriceTransitDays(ctx, old, sh("2026-03-05 12:00")); !errors.Is(err, postgres.ErrStaleTariffs) {
		t.Fatalf("re-pricing by stale tables: %v", err)
	}
	if _, err := w.st.CloseTransitDays(ctx, old, sh("2026-03-06 12:00")); !errors.Is(err, postgres.ErrStaleTariffs) {
		t.Fatalf("closing by stale tables: %v", err)
	}
	rep := w.close(t, sh("2026-03-05 12:00"))
	if rep.Transfers != 2 || rep.Charged != 200 {
		t.Fatalf("re-pricing: %+v", rep)
	}
	_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], transit.DayOf(2026, 3, 2), transit.DayOf(2026, 3, 4))
	if err != nil || len(days) != 3 {
		t.Fatal(err)
	}
	if d := days[0]; d.Priced != 300 || len(d.Postings) != 1 {
		t.Fatalf("March 2, before the version: %+v", d)
	}
	for _, d := range days[1:] {
		if d.Priced != 400 || d.Paid != 400 || len(d.Postings) != 2 || d.Postings[0].Amount != 300 ||
			d.Postings[1].Code != clearing.CodeTransitAdjustment || d.Postings[1].Amount != 100 || d.Postings[1].Revision != 1 {
			t.Fatalf("%s: %+v", d.Day, d)
		}
	}
	if rep := w.close(t, sh("2026-03-05 12:05")); rep.Transfers != 0 {
		t.Fatalf("again: %+v", rep)
	}
}

// A new operator's table uploaded while the engine runs: the operator is registered and its taps
// are priced, its city found by its Chinese name.
func TestTariffNewOperatorPricesItsTaps(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 10000)
	w.clock.Set(sh("2026-03-10 12:00"))
	tr := w.withTariffs(t)
	body := edit(t, builtIn(t).Fares, "SHMETRO.json", `"operator_id": "SHMETRO"`, `"operator_id": "SZMETRO"`,
		`"name": "Shanghai Metro"`, `"name": "Shenzhen Metro"`, `"city": "shanghai"`, `"city": "深圳"`)
	w.uploadTariff(t, tr, tariffs.Upload{Kind: tariffs.Fares, Body: body, From: date("2026-03-10")})
	op, ok := w.ts.Operator("SZMETRO")
	if !ok || op.City != "shenzhen" || op.Group().Key != "operator/SZMETRO" {
		t.Fatalf("SZMETRO: %+v %v", op, ok)
	}
	if _, err := w.st.CreateTransitOperator(ctx, "SZMETRO", "Shenzhen Metro", keyHash("SZMETRO")); err != nil {
		t.Fatal(err)
	}
	res := w.upload(t, "sz", `
		SZMETRO 0 2026-03-10 09:00 in 0101
		SZMETRO 0 2026-03-10 09:40 out 0113
		SZMETRO 0 2026-03-09 09:00 in 0101`)["SZMETRO"]
	if got := results(res); got != "accepted accepted rejected:unknown_operator" {
		t.Fatalf("taps: %s", got)
	}
	w.close(t, sh("2026-03-11 11:00"))
	if got := w.operator(t, "SZMETRO"); got != 400 {
		t.Fatalf("SZMETRO earned %d", got)
	}
}

// A card's concession class prices its journeys from when it was recorded.
func TestTariffConcessionClasses(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 3, 10000)
	w.clock.Set(sh("2026-03-10 06:00"))
	tr := w.withTariffs(t)
	body := edit(t, builtIn(t).Fares, "SHMETRO.json", `"caps": {`,
		`"concessions": [{"class": "senior", "fare_percent": 0}, {"class": "student", "fare_percent": 50}], "caps": {`)
	w.uploadTariff(t, tr, tariffs.Upload{Kind: tariffs.Fares, Body: body, From: date("2026-03-10")})
	for card, class := range map[int]string{0: "senior", 1: "student"} {
		cc, err := w.st.SetCardConcession(ctx, w.cards[card], class, "Wang Li")
		if err != nil || cc.Class != class || len(cc.History) != 1 || cc.History[0].By != "Wang Li" {
			t.Fatalf("card %d: %+v %v", card, cc, err)
		}
	}
	if cc, err := w.st.SetCardConcession(ctx, w.cards[0], "senior", "Wang Li"); err != nil || len(cc.History) != 1 {
		t.Fatalf("the same class again: %+v %v", cc, err)
	}
	if _, err := w.st.SetCardConcession(ctx, "tok_nobody", "senior", "Wang Li"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("an unknown card: %v", err)
	}
	w.clock.Set(sh("2026-03-10 12:00"))
	w.upload(t, "c", `
		SHMETRO 0 2026-03-10 09:00 in 0101
		SHMETRO 0 2026-03-10 09:30 out 0105
		SHMETRO 1 2026-03-10 09:00 in 0101
		SHMETRO 1 2026-03-10 09:30 out 0105
		SHMETRO 2 2026-03-10 09:00 in 0101
		SHMETRO 2 2026-03-10 09:30 out 0105`)
	w.close(t, sh("2026-03-11 11:00"))
	for card, want := range map[int]int64{0: 10000, 1: 10000 - 200, 2: 10000 - 400} {
		if got := w.funds(t, card); got != want {
			t.Errorf("card %d: funds %d, want %d", card, got, want)
		}
	}
	_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[1], transit.DayOf(2026, 3, 10), transit.DayOf(2026, 3, 10))
	if err != nil || len(days) != 1 || days[0].Journeys[0].Concession != "student" || days[0].Journeys[0].Fare != 200 {
		t.Fatalf("the student's trips: %v %+v", err, days)
	}
}

// A purchase is priced by the fee plan's version in force on its authorization's date: its
// capture and refunds alike, whenever they come.
func TestTariffFeePlanVersionByPurchaseDate(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 1, fen1000)
	tr, err := s.st.LoadTariffs(ctx, builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	body := edit(t, builtIn(t).FeePlans, "domestic-standard.json", `"rate": "0.0035", "cap": "13.00"`, `"rate": "0.0050", "cap": "13.00"`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.FeePlans, Body: body, From: date("2026-03-04"), By: "Wang Li"}); err != nil {
		t.Fatal(err)
	}
	A, C := postgres.OpAuthorize, postgres.OpCapture
	auths := s.run(t, 0, []pstep{
		{op: A, merchant: "shop-1", auth: "tuesday", amount: "100.00", want: "approved", available: skip, posted: skip},
		{op: A, merchant: "shop-1", auth: "wednesday", amount: "100.00", want: "approved", available: skip, posted: skip,
			before: func(s *shop, _ int) { s.advance(24 * time.Hour) }},
		{op: C, merchant: "shop-1", auth: "tuesday", amount: "100.00", want: "ok", available: skip, posted: skip},
		{op: C, merchant: "shop-1", auth: "wednesday", amount: "100.00", want: "ok", available: skip, posted: skip},
	})
	for label, want := range map[string]int64{"tuesday": 35, "wednesday": 50} {
		rec, err := s.p.Authorization(ctx, "shop-1", auths[label])
		if err != nil {
			t.Fatal(err)
		}
		if rec.Close.Fee.MerchantDiscount != want {
			t.Errorf("%s's purchase: merchant discount %d, want %d", label, rec.Close.Fee.MerchantDiscount, want)
		}
	}
	// A plan that takes effect later cannot be a new merchant's yet.
	future := edit(t, builtIn(t).FeePlans, "domestic-standard.json", `"id": "domestic-standard"`, `"id": "domestic-2027"`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.FeePlans, Body: future, From: date("2026-06-01"), By: "Wang Li"}); err != nil {
		t.Fatal(err)
	}
	m := purchases.Merchant{ID: "shop-2", Name: "Shop Two", MCC: "5311", City: "杭州", AcquiringBank: "ABC-HZ", FeePlan: "domestic-2027"}
	if err := s.p.RegisterMerchant(ctx, m, [32]byte{1}); !errors.Is(err, postgres.ErrInvalidMerchant) || !strings.Contains(err.Error(), "takes effect on 2026-06-01") {
		t.Fatalf("a merchant on a plan not in force yet: %v", err)
	}
}

// A card registered with its insurance city's Chinese name is the city's, and its bills are
// settled by the city's policy, the version in force on each bill's date.
func TestTariffMedicalPolicyByCityNameAndDate(t *testing.T) {
	ctx := context.Background()
	w := newMedWorld(t, time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai))
	tr, err := w.st.LoadTariffs(ctx, builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedicalLive(w.st, tr.MedicalPolicies).WithCatalogues(classCatalogues(t))
	other := loadtest.NewCity(62, 1, 1, time.Date(2026, 3, 2, 9, 0, 0, 0, cards.Shanghai))
	regs := other.Registrations()
	regs[0].Data.(*events.CardRegistered).InsuranceCity = "上海"
	w.ingest(t, regs[0])
	card, err := w.st.Card(ctx, other.Cards[0])
	if err != nil {
		t.Fatal(err)
	}
	if card.InsuranceCity != "shanghai" {
		t.Fatalf("insurance city %q", card.InsuranceCity)
	}
	q, err := w.med.Quote(ctx, w.hospital, card.Token, basket(t, medical.Inpatient, "A3000"))
	if err != nil || q.Policy.ID() != "shanghai-2026" || q.Fund != "shanghai" {
		t.Fatalf("a card insured in 上海: %+v %v", q, err)
	}
	// A version from tomorrow: today's bills by the year's policy, tomorrow's by the version.
	files := builtIn(t)
	body := edit(t, files.Medical, "shanghai-2026.json", `"fund_ratio_by_tier": {"1": "0.90", "2": "0.87", "3": "0.85"}`,
		`"fund_ratio_by_tier": {"1": "0.90", "2": "0.87", "3": "0.95"}`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.MedicalPolicies, Body: body, From: date("2026-03-03"), By: "Wang Li"}); err != nil {
		t.Fatal(err)
	}
	b := basket(t, medical.Inpatient, "A3000")
	today, err := w.med.Quote(ctx, w.hospital, card.Token, b)
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Set(time.Date(2026, 3, 3, 10, 0, 0, 0, cards.Shanghai))
	tomorrow, err := w.med.Quote(ctx, w.hospital, card.Token, b)
	if err != nil {
		t.Fatal(err)
	}
	// 3000 inpatient at a tier 3 hospital in Jiaxing, 1500 deductible, treated outside Shanghai
	// without registering it: Shanghai's ratio less 20 points, 65% of 1500 today, 75% tomorrow.
	if today.Split.Fund != 975_00 || tomorrow.Split.Fund != 1125_00 {
		t.Fatalf("the fund's part today %s, tomorrow %s", ledger.FormatAmount(today.Split.Fund, "CNY"), ledger.FormatAmount(tomorrow.Split.Fund, "CNY"))
	}
}

// A city's operators that share a cap change it together: each table alone is refused, both in
// one upload are taken, and the city's days from then on are capped by the new amount.
func TestTariffCityCapChangedTogether(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 10000)
	w.clock.Set(sh("2026-03-10 12:00"))
	tr := w.withTariffs(t)
	files := builtIn(t)
	metro := edit(t, files.Fares, "HZMETRO.json", `"daily": "15.00"`, `"daily": "6.00"`)
	bus := edit(t, files.Fares, "HZBUS.json", `"daily": "15.00"`, `"daily": "6.00"`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.Fares, Body: metro, From: date("2026-03-11"), By: "Wang Li"}); err == nil ||
		!strings.Contains(err.Error(), "caps differ from the other operators sharing city/hangzhou") {
		t.Fatalf("the metro's cap alone: %v", err)
	}
	both := []byte("[" + string(metro) + "," + string(bus) + "]")
	vs, replayed, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.Fares, Body: both, From: date("2026-03-11"), By: "Wang Li"})
	if err != nil || replayed || len(vs) != 2 || vs[0].ID != "HZMETRO" || vs[1].ID != "HZBUS" || vs[1].Seq != 2 {
		t.Fatalf("both: %+v %v %v", vs, replayed, err)
	}
	if _, replayed, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.Fares, Body: both, From: date("2026-03-11"), By: "Wang Li"}); err != nil || !replayed {
		t.Fatalf("both again: %v %v", replayed, err)
	}
	w.ts = tr.Fares()
	g, _ := w.ts.Group("city/hangzhou")
	if g.RulesOn(transit.DayOf(2026, 3, 10)).DailyCap != 1500 || g.RulesOn(transit.DayOf(2026, 3, 11)).DailyCap != 600 {
		t.Fatal("the city's cap by day")
	}
	w.clock.Set(sh("2026-03-11 20:00"))
	w.upload(t, "hz", `
		HZMETRO 0 2026-03-11 08:00 in 0101
		HZMETRO 0 2026-03-11 08:50 out 0122
		HZBUS 0 2026-03-11 12:00 single K155-01`)
	w.close(t, sh("2026-03-12 10:00"))
	if got := w.funds(t, 0); got != 10000-600 {
		t.Fatalf("funds %d: the day at the new cap of 6.00", got)
	}
	bad := []byte("[" + string(metro) + "," + string(edit(t, files.Fares, "HZBUS.json", `"flat_fare": "2.00"`, `"flat_fare": "2.001"`)) + "]")
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.Fares, Body: bad, From: date("2026-03-12"), By: "Wang Li"}); err == nil ||
		!strings.Contains(err.Error(), `[1] flat_fare: "2.001" has more than 2 decimals`) {
		t.Fatalf("a bad table among several: %v", err)
	}
}
