package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

const (
	transitBenchCards    = 100_000
	transitBenchJourneys = 5 // ten taps a card: 1M taps a day
	transitBenchFunds    = 1_000_000
)

// BenchmarkTransitDay runs a city's metro day: 1M taps of 100k cards at one operator, then the
// travel day closed: every card priced and charged, one transfer each, all crediting the
// operator's one clearing account. The taps arrive either as uploaded batches of
// MaxTransitBatchTaps ("batches"), or as transit.tap events decided in the consumer's own
// transactions, as serve runs it ("kafka"), or through the consumer's transaction into the taps
// inbox, drained into transit clearing after ("kafka-inbox"; in both the broker and the
// decoding, which the consumer's fetchers do in parallel, are left out). It reports intake taps/s, the close's
// seconds and the whole day's taps/s. Each iteration is another travel day on the same cards.
// Run it with:
//
//	go test -run '^$' -bench BenchmarkTransitDay -benchtime 1x -timeout 30m ./postgres
func BenchmarkTransitDay(b *testing.B) {
	ctx := context.Background()
	st := pgtest.NewStore(b)
	ts, err := transit.Shipped()
	if err != nil {
		b.Fatal(err)
	}
	op, _ := ts.Operator("HZMETRO")
	tokens := transitBenchSetup(b, st)
	if _, err := st.CreateTransitOperator(ctx, op.ID, op.Name, sha256.Sum256([]byte("bench"))); err != nil {
		b.Fatal(err)
	}
	day := transit.DayOf(2026, time.March, 2) - 1
	seq := int64(0)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, path := range []string{"batches", "kafka", "kafka-inbox"} {
		b.Run(path, func(b *testing.B) {
			var intake, closing time.Duration
			taps := 0
			for range b.N {
				b.StopTimer()
				day++
				raws := transitBenchTaps(rng, op, tokens, day, &seq)
				g := op.Group()
				st.Now = func() time.Time { return g.DayEnd(day) }
				var run func() int
				st.TransitFares = nil
				switch path {
				case "batches":
					run = transitBenchBatches(b, st, ts, op, day, raws)
				case "kafka":
					st.TransitFares = func() *transit.Tables { return ts }
					run = transitBenchKafka(b, st, ts, op, day, raws)
				default:
					run = transitBenchKafka(b, st, ts, op, day, raws)
				}
				b.StartTimer()

				start := time.Now()
				taps += run()
				intake += time.Since(start)

				start = time.Now()
				rep, err := st.CloseTransitDays(ctx, ts, g.ClosesAt(day))
				if err != nil {
					b.Fatal(err)
				}
				closing += time.Since(start)
				if rep.Cards != transitBenchCards || rep.Transfers != transitBenchCards || rep.Unpaid != 0 {
					b.Fatalf("close of %s: %+v", day, rep)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(taps)/intake.Seconds(), "intake-taps/s")
			b.ReportMetric(closing.Seconds()/float64(b.N), "close-s/day")
			b.ReportMetric(float64(taps)/(intake+closing).Seconds(), "day-taps/s")
			bal, err := st.Balance(ctx, clearing.PartyAccount(clearing.PartyOperator, op.ID))
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: %d taps over %d days: intake %s, close %s; HZMETRO holds %s CNY", path, taps, b.N, intake.Round(time.Millisecond),
				closing.Round(time.Millisecond), ledger.FormatAmount(bal.Net(), "CNY"))
		})
	}
}

// transitBenchTaps draws each card's day: five journeys between random stations, two hours apart.
func transitBenchTaps(rng *rand.Rand, op *transit.Operator, tokens []string, day transit.Day, seq *int64) []transit.RawTap {
	stations := []string{"0101", "0103", "0105", "0106", "0108", "0110", "0111", "0113", "0116", "0118", "0122",
		"0201", "0203", "0205", "0207", "0210", "0213", "0216", "0401", "0403", "0405"}
	raws := make([]transit.RawTap, 0, len(tokens)*transitBenchJourneys*2)
	for c, tok := range tokens {
		at := op.Group().DayStart(day).Add(time.Duration(c%600) * time.Minute)
		for range transitBenchJourneys {
			out := at.Add(time.Duration(10+rng.IntN(50)) * time.Minute)
			for _, leg := range []struct {
				dir, station string
				at           time.Time
			}{{"in", stations[rng.IntN(len(stations))], at}, {"out", stations[rng.IntN(len(stations))], out}} {
				*seq++
				raws = append(raws, transit.RawTap{DeviceID: "gate-" + leg.station, DeviceSeq: strconv.FormatInt(*seq, 10), CardToken: tok,
					TappedAt: leg.at.Format(time.RFC3339), StationID: leg.station, Direction: leg.dir, Mode: "metro"})
			}
			at = at.Add(2 * time.Hour)
		}
	}
	return raws
}

// transitBenchBatches returns a run that uploads the taps in batches, parsed as the API does.
func transitBenchBatches(b *testing.B, st *postgres.Store, ts *transit.Tables, op *transit.Operator, day transit.Day, raws []transit.RawTap) func() int {
	return func() int {
		for start := 0; start < len(raws); start += postgres.MaxTransitBatchTaps {
			bt := postgres.TapBatch{Operator: op.ID, BatchID: fmt.Sprintf("%s-%d", day, start)}
			bt.RequestHash = sha256.Sum256([]byte(bt.BatchID))
			for i := start; i < min(start+postgres.MaxTransitBatchTaps, len(raws)); i++ {
				bt.Taps = append(bt.Taps, ts.ParseTap(op.ID, &raws[i]))
				bt.Refs = append(bt.Refs, postgres.TapRef{DeviceID: raws[i].DeviceID, DeviceSeq: raws[i].DeviceSeq})
			}
			res, _, err := st.SubmitTapBatch(context.Background(), ts, bt)
			if err != nil {
				b.Fatal(err)
			}
			if res.Accepted != len(bt.Taps) {
				b.Fatalf("batch %s: %d of %d accepted: %+v", bt.BatchID, res.Accepted, len(bt.Taps), res.Answers[0])
			}
		}
		return len(raws)
	}
}

