package clearing_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
)

var day = time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC)

// world is a city with its parties registered and nothing else.
func world(city *loadtest.City) *clearing.View {
	v := &clearing.View{Cards: map[string]*cards.Card{}, Parties: map[ledger.ID]bool{}, Processed: map[uuid.UUID]clearing.Processed{},
		Cleared: map[uuid.UUID]*clearing.ClearedPurchase{}}
	for _, p := range city.Parties() {
		v.Parties[clearing.PartyAccount(p.Kind, p.ID)] = true
	}
	return v
}

func decoded(t *testing.T, evs ...events.Event) []clearing.Message {
	t.Helper()
	msgs := make([]clearing.Message, len(evs))
	for i, e := range evs {
		raw := loadtest.Encode(e)
		d, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = clearing.Message{Source: "card-events/0", Offset: int64(i), Raw: raw, Event: d}
	}
	return msgs
}

func outcomes(d *clearing.Decision) []string {
	var out []string
	for _, p := range d.Processed {
		s := string(p.Type) + " " + string(p.Status)
		if p.Reason != "" {
			s += ": " + p.Reason
		}
		out = append(out, s)
	}
	return out
}

// checkOutcomes fails the test unless d decided its events as want says, in order.
func checkOutcomes(t *testing.T, d *clearing.Decision, want []string) {
	t.Helper()
	if got := outcomes(d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDecideInBatchOrder(t *testing.T) {
	city := loadtest.NewCity(1, 2, 1, day)
	regs := city.Registrations()
	funds := city.Funding(1000, 1000)
	buy := city.Purchases(1, 500)[0]
	tap := city.Tap(city.Cards[1], events.DirectionIn, 1)
	contribution := city.Contribution(city.Cards[0], 300)
	v := world(city)

	// A purchase before its card is registered is refused; after, in the same batch, it plans.
	early := buy
	early.ID = uuid.Must(uuid.NewV7())
	d := clearing.Decide(decoded(t, append([]events.Event{early}, append(append(regs, funds...), buy, tap, contribution)...)...), v, day)
	want := []string{
		"purchase.cleared rejected: unknown card",
		"card.registered accepted", "card.registered accepted",
		"funds.loaded applied", "funds.loaded applied",
		"purchase.cleared applied",
		"transit.tap accepted",
		"medical.contribution applied",
	}
	checkOutcomes(t, d, want)
	if len(d.NewCards) != 2 || len(d.Taps) != 1 || len(d.Transfers) != 4 || len(d.DeadLetters) != 1 {
		t.Fatalf("new cards %d, taps %d, transfers %d, dead letters %d", len(d.NewCards), len(d.Taps), len(d.Transfers), len(d.DeadLetters))
	}
	for _, tr := range d.Transfers {
		if tr.Amount <= 0 || tr.DebitAccountID == tr.CreditAccountID || tr.ID.IsZero() || tr.UserData.IsZero() {
			t.Errorf("malformed plan %+v", tr)
		}
	}
	// The purchase moves the card's funds to the merchant.
	p := d.Transfers[2]
	if p.DebitAccountID != cards.AccountID("funds", buy.CardToken) ||
		p.CreditAccountID != clearing.PartyAccount(clearing.PartyMerchant, buy.Data.(*events.PurchaseCleared).MerchantID) ||
		p.Code != clearing.CodePurchase {
		t.Errorf("purchase plan %+v", p)
	}

	// The same events again: duplicates, with the decisions they repeat; one with changed
	// content is a conflict.
	changed := buy
	changed.Data = &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 1, Currency: "CNY"}, MCC: "5411"}
	again := clearing.Decide(decoded(t, funds[0], tap, changed), v, day)
	if again.Duplicates != 2 || len(again.Replayed) != 2 || again.Replayed[0].Status != clearing.Applied || len(again.Processed) != 0 {
		t.Fatalf("redelivery: %d duplicates, %+v", again.Duplicates, again.Replayed)
	}
	if len(again.DeadLetters) != 1 || again.DeadLetters[0].Kind != clearing.Conflict {
		t.Fatalf("conflict: %+v", again.DeadLetters)
	}
}

