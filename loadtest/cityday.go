package loadtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/transit"
)

// A city day: a city's card traffic over one travel day from every door the engine has, planned
// from a seed before anything runs, with the outcome the plan must have computed independently
// of the engine (Model). The plan holds:
//
//   - journeys on the shipped fare tables' operators (Hangzhou's metro and buses, Shanghai's and
//     Beijing's metros), commuters' trips at morning and evening peaks and a few at midday, taps
//     uploaded by the operators in batches or sent as transit.tap events, and a share uploaded
//     late by offline readers after the day has closed;
//   - authorizations at merchants, each captured in full or in part, voided, or left to expire;
//   - cleared purchases and their refunds as Kafka events;
//   - medical bills by item code from the treating city's catalogue;
//   - duplicates (DuplicateShare of each kind of traffic) and malformed traffic (MalformedShare).

const (
	// DuplicateShare is the share of each kind of traffic delivered twice: a producer's retry.
	DuplicateShare = 0.01
	// MalformedShare is the share of each kind of traffic sent broken.
	MalformedShare = 0.001
	// LateShare is the share of travelling cards whose reader uploads one more journey of the day
	// only after the day has closed.
	LateShare = 0.01
	// TapBatchSize is how many taps an operator uploads per batch: a station's readers' upload.
	TapBatchSize = 2000
	// KafkaTapShare is the share of cards whose taps arrive as transit.tap events, the rest in
	// the operators' batches.
	KafkaTapShare = 0.2
)

// Shanghai is the zone of every fare table, policy and cut-off of the shipped tariffs. China has
// no daylight saving time, so a fixed zone is the zone.
var Shanghai = time.FixedZone("Asia/Shanghai", 8*3600)

// DayConfig sizes a city day.
type DayConfig struct {
	Seed           uint64
	Cards          int
	Merchants      int       // shops taking authorizations and clearing purchases
	Purchases      int       // cleared purchases over Kafka
	Authorizations int       // authorizations over HTTP
	MedicalBills   int       // medical settlements over HTTP
	Day            time.Time // the travel day: its date in Asia/Shanghai counts
}

// Journey is one planned journey: a tap in and a tap out on a metro, or a boarding on a bus.
type Journey struct {
	Card     string
	Operator string
	Line     string
	From, To string
	In, Out  time.Time // Out equals In for a bus boarding
	Single   bool
	Late     bool // uploaded after its day closed
	Kafka    bool // sent as transit.tap events
}

// PlannedTap is a tap of a journey as its reader records it.
type PlannedTap struct {
	Operator  string
	Device    string
	Seq       uint64
	Card      string
	At        time.Time
	Station   string
	Line      string
	Direction events.Direction
	Mode      events.Mode
	Journey   int // index into Plan.Journeys
}

// AuthOutcome is how a planned authorization ends.
type AuthOutcome int

const (
	AuthCaptureFull AuthOutcome = iota
	AuthCapturePartial
	AuthVoid
	AuthExpire
)

// PlannedAuth is one authorization and what follows it.
type PlannedAuth struct {
	Card     string
	Merchant int // index into Plan.Merchants
	Amount   int64
	Outcome  AuthOutcome
	Key      uuid.UUID // Idempotency-Key of the authorization
	CloseKey uuid.UUID // of its capture or void
	Replay   bool      // the authorization is sent twice with its key
}

// Captured is what the authorization's capture takes: all, three quarters, or nothing.
func (a *PlannedAuth) Captured() int64 {
	switch a.Outcome {
	case AuthCaptureFull:
		return a.Amount
	case AuthCapturePartial:
		return a.Amount * 3 / 4
	}
	return 0
}

// BillLine is a line of a medical bill.
type BillLine struct {
	Code      string
	Quantity  int64
	UnitPrice int64 // fen
}

// PlannedBill is a medical settlement.
type PlannedBill struct {
	ID          string
	Card        string
	Institution int // index into Plan.Institutions
	VisitKind   string
	Lines       []BillLine
	Replay      bool
}

// Total is the bill's amount: what the three parts of its split must sum to.
func (b *PlannedBill) Total() int64 {
	var t int64
	for _, l := range b.Lines {
		t += l.Quantity * l.UnitPrice
	}
	return t
}

