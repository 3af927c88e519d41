// Package loadtest generates a city's card traffic: cardholders registered with their issuer
// banks, funds mirrored onto their cards, purchases at merchants, refunds, medical contributions
// and metro taps, as the card events producers send. Tests, the demo and the load runs share it.
//
// The traffic is built so that its outcome is known without the engine: purchases never exceed a
// card's funds, so Expected can compute every balance independently from the events alone.
package loadtest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// Party is an organisation a city's traffic pays or draws on.
type Party struct {
	Kind clearing.PartyKind
	ID   string
	Name string
}

// City is a deterministic generator of a city's card events.
type City struct {
	rng   *rand.Rand
	tok   *events.Tokenizer
	clock time.Time

	Banks     []string
	Merchants []string
	Operators []string
	Cities    []string
	Cards     []string // card tokens
	bankOf    map[string]string
	cityOf    map[string]string
	spendable map[string]int64 // what each card can still spend, as generated so far
}

// tokenKey keys the generator's tokenizer. Generated numbers are not anyone's: the key only has
// to be stable so that runs are reproducible.
var tokenKey = []byte("joinin-loadtest-tokenizer-key-32b!")

// NewCity returns a generator for cards cardholders and merchants merchants, its clock starting
// at start and moving a little with every event.
func NewCity(seed uint64, cards, merchants int, start time.Time) *City {
	tok, err := events.NewTokenizer(tokenKey)
	if err != nil {
		panic(err) // the key above is long enough: a programmer error
	}
	c := &City{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), tok: tok, clock: start.UTC(),
		Banks:     []string{"ICBC-JX", "ABC-HZ", "BOC-SH"},
		Operators: []string{"HZMETRO", "HZBUS"}, // as in transit/fares
		Cities:    []string{"jiaxing", "hangzhou", "shanghai"},
		bankOf:    map[string]string{}, cityOf: map[string]string{}, spendable: map[string]int64{},
	}
	for i := 0; i < merchants; i++ {
		c.Merchants = append(c.Merchants, fmt.Sprintf("m-%05d", i+1))
	}
	for i := 0; i < cards; i++ {
		u := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%d/%d", seed, i))
		c.Cards = append(c.Cards, fmt.Sprintf("card-%x", u[:10]))
	}
	return c
}

// Parties lists the banks, merchants and insurance funds of the city. Transit operators register
// through the transit API, with their fare tables and keys.
func (c *City) Parties() []Party {
	var ps []Party
	for _, b := range c.Banks {
		ps = append(ps, Party{clearing.PartyBank, b, b + " settlement"})
	}
	for _, m := range c.Merchants {
		ps = append(ps, Party{clearing.PartyMerchant, m, "merchant " + m})
	}
	for _, city := range c.Cities {
		ps = append(ps, Party{clearing.PartyInsuranceFund, city, city + " medical insurance fund"})
	}
	return ps
}

// SettlementBank is the bank that settles a party's clearing account.
type SettlementBank struct {
	Kind clearing.PartyKind
	ID   string
	Bank string
}

// SettlementBanks gives every merchant and insurance fund of the city a settlement bank, the
// city's banks in turn: a merchant's acquiring bank, a fund's bank.
func (c *City) SettlementBanks() []SettlementBank {
	var out []SettlementBank
	for i, m := range c.Merchants {
		out = append(out, SettlementBank{clearing.PartyMerchant, m, c.Banks[i%len(c.Banks)]})
	}
	for i, city := range c.Cities {
		out = append(out, SettlementBank{clearing.PartyInsuranceFund, city, c.Banks[(i+1)%len(c.Banks)]})
	}
	return out
}

// MaxEventStep is the most the city's clock moves from one event to the next: events are 1 to 50
// ms apart, about forty a second per partition of a busy city.
const MaxEventStep = 50 * time.Millisecond