func TestDecideRefusals(t *testing.T) {
	city := loadtest.NewCity(2, 1, 1, day)
	v := world(city)
	regs := city.Registrations()
	clearing.Decide(decoded(t, regs...), v, day)
	card := city.Cards[0]

	city.Funding(100, 100) // the generator only draws purchases a card can afford
	unknownMerchant := city.Purchases(1, 1)
	unknownMerchant[0].Data.(*events.PurchaseCleared).MerchantID = "m-nobody"
	// The original's id is fixed, with no run of digits: a random one can hold a run that the
	// reason's redaction takes for a personal number.
	refundOfNothing := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseRefunded, OccurredAt: day, CardToken: card,
		Data: &events.PurchaseRefunded{MerchantID: city.Merchants[0], OriginalEventID: uuid.MustParse("abcdefab-cdef-7abc-8def-abcdefabcdef"),
			Amount: events.Money{Minor: 1, Currency: "CNY"}}}
	again := regs[0]
	again.ID = uuid.Must(uuid.NewV7())
	closeIt := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypeCardStatusChanged, OccurredAt: day, CardToken: card,
		Data: &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left"}}
	load := city.Funding(100, 100)[0]
	d := clearing.Decide(decoded(t, unknownMerchant[0], refundOfNothing, again, closeIt, load), v, day)
	want := []string{
		`purchase.cleared rejected: merchant "m-nobody" is not registered`,
		"purchase.refunded rejected: original purchase " + refundOfNothing.Data.(*events.PurchaseRefunded).OriginalEventID.String() + " was not applied",
		"card.registered rejected: card already registered",
		"card.status_changed accepted",
		"funds.loaded rejected: card is closed",
	}
	checkOutcomes(t, d, want)
	if len(d.DeadLetters) != 4 {
		t.Fatalf("%d dead letters, want 4", len(d.DeadLetters))
	}

	// A card whose issuer bank is not registered cannot register.
	other := loadtest.NewCity(3, 1, 1, day)
	bare := &clearing.View{Cards: map[string]*cards.Card{}, Parties: map[ledger.ID]bool{}, Processed: map[uuid.UUID]clearing.Processed{}}
	d = clearing.Decide(decoded(t, other.Registrations()...), bare, day)
	if got := outcomes(d); len(got) != 1 || !strings.Contains(got[0], "issuer bank") {
		t.Fatalf("registration without its bank: %v", got)
	}
}

// Settle turns the ledger's refusal of a planned transfer into the event's refusal.
func TestSettleRecordsLedgerRefusals(t *testing.T) {
	city := loadtest.NewCity(4, 1, 1, day)
	v := world(city)
	evs := append(city.Registrations(), city.Funding(100, 100)...)
	evs = append(evs, city.Purchases(1, 50)...)
	d := clearing.Decide(decoded(t, evs...), v, day)
	results := []ledger.Result{ledger.Created, ledger.InsufficientFunds}
	if err := d.Settle(results, func(string, int64) []byte { return []byte("raw") }); err != nil {
		t.Fatal(err)
	}
	last := d.Processed[len(d.Processed)-1]
	if last.Status != clearing.Rejected || last.Reason != "insufficient_funds" || !last.Transfer.IsZero() {
		t.Fatalf("refused purchase: %+v", last)
	}
	if len(d.DeadLetters) != 1 || string(d.DeadLetters[0].Raw) != "raw" {
		t.Fatalf("dead letters: %+v", d.DeadLetters)
	}
	if err := d.Settle(results[:1], nil); err == nil {
		t.Fatal("settle with too few results succeeded")
	}
}

func TestTransferIDIsDeterministicAndTimeOrdered(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	a := clearing.TransferID(id, day, 0)
	if a != clearing.TransferID(id, day, 0) {
		t.Fatal("the same event and leg named two transfers")
	}
	if a == clearing.TransferID(id, day, 1) || a == clearing.TransferID(uuid.Must(uuid.NewV7()), day, 0) {
		t.Fatal("different legs or events named one transfer")
	}
	later := clearing.TransferID(uuid.Must(uuid.NewV7()), day.Add(time.Millisecond), 0)
	if strings.Compare(a.String(), later.String()) >= 0 {
		t.Fatalf("%s does not sort before the later %s", a, later)
	}
	if a.String()[14] != '7' {
		t.Fatalf("%s is not a version 7 UUID", a)
	}
}

