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
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/tariffs"
)

// bill reads "CODE*QTY@PRICE ..." as a bill: a code, a quantity and a unit price in yuan.
func bill(t *testing.T, visit medical.VisitKind, spec string) medical.Bill {
	t.Helper()
	b := medical.Bill{VisitKind: visit}
	for _, f := range strings.Fields(spec) {
		code, rest, _ := strings.Cut(f, "*")
		qty, price, _ := strings.Cut(rest, "@")
		fen, err := medical.ParseAmount(price)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, c := range qty {
			n = n*10 + int64(c-'0')
		}
		b.Lines = append(b.Lines, medical.BillLine{Code: code, Quantity: n, UnitPrice: fen})
	}
	return b
}

// A stay at a Shanghai tier 3 hospital, classified by Shanghai's sample catalogue: bed over its
// ceiling, consultations, an angiography, a stent over its ceiling, syringes. Total 4354.50, of
// which 200.00 over the ceilings; class B self-pay 10% of 3600.00; eligible 3794.50.
const shanghaiStay = "001103000010000*5@120.00 001102000010000*5@20.00 003107010010000*1@2800.00 " +
	"C0203041800000200932*1@850.00 C1401010010100102600*10@0.45"

// Drugs at a Jiaxing pharmacy, classified by Jiaxing's sample catalogue. Total 260.00, of which
// 46.00 in cash (multivitamins of class C, insulin over its ceiling).
const jiaxingDrugs = "ZA01BAL0219010102473*2@14.80 XB01ACL075A001010101188*14@2.10 XA10AEG032B002010105678*2@78.00 " +
	"XA11AAF001A001010100017*60@0.50 XA10BAE056A001010101234*60@0.25"