func (c *City) event(t events.Type, card string, data events.Data) events.Event {
	c.clock = c.clock.Add(time.Duration(1+c.rng.IntN(int(MaxEventStep/time.Millisecond))) * time.Millisecond)
	// A UUIDv7, as docs/events.md asks of producers: its time is the event's, the rest drawn
	// from the seeded generator, so ids sort by time and runs are reproducible.
	var id uuid.UUID
	ms := uint64(c.clock.UnixMilli())
	for i := 0; i < 6; i++ {
		id[i] = byte(ms >> (40 - 8*i))
	}
	for i := 6; i < len(id); i++ {
		id[i] = byte(c.rng.Uint32())
	}
	id[6] = id[6]&0x0f | 0x70
	id[8] = id[8]&0x3f | 0x80
	return events.Event{ID: id, Type: t, OccurredAt: c.clock.Truncate(time.Millisecond), CardToken: card, Data: data}
}

// Registrations returns one card.registered event per card.
func (c *City) Registrations() []events.Event {
	out := make([]events.Event, 0, len(c.Cards))
	for i, card := range c.Cards {
		bank := c.Banks[i%len(c.Banks)]
		city := c.Cities[i%len(c.Cities)]
		c.bankOf[card], c.cityOf[card] = bank, city
		passport := fmt.Sprintf("E%08d", 10000000+i)
		ssn := fmt.Sprintf("330%015d", i)
		permit := fmt.Sprintf("WP%010d", i)
		account := fmt.Sprintf("6222%012d", i)
		pan := fmt.Sprintf("622848%010d", i)
		masked := func(s string) string {
			m, err := events.MaskTail(s)
			if err != nil {
				panic(err) // the numbers above are well formed: a programmer error
			}
			return m
		}
		pm, err := events.MaskCardNumber(pan)
		if err != nil {
			panic(err)
		}
		out = append(out, c.event(events.TypeCardRegistered, card, &events.CardRegistered{
			HolderName: fmt.Sprintf("Cardholder %d", i+1), Nationality: []string{"USA", "SRB", "DEU", "KOR", "GBR"}[i%5],
			PassportToken: c.tok.Token(passport), PassportMasked: masked(passport),
			SocialSecurityToken: c.tok.Token(ssn), SocialSecurityMasked: masked(ssn),
			WorkPermitToken: c.tok.Token(permit), WorkPermitMasked: masked(permit),
			PermitValidUntil: events.Date{Year: c.clock.Year() + 2, Month: time.June, Day: 30},
			InsuranceCity:    city, IssuerBank: bank,
			BankAccountToken: c.tok.Token(account), BankAccountMasked: masked(account),
			CardNumberMasked: pm,
		}))
	}
	return out
}

// Funding returns one funds.loaded event per card of between min and max fen.
func (c *City) Funding(min, max int64) []events.Event {
	out := make([]events.Event, 0, len(c.Cards))
	for _, card := range c.Cards {
		amount := min + c.rng.Int64N(max-min+1)
		c.spendable[card] += amount
		out = append(out, c.event(events.TypeFundsLoaded, card, &events.FundsLoaded{
			Amount: events.Money{Minor: amount, Currency: "CNY"}, BankReference: fmt.Sprintf("FT%d", c.rng.Int64N(1e12)),
		}))
	}
	return out
}

// Purchases returns n purchase.cleared events at random merchants, each within what its card can
// still spend; a card that cannot afford the drawn amount is skipped for another.
func (c *City) Purchases(n int, maxAmount int64) []events.Event {
	out := make([]events.Event, 0, n)
	for tries := 0; len(out) < n && tries < 20*n; tries++ {
		card := c.Cards[c.rng.IntN(len(c.Cards))]
		amount := 1 + c.rng.Int64N(maxAmount)
		if c.spendable[card] < amount {
			continue
		}
		c.spendable[card] -= amount
		out = append(out, c.event(events.TypePurchaseCleared, card, &events.PurchaseCleared{
			MerchantID: c.Merchants[c.rng.IntN(len(c.Merchants))], Amount: events.Money{Minor: amount, Currency: "CNY"},
			MCC: []string{"5912", "5411", "7991"}[c.rng.IntN(3)],
		}))
	}
	return out
}