// A refund of a purchase cleared earlier in the same messages starts the next batch: it must read
// the ledger's answer to the purchase.
func TestIndependentEndsBeforeARefundOfThePurchaseBefore(t *testing.T) {
	city := loadtest.NewCity(5, 2, 1, day)
	city.Funding(1000, 1000)
	buys := city.Purchases(2, 100)
	earlier := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: day, CardToken: city.Cards[0],
		Data: &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 10, Currency: "CNY"}, MCC: "5411"}}
	msgs := decoded(t, city.Refund(earlier, 5), buys[0], city.Refund(buys[1], 1), city.Refund(buys[0], 1), buys[1])
	if n := clearing.Independent(msgs); n != 3 {
		t.Fatalf("independent prefix %d, want 3 (up to the refund of the purchase at 1)", n)
	}
	if n := clearing.Independent(msgs[3:]); n != 2 {
		t.Fatalf("independent prefix of the rest %d, want 2", n)
	}
}

// offlinePurchase is a city of one card (seeded by seed) and the view after its registration,
// where a purchase of 10.00 CNY at its merchant, cleared without an authorization, was applied:
// the view holds it as processed and as cleared, nothing refunded yet.
func offlinePurchase(t *testing.T, seed uint64) (*loadtest.City, *clearing.View, string, events.Event) {
	t.Helper()
	city := loadtest.NewCity(seed, 1, 1, day)
	v := world(city)
	clearing.Decide(decoded(t, city.Registrations()...), v, day)
	card := city.Cards[0]
	buy := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: day, CardToken: card,
		Data: &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 1000, Currency: "CNY"}, MCC: "5411"}}
	purchase := ledger.Transfer{ID: clearing.TransferID(buy.ID, day, 0), DebitAccountID: cards.AccountID("funds", card),
		CreditAccountID: clearing.PartyAccount(clearing.PartyMerchant, city.Merchants[0]), Amount: 1000, Code: clearing.CodePurchase}
	v.Processed[buy.ID] = clearing.Processed{EventID: buy.ID, Type: buy.Type, Status: clearing.Applied, Transfer: purchase.ID}
	v.Cleared[buy.ID] = &clearing.ClearedPurchase{EventID: buy.ID, Type: buy.Type, Transfer: purchase}
	return city, v, card, buy
}

// Refunds of a purchase cleared without an authorization are transfers of their own, counted
// against the purchase across the batch; a refund the ledger refused does not count.
func TestClearedRefundsCountAgainstThePurchase(t *testing.T) {
	city, v, card, buy := offlinePurchase(t, 6)
	v.Cleared[buy.ID].Refunded, v.Cleared[buy.ID].Refunds = 300, 1
	funds := cards.AccountID("funds", card)
	merchant := clearing.PartyAccount(clearing.PartyMerchant, city.Merchants[0])
	d := clearing.Decide(decoded(t, city.Refund(buy, 400), city.Refund(buy, 200), city.Refund(buy, 101), city.Refund(buy, 100)), v, day)
	want := []string{"purchase.refunded applied", "purchase.refunded applied",
		"purchase.refunded rejected: refund of 1.01 CNY exceeds the 1.00 CNY purchased and not yet refunded", "purchase.refunded applied"}
	checkOutcomes(t, d, want)
	for _, tr := range d.Transfers {
		if tr.DebitAccountID != merchant || tr.CreditAccountID != funds || tr.Code != clearing.CodeRefund || tr.Flags != 0 || !tr.Ref.IsZero() {
			t.Errorf("refund transfer %+v", tr)
		}
	}
	// The ledger refuses the first: the later ones move down in sequence and total.
	if err := d.Settle([]ledger.Result{ledger.OverflowsCredits, ledger.Created, ledger.Created}, func(string, int64) []byte { return nil }); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range d.ClearedRefunds {
		got = append(got, fmt.Sprintf("%d:%d/%d", r.Seq, r.Amount, r.RefundedTotal))
	}
	if strings.Join(got, " ") != "2:200/500 3:100/600" {
		t.Fatalf("refunds recorded %v", got)
	}
}

