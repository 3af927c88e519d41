package postgres_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
	"github.com/joinincard/engine/transit"
)

var update = flag.Bool("update", false, "write the settlement golden files anew")

// settleWorld is a city of two issuer banks' cards, three acquiring banks, merchants on two fee
// plans, two transit operators, a pharmacy and the Jiaxing medical fund, all on one store, with
// the purchase committer running.
type settleWorld struct {
	st      *postgres.Store
	clock   *settableClock
	city    *loadtest.City
	p       *postgres.Purchases
	med     *postgres.Medical
	transit *transitWorld
	set     *postgres.Settlement
	pharm   medical.Institution
	offset  int64
}

func newSettleWorld(t *testing.T, st *postgres.Store) *settleWorld {
	t.Helper()
	ctx := context.Background()
	w := &settleWorld{st: st, clock: &settableClock{now: sh("2026-03-02 07:00")}}
	w.st.Now = w.clock.Now
	w.city = loadtest.NewCity(2026, 2, 0, sh("2026-03-02 07:00"))
	w.city.Banks, w.city.Cities = []string{"ISS-A", "ISS-B"}, []string{"jiaxing"}
	for _, p := range []struct {
		kind     clearing.PartyKind
		id, name string
	}{
		{clearing.PartyBank, "ISS-A", "Issuer A 甲银行"}, {clearing.PartyBank, "ISS-B", "Issuer B 乙银行"},
		{clearing.PartyBank, "ACQ-X", "Acquirer X 丙银行"}, {clearing.PartyBank, "ACQ-Y", "Acquirer Y 丁银行"},
		{clearing.PartyBank, "ACQ-Z", "Acquirer Z 戊银行"},
		{clearing.PartyInsuranceFund, "jiaxing", "嘉兴市医疗保障基金 Jiaxing medical fund"},
		{clearing.PartyMerchant, "kiosk-9", "西湖便利店 West Lake kiosk"},
		{clearing.PartyMerchant, "pharm-1", "嘉兴大药房 Jiaxing Pharmacy"},
	} {
		if _, err := w.st.RegisterParty(ctx, p.kind, p.id, p.name); err != nil {
			t.Fatal(err)
		}
	}
	w.ingest(t, append(w.city.Registrations(), w.city.Funding(2000_00, 2000_00)...)...)
	p, err := postgres.NewPurchases(w.st)
	if err != nil {
		t.Fatal(err)
	}
	w.p = p
	for _, m := range []purchases.Merchant{
		{ID: "shop-1", Name: "Department Store 百货", MCC: "5311", City: "jiaxing", AcquiringBank: "ACQ-X", FeePlan: "domestic-standard"},
		{ID: "grocer-1", Name: "Corner Grocer", MCC: "5411", City: "jiaxing", AcquiringBank: "ACQ-Y", FeePlan: "domestic-small-merchant"},
	} {
		if err := p.RegisterMerchant(ctx, m, sha256.Sum256([]byte("key-"+m.ID))); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	ts, err := transit.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"HZMETRO", "HZBUS"} {
		o, _ := ts.Operator(op)
		if _, err := w.st.CreateTransitOperator(ctx, op, o.Name, keyHash(op)); err != nil {
			t.Fatal(err)
		}
	}
	w.transit = &transitWorld{st: w.st, ts: ts, clock: w.clock, city: w.city, cards: w.city.Cards}

	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedical(w.st, policies)
	in, _, err := w.med.RegisterInstitution(ctx, medical.Institution{ID: "pharm-1", Kind: medical.PharmacyOutlet, Tier: 1, City: "jiaxing"},
		sha256.Sum256([]byte("pharmacy key")))
	if err != nil {
		t.Fatal(err)
	}
	w.pharm = in
	for _, b := range []struct {
		kind     clearing.PartyKind
		id, bank string
	}{
		{clearing.PartyMerchant, "kiosk-9", "ACQ-X"}, {clearing.PartyMerchant, "pharm-1", "ACQ-Z"},
		{clearing.PartyInsuranceFund, "jiaxing", "ACQ-Z"},
		{clearing.PartyOperator, "HZMETRO", "ACQ-Y"}, {clearing.PartyOperator, "HZBUS", "ACQ-Z"},
	} {
		if err := w.st.SetPartyBank(ctx, b.kind, b.id, b.bank); err != nil {
			t.Fatal(err)
		}
	}
	w.set = newSettlement(t, w.st)
	return w
}