// TestMedicalTreatedElsewhere settles bills treated outside the insured city on the real store,
// by the sample catalogues and policies, each figure worked out by hand: a Jiaxing card at a
// Shanghai tier 3 hospital before and after it registered the treatment city, a Shanghai card
// at a Jiaxing pharmacy, a card whose insured city has no policy and a treating city without a
// catalogue refused with their reasons; the receipts, the accumulators and both funds' reports
// name both cities.
func TestMedicalTreatedElsewhere(t *testing.T) {
	day1 := time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day1)
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedical(w.st, policies) // the sample catalogues
	ctx := context.Background()
	for _, id := range []string{"sh-ruijin", "hz-clinic"} {
		if _, err := w.st.RegisterParty(ctx, clearing.PartyMerchant, id, id); err != nil {
			t.Fatal(err)
		}
	}
	ruijin := w.register(t, medical.Institution{ID: "sh-ruijin", Kind: medical.Hospital, Tier: 3, City: "上海"}, "ruijin-key")
	hangzhou := w.register(t, medical.Institution{ID: "hz-clinic", Kind: medical.Hospital, Tier: 2, City: "Hangzhou"}, "hz-key")
	jx, sh := w.card(t, 0), w.card(t, 2)
	w.fund(t, 0, 10_000_00)
	w.fund(t, 2, 1_000_00)
	w.contribute(t, 2, 50_00)

	// Not registered: Jiaxing's inpatient deductible at tier 3 is 800.00, 2994.50 above it, the
	// fund's 85% less 10 points: 75% = 2245.875, half-even 2245.88; 2108.62 in cash.
	stay := bill(t, medical.Inpatient, shanghaiStay)
	s1, _, err := w.med.Settle(ctx, ruijin, "RJ-1", jx.Token, stay)
	if err != nil {
		t.Fatal(err)
	}
	want := func(s medical.Settlement, fund, personal, cash int64, registered bool) {
		t.Helper()
		if s.Split.Fund != fund || s.Split.Personal != personal || s.Split.Cash != cash {
			t.Fatalf("%s: fund %d, personal %d, cash %d; want %d, %d, %d", s.Ref, s.Split.Fund, s.Split.Personal, s.Split.Cash, fund, personal, cash)
		}
		if s.Registered != registered || s.Split.Elsewhere == nil || s.Split.Elsewhere.Registered != registered {
			t.Fatalf("%s: registered %v, elsewhere %+v; want %v", s.Ref, s.Registered, s.Split.Elsewhere, registered)
		}
	}
	want(s1, 2245_88, 0, 2108_62, false)
	if s1.Fund != "jiaxing" || s1.TreatingCity != "shanghai" || s1.Catalogue != "shanghai from 2025-01-01" || len(s1.Lines) != 5 ||
		s1.Lines[0].CashReason != medical.CashOverCeiling || s1.Lines[0].Cash != 150_00 || s1.Lines[3].Cash != 50_00 ||
		s1.Split.OutOfCatalogue != 200_00 || s1.Split.ClassBSelfPay != 360_00 || s1.Split.Deductible != 800_00 {
		t.Fatalf("receipt %+v", s1)
	}
	// Replayed, the receipt comes back the same, lines and cities included.
	again, replayed, err := w.med.Settle(ctx, ruijin, "RJ-1", jx.Token, stay)
	if err != nil || !replayed || again.TreatingCity != "shanghai" || len(again.Lines) != 5 || again.Lines[2].NameEN != "Percutaneous coronary angiography" {
		t.Fatalf("replay: %v %v %+v", replayed, err, again)
	}

	// Registered from tomorrow, by the city's Chinese name; again by its English name changes
	// nothing; another end from the same day is refused; the insured city needs none.
	reg := medical.Registration{City: "上海", From: events.Date{Year: 2026, Month: 3, Day: 3}, By: "ICBC Jiaxing"}
	if r, created, err := w.med.Register(ctx, jx.Token, reg); err != nil || !created || r.City != "shanghai" {
		t.Fatalf("register: %+v %v %v", r, created, err)
	}
	reg.City = "Shanghai"
	if _, created, err := w.med.Register(ctx, jx.Token, reg); err != nil || created {
		t.Fatalf("the same registration again: %v %v", created, err)
	}
	reg.Until = events.Date{Year: 2026, Month: 6, Day: 30}
	_, _, err = w.med.Register(ctx, jx.Token, reg)
	wantRefusal(t, err, medical.ReasonRegistrationConflict)
	if _, _, err := w.med.Register(ctx, jx.Token, medical.Registration{City: "嘉兴", From: reg.From, By: "x"}); !errors.Is(err, medical.ErrInvalid) {
		t.Fatalf("registering the insured city: %v", err)
	}
	if _, _, err := w.med.Register(ctx, jx.Token, medical.Registration{City: "shanghai", From: events.Date{Year: 2026, Month: 3, Day: 1}, By: "x"}); !errors.Is(err, medical.ErrInvalid) {
		t.Fatalf("registering yesterday: %v", err)
	}
	if regs, err := w.med.Registrations(ctx, jx.Token); err != nil || len(regs) != 1 || regs[0].By != "ICBC Jiaxing" || regs[0].Until != (events.Date{}) {
		t.Fatalf("registrations: %+v %v", regs, err)
	}
	// Today is still not covered: a quote splits as before.
	if q, err := w.med.Quote(ctx, ruijin, jx.Token, stay); err != nil || q.Split.Fund != 2245_88 || q.Registered {
		t.Fatalf("quote the day before the registration: %+v %v", q.Split, err)
	}

	// Tomorrow, registered: Jiaxing's full 85% of 2994.50 = 2545.325, half-even 2545.32.
	w.clock.Set(day1.Add(24 * time.Hour))
	s2, _, err := w.med.Settle(ctx, ruijin, "RJ-2", jx.Token, stay)
	if err != nil {
		t.Fatal(err)
	}
	want(s2, 2545_32, 0, 1809_18, true)
	y, err := w.med.CardYear(ctx, jx.Token, 2026)
	if err != nil || y.Fund != "jiaxing" || y.Accumulators.Fund["total"] != 2245_88+2545_32 {
		t.Fatalf("the Jiaxing card's year: %+v %v", y, err)
	}

	// A Shanghai card at a Jiaxing pharmacy, not registered, on day 1: Jiaxing's catalogue
	// classifies (Lianhua Qingwen is class B there), Shanghai's policy splits: the personal
	// account's 50.00 first, class B first; self-pay 15.80; the eligible 148.20 meets Shanghai's
	// yearly deductible of 1500.00, so the fund pays nothing yet; 210.00 in cash.
	w.clock.Set(day1)
	s3, _, err := w.med.Settle(ctx, w.pharmacy, "RX-1", sh.Token, bill(t, medical.Pharmacy, jiaxingDrugs))
	if err != nil {
		t.Fatal(err)
	}
	if s3.Split.Fund != 0 || s3.Split.Personal != 50_00 || s3.Split.Cash != 210_00 || s3.Split.OutOfCatalogue != 46_00 ||
		s3.Split.ClassBSelfPay != 15_80 || s3.Split.Deductible != 148_20 || s3.Fund != "shanghai" || s3.TreatingCity != "jiaxing" ||
		s3.Lines[0].Class != medical.ClassB || s3.Registered {
		t.Fatalf("a Shanghai card at a Jiaxing pharmacy: %+v", s3)
	}
	if y, err := w.med.CardYear(ctx, sh.Token, 2026); err != nil || y.Accumulators.Deductible["outpatient"] != 148_20 {
		t.Fatalf("the Shanghai card's year: %+v %v", y, err)
	}

	// A card insured in Hangzhou, which has no policy, and a treating city without a catalogue.
	_, err = w.med.Quote(ctx, ruijin, w.city.Cards[1], stay)
	wantRefusal(t, err, medical.ReasonNoPolicy)
	if !strings.Contains(err.Error(), "hangzhou") || !strings.Contains(err.Error(), "treated in shanghai") {
		t.Fatalf("the refusal does not name both cities: %v", err)
	}
	_, err = w.med.Quote(ctx, hangzhou, jx.Token, bill(t, medical.Outpatient, "002503010010000*1@25.00"))
	wantRefusal(t, err, medical.ReasonNoCatalogue)

	// The funds' reports name both cities: Jiaxing's fund paid the Shanghai hospital on both days,
	// Shanghai's fund the Jiaxing pharmacy on day 1.
	for _, tc := range []struct {
		fund        string
		day         events.Date
		institution string
		city        string
		fundPart    int64
		registered  bool
	}{
		{"jiaxing", medical.DayOf(day1), "sh-ruijin", "shanghai", 2245_88, false},
		{"jiaxing", medical.DayOf(day1.Add(24 * time.Hour)), "sh-ruijin", "shanghai", 2545_32, true},
		{"shanghai", medical.DayOf(day1), w.pharmacy.ID, "jiaxing", 0, false},
	} {
		d, err := w.med.Reconciliation(ctx, tc.fund, tc.day)
		if err != nil || len(d.Institutions) != 1 || d.Institutions[0].Institution != tc.institution || d.Institutions[0].City != tc.city ||
			d.All.Fund != tc.fundPart {
			t.Fatalf("%s on %s: %+v %v", tc.fund, tc.day, d, err)
		}
		var lines []medical.DetailLine
		if err := w.med.Detail(ctx, tc.fund, tc.day, func(l medical.DetailLine) error { lines = append(lines, l); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(lines) != 1 || lines[0].TreatingCity != tc.city || lines[0].Registered != tc.registered {
			t.Fatalf("%s detail on %s: %+v", tc.fund, tc.day, lines)
		}
	}
	// A day without settlements has no institution.
	if d, err := w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(day1.Add(48*time.Hour))); err != nil || len(d.Institutions) != 0 {
		t.Fatalf("an empty day: %+v %v", d, err)
	}
}