// TestDeadLettersKeepNoPersonalNumber: a producer that put a card number in card_token (and the
// Kafka key) and a passport number in passport_token gets a dead letter with both taken out, a
// reason that says so by field, and the keyed hash of the original bytes.
func TestDeadLettersKeepNoPersonalNumber(t *testing.T) {
	const pan, passport = "6228480402564899", "E12345678"
	city := loadtest.NewCity(1, 1, 1, day)
	reg := city.Registrations()[0]
	msg := strings.Replace(string(loadtest.Encode(reg)), `"card_token":"`+reg.CardToken+`"`, `"card_token":"`+pan+`"`, 1)
	raw := []byte(strings.Replace(msg, reg.Data.(*events.CardRegistered).PassportToken, passport, 1))
	if !strings.Contains(string(raw), pan) || !strings.Contains(string(raw), passport) {
		t.Fatalf("the message does not hold both numbers: %s", raw)
	}
	_, decodeErr := events.DecodeMessage([]byte(pan), raw)
	if decodeErr == nil {
		t.Fatal("the decoder took a card number in clear")
	}
	fingerprint := func(b []byte) []byte { return []byte("hmac of " + string(b)) }
	v := world(city)
	v.Fingerprint = fingerprint
	d := clearing.Decide([]clearing.Message{{Source: "card-events/0", Offset: 7, Raw: raw, DecodeErr: decodeErr}}, v, day)
	if len(d.DeadLetters) != 1 {
		t.Fatalf("%d dead letters", len(d.DeadLetters))
	}
	dl := d.DeadLetters[0]
	for _, n := range []string{pan, passport} {
		if strings.Contains(string(dl.Raw), n) || strings.Contains(dl.Reason, n) {
			t.Errorf("the dead letter keeps %s in clear: %s (%s)", n, dl.Raw, dl.Reason)
		}
	}
	if want := "[redacted: card_token, data.passport_token]"; !strings.HasPrefix(dl.Reason, "malformed: card_token: ") || !strings.HasSuffix(dl.Reason, want) {
		t.Errorf("reason %q, want the decoder's and %q", dl.Reason, want)
	}
	if string(dl.Fingerprint) != "hmac of "+string(raw) {
		t.Errorf("fingerprint %q, want the original bytes' keyed hash", dl.Fingerprint)
	}
	if again := clearing.RedactDeadLetter(dl, fingerprint); string(again.Raw) != string(dl.Raw) || again.Reason != dl.Reason ||
		string(again.Fingerprint) != string(dl.Fingerprint) {
		t.Errorf("redacting a redacted dead letter changed it: %+v", again)
	}

	// A message the database refused is dead-lettered the same way, and the database's message,
	// which may quote the value, too.
	poison := clearing.Poison(clearing.Message{Source: "card-events/0", Offset: 8, Raw: raw, DecodeErr: decodeErr},
		`cannot be applied: invalid input "`+pan+`"`, fingerprint)
	if pd := poison.DeadLetters[0]; strings.Contains(string(pd.Raw), pan) || strings.Contains(pd.Reason, pan) ||
		strings.Contains(string(pd.Raw), passport) || string(pd.Fingerprint) != "hmac of "+string(raw) {
		t.Errorf("poison dead letter %+v", pd)
	}

	// A dead letter with nothing to take out keeps its bytes and has no fingerprint.
	valid := decoded(t, city.Registrations()[0])
	v = world(city)
	v.Fingerprint = fingerprint
	v.Processed[valid[0].Event.ID] = clearing.Processed{EventID: valid[0].Event.ID, Type: valid[0].Event.Type, Source: "x"}
	d = clearing.Decide(valid, v, day)
	if len(d.DeadLetters) != 1 || string(d.DeadLetters[0].Raw) != string(valid[0].Raw) || d.DeadLetters[0].Fingerprint != nil ||
		strings.Contains(d.DeadLetters[0].Reason, "redacted") {
		t.Errorf("a conflict with nothing personal: %+v", d.DeadLetters)
	}
}

// TestRejectionReasonsKeepNoCardNumber: a reason naming what the event named (here a merchant id
// that is a card number) keeps no card number, in the decision nor in its dead letter.
func TestRejectionReasonsKeepNoCardNumber(t *testing.T) {
	const pan = "6228480402564899"
	city := loadtest.NewCity(1, 1, 1, day)
	v := world(city)
	funds := city.Funding(1000, 1000)
	buy := city.Purchases(1, 100)[0]
	buy.Data.(*events.PurchaseCleared).MerchantID = pan
	d := clearing.Decide(decoded(t, append(append(city.Registrations(), funds...), buy)...), v, day)
	p := d.Processed[len(d.Processed)-1]
	if p.Status != clearing.Rejected || p.Reason != "merchant "+events.Withheld+" is not registered" {
		t.Errorf("decision %+v", p)
	}
	if len(d.DeadLetters) != 1 || strings.Contains(d.DeadLetters[0].Reason, pan) {
		t.Errorf("dead letters %+v", d.DeadLetters)
	}
}