// Institution is a designated hospital or pharmacy.
type Institution struct {
	ID, Kind, City string
	Tier           int
}

// Merchant is a shop registered over the API.
type Merchant struct {
	ID, MCC, City, Bank string
}

// Plan is a whole city day, planned.
type Plan struct {
	Config       DayConfig
	City         *City
	Day          transit.Day
	Merchants    []Merchant
	Institutions []Institution
	Operators    []string

	// Setup is what Kafka carries before the day: registrations, funding and contributions.
	Setup []events.Event
	// DayEvents is the day's Kafka traffic: cleared purchases, refunds and transit.tap events.
	DayEvents []events.Event
	// KafkaDuplicates are DayEvents indexes delivered a second time; KafkaMalformed are broken
	// messages, each of which must be set aside as a dead letter and change nothing.
	KafkaDuplicates []int
	KafkaMalformed  [][]byte

	Journeys []Journey
	// Batches are the operators' uploads on the day, LateBatches those after its close; a batch
	// is one operator's. TapDuplicates is how many taps are in a batch twice (a reader's retry
	// across batches), TapMalformed how many are broken (each rejected).
	Batches, LateBatches []TapBatch
	TapDuplicates        int
	TapMalformed         int

	Auths         []PlannedAuth
	AuthMalformed int // authorizations sent with a broken amount, each refused with 400
	Bills         []PlannedBill
	BillMalformed int // bills sent with a broken line, each refused with 400

	fareFiles map[string]*fareFile
}

// TapBatch is one upload of an operator's taps.
type TapBatch struct {
	Operator string
	ID       string
	Taps     []PlannedTap
	// Malformed taps are in the batch too, after Taps, as raw JSON objects.
	Malformed []string
	// Resend: the whole batch is uploaded a second time with its id (an upload retried).
	Resend bool
}

// dayOperators are the shipped fare tables the day travels on, by the cardholders' cities: the
// loadtest city's cards are insured in Jiaxing, Hangzhou and Shanghai; the Jiaxing cardholders
// are the ones on business in Beijing that day.
var dayOperators = map[string][]string{
	"hangzhou": {"HZMETRO", "HZBUS"},
	"shanghai": {"SHMETRO"},
	"jiaxing":  {"BJSUBWAY"},
}

// PlanDay plans a city day on the fare tables tables, read from fareFiles; catalogues are the
// medical catalogue files by name, as tariffs.BuiltIn gives them.
func PlanDay(cfg DayConfig, tables *transit.Tables, fareFiles, catalogues map[string][]byte) (*Plan, error) {
	if cfg.Cards < 1 || cfg.Merchants < 1 {
		return nil, fmt.Errorf("a city day needs cards and merchants, got %d and %d", cfg.Cards, cfg.Merchants)
	}
	y, m, d := cfg.Day.In(Shanghai).Date()
	dayStart := time.Date(y, m, d, 0, 0, 0, 0, Shanghai)
	p := &Plan{Config: cfg, Day: transit.DayOf(y, m, d)}
	p.City = NewCity(cfg.Seed, cfg.Cards, 1, dayStart.Add(-4*time.Hour))
	g := &planner{p: p, rng: rand.New(rand.NewPCG(cfg.Seed, 0xc17d)), tables: tables, keyClock: dayStart.Add(22 * time.Hour)}
	for _, ops := range dayOperators {
		p.Operators = append(p.Operators, ops...)
	}
	slices.Sort(p.Operators)
	fares, err := parseFareFiles(fareFiles)
	if err != nil {
		return nil, err
	}
	g.fares, p.fareFiles = fares, fares
	for _, op := range p.Operators {
		if _, ok := tables.OperatorOn(op, p.Day); !ok || fares[op] == nil {
			return nil, fmt.Errorf("no fare table of %s in force on %s", op, p.Day)
		}
	}
	for i := range cfg.Merchants {
		city := p.City.Cities[i%len(p.City.Cities)]
		p.Merchants = append(p.Merchants, Merchant{ID: fmt.Sprintf("shop-%05d", i+1), MCC: []string{"5411", "5812", "5999"}[i%3],
			City: city, Bank: p.City.Banks[i%len(p.City.Banks)]})
	}
	p.Institutions = []Institution{
		{ID: "jx-first-hospital", Kind: "hospital", City: "jiaxing", Tier: 3},
		{ID: "jx-pharmacy", Kind: "pharmacy", City: "jiaxing", Tier: 1},
		{ID: "sh-ruijin-hospital", Kind: "hospital", City: "shanghai", Tier: 3},
		{ID: "sh-pharmacy", Kind: "pharmacy", City: "shanghai", Tier: 1},
	}

	c := p.City
	p.Setup = append(p.Setup, c.Registrations()...)
	// Funds far above what a day spends, so that nothing is declined for funds: the model knows
	// every outcome in advance.
	p.Setup = append(p.Setup, c.Funding(5_000_00, 20_000_00)...)
	for i, card := range c.Cards {
		if city := c.cityOf[card]; city == "jiaxing" || city == "shanghai" {
			p.Setup = append(p.Setup, c.Contribution(card, 200_00+int64(i%5)*50_00))
		}
	}
	c.clock = dayStart.Add(6 * time.Hour)
	if err := g.journeys(); err != nil {
		return nil, err
	}
	g.kafkaDay()
	g.auths()
	if err := g.bills(catalogues); err != nil {
		return nil, err
	}
	return p, nil
}