// Refund returns a refund of amount against a cleared purchase.
func (c *City) Refund(purchase events.Event, amount int64) events.Event {
	p := purchase.Data.(*events.PurchaseCleared)
	c.spendable[purchase.CardToken] += amount
	return c.event(events.TypePurchaseRefunded, purchase.CardToken, &events.PurchaseRefunded{
		MerchantID: p.MerchantID, OriginalEventID: purchase.ID, Amount: events.Money{Minor: amount, Currency: "CNY"},
	})
}

// Contribution returns an employer's monthly contribution to a card's personal medical account.
func (c *City) Contribution(card string, amount int64) events.Event {
	return c.event(events.TypeMedicalContribution, card, &events.MedicalContribution{
		EmployerID: "employer-1", Amount: events.Money{Minor: amount, Currency: "CNY"},
		Period: events.Period{Year: c.clock.Year(), Month: c.clock.Month()},
	})
}

// metroLine1Stations is how many stations Hangzhou Metro line 1 has in transit/fares/HZMETRO.json
// (ids 0101 to 0122).
const metroLine1Stations = 22

// Tap returns a tap of a card at a station of Hangzhou Metro line 1.
func (c *City) Tap(card string, dir events.Direction, seq uint64) events.Event {
	return c.event(events.TypeTransitTap, card, &events.TransitTap{
		OperatorID: c.Operators[0], DeviceID: fmt.Sprintf("gate-%03d", c.rng.IntN(200)), DeviceSeq: seq,
		TappedAt: c.clock, StationID: fmt.Sprintf("01%02d", 1+c.rng.IntN(metroLine1Stations)), Line: "1", Direction: dir, Mode: events.ModeMetro,
	})
}

// Encode writes e as producers do, panicking on an event the generator built wrong.
func Encode(e events.Event) []byte {
	b, err := events.Encode(e)
	if err != nil {
		panic(fmt.Sprintf("loadtest: generated an invalid event: %v", err))
	}
	return b
}

// Expected computes, from the events alone and independently of the engine, the net balance
// (credits minus debits posted) that each party account and card must end with, keyed by the
// card token or "kind/id" of the party. It assumes each event id is applied once and every
// event is valid, as the generator makes them.
func (c *City) Expected(evs []events.Event) map[string]int64 {
	net := map[string]int64{}
	seen := map[uuid.UUID]bool{}
	purchases := map[uuid.UUID]*events.PurchaseCleared{}
	for i := range evs {
		e := &evs[i]
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		switch d := e.Data.(type) {
		case *events.FundsLoaded:
			net["bank/"+c.bankOf[e.CardToken]] -= d.Amount.Minor
			net[e.CardToken] += d.Amount.Minor
		case *events.PurchaseCleared:
			purchases[e.ID] = d
			net[e.CardToken] -= d.Amount.Minor
			net["merchant/"+d.MerchantID] += d.Amount.Minor
		case *events.PurchaseRefunded:
			net[e.CardToken] += d.Amount.Minor
			net["merchant/"+d.MerchantID] -= d.Amount.Minor
		case *events.MedicalContribution:
			net["insurance_fund/"+c.cityOf[e.CardToken]] -= d.Amount.Minor
			net["medical/"+e.CardToken] += d.Amount.Minor
		}
	}
	return net
}

// AccountOf names the ledger account of a key of Expected.
func AccountOf(key string) ledger.ID {
	if key == FeeIncomeKey {
		return clearing.FeeIncomeAccount
	}
	for _, k := range clearing.PartyKinds() {
		if rest, ok := strings.CutPrefix(key, string(k)+"/"); ok {
			return clearing.PartyAccount(k, rest)
		}
	}
	if token, ok := strings.CutPrefix(key, "medical/"); ok {
		return cards.AccountID("medical", token)
	}
	return cards.AccountID("funds", key)
}