// A policy may require a visit in another city to be registered: without a registration it is
// refused (not_registered), with one it settles.
func TestMedicalRegistrationRequired(t *testing.T) {
	day1 := time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day1)
	files, err := medical.SampleFiles()
	if err != nil {
		t.Fatal(err)
	}
	files["jiaxing-2026.json"] = []byte(strings.Replace(string(files["jiaxing-2026.json"]), `"unregistered_ratio_cut": "0.10"}`,
		`"unregistered_ratio_cut": "0.10", "require_registration": true}`, 1))
	list, err := medical.ParseFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	policies, err := medical.NewPolicies(list...)
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedical(w.st, policies)
	ctx := context.Background()
	if _, err := w.st.RegisterParty(ctx, clearing.PartyMerchant, "sh-ruijin", "Ruijin"); err != nil {
		t.Fatal(err)
	}
	ruijin := w.register(t, medical.Institution{ID: "sh-ruijin", Kind: medical.Hospital, Tier: 3, City: "shanghai"}, "k")
	jx := w.card(t, 0)
	w.fund(t, 0, 10_000_00)
	stay := bill(t, medical.Inpatient, shanghaiStay)
	_, _, err = w.med.Settle(ctx, ruijin, "RJ-1", jx.Token, stay)
	wantRefusal(t, err, medical.ReasonNotRegistered)
	if _, _, err := w.med.Register(ctx, jx.Token, medical.Registration{City: "shanghai", From: medical.DayOf(day1), By: "admin"}); err != nil {
		t.Fatal(err)
	}
	s, _, err := w.med.Settle(ctx, ruijin, "RJ-1", jx.Token, stay)
	if err != nil || s.Split.Fund != 2545_32 || !s.Registered {
		t.Fatalf("registered: %+v %v", s.Split, err)
	}
}