type planner struct {
	p        *Plan
	rng      *rand.Rand
	tables   *transit.Tables
	fares    map[string]*fareFile
	keyClock time.Time
	seq      map[string]uint64
}

// chance draws true with probability q.
func (g *planner) chance(q float64) bool { return g.rng.Float64() < q }

// key is a UUIDv7 for an Idempotency-Key, its time the planned request's, the rest seeded.
func (g *planner) key() uuid.UUID {
	g.keyClock = g.keyClock.Add(time.Millisecond)
	var id uuid.UUID
	ms := uint64(g.keyClock.UnixMilli())
	for i := 0; i < 6; i++ {
		id[i] = byte(ms >> (40 - 8*i))
	}
	for i := 6; i < len(id); i++ {
		id[i] = byte(g.rng.Uint32())
	}
	id[6] = id[6]&0x0f | 0x70
	id[8] = id[8]&0x3f | 0x80
	return id
}

// between draws a time from a to b, to the second.
func (g *planner) between(a, b time.Time) time.Time {
	return a.Add(time.Duration(g.rng.Int64N(int64(b.Sub(a)/time.Second)+1)) * time.Second)
}

// peak draws a time around centre, spread by sd, kept within [lo, hi]: a commuters' peak.
func (g *planner) peak(centre time.Time, sd time.Duration, lo, hi time.Time) time.Time {
	t := centre.Add(time.Duration(g.rng.NormFloat64() * float64(sd))).Truncate(time.Second)
	if t.Before(lo) {
		t = lo
	}
	if t.After(hi) {
		t = hi
	}
	return t
}

// fareFile is the part of a fare table file the day reads itself: its lines' stations, its
// transfer discount and its daily cap.
type fareFile struct {
	OperatorID string `json:"operator_id"`
	Transfer   *struct {
		WindowMinutes int    `json:"window_minutes"`
		Discount      string `json:"discount"`
	} `json:"transfer"`
	Caps *struct {
		Scope string `json:"scope"`
		Daily string `json:"daily"`
	} `json:"caps"`
	Lines []struct {
		ID       string `json:"id"`
		Stations []struct {
			ID string `json:"id"`
		} `json:"stations"`
	} `json:"lines"`
}

func parseFareFiles(files map[string][]byte) (map[string]*fareFile, error) {
	out := map[string]*fareFile{}
	for name, raw := range files {
		if strings.Contains(name, "@") {
			continue // a version: the day travels on the tables without a date
		}
		f := &fareFile{}
		if err := json.Unmarshal(raw, f); err != nil {
			return nil, fmt.Errorf("fare table %s: %w", name, err)
		}
		out[f.OperatorID] = f
	}
	return out, nil
}

func (f *fareFile) stations() map[string][]string {
	lines := map[string][]string{}
	for _, l := range f.Lines {
		for _, s := range l.Stations {
			lines[l.ID] = append(lines[l.ID], s.ID)
		}
	}
	return lines
}

