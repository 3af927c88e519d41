package events_test

import (
	"testing"

	"github.com/joinincard/engine/events"
)

// BenchmarkDecode measures the consumer's cost per message, in events per second on one core.
func BenchmarkDecode(b *testing.B) {
	for _, typ := range []events.Type{events.TypePurchaseCleared, events.TypeTransitTap} {
		msg := []byte(base[typ])
		b.Run(string(typ), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := events.Decode(msg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkEncode measures a producer's cost, validation (a decode) included.
func BenchmarkEncode(b *testing.B) {
	for _, typ := range []events.Type{events.TypePurchaseCleared, events.TypeTransitTap} {
		e, err := events.Decode([]byte(base[typ]))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(typ), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := events.Encode(e); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