// A bill treated in another city settles through the insured city's fund: the Jiaxing fund's
// bank pays the fund's and the personal account's parts of a Jiaxing card's stay at a Shanghai
// hospital (its medical fund share), the hospital's bank earns the whole bill, the card's issuer
// pays the cash part, and the Shanghai fund's bank has nothing to do with it.
func TestMedicalElsewhereSettlesThroughTheInsuredFundsBank(t *testing.T) {
	day1 := time.Date(2026, 3, 3, 10, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day1)
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedical(w.st, policies)
	ctx := context.Background()
	for _, p := range []struct {
		kind clearing.PartyKind
		id   string
	}{{clearing.PartyMerchant, "sh-ruijin"}, {clearing.PartyBank, "ACQ-SH"}, {clearing.PartyBank, "FUND-JX"}, {clearing.PartyBank, "FUND-SH"}} {
		if _, err := w.st.RegisterParty(ctx, p.kind, p.id, p.id); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []struct {
		kind     clearing.PartyKind
		id, bank string
	}{
		{clearing.PartyMerchant, "sh-ruijin", "ACQ-SH"},
		{clearing.PartyInsuranceFund, "jiaxing", "FUND-JX"}, {clearing.PartyInsuranceFund, "shanghai", "FUND-SH"},
	} {
		if err := w.st.SetPartyBank(ctx, b.kind, b.id, b.bank); err != nil {
			t.Fatal(err)
		}
	}
	ruijin := w.register(t, medical.Institution{ID: "sh-ruijin", Kind: medical.Hospital, Tier: 3, City: "shanghai"}, "k")
	jx := w.card(t, 0)
	w.fund(t, 0, 10_000_00)
	w.contribute(t, 0, 100_00)
	// Not registered: the fund 2245.88; the personal account's 100.00 toward the cardholder's
	// 1908.62; 2008.62 in cash.
	s, _, err := w.med.Settle(ctx, ruijin, "RJ-1", jx.Token, bill(t, medical.Inpatient, shanghaiStay))
	if err != nil {
		t.Fatal(err)
	}
	if s.Split.Fund != 2245_88 || s.Split.Personal != 100_00 || s.Split.Cash != 2008_62 {
		t.Fatalf("split %+v", s.Split)
	}
	set := newSettlement(t, w.st)
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	w.clock.Set(time.Date(2026, 3, 3, 23, 10, 0, 0, cards.Shanghai))
	if _, err := set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	pos, err := set.Positions(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if p := pos.Bank("FUND-JX"); p.MedicalFundShare != 2245_88+100_00 || p.Net != -(2245_88+100_00) {
		t.Errorf("the Jiaxing fund's bank: %+v", p)
	}
	if p := pos.Bank("ACQ-SH"); p.Earned != 4354_50 || p.Net != 4354_50 {
		t.Errorf("the Shanghai hospital's bank: %+v", p)
	}
	if p := pos.Bank("FUND-SH"); p.Items != 0 {
		t.Errorf("the Shanghai fund's bank: %+v", p)
	}
	if p := pos.Bank(jx.IssuerBank); p.SpentMedical != 2008_62 {
		t.Errorf("the card's issuer %s: %+v", jx.IssuerBank, p)
	}
}

// A catalogue version uploaded while the engine runs is kept in the database and classifies the
// bills from its first day: Jiaxing's MRI ceiling raised from tomorrow leaves today's bill 50.00
// over it and tomorrow's within it. A refused upload changes nothing.
func TestMedicalCatalogueUploadedClassifiesFromItsDate(t *testing.T) {
	ctx := context.Background()
	w := newMedWorld(t, time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai))
	tr, err := w.st.LoadTariffs(ctx, builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedicalTariffs(w.st, tr)
	files := builtIn(t)
	body := edit(t, files.Catalogues, "jiaxing@2025-01-01.json", `"price_ceiling": "550.00"`, `"price_ceiling": "650.00"`)
	bad := edit(t, files.Catalogues, "jiaxing@2025-01-01.json", `"kind": "service"`, `"kind": "procedure"`)
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.MedicalCatalogues, Body: bad, From: date("2026-03-03"), By: "Wang Li"}); !errors.Is(err, tariffs.ErrInvalid) ||
		!strings.Contains(err.Error(), `items[8].kind: "procedure"`) {
		t.Fatalf("a bad catalogue: %v", err)
	}
	vs, replayed, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.MedicalCatalogues, Body: body, From: date("2026-03-03"), By: "Wang Li"})
	if err != nil || replayed || len(vs) != 1 || vs[0].Seq != 1 || vs[0].ID != "jiaxing" {
		t.Fatalf("upload: %+v %v %v", vs, replayed, err)
	}
	listed, err := tr.Versions(ctx, tariffs.MedicalCatalogues, "jiaxing")
	if err != nil || len(listed) != 2 || listed[0].Source != tariffs.SourceBuiltIn || listed[1].UploadedBy != "Wang Li" {
		t.Fatalf("versions: %+v %v", listed, err)
	}
	mri := bill(t, medical.Outpatient, "002103010010000*1@600.00")
	jx := w.card(t, 0)
	today, err := w.med.Quote(ctx, w.hospital, jx.Token, mri)
	if err != nil || today.Lines[0].Cash != 50_00 || today.Lines[0].CashReason != medical.CashOverCeiling || today.Catalogue != "jiaxing from 2025-01-01" {
		t.Fatalf("today: %+v %v", today.Lines, err)
	}
	w.clock.Set(time.Date(2026, 3, 3, 10, 0, 0, 0, cards.Shanghai))
	tomorrow, err := w.med.Quote(ctx, w.hospital, jx.Token, mri)
	if err != nil || tomorrow.Lines[0].Cash != 0 || tomorrow.Lines[0].Covered != 600_00 || tomorrow.Catalogue != "jiaxing from 2026-03-03" {
		t.Fatalf("tomorrow: %+v %v", tomorrow.Lines, err)
	}
	// Another process picks the version up from the database.
	other, err := w.st.LoadTariffs(ctx, builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := other.MedicalCatalogues().On("嘉兴", date("2026-03-03")); !ok || c.Seq != 1 {
		t.Fatalf("the uploaded version in another process: %+v %v", c, ok)
	}
}