// transitBenchKafka returns a run that applies the taps as decoded transit.tap events through the
// consumer's transactions (16,384 events each, as the consumer merges them), then drains the
// inbox into transit clearing.
func transitBenchKafka(b *testing.B, st *postgres.Store, ts *transit.Tables, op *transit.Operator, day transit.Day, raws []transit.RawTap) func() int {
	const perTx = 16384 // the consumer's maxMergedEvents
	msgs := make([]clearing.Message, len(raws))
	for i := range raws {
		r := &raws[i]
		at, _ := time.Parse(time.RFC3339, r.TappedAt)
		seq, _ := strconv.ParseUint(r.DeviceSeq, 10, 64)
		e := events.Event{ID: uuid.UUID(transitBenchUUID(int(seq) + 1<<40)), Type: events.TypeTransitTap, OccurredAt: at.UTC(), CardToken: r.CardToken,
			Data: &events.TransitTap{OperatorID: op.ID, DeviceID: r.DeviceID, DeviceSeq: seq, TappedAt: at.UTC(), StationID: r.StationID,
				Direction: events.Direction(r.Direction), Mode: events.ModeMetro}}
		raw, err := events.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		dec, err := events.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = clearing.Message{Source: "card-events/0", Offset: int64(i), Raw: raw, Event: dec}
	}
	return func() int {
		ctx := context.Background()
		for start := 0; start < len(msgs); start += perTx {
			if _, err := st.Ingest(ctx, nil, msgs[start:min(start+perTx, len(msgs))]); err != nil {
				b.Fatal(err)
			}
		}
		drained := 0
		for {
			n, err := st.DrainTransitTaps(ctx, ts)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
			drained += n
		}
		if st.TransitFares != nil { // decided by the consumer: nothing left in the inbox
			if drained != 0 {
				b.Fatalf("drained %d taps the consumer should have decided", drained)
			}
			return len(msgs)
		}
		if drained != len(msgs) {
			b.Fatalf("drained %d of %d", drained, len(msgs))
		}
		return drained
	}
}

// transitBenchSetup registers transitBenchCards cards, each funded, straight into the registry's tables: the
// benchmark measures transit clearing, not registration.
func transitBenchSetup(b *testing.B, st *postgres.Store) []string {
	b.Helper()
	ctx := context.Background()
	bank := "BENCH-BANK"
	if _, err := st.RegisterParty(ctx, clearing.PartyBank, bank, "bench bank"); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	tokens := make([]string, transitBenchCards)
	specs := make([]postgres.AccountSpec, 0, 2*transitBenchCards)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("card-%06d", i)
		c := cards.Card{Token: tokens[i], FundsAccount: cards.AccountID("funds", tokens[i]), MedicalAccount: cards.AccountID("medical", tokens[i])}
		for _, a := range c.Accounts() {
			specs = append(specs, postgres.AccountSpec{Account: a, Name: a.Kind.String() + " of " + tokens[i]})
		}
	}
	if err := st.CreateAccounts(ctx, specs); err != nil {
		b.Fatal(err)
	}
	_, err := st.Pool().CopyFrom(ctx, pgx.Identifier{"cards"},
		[]string{"card_token", "physical_token", "digital_token", "holder_name", "nationality", "passport_token", "passport_masked",
			"ssn_token", "ssn_masked", "permit_token", "permit_masked", "permit_valid_until", "insurance_city", "issuer_bank",
			"bank_account_token", "bank_account_masked", "card_number_masked", "declared_status", "status_reason",
			"funds_account_id", "medical_account_id", "created_at", "updated_at"},
		pgx.CopyFromSlice(len(tokens), func(i int) ([]any, error) {
			t := tokens[i]
			return []any{t, "", "", "Bench " + t, "DEU", "p-" + t, "****", "s-" + t, "****", "w-" + t, "****",
				time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "hangzhou", bank, "b-" + t, "****", "622848******0000", "active", "",
				[16]byte(cards.AccountID("funds", t)), [16]byte(cards.AccountID("medical", t)), now, now}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	_, err = st.Pool().CopyFrom(ctx, pgx.Identifier{"card_tokens"}, []string{"token", "card_token"},
		pgx.CopyFromSlice(len(tokens), func(i int) ([]any, error) { return []any{tokens[i], tokens[i]}, nil }))
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < len(tokens); start += ledger.MaxBatchTransfers {
		var batch []ledger.Transfer
		for i := start; i < min(start+ledger.MaxBatchTransfers, len(tokens)); i++ {
			batch = append(batch, ledger.Transfer{ID: clearing.TransferID(transitBenchUUID(i), now, 0),
				DebitAccountID: clearing.PartyAccount(clearing.PartyBank, bank), CreditAccountID: cards.AccountID("funds", tokens[i]),
				Amount: transitBenchFunds, Code: clearing.CodeFundsLoaded})
		}
		if _, err := st.CommitBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	return tokens
}

func transitBenchUUID(i int) uuid.UUID {
	h := sha256.Sum256([]byte("bench-funding-" + strconv.Itoa(i)))
	return uuid.UUID(h[:16])
}
