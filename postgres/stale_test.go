package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
)

// twin opens a second store on st's database, on st's clock: another engine process, whose
// commits st's cache has not seen.
func twin(t *testing.T, st *postgres.Store) *postgres.Store {
	t.Helper()
	b, err := postgres.Open(context.Background(), st.Pool().Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	b.Now = st.Now
	return b
}

// loadFunds loads fen onto the card that token names, through st: the bank mirroring a deposit.
func loadFunds(t *testing.T, st *postgres.Store, token string, fen int64) {
	t.Helper()
	e := events.Event{ID: newUUID(t), Type: events.TypeFundsLoaded, OccurredAt: st.Now().Truncate(time.Millisecond),
		CardToken: token, Data: &events.FundsLoaded{Amount: events.Money{Minor: fen, Currency: "CNY"}, BankReference: "FT-TWIN"}}
	d, err := st.Ingest(context.Background(), nil, messages(t, "twin/0", 0, e))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Processed) != 1 || d.Processed[0].Status != clearing.Applied {
		t.Fatalf("funds load: %+v %+v", d.Processed, d.DeadLetters)
	}
}

// Every path whose answer depends on a card's funds approves when another engine process loaded
// the funds after this one cached the card's balance: the refusal its cache would give is
// confirmed on the database's balance before it commits, and is not.
func TestStaleCacheApprovesEveryPath(t *testing.T) {
	t.Run("authorization", func(t *testing.T) {
		s := newShop(t, 1, fen1000) // the shop's store cached the card at 1,000.00
		other := twin(t, s.st)
		loadFunds(t, other, s.city.Cards[0], 500_00)
		key := newKey(t)
		for i := 0; i < 2; i++ { // the answer, then its replay under the same key
			res, err := s.do(s.req(postgres.OpAuthorize, "shop-1", key, ledger.ID{}, s.city.Cards[0], "1200.00"))
			if err != nil {
				t.Fatal(err)
			}
			if a := res.Authorization; !a.Approved || res.Replayed != (i == 1) {
				t.Fatalf("authorization %d of 1,200.00 on 1,500.00: %+v, replayed %v", i, *a, res.Replayed)
			}
		}
		if av, _ := s.funds(0); av != 300_00 {
			t.Fatalf("available %s after the hold, want 300.00", cny(av))
		}
	})
	t.Run("purchase cleared", func(t *testing.T) {
		s := newShop(t, 1, 500_00) // the shop's store cached the card at 500.00
		other := twin(t, s.st)
		loadFunds(t, other, s.city.Cards[0], 400_00)
		// Under what a terminal may charge offline (clearing.MaxOfflinePurchaseAmount).
		d := s.ingestDecision(s.event(0, &events.PurchaseCleared{MerchantID: "shop-1", MCC: "5311",
			Amount: events.Money{Minor: 800_00, Currency: "CNY"}}))
		if len(d.Processed) != 1 || d.Processed[0].Status != clearing.Applied || len(d.DeadLetters) != 0 {
			t.Fatalf("purchase of 800.00 on 900.00: %+v %+v", d.Processed, d.DeadLetters)
		}
		if _, posted := s.funds(0); posted != 100_00 {
			t.Fatalf("posted %s after the purchase, want 100.00", cny(posted))
		}
	})
	t.Run("transit day charge", func(t *testing.T) {
		ctx := context.Background()
		w := newTransitWorld(t, 1, 500) // 5.00 cached: not enough for the 7.00 journey
		other := twin(t, w.st)
		w.clock.Set(sh("2026-03-02 23:00"))
		w.upload(t, "monday", `
			HZMETRO 0 2026-03-02 08:00 in 0101
			HZMETRO 0 2026-03-02 08:40 out 0122`)
		loadFunds(t, other, w.cards[0], 100_00)
		rep := w.close(t, sh("2026-03-03 09:30"))
		if rep.Unpaid != 0 || rep.Charged != 700 {
			t.Fatalf("close: %+v", rep)
		}
		if got := w.funds(t, 0); got != 500+100_00-700 {
			t.Fatalf("funds %d after the day's charge", got)
		}
		if _, denied, err := w.st.CardDenyStatus(ctx, w.cards[0]); err != nil || denied {
			t.Fatalf("a card that could pay is on the deny list: %v %v", denied, err)
		}
	})
	t.Run("medical cash part", func(t *testing.T) {
		day := time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
		w := newMedWorld(t, day)
		w.fund(t, 0, 100_00) // 100.00 cached
		other := twin(t, w.st)
		card := w.card(t, 0)
		loadFunds(t, other, card.Token, 2_000_00)
		// 1,500 at a tier 3 hospital with nothing in the personal account: a cash part far
		// above the 100.00 cached.
		s, replayed, err := w.med.Settle(context.Background(), w.hospital, "HIS-STALE-1", card.Token,
			basket(t, medical.Outpatient, "A1200", "B300"))
		if err != nil || replayed {
			t.Fatalf("settle: replayed %v, %v", replayed, err)
		}
		if s.Split.Cash <= 100_00 {
			t.Fatalf("cash part %d does not exceed what was cached", s.Split.Cash)
		}
		if got := w.net(t, card.FundsAccount); got != 2_100_00-s.Split.Cash {
			t.Fatalf("funds %d after a cash part of %d", got, s.Split.Cash)
		}
	})
}