// The cardholder's bank registers a treatment city for its own cards only: to another bank the
// card is unknown.
func TestMedicalRegistrationByTheBank(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	jx := w.card(t, 0)
	reg := medical.Registration{City: "上海", From: events.Date{Year: 2026, Month: 3, Day: 9}, Until: events.Date{Year: 2026, Month: 4, Day: 30},
		By: "bank " + jx.IssuerBank}
	_, _, err := w.med.RegisterForBank(ctx, jx.IssuerBank+"-OTHER", jx.Token, reg)
	wantRefusal(t, err, medical.ReasonUnknownCard)
	// Another bank's card is refused exactly as a card that does not exist: the answer must not
	// tell a bank that the token is a card at some other bank.
	_, _, none := w.med.RegisterForBank(ctx, jx.IssuerBank+"-OTHER", "card-never-issued-0000000", reg)
	wantRefusal(t, none, medical.ReasonUnknownCard)
	if err.Error() != none.Error() {
		t.Errorf("another bank's card is told apart from no card: %q, %q", err, none)
	}
	r, created, err := w.med.RegisterForBank(ctx, jx.IssuerBank, jx.Token, reg)
	if err != nil || !created || r.City != "shanghai" || r.By != "bank "+jx.IssuerBank {
		t.Fatalf("registered by the issuer: %+v %v %v", r, created, err)
	}
	for d, want := range map[int]bool{8: false, 9: true, 30: true} {
		if got := r.Covers(events.Date{Year: 2026, Month: 3, Day: d}); got != want {
			t.Errorf("covers March %d: %v", d, got)
		}
	}
	if r.Covers(events.Date{Year: 2026, Month: 5, Day: 1}) {
		t.Error("covers the day after its end")
	}
}

