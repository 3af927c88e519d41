package clearing_test

import (
	"testing"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/loadtest"
)

// BenchmarkDecide measures clearing's decisions for a consumer batch of purchases of registered
// cards (what the engine decides per event between reading a batch's view and applying it).
func BenchmarkDecide(b *testing.B) {
	const batch = 4096 // a batch at a few thousand events a second
	city := loadtest.NewCity(7, 1000, 50, day)
	v := world(city)
	for _, reg := range city.Registrations() {
		c := cards.FromRegistration(reg.CardToken, reg.Data.(*events.CardRegistered))
		for _, t := range c.Tokens() {
			v.Cards[t] = &c
		}
	}
	city.Funding(1_000_000, 1_000_000) // what the purchases below spend
	evs := city.Purchases(batch, 3000)
	msgs := make([]clearing.Message, len(evs))
	for i, e := range evs {
		d, err := events.Decode(loadtest.Encode(e))
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = clearing.Message{Source: "card-events/0", Offset: int64(i), Event: d}
	}
	b.ReportAllocs()
	for b.Loop() {
		for id := range v.Processed { // each round decides the batch afresh
			delete(v.Processed, id)
		}
		d := clearing.Decide(msgs, v, day)
		if len(d.Transfers) != batch {
			b.Fatalf("%d transfers of %d", len(d.Transfers), batch)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