func (w *settleWorld) ingest(t *testing.T, evs ...events.Event) {
	t.Helper()
	msgs := messages(t, "card-events/0", w.offset, evs...)
	w.offset += int64(len(evs))
	d, err := w.st.Ingest(context.Background(), nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range d.DeadLetters {
		t.Fatalf("event refused: %s", dl.Reason)
	}
}

func (w *settleWorld) do(t *testing.T, op postgres.Operation, merchant string, auth ledger.ID, card int, amount string) postgres.PurchaseResult {
	t.Helper()
	m, err := w.p.MerchantByKey(context.Background(), sha256.Sum256([]byte("key-"+merchant)))
	if err != nil {
		t.Fatal(err)
	}
	r := postgres.PurchaseRequest{Op: op, Merchant: m, Key: uuid.Must(uuid.NewV7()), AuthorizationID: auth}
	if op == postgres.OpAuthorize {
		r.CardToken = w.city.Cards[card]
	}
	if r.Amount, err = purchases.ParseAmount(amount); err != nil {
		t.Fatal(err)
	}
	r.Hash = sha256.Sum256(r.Key[:])
	res, err := w.p.Do(context.Background(), r)
	if err != nil {
		t.Fatalf("%s %s %s: %v", op, merchant, amount, err)
	}
	return res
}

// day runs the hand-computed day of cycle 2026-03-03 (figures in fen):
//
//	card 0 (ISS-A), card 1 (ISS-B), each loaded with 2,000.00 (loads are not settled)
//	Monday's taps, charged at Tuesday's close of the travel day:
//	  card 0 HZMETRO 0101 in 08:00 (no exit: the maximum fare 10.00), 0122 in 18:00, 0101 out 18:50 (7.00)
//	  card 1 HZBUS single 09:00 (2.00)
//	Tuesday:
//	  the late exit of card 0's morning ride (0122 08:50) arrives: Monday is 7.00 + 7.00, 3.00 back
//	  card 0 at shop-1 (ACQ-X, standard plan): 300.00 authorized, 280.00 captured; fee 0.98 discount
//	    (0.35%) + 0.18 network (0.065% of 280.00 = 0.182, half-even) = 1.16; 80.00 refunded, which
//	    returns 0.28 of discount: shop-1 earns 280.00 - 1.16 - 80.00 + 0.28 = 199.12
//	  card 1 at grocer-1 (ACQ-Y, small-merchant plan): 120.00 captured; fee 0.30 + 0.08 = 0.38: 119.62
//	  card 1 at kiosk-9 (ACQ-X), a purchase cleared from Kafka: 55.50, no fee
//	  card 0's personal medical account receives 300.00 from the Jiaxing fund (not settled)
//	  card 0 at pharm-1 (ACQ-Z, tier 1 pharmacy): A1200.00; the yearly deductible 1,000.00, 50% of
//	    200.00 = 100.00 to the fund (ACQ-Z), 300.00 from the personal account, 800.00 cash
func (w *settleWorld) day(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	w.clock.Set(sh("2026-03-02 23:30"))
	w.transit.upload(t, "monday", `
		HZMETRO 0 2026-03-02 08:00 in 0101
		HZMETRO 0 2026-03-02 18:00 in 0122
		HZMETRO 0 2026-03-02 18:50 out 0101
		HZBUS 1 2026-03-02 09:00 single K155-01`)
	if rep := w.transit.close(t, sh("2026-03-03 10:00")); rep.Charged != 1700+200 {
		t.Fatalf("monday's close: %+v", rep)
	}
	w.clock.Set(sh("2026-03-03 11:00"))
	w.transit.upload(t, "late", `HZMETRO 0 2026-03-02 08:50 out 0122 dev=gate-xiasha`)
	if rep := w.transit.close(t, sh("2026-03-03 11:05")); rep.Charged != -300 {
		t.Fatalf("the late tap's re-pricing: %+v", rep)
	}
	w.clock.Set(sh("2026-03-03 12:00"))
	a := w.do(t, postgres.OpAuthorize, "shop-1", ledger.ID{}, 0, "300.00").Authorization
	if c := w.do(t, postgres.OpCapture, "shop-1", a.ID, 0, "280.00").Close; c.Fee.Total() != 116 {
		t.Fatalf("shop-1's fee %+v", c.Fee)
	}
	g := w.do(t, postgres.OpAuthorize, "grocer-1", ledger.ID{}, 1, "120.00").Authorization
	if c := w.do(t, postgres.OpCapture, "grocer-1", g.ID, 1, "120.00").Close; c.Fee.Total() != 38 {
		t.Fatalf("grocer-1's fee %+v", c.Fee)
	}
	w.ingest(t, events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: w.clock.Now().Truncate(time.Millisecond),
		CardToken: w.city.Cards[1], Data: &events.PurchaseCleared{MerchantID: "kiosk-9", MCC: "5411", Amount: events.Money{Minor: 55_50, Currency: "CNY"}}})
	w.clock.Set(sh("2026-03-03 14:00"))
	if r := w.do(t, postgres.OpRefund, "shop-1", a.ID, 0, "80.00").Refund; r.FeeReturned.Total() != 28 {
		t.Fatalf("the refund's fee %+v", r.FeeReturned)
	}
	w.clock.Set(sh("2026-03-03 15:00"))
	w.ingest(t, w.city.Contribution(w.city.Cards[0], 300_00))
	s, _, err := w.med.Settle(ctx, w.pharm, "RX-0001", w.city.Cards[0], medical.Bill{VisitKind: medical.Pharmacy,
		Lines: []medical.BillLine{{Code: "XJ01CAA040E001010100245", Quantity: 4000, UnitPrice: 30}}}) // amoxicillin, class A in Jiaxing
	if err != nil {
		t.Fatal(err)
	}
	if s.Split.Fund != 100_00 || s.Split.Personal != 300_00 || s.Split.Cash != 800_00 {
		t.Fatalf("pharmacy split %+v", s.Split)
	}
}

