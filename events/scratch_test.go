package events_test

import (
	"runtime"
	"sync"
	"testing"

	"github.com/joinincard/engine/events"
)

// TestDecodeSharesNoScratchBetweenMessages decodes every type's message from several goroutines at
// once, each message many times, and checks each result against the message decoded alone: the
// scratch a decode reuses must leave nothing of one message in another's event.
func TestDecodeSharesNoScratchBetweenMessages(t *testing.T) {
	want := map[events.Type]events.Event{}
	for typ, msg := range base {
		e, err := events.Decode([]byte(msg))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		want[typ] = e
	}
	const goroutines, rounds = 8, 200
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for typ, msg := range base {
					// Every other round also decodes a refused message, whose parse stops midway.
					if (g+r)%2 == 0 {
						if _, err := events.Decode([]byte(msg[:len(msg)/2])); err == nil {
							errs <- "a message cut in half decoded"
							return
						}
					}
					e, err := events.Decode([]byte(msg))
					if err != nil {
						errs <- err.Error()
						return
					}
					if e.Hash != want[typ].Hash || e.ID != want[typ].ID || e.CardToken != want[typ].CardToken {
						errs <- string(typ) + ": decoded differently from the message alone"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestDecodeGarbagePerMessage bounds what decoding one message leaves for the collector: the
// event's own strings and payload, not the parser's member lists or the canonical form's bytes,
// which live only while the message is decoded.
func TestDecodeGarbagePerMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	const maxBytesPerMessage = 1536 // the event itself: under 1 KiB for the largest base message
	msg := []byte(base[events.TypePurchaseCleared])
	const n = 2000
	events.Decode(msg) // the scratch pool's first scratch
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := events.Decode(msg); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > maxBytesPerMessage {
		t.Errorf("decoding a purchase allocates %d bytes, want at most %d", per, maxBytesPerMessage)
	}
}