// journeys plans every card's travel: a morning trip for most, an evening trip back, a midday
// trip for some; in Hangzhou a trip may start on a bus and change to the metro.
func (g *planner) journeys() error {
	p := g.p
	at := func(h, m int) time.Time {
		y, mo, d := p.Config.Day.In(Shanghai).Date()
		return time.Date(y, mo, d, h, m, 0, 0, Shanghai)
	}
	lines := map[string]map[string][]string{}
	for _, id := range p.Operators {
		lines[id] = g.fares[id].stations()
	}
	metroOf := map[string]string{"hangzhou": "HZMETRO", "shanghai": "SHMETRO", "jiaxing": "BJSUBWAY"}
	for _, card := range p.City.Cards {
		if !g.chance(0.85) {
			continue
		}
		city := p.City.cityOf[card]
		viaKafka := g.chance(KafkaTapShare)
		// Trips start in windows far enough apart (more than the 90-minute transfer window)
		// that only a planned change is a transfer.
		var trips []time.Time
		trips = append(trips, g.peak(at(8, 0), 40*time.Minute, at(6, 30), at(9, 30)))
		if g.chance(0.25) {
			trips = append(trips, g.between(at(12, 15), at(13, 30)))
		}
		if g.chance(0.9) {
			trips = append(trips, g.peak(at(18, 0), 50*time.Minute, at(16, 30), at(20, 30)))
		}
		late := g.chance(LateShare)
		if late {
			trips = append(trips, g.between(at(21, 40), at(22, 30)))
		}
		for i, start := range trips {
			isLate := late && i == len(trips)-1
			if city == "hangzhou" && g.chance(0.4) {
				// A bus to the metro: the metro journey starts within the transfer window.
				p.Journeys = append(p.Journeys, g.bus(card, lines["HZBUS"], start, isLate, viaKafka))
				start = start.Add(time.Duration(5+g.rng.IntN(25)) * time.Minute)
			}
			p.Journeys = append(p.Journeys, g.metro(card, metroOf[city], lines[metroOf[city]], start, isLate, viaKafka))
		}
	}
	return g.taps()
}

func (g *planner) bus(card string, lines map[string][]string, at time.Time, late, kafka bool) Journey {
	ids := sortedKeys(lines)
	line := ids[g.rng.IntN(len(ids))]
	stops := lines[line]
	stop := stops[g.rng.IntN(len(stops))]
	return Journey{Card: card, Operator: "HZBUS", Line: line, From: stop, To: stop, In: at, Out: at, Single: true, Late: late, Kafka: kafka}
}