// A conflict names where the event id was used before: the topic, partition and offset of a
// whole record, or the transfer of an event recorded by its transfer only (no source).
func TestConflictNamesTheEarlierRecord(t *testing.T) {
	city := loadtest.NewCity(1, 2, 1, day)
	city.Funding(1000, 1000)
	buy := city.Purchases(1, 500)[0]
	changed := buy
	changed.Data = &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 1, Currency: "CNY"}, MCC: "5411"}
	transfer := clearing.TransferID(buy.ID, buy.OccurredAt, 0)
	for _, tc := range []struct {
		prior clearing.Processed
		want  string
	}{
		{clearing.Processed{EventID: buy.ID, Type: buy.Type, Status: clearing.Applied, Transfer: transfer, Source: "card-events/3", Offset: 42},
			"conflict: event id used before (purchase.cleared at card-events/3 offset 42) with different content"},
		{clearing.Processed{EventID: buy.ID, Type: buy.Type, Status: clearing.Applied, Transfer: transfer},
			"conflict: event id used before (purchase.cleared applied as transfer " + transfer.String() + ") with different content"},
	} {
		v := world(city)
		v.Processed[buy.ID] = tc.prior
		d := clearing.Decide(decoded(t, changed), v, day)
		if len(d.DeadLetters) != 1 || d.DeadLetters[0].Kind != clearing.Conflict || d.DeadLetters[0].Reason != tc.want {
			t.Errorf("dead letters %+v, want one saying %q", d.DeadLetters, tc.want)
		}
	}
}

// A purchase cleared without an authorization (an offline purchase) at a category the card does
// not pay (betting, quasi-cash, money transfer) is refused, as an authorization there would have
// been, and nothing moves; at a category it pays the card is charged.
func TestDecideRefusesPurchasesClearedAtCategoriesTheCardDoesNotPay(t *testing.T) {
	city := loadtest.NewCity(1, 1, 1, day)
	v := world(city)
	clearing.Decide(decoded(t, city.Registrations()...), v, day)
	buy := func(mcc string) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: day, CardToken: city.Cards[0],
			Data: &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 500, Currency: "CNY"}, MCC: mcc}}
	}
	var evs []events.Event
	var want []string
	for _, mcc := range cards.RefusedMCCs {
		evs = append(evs, buy(mcc))
		want = append(want, "purchase.cleared rejected: merchant category "+mcc+" is one the card does not pay")
	}
	evs = append(evs, buy("5411"))
	want = append(want, "purchase.cleared applied")
	d := clearing.Decide(decoded(t, append(city.Funding(1000, 1000), evs...)...), v, day)
	got := outcomes(d)[1:] // after the funding
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(d.Transfers) != 2 || d.Transfers[1].Code != clearing.CodePurchase || len(d.DeadLetters) != len(cards.RefusedMCCs) {
		t.Fatalf("transfers %+v, dead letters %d", d.Transfers, len(d.DeadLetters))
	}
}