// The hand-computed day: each bank's position and file totals as worked out in day's comment,
// the positions and the fee income summing to zero, clearing accounts emptied, files as the
// golden ones, and a rejected item returned and offered again the next cycle.
func TestSettlementOfAHandComputedDay(t *testing.T) {
	ctx := context.Background()
	w := newSettleWorld(t, pgtest.NewStore(t))
	w.day(t)
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	w.clock.Set(sh("2026-03-03 23:10"))
	c, err := w.set.Close(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != postgres.CycleClosed || c.ValueDate != (settlement.Date{Year: 2026, Month: 3, Day: 4}) || c.FeeIncome != 116-28+38 {
		t.Fatalf("cycle %+v", c)
	}
	pos, err := w.set.Positions(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]settlement.Position{
		"ISS-A": {Bank: "ISS-A", Items: 1, Spent: 1014_00, SpentTransit: 14_00, SpentPurchases: 200_00, SpentMedical: 800_00, Net: -1014_00},
		"ISS-B": {Bank: "ISS-B", Items: 1, Spent: 177_50, SpentTransit: 2_00, SpentPurchases: 175_50, Net: -177_50},
		"ACQ-X": {Bank: "ACQ-X", Items: 2, Earned: 199_12 + 55_50, Fees: 88, Net: 254_62},
		"ACQ-Y": {Bank: "ACQ-Y", Items: 2, Earned: 14_00 + 119_62, Fees: 38, Net: 133_62},
		"ACQ-Z": {Bank: "ACQ-Z", Items: 4, Earned: 2_00 + 1200_00, MedicalFundShare: 400_00, Net: 802_00},
	}
	sum := c.FeeIncome
	for bank, wp := range want {
		if got := pos.Bank(bank); got != wp {
			t.Errorf("%s: position\n got %+v\nwant %+v", bank, got, wp)
		}
		sum += pos.Bank(bank).Net
	}
	if len(pos.Banks()) != len(want) || sum != 0 {
		t.Errorf("banks %v; positions and fee income sum to %d", pos.Banks(), sum)
	}
	// Every clearing account settled is empty; the banks' positions hold the cycle.
	for _, p := range []struct {
		kind clearing.PartyKind
		id   string
	}{{clearing.PartyMerchant, "shop-1"}, {clearing.PartyMerchant, "grocer-1"}, {clearing.PartyMerchant, "kiosk-9"},
		{clearing.PartyMerchant, "pharm-1"}, {clearing.PartyOperator, "HZMETRO"}, {clearing.PartyOperator, "HZBUS"}} {
		if b := balance(t, w.st, clearing.PartyAccount(p.kind, p.id)); b.Net() != 0 {
			t.Errorf("%s after settlement: %d", p.id, b.Net())
		}
	}
	for bank, wp := range want {
		if b := balance(t, w.st, settlement.PositionAccount(bank)); b.Net() != wp.Net {
			t.Errorf("%s's settlement position %d, want %d", bank, b.Net(), wp.Net)
		}
	}

	// The files: totals as the positions, numbered 2 (the ledger's first day, Monday with its
	// loads, was the first cycle), the same bytes as the golden files.
	m, err := w.set.Manifest(ctx, "", day)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2*len(want) {
		t.Fatalf("manifest of %d files", len(m.Files))
	}
	for bank, wp := range want {
		r, err := w.set.File(ctx, bank, day)
		if err != nil {
			t.Fatal(err)
		}
		if h := r.Header; h.Sequence != 2 || h.NumberOfEntries != wp.Items || h.Net != wp.Net || h.Copy {
			t.Errorf("%s's file header %+v", bank, h)
		}
		for _, f := range []bankfile.Format{bankfile.FormatXML, bankfile.FormatCSV} {
			var buf bytes.Buffer
			if _, dup, err := w.set.WriteFile(ctx, &buf, bank, day, f, true); err != nil || dup {
				t.Fatalf("%s %s: dup %v, %v", bank, f, dup, err)
			}
			if err := m.Verify(settlement.FileName(r.Header, f), buf.Bytes()); err != nil {
				t.Errorf("%s %s against the manifest: %v", bank, f, err)
			}
			golden(t, filepath.Join("testdata", "settlement", fmt.Sprintf("%s-%s.%s", day, bank, f)), buf.Bytes())
			read := bankfile.ReadXML
			if f == bankfile.FormatCSV {
				read = bankfile.ReadCSV
			}
			file, err := read(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("%s %s does not read back: %v", bank, f, err)
			}
			if file.Header.ControlSum != r.Header.ControlSum || len(file.Items) != int(wp.Items) {
				t.Errorf("%s %s read back: %+v", bank, f, file.Header)
			}
			// Fetched again: a duplicate copy, marked so.
			buf.Reset()
			if _, dup, err := w.set.WriteFile(ctx, &buf, bank, day, f, true); err != nil || !dup {
				t.Fatalf("%s %s fetched again: dup %v, %v", bank, f, dup, err)
			}
			again, err := read(bytes.NewReader(buf.Bytes()))
			if err != nil || !again.Header.Copy || again.Header.Sequence != 2 {
				t.Fatalf("%s %s copy: %+v, %v", bank, f, again.Header, err)
			}
		}
	}
	var mbuf bytes.Buffer
	if err := bankfile.WriteManifest(&mbuf, m); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "settlement", fmt.Sprintf("%s-manifest.txt", day)), mbuf.Bytes())

	// ACQ-X rejects kiosk-9's item: its money goes back to kiosk-9's clearing account, and the
	// next cycle offers it again, flagged.
	rx, err := w.set.File(ctx, "ACQ-X", day)
	if err != nil {
		t.Fatal(err)
	}
	kiosk := itemOf(t, w.st, day, clearing.PartyAccount(clearing.PartyMerchant, "kiosk-9"))
	ack := &bankfile.Ack{MessageID: "ACK-X-0001", CreatedAt: sh("2026-03-04 08:00"), FileMessageID: rx.Header.MessageID, BankID: "ACQ-X",
		Status: bankfile.StatusPartial, Items: []bankfile.ItemStatus{{ItemID: settlement.FileItemID(kiosk), ReasonCode: "AC04", Reason: "account closed"}}}
	w.clock.Set(sh("2026-03-04 08:05"))
	res, replayed, err := w.set.Acknowledge(ctx, "ACQ-X", ack)
	if err != nil || replayed || res.Rejected != 1 || res.Returned != 55_50 || res.Items != 2 {
		t.Fatalf("acknowledgement: %+v %v %v", res, replayed, err)
	}
	if _, replayed, err := w.set.Acknowledge(ctx, "ACQ-X", ack); err != nil || !replayed {
		t.Fatalf("the same report again: replayed %v, %v", replayed, err)
	}
	other := *ack
	other.Status, other.Items = bankfile.StatusAccepted, nil
	if _, _, err := w.set.Acknowledge(ctx, "ACQ-X", &other); !errors.Is(err, postgres.ErrAckConflict) {
		t.Fatalf("another report for the file: %v", err)
	}
	if _, _, err := w.set.Acknowledge(ctx, "ACQ-Y", ack); !errors.Is(err, postgres.ErrAckInvalid) {
		t.Fatalf("another bank's report: %v", err)
	}
	if b := balance(t, w.st, clearing.PartyAccount(clearing.PartyMerchant, "kiosk-9")); b.Net() != 55_50 {
		t.Fatalf("kiosk-9 after the return: %d", b.Net())
	}
	next := settlement.AddDays(day, 1)
	w.clock.Set(sh("2026-03-04 23:10"))
	if _, err := w.set.Close(ctx, next); err != nil {
		t.Fatal(err)
	}
	pos2, err := w.set.Positions(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if got := pos2.Bank("ACQ-X"); got.Items != 1 || got.Reoffered != 55_50 || got.Net != 55_50 {
		t.Fatalf("ACQ-X on %s: %+v", next, got)
	}
	if b := balance(t, w.st, clearing.PartyAccount(clearing.PartyMerchant, "kiosk-9")); b.Net() != 0 {
		t.Fatalf("kiosk-9 after the item was offered again: %d", b.Net())
	}
	rx2, err := w.set.File(ctx, "ACQ-X", next)
	if err != nil || rx2.Header.Sequence != 3 {
		t.Fatalf("ACQ-X's second file: %+v %v", rx2.Header, err)
	}
}

func itemOf(t *testing.T, st *postgres.Store, d settlement.Date, account ledger.ID) ledger.ID {
	t.Helper()
	var id [16]byte
	if err := st.Pool().QueryRow(context.Background(), `SELECT item_id FROM settlement_items WHERE cycle_date = $1 AND account_id = $2`,
		settlement.DateTime(d), [16]byte(account)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return ledger.ID(id)
}

// golden compares got with the file at path, or writes it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got %q\nwant %q", path, i+1, g, w)
			}
		}
	}
}