func (g *planner) metro(card, op string, lines map[string][]string, at time.Time, late, kafka bool) Journey {
	ids := sortedKeys(lines)
	line := ids[g.rng.IntN(len(ids))]
	stations := lines[line]
	a := g.rng.IntN(len(stations))
	b := g.rng.IntN(len(stations) - 1)
	if b >= a {
		b++
	}
	ride := time.Duration(3*abs(a-b)+5+g.rng.IntN(10)) * time.Minute
	return Journey{Card: card, Operator: op, Line: line, From: stations[a], To: stations[b], In: at, Out: at.Add(ride), Late: late, Kafka: kafka}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// taps turns the journeys into readers' taps: each station's gates number their taps, the
// operators upload them in time order in batches; a share of the cards' taps go over Kafka.
func (g *planner) taps() error {
	p := g.p
	g.seq = map[string]uint64{}
	var onDay, late []PlannedTap
	for i, j := range p.Journeys {
		mode := events.ModeMetro
		if j.Single {
			mode = events.ModeBus
		}
		mk := func(station string, at time.Time, dir events.Direction) PlannedTap {
			device := fmt.Sprintf("%s-%s-%d", j.Operator, station, g.rng.IntN(4))
			g.seq[device]++
			return PlannedTap{Operator: j.Operator, Device: device, Seq: g.seq[device], Card: j.Card, At: at, Station: station,
				Line: j.Line, Direction: dir, Mode: mode, Journey: i}
		}
		var ts []PlannedTap
		if j.Single {
			ts = append(ts, mk(j.From, j.In, events.DirectionSingle))
		} else {
			ts = append(ts, mk(j.From, j.In, events.DirectionIn), mk(j.To, j.Out, events.DirectionOut))
		}
		switch {
		case j.Kafka && !j.Late:
			for _, t := range ts {
				p.DayEvents = append(p.DayEvents, p.City.tapEvent(t))
			}
		case j.Late:
			late = append(late, ts...)
		default:
			onDay = append(onDay, ts...)
		}
	}
	p.Batches = g.batches(onDay, "day", true)
	p.LateBatches = g.batches(late, "late", false)
	return nil
}

func (c *City) tapEvent(t PlannedTap) events.Event {
	e := c.event(events.TypeTransitTap, t.Card, &events.TransitTap{OperatorID: t.Operator, DeviceID: t.Device, DeviceSeq: t.Seq,
		TappedAt: t.At.UTC(), StationID: t.Station, Line: t.Line, Direction: t.Direction, Mode: t.Mode})
	e.OccurredAt = t.At.UTC().Truncate(time.Millisecond)
	return e
}

func (g *planner) batches(taps []PlannedTap, name string, faults bool) []TapBatch {
	slices.SortStableFunc(taps, func(a, b PlannedTap) int {
		if c := strings.Compare(a.Operator, b.Operator); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
	var out []TapBatch
	for len(taps) > 0 {
		n := 1
		for n < len(taps) && n < TapBatchSize && taps[n].Operator == taps[0].Operator {
			n++
		}
		b := TapBatch{Operator: taps[0].Operator, ID: fmt.Sprintf("%s-%s-%05d", taps[0].Operator, name, len(out)+1), Taps: slices.Clone(taps[:n])}
		if faults {
			for k, t := range taps[:n] {
				switch {
				case !g.chance(DuplicateShare) && (g.p.TapDuplicates > 0 || k < n-1):
				case len(out) > 0 && out[len(out)-1].Operator == b.Operator:
					// A tap the reader sent in the previous batch already.
					out[len(out)-1].Taps = append(out[len(out)-1].Taps, t)
					g.p.TapDuplicates++
				default:
					// A tap the reader sent twice in one upload.
					b.Taps = append(b.Taps, t)
					g.p.TapDuplicates++
				}
				if g.chance(MalformedShare) {
					b.Malformed = append(b.Malformed, fmt.Sprintf(`{"device_id":%q,"device_seq":%d,"card_token":%q,"tapped_at":%q,"station_id":%q,"direction":"sideways","mode":"metro"}`,
						t.Device+"-x", t.Seq, t.Card, t.At.UTC().Format(time.RFC3339), t.Station))
					g.p.TapMalformed++
				}
			}
			b.Resend = g.chance(DuplicateShare * 10) // whole uploads are retried more often than single taps
		}
		out = append(out, b)
		taps = taps[n:]
	}
	if faults && g.p.TapMalformed == 0 && len(out) > 0 {
		// However small the day, some reader sends a broken tap.
		t := out[0].Taps[0]
		out[0].Malformed = append(out[0].Malformed, fmt.Sprintf(`{"device_id":%q,"device_seq":%d,"card_token":%q,"tapped_at":%q,"station_id":%q,"direction":"sideways","mode":"metro"}`,
			t.Device+"-x", t.Seq, t.Card, t.At.UTC().Format(time.RFC3339), t.Station))
		g.p.TapMalformed++
	}
	return out
}

// kafkaDay plans the day's Kafka traffic beside the taps: cleared purchases, a refund of every
// tenth, duplicates and malformed messages.
func (g *planner) kafkaDay() {
	p, c := g.p, g.p.City
	c.Merchants = c.Merchants[:0]
	for _, m := range p.Merchants {
		c.Merchants = append(c.Merchants, m.ID)
	}
	buys := c.Purchases(p.Config.Purchases, 30_00)
	p.DayEvents = append(p.DayEvents, buys...)
	for i, b := range buys {
		if i%10 == 3 {
			amount := b.Data.(*events.PurchaseCleared).Amount.Minor
			p.DayEvents = append(p.DayEvents, c.Refund(b, max(amount/2, 1)))
		}
	}
	for i := range p.DayEvents {
		if g.chance(DuplicateShare) {
			p.KafkaDuplicates = append(p.KafkaDuplicates, i)
		}
		if g.chance(MalformedShare) {
			raw := Encode(p.DayEvents[i])
			p.KafkaMalformed = append(p.KafkaMalformed, raw[:len(raw)/2])
		}
	}
	if len(p.KafkaMalformed) == 0 && len(p.DayEvents) > 0 {
		raw := Encode(p.DayEvents[0])
		p.KafkaMalformed = append(p.KafkaMalformed, raw[:len(raw)/2])
	}
}

// auths plans the authorizations: half captured in full, a fifth in part, the rest voided or
// left to expire.
func (g *planner) auths() {
	p := g.p
	for range p.Config.Authorizations {
		a := PlannedAuth{Card: p.City.Cards[g.rng.IntN(len(p.City.Cards))], Merchant: g.rng.IntN(len(p.Merchants)),
			Amount: 10_00 + g.rng.Int64N(190_00), Key: g.key(), CloseKey: g.key(), Replay: g.chance(DuplicateShare)}
		switch r := g.rng.IntN(100); {
		case r < 50:
			a.Outcome = AuthCaptureFull
		case r < 70:
			a.Outcome = AuthCapturePartial
		case r < 85:
			a.Outcome = AuthVoid
		default:
			a.Outcome = AuthExpire
		}
		if g.chance(MalformedShare) {
			p.AuthMalformed++
		}
		p.Auths = append(p.Auths, a)
	}
	if len(p.Auths) > 0 {
		p.AuthMalformed = max(p.AuthMalformed, 1)
	}
}

// catalogueFile is the part of a medical catalogue file a bill needs: its codes.
type catalogueFile struct {
	City  string `json:"city"`
	Items []struct {
		Code string `json:"code"`
	} `json:"items"`
}

// bills plans medical bills of cards insured in the cities with policies, at an institution of
// their own city, by codes of its catalogue (and now and then a code it does not list).
func (g *planner) bills(catalogues map[string][]byte) error {
	p := g.p
	codes := map[string][]string{}
	for name, raw := range catalogues {
		var f catalogueFile
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("catalogue %s: %w", name, err)
		}
		city, _, _ := strings.Cut(name, "@")
		for _, it := range f.Items {
			codes[city] = append(codes[city], it.Code)
		}
		slices.Sort(codes[city])
	}
	var insured []string
	for _, card := range p.City.Cards {
		if city := p.City.cityOf[card]; len(codes[city]) > 0 {
			insured = append(insured, card)
		}
	}
	if len(insured) == 0 && p.Config.MedicalBills > 0 {
		return fmt.Errorf("no card is insured in a city with a catalogue")
	}
	for i := range p.Config.MedicalBills {
		card := insured[g.rng.IntN(len(insured))]
		city := p.City.cityOf[card]
		var options []int
		for k, inst := range p.Institutions {
			if inst.City == city {
				options = append(options, k)
			}
		}
		inst := options[g.rng.IntN(len(options))]
		visit := "outpatient"
		if p.Institutions[inst].Kind == "pharmacy" {
			visit = "pharmacy"
		}
		b := PlannedBill{ID: fmt.Sprintf("HIS-%07d", i+1), Card: card, Institution: inst, VisitKind: visit, Replay: g.chance(DuplicateShare)}
		for range 1 + g.rng.IntN(4) {
			code := codes[city][g.rng.IntN(len(codes[city]))]
			if g.chance(0.05) {
				code = "XZ99ZZZ000A000000000001" // listed nowhere: paid in cash
			}
			b.Lines = append(b.Lines, BillLine{Code: code, Quantity: 1 + g.rng.Int64N(5), UnitPrice: 1_00 + g.rng.Int64N(60_00)})
		}
		if g.chance(MalformedShare) {
			p.BillMalformed++
		}
		p.Bills = append(p.Bills, b)
	}
	if len(p.Bills) > 0 {
		p.BillMalformed = max(p.BillMalformed, 1)
	}
	return nil
}

// CardCity is the insurance city a card was registered with.
func (p *Plan) CardCity(card string) string { return p.City.cityOf[card] }

// CardBank is the bank that issued a card.
func (p *Plan) CardBank(card string) string { return p.City.bankOf[card] }