// TestDecideRefusesMoneyNotInTheCardsCurrency: the card's accounts are in CNY, and the ledger's
// transfers carry no currency of their own, so an event stating its amount in another currency
// the engine books (USD, HKD, ...) is refused, naming both: taken as it stands it would move
// 1.00 USD as 1.00 CNY.
func TestDecideRefusesMoneyNotInTheCardsCurrency(t *testing.T) {
	city, v, card, buy := offlinePurchase(t, 7)

	usd := events.Money{Minor: 100, Currency: "USD"}
	at := func(typ events.Type, data events.Data) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: typ, OccurredAt: day, CardToken: card, Data: data}
	}
	load := at(events.TypeFundsLoaded, &events.FundsLoaded{Amount: usd, BankReference: "REF-USD"})
	offline := at(events.TypePurchaseCleared, &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: usd, MCC: "5411"})
	refund := at(events.TypePurchaseRefunded, &events.PurchaseRefunded{MerchantID: city.Merchants[0], OriginalEventID: buy.ID, Amount: usd})
	contribution := at(events.TypeMedicalContribution, &events.MedicalContribution{EmployerID: "employer-1", Amount: usd,
		Period: events.Period{Year: day.Year(), Month: day.Month()}})
	d := clearing.Decide(decoded(t, load, offline, refund, contribution), v, day)
	want := []string{
		"funds.loaded rejected: the amount is in USD, the card's accounts are in CNY",
		"purchase.cleared rejected: the amount is in USD, the card's accounts are in CNY",
		"purchase.refunded rejected: the amount is in USD, the card's accounts are in CNY",
		"medical.contribution rejected: the amount is in USD, the card's accounts are in CNY",
	}
	checkOutcomes(t, d, want)
	if len(d.Transfers) != 0 {
		t.Fatalf("%d transfers planned, want none", len(d.Transfers))
	}
}

// TestDecideRefusesPurchasesClearedAtMerchantsRegisteredInCategoriesTheCardDoesNotPay: an
// offline purchase names its category, but a merchant registered as a casino is not paid by a
// record that calls it a grocer.
func TestDecideRefusesPurchasesClearedAtMerchantsRegisteredInCategoriesTheCardDoesNotPay(t *testing.T) {
	city := loadtest.NewCity(1, 1, 1, day)
	v := world(city)
	clearing.Decide(decoded(t, city.Registrations()...), v, day)
	merchant := city.Merchants[0]
	buy := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: day, CardToken: city.Cards[0],
		Data: &events.PurchaseCleared{MerchantID: merchant, Amount: events.Money{Minor: 500, Currency: "CNY"}, MCC: "5411"}}
	v.MerchantCategories = map[ledger.ID]string{clearing.PartyAccount(clearing.PartyMerchant, merchant): "7995"}
	d := clearing.Decide(decoded(t, append(city.Funding(1000, 1000), buy)...), v, day)
	want := fmt.Sprintf("purchase.cleared rejected: merchant %q is registered in category 7995, one the card does not pay", merchant)
	if got := outcomes(d); len(got) != 2 || got[1] != want {
		t.Fatalf("decisions %q, want %q after the funding", got, want)
	}
	// Registered in a category the card pays, the record is applied.
	v.MerchantCategories[clearing.PartyAccount(clearing.PartyMerchant, merchant)] = "5411"
	again := buy
	again.ID = uuid.Must(uuid.NewV7())
	if got := outcomes(clearing.Decide(decoded(t, again), v, day)); len(got) != 1 || got[0] != "purchase.cleared applied" {
		t.Fatalf("decisions %q", got)
	}
}

// TestDecideRefusesContributionsToAClosedCard: a closed card's personal medical account pays no
// bill again, so an employer's contribution to it is refused, as a load of its funds is, rather
// than kept where nothing can spend it.
func TestDecideRefusesContributionsToAClosedCard(t *testing.T) {
	city := loadtest.NewCity(2, 1, 1, day)
	v := world(city)
	clearing.Decide(decoded(t, city.Registrations()...), v, day)
	card := city.Cards[0]
	closeIt := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypeCardStatusChanged, OccurredAt: day, CardToken: card,
		Data: &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left"}}
	d := clearing.Decide(decoded(t, city.Contribution(card, 300), closeIt, city.Contribution(card, 300)), v, day)
	want := []string{"medical.contribution applied", "card.status_changed accepted", "medical.contribution rejected: card is closed"}
	checkOutcomes(t, d, want)
}