// TestMedicalStayElsewhereTruesUpWithTheCut settles a Jiaxing card's stay at a Shanghai tier 3
// hospital, not registered, in an interim bill and a final bill: the true-up prices the whole stay
// as one bill treated in Shanghai, with the ratio cut for a visit not registered (85% less 10
// points), so the stay ends as TestMedicalTreatedElsewhere's single bill of it: fund 2245.88, cash
// 2108.62. Priced without the cut, the fund would pay 2545.32.
func TestMedicalStayElsewhereTruesUpWithTheCut(t *testing.T) {
	day := time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day)
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedical(w.st, policies) // the sample catalogues
	ctx := context.Background()
	if _, err := w.st.RegisterParty(ctx, clearing.PartyMerchant, "sh-ruijin", "sh-ruijin"); err != nil {
		t.Fatal(err)
	}
	ruijin := w.register(t, medical.Institution{ID: "sh-ruijin", Kind: medical.Hospital, Tier: 3, City: "上海"}, "ruijin-key")
	jx := w.card(t, 0)
	w.fund(t, 0, 10_000_00)
	fields := strings.Fields(shanghaiStay)
	interim, final := strings.Join(fields[:2], " "), strings.Join(fields[2:], " ")
	stay := func(kind medical.StayBillKind) medical.StayBill { return medical.StayBill{Ref: "ADM-SH-1", Kind: kind} }
	first, _, err := w.med.SettleStay(ctx, ruijin, "RJ-S1", jx.Token, bill(t, medical.Inpatient, interim), stay(medical.StayInterim))
	if err != nil {
		t.Fatal(err)
	}
	if first.Split.Elsewhere == nil || first.Split.Elsewhere.Registered || first.TreatingCity != "shanghai" {
		t.Fatalf("interim bill: elsewhere %+v, treated in %q", first.Split.Elsewhere, first.TreatingCity)
	}
	w.clock.Set(day.Add(48 * time.Hour))
	last, _, err := w.med.SettleStay(ctx, ruijin, "RJ-S2", jx.Token, bill(t, medical.Inpatient, final), stay(medical.StayFinal))
	if err != nil {
		t.Fatal(err)
	}
	u := last.TrueUp
	if u == nil {
		t.Fatal("the final bill has no true-up")
	}
	ended := medical.PartsOf(first.Split).Plus(medical.PartsOf(last.Split)).Plus(u.Adjustment)
	if ended != (medical.Parts{Fund: 2245_88, Personal: 0, Cash: 2108_62}) || medical.PartsOf(u.Whole) != ended {
		t.Fatalf("stay ended as %+v (whole %+v, adjustment %+v), want fund 2245.88, cash 2108.62", ended, medical.PartsOf(u.Whole), u.Adjustment)
	}
	if u.Whole.Elsewhere == nil || u.Whole.Elsewhere.City != "shanghai" || u.Whole.Elsewhere.Registered {
		t.Fatalf("the whole stay priced as treated in %+v", u.Whole.Elsewhere)
	}
}