// TestDecideRefusesPermitsBeyondWhatIsIssuedFromToday: a work permit runs at most five years, and
// the decoder counts them from the event's occurred_at, which a producer's clock may have put years
// ahead. The engine counts them from its own day too: a registration or renewal dated in the future
// with a permit more than five years from today is refused; five years to the day is accepted.
func TestDecideRefusesPermitsBeyondWhatIsIssuedFromToday(t *testing.T) {
	city := loadtest.NewCity(3, 3, 1, day)
	v := world(city)
	regs := city.Registrations()
	future := day.AddDate(3, 0, 0)
	y, m, dd := day.In(cards.Shanghai).Date()
	fiveYears := events.Date{Year: y + events.MaxPermitYears, Month: m, Day: dd}
	dayAfter := events.Date{Year: y + events.MaxPermitYears, Month: m, Day: dd + 1}
	permit := func(e events.Event, until events.Date, at time.Time) events.Event {
		reg := *e.Data.(*events.CardRegistered)
		reg.PermitValidUntil = until
		e.Data, e.OccurredAt = &reg, at
		return e
	}
	renewal := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypeCardPermitRenewed, OccurredAt: future,
		CardToken: city.Cards[2], Data: &events.CardPermitRenewed{PermitValidUntil: dayAfter}}
	d := clearing.Decide(decoded(t, permit(regs[0], dayAfter, future), permit(regs[1], fiveYears, future), regs[2], renewal), v, day)
	checkOutcomes(t, d, []string{
		"card.registered rejected: permit_valid_until " + dayAfter.String() + " is more than 5 years from today, longer than a work permit is issued for",
		"card.registered accepted",
		"card.registered accepted",
		"card.permit_renewed rejected: permit_valid_until " + dayAfter.String() + " is more than 5 years from today, longer than a work permit is issued for",
	})
}

// TestRegistrationRefusalsKeepNoPersonalNumber: a registration naming a personal number as its
// insurance city or issuer bank is refused without repeating it, in the decision nor in its dead
// letter.
func TestRegistrationRefusalsKeepNoPersonalNumber(t *testing.T) {
	// A card number there is refused as malformed before any decision (TestRejectionReasonsKeepNoCardNumber).
	for _, n := range []string{"E98765432X", "EA1234567", "C01X00T47", "11010519491231002X",
		"USA310078110101", "933100198001011237", "WP20250001234"} {
		for _, field := range []string{"insurance_city", "issuer_bank"} {
			city := loadtest.NewCity(5, 1, 1, day)
			v := world(city)
			reg := city.Registrations()[0]
			data := *reg.Data.(*events.CardRegistered)
			if field == "insurance_city" {
				data.InsuranceCity = n
			} else {
				data.IssuerBank = n
			}
			reg.Data = &data
			d := clearing.Decide(decoded(t, reg), v, day)
			if len(d.Processed) != 1 || d.Processed[0].Status != clearing.Rejected || len(d.DeadLetters) != 1 {
				t.Fatalf("%s %s: decision %+v", field, n, d.Processed)
			}
			for _, text := range []string{d.Processed[0].Reason, d.DeadLetters[0].Reason, string(d.DeadLetters[0].Raw)} {
				if strings.Contains(strings.ToUpper(text), n) {
					t.Errorf("%s %s: %q", field, n, text)
				}
			}
		}
	}
}

// TestDeadLettersKeepNoPersonalNumber: whatever a refused message holds that may be a personal
// number, in a free-text field, an unknown field at any depth, a key, or bytes that are not JSON,
// its dead letter keeps none of it, and still says which event it was, where it was read, why it
// was refused and the shape of what it held.
func TestDeadLettersWithholdEveryPersonalNumber(t *testing.T) {
	const (
		passport = "E98765432X"
		permit   = "WP20250001234"
		social   = "11010519491231002X"
		// nineDigits is a passport of 9 digits, as a JSON number.
		nineDigits = "123456789"
	)
	city := loadtest.NewCity(5, 1, 1, day)
	reg := city.Registrations()[0]
	raw := string(loadtest.Encode(reg))
	holder := reg.Data.(*events.CardRegistered).HolderName
	for name, msg := range map[string]string{
		"in a name":           strings.Replace(raw, `"`+holder+`"`, `"Fox `+passport+`"`, 1),
		"as an unknown field": strings.Replace(raw, `"data":{`, `"data":{"note":"permit `+permit+`",`, 1),
		"deep in an unknown object": strings.Replace(raw, `"data":{`,
			`"data":{"extra":{"list":[{"id":"`+social+`"}],"n":`+nineDigits+`},`, 1),
		"as a key":        strings.Replace(raw, `"data":{`, `"data":{"`+passport+`":"x",`, 1),
		"not json at all": "register holder " + passport + " permit " + permit + " id " + social,
		"unterminated":    `{"data":{"description":"work permit ` + permit,
	} {
		v := world(city)
		m := clearing.Message{Source: "card-events/2", Offset: 41, Raw: []byte(msg)}
		if e, err := events.Decode(m.Raw); err != nil {
			m.DecodeErr = err
		} else {
			m.Event = e
			v.Processed[e.ID] = clearing.Processed{EventID: e.ID, Type: e.Type, Source: "x"}
		}
		d := clearing.Decide([]clearing.Message{m}, v, day)
		if len(d.DeadLetters) != 1 {
			t.Fatalf("%s: %d dead letters", name, len(d.DeadLetters))
		}
		dl := d.DeadLetters[0]
		for _, n := range []string{passport, passport[1:], permit, social, nineDigits} {
			if strings.Contains(string(dl.Raw), n) || strings.Contains(dl.Reason, n) {
				t.Errorf("%s: the dead letter keeps %s in clear: %s (%s)", name, n, dl.Raw, dl.Reason)
			}
		}
		if dl.Source != "card-events/2" || dl.Offset != 41 || dl.Reason == "" || !strings.Contains(dl.Reason, "[redacted: ") {
			t.Errorf("%s: dead letter %+v", name, dl)
		}
		if m.DecodeErr == nil && dl.EventID != reg.ID {
			t.Errorf("%s: the dead letter lost which event it was: %+v", name, dl)
		}
		if json.Valid([]byte(msg)) && (!json.Valid(dl.Raw) || !strings.Contains(string(dl.Raw), `"event_id":"`+reg.ID.String()+`"`) ||
			!strings.Contains(string(dl.Raw), `"type":"card.registered"`) || !strings.Contains(string(dl.Raw), `"data":{`)) {
			t.Errorf("%s: the dead letter lost the shape of the event: %s", name, dl.Raw)
		}
	}
}

// TestPoisonReasonWithholdsUnquotedPersonalNumbers: the database's message kept as a poison
// event's reason may repeat the value it refused without quotes: the decision and the dead letter
// keep no personal number, and the rest of the message.
func TestPoisonReasonWithholdsUnquotedPersonalNumbers(t *testing.T) {
	city := loadtest.NewCity(1, 1, 1, day)
	m := decoded(t, city.Registrations()[0])[0]
	for _, n := range []string{"E98765432X", "11010519491231002X", "WP20250001234", "6228480402564899"} {
		d := clearing.Poison(m, "cannot be applied: load cards: key (holder)=("+n+") already exists", nil)
		if len(d.Processed) != 1 || len(d.DeadLetters) != 1 {
			t.Fatalf("decision %+v", d)
		}
		for _, text := range []string{d.Processed[0].Reason, d.DeadLetters[0].Reason} {
			if strings.Contains(text, n) || !strings.Contains(text, "cannot be applied: load cards: key (holder)=(") {
				t.Errorf("%s: reason %q", n, text)
			}
		}
	}
}

// TestRedactingAStoredDeadLetterKeepsItsFingerprint: a dead letter stored before the engine
// withheld all it withholds now is redacted again when relayed; the keyed hash it kept of the
// original bytes stays, not one of the bytes as stored.
func TestRedactingAStoredDeadLetterKeepsItsFingerprint(t *testing.T) {
	fingerprint := func(b []byte) []byte { return []byte("hmac of " + string(b)) }
	stored := clearing.DeadLetter{Kind: clearing.Malformed, Source: "card-events/0", Offset: 3, Reason: "malformed: x [redacted: card_token]",
		Raw: []byte(`{"card_token":"[redacted]","data":{"note":"passport E98765432X"}}`), Fingerprint: []byte("hmac of the original")}
	dl := clearing.RedactDeadLetter(stored, fingerprint)
	if strings.Contains(string(dl.Raw), "E98765432X") {
		t.Errorf("relayed %s", dl.Raw)
	}
	if string(dl.Fingerprint) != "hmac of the original" {
		t.Errorf("fingerprint %q, want the original bytes' kept", dl.Fingerprint)
	}
	// A dead letter redacted for the first time gets the hash of its bytes.
	fresh := stored
	fresh.Fingerprint = nil
	if dl := clearing.RedactDeadLetter(fresh, fingerprint); string(dl.Fingerprint) != "hmac of "+string(stored.Raw) {
		t.Errorf("fingerprint %q", dl.Fingerprint)
	}
}
