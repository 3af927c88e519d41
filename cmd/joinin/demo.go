package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

const (
	demoCards     = 1000  // cardholders in the demo city
	demoMerchants = 40    // merchants, venues and pharmacies
	demoPurchases = 30000 // cleared purchases over the day
	demoAuths     = 400   // pharmacy authorizations held, captured, voided or left to expire
	// demoHoldTimeout is how long a pharmacy authorization holds funds before it expires; the
	// holds the demo leaves to expire get demoShortHold, so that the sweep has work within a
	// demo's run on the real clock.
	demoHoldTimeout = 15 * time.Minute
	demoShortHold   = time.Second
	// demoCatchUpTimeout bounds waiting for the consumer to apply the day's events.
	demoCatchUpTimeout = 5 * time.Minute
)

// demoMDR is the pharmacy's merchant discount rate in the demo: 0.35%.
var demoMDR = decimal.RequireFromString("0.0035")

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("demo", "run a city day end to end through Kafka into the ledger and print what it did")
	c.create = true
	ef := addEngineFlags(fs)
	sf := addSettleFlags(fs)
	rf := addReconcileFlags(fs)
	seed := fs.Uint64("seed", 20241201, "seed of the day's traffic")
	filesDir := fs.String("settlement-out", filepath.Join(os.TempDir(), "joinin-settlement"),
		"directory the day's settlement files are written under")
	checkOut := func() error { return writableDir("--settlement-out", *filesDir) }
	log, st, err := c.start(ctx, fs, args, ef.check, sf.check, rf.check, checkOut)
	if err != nil {
		return err
	}
	defer st.Close()
	set, err := sf.settlement(st)
	if err != nil {
		return err
	}
	day, clock, err := demoDay(ctx, set, st.Now())
	if err != nil {
		return err
	}
	st.Now = clock.Now
	tok, err := ef.tokenizer(log)
	if err != nil {
		return err
	}
	st.Tokenizer = tok // keys the hash kept of a redacted dead letter
	// Each run is a new day of a new city on its own topic, so its cursors start at the topic's
	// beginning even when an earlier run's broker is gone; running the demo again on the same
	// database adds to the ledger and still verifies.
	runSeed := *seed ^ uint64(time.Now().UnixNano())
	ef.topic = fmt.Sprintf("%s-demo-%x", ef.topic, runSeed&0xffffff)
	brokers, stopBroker, err := ef.connect(ctx, log)
	if err != nil {
		return err
	}
	defer stopBroker()

	city := loadtest.NewCity(runSeed, demoCards, demoMerchants, st.Now().UTC())
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			return err
		}
	}
	for _, b := range city.SettlementBanks() {
		if err := st.SetPartyBank(ctx, b.Kind, b.ID, b.Bank); err != nil {
			return err
		}
	}
	d := &demo{st: st, city: city, out: stdout, rng: rand.New(rand.NewPCG(runSeed, 7)), results: map[string]int{}, reasons: map[string]int{}}
	msgs := d.traffic()

	// The consumer runs as in `joinin serve`: partition fetchers, the committers.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: ef.topic, GroupID: ef.group + "-demo",
		Log: log, OnBatch: d.observe, Committers: ef.committers}, st)
	consumed := make(chan error, 1)
	go func() { consumed <- cons.Run(cctx) }()

	start := time.Now()
	if err := d.produce(ctx, brokers, ef.topic, msgs); err != nil {
		return err
	}
	produced := time.Since(start)
	if err := d.waitCaughtUp(ctx, brokers, ef.topic, consumed, demoCatchUpTimeout); err != nil {
		return err
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-consumed; err != nil {
		return err
	}
	dlq := kafka.NewProducer(brokers, ef.dlqTopic)
	relayed, err := (&consumer.Relay{Store: st, Producer: dlq, Tokenizer: tok, Log: log}).RelayOnce(ctx)
	if cerr := dlq.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Join in Card demo: one city day through Kafka into the ledger\n\n")
	fmt.Fprintf(stdout, "%d events produced in %s, all applied after %s: %.0f events/s end to end; %d dead letters relayed to %s\n",
		len(msgs), produced.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(len(msgs))/elapsed.Seconds(), relayed, ef.dlqTopic)
	fmt.Fprintf(stdout, "time in the committer: decode %s, read+decide+apply+write %s, commit %s\n\n",
		d.decode.Round(time.Millisecond), d.ingest.Round(time.Millisecond), d.commit.Round(time.Millisecond))

	if err := d.holds(ctx); err != nil {
		return err
	}
	// The day ends: its cycle closes at the cut-off, and each bank gets its file.
	clock.Set(set.Cycles().Cutoff(day).Add(time.Minute))
	cy, err := set.Close(ctx, day)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := printCycle(ctx, stdout, set, cy); err != nil {
		return err
	}
	dir, err := writeCycleFiles(ctx, set, day, *filesDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  each bank's file (camt.054 XML and CSV) and the manifest are under %s\n\n", dir)

	// The banks book the files and send their statements back: written to agree, then one break
	// of each kind put in, as banks do get things wrong. They are imported and reconciled.
	r, err := rf.reconciler(st)
	if err != nil {
		return err
	}
	clock.Set(set.Cycles().Cutoff(day).Add(demoStatementsAfter)) // the next evening, the statements in
	names, err := demoStatements(ctx, st, set, cy, dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		imp, _, err := importFile(ctx, r, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stdout, "statement %s of %s imported: %d entries\n", imp.Statement, imp.Bank, imp.Entries)
	}
	reps, err := r.ReconcileAll(ctx)
	if err != nil {
		return err
	}
	if err := printReconciliation(ctx, stdout, r, reps); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nthe finance page shows the cycle, the files and the breaks: run\n"+
		"  joinin serve --database-url '%s' --admin-token YOUR-TOKEN\nand open http://127.0.0.1:8080/finance/\n\n", c.databaseURL)
	return d.report(ctx)
}

// demoStatements writes the statement each bank sends back for its file of cycle cy, under dir:
// every item booked as the file says, except one break of each kind put in across the banks: an
// item not booked, an entry that names nothing of ours, an amount a fen off, an entry booked twice,
// a value date two days late, and a statement missing from a bank's sequence.
func demoStatements(ctx context.Context, st *postgres.Store, set *postgres.Settlement, cy postgres.Cycle, dir string) ([]string, error) {
	files, err := set.Files(ctx, cy.Date)
	if err != nil {
		return nil, err
	}
	var names []string
	for i, rec := range files {
		raw, err := os.ReadFile(filepath.Join(dir, settlement.FileName(rec.Header, bankfile.FormatCSV)))
		if err != nil {
			return nil, err
		}
		f, err := bankfile.ReadCSV(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		var seq, closing int64
		if err := st.Pool().QueryRow(ctx, `SELECT coalesce(max(sequence), 0), coalesce((SELECT closing FROM bank_statements
				WHERE bank_id = $1 ORDER BY sequence DESC LIMIT 1), 0) FROM bank_statements WHERE bank_id = $1`,
			rec.Header.BankID).Scan(&seq, &closing); err != nil {
			return nil, err
		}
		seq++
		if i%3 == 2 {
			seq++ // this bank's previous statement never arrives
		}
		s := loadtest.StatementFor(f, seq, closing, st.Now())
		s.Header.To = settlement.AddDays(cy.ValueDate, 1) // a day past the value date
		if len(s.Entries) >= 3 {
			switch i % 3 {
			case 0: // the first item never booked; the second booked twice
				s.Entries = append(s.Entries[1:], s.Entries[1])
			case 1: // an entry nobody settled; the first item two days late
				s.Entries[0].ValueDate = settlement.AddDays(s.Entries[0].ValueDate, 2)
				s.Entries = append(s.Entries, statement.Entry{Amount: 88_88, Direction: statement.Credit, BookingDate: cy.ValueDate,
					ValueDate: cy.ValueDate, EntryRef: fmt.Sprintf("X%06d", seq), EndToEndRef: "SALARY-2026", AdditionalInfo: "代发工资 payroll"})
			case 2: // the first item a fen short
				if s.Entries[0].Amount > 1 {
					s.Entries[0].Amount--
				}
			}
		}
		loadtest.Retotal(s)
		name := filepath.Join(dir, fmt.Sprintf("%s.statement.xml", s.Header.StatementID))
		out, err := os.Create(name)
		if err != nil {
			return nil, err
		}
		err = statement.WriteXML(out, s.Header, slices.Values(s.Entries))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// demoClock is the demo day's time: it runs with the real clock from wherever it was last set.
type demoClock struct {
	mu   sync.Mutex
	base time.Time
	set  time.Time // the real time base was set at
}

func (c *demoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.set))
}

func (c *demoClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.set = t, time.Now()
}

// demoMinDayLeft is how much of its day a demo run wants before the cut-off: a run takes under a
// minute, and its traffic belongs in the cycle it closes.
const demoMinDayLeft = 30 * time.Minute

// demoStatementsAfter is when, after its day's cut-off, a demo run's banks send their statements
// back: the next evening.
const demoStatementsAfter = 22 * time.Hour

// demoDay picks the day a demo run plays and starts its clock. On a database that has closed no
// cycle, it is the latest day whose whole run, to the statements of the next evening, is over by
// now: the run leaves nothing stamped after now, and an engine started on the same database at
// once writes after all of it. After that, each run on one database plays the day after the last
// cycle closed, at the later of now and 09:00, so that the ledger's time only moves forward; once
// those days reach today, a run plays ahead of the real clock.
func demoDay(ctx context.Context, set *postgres.Settlement, now time.Time) (settlement.Date, *demoClock, error) {
	c := set.Cycles()
	day := c.CycleOf(now)
	for c.Cutoff(day).Add(demoStatementsAfter).After(now) {
		day = settlement.AddDays(day, -1)
	}
	last, err := set.ListCycles(ctx, 1)
	if err != nil {
		return day, nil, err
	}
	if len(last) > 0 && !settlement.Before(last[0].Date, day) {
		day = settlement.AddDays(last[0].Date, 1)
	}
	start := c.Start(day).Add(10 * time.Hour)
	if now.After(start) && now.Before(c.Cutoff(day)) {
		start = now
	}
	if c.Cutoff(day).Sub(start) < demoMinDayLeft {
		day = settlement.AddDays(day, 1)
		start = c.Start(day).Add(10 * time.Hour)
	}
	clock := &demoClock{}
	clock.Set(start)
	return day, clock, nil
}

type demo struct {
	st   *postgres.Store
	city *loadtest.City
	out  io.Writer
	rng  *rand.Rand

	mu                     sync.Mutex
	results                map[string]int // "type result" -> events
	reasons                map[string]int // dead letter reason -> count
	decode, ingest, commit time.Duration
	holdResults            map[string]map[ledger.Result]int
}

// traffic is the day: cards registered and funded, purchases and refunds, medical
// contributions, metro taps, and a few messages that must not be applied.
func (d *demo) traffic() []kafkago.Message {
	c := d.city
	var evs []events.Event
	evs = append(evs, c.Registrations()...)
	evs = append(evs, c.Funding(50000, 300000)...)
	buys := c.Purchases(demoPurchases, 5000)
	evs = append(evs, buys...)
	for i := 0; i < 200; i++ {
		b := buys[d.rng.IntN(len(buys))]
		evs = append(evs, c.Refund(b, b.Data.(*events.PurchaseCleared).Amount.Minor))
	}
	for i, card := range c.Cards {
		if i%2 == 0 {
			evs = append(evs, c.Contribution(card, 20000+int64(i%7)*1000))
		}
	}
	for i := 0; i < 3000; i++ {
		evs = append(evs, c.Tap(c.Cards[d.rng.IntN(len(c.Cards))], events.DirectionIn, uint64(i+1)))
	}
	msgs := make([]kafkago.Message, 0, len(evs)+10)
	for _, e := range evs {
		msgs = append(msgs, kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)})
	}
	// What producers get wrong: a redelivery, an id reused for other content, broken bytes, and a
	// purchase at a merchant nobody registered.
	msgs = append(msgs, msgs[len(c.Cards)*2+5], msgs[len(c.Cards)*2+6])
	reused := buys[10]
	reused.Data = &events.PurchaseCleared{MerchantID: c.Merchants[0], Amount: events.Money{Minor: 1, Currency: "CNY"}, MCC: "5411"}
	stranger := c.Purchases(1, 100)[0]
	stranger.Data.(*events.PurchaseCleared).MerchantID = "m-unregistered"
	for _, e := range []events.Event{reused, stranger} {
		msgs = append(msgs, kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)})
	}
	msgs = append(msgs,
		kafkago.Message{Key: []byte(c.Cards[0]), Value: []byte(`{"schema":"joinin.card-event.v1","event_id":"42"}`)},
		kafkago.Message{Key: []byte(c.Cards[1]), Value: []byte(strings.Replace(string(loadtest.Encode(buys[20])), `"amount":"`, `"amount":"0.001`, 1))})
	return msgs
}

func (d *demo) produce(ctx context.Context, brokers []string, topic string, msgs []kafkago.Message) error {
	p := kafka.NewProducer(brokers, topic)
	defer p.Close()
	const chunk = 2000 // messages per produce call: one round trip per partition
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if err := p.Produce(ctx, msgs[:n]...); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (d *demo) observe(b consumer.Batch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.decode += b.DecodeTime
	d.ingest += b.Timing.Ingest
	d.commit += b.Timing.Commit
	for _, p := range b.Decision.Processed {
		d.results[string(p.Type)+" "+string(p.Status)]++
	}
	if b.Decision.Duplicates > 0 {
		d.results["(any) duplicate"] += b.Decision.Duplicates
	}
	for _, dl := range b.Decision.DeadLetters {
		reason := dl.Reason
		if len(reason) > 90 {
			reason = reason[:90] + "..."
		}
		d.reasons[reason]++
	}
}

// waitCaughtUp waits until the consumer's cursors reach the topic's high watermarks, as they stand
// when it returns. It polls the cursors often and the broker only when the cursors reach the marks
// it read last: the wait measures the consumer, and should load neither its database nor the broker.
func (d *demo) waitCaughtUp(ctx context.Context, brokers []string, topic string, consumed <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	marks, err := kafka.HighWatermarks(ctx, brokers, topic)
	if err != nil {
		return err
	}
	names := map[int]string{}
	for {
		// The partitions' cursors in one query.
		list := make([]string, 0, len(marks))
		for p := range marks {
			if names[p] == "" {
				names[p] = kafka.Claim{Topic: topic, Partition: p}.String()
			}
			list = append(list, names[p])
		}
		cursors, err := d.st.Cursors(ctx, list)
		if err != nil {
			return err
		}
		behind := int64(0)
		for p, hw := range marks {
			behind += hw - cursors[names[p]].Position // none yet: 0
		}
		if behind == 0 {
			// Caught up with the marks read last: with the topic's as they stand now too?
			now, err := kafka.HighWatermarks(ctx, brokers, topic)
			if err != nil {
				return err
			}
			if maps.Equal(now, marks) {
				return nil
			}
			marks = now
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the consumer is still %d events behind after %s", behind, timeout)
		}
		select {
		case err := <-consumed:
			return fmt.Errorf("the consumer stopped early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// holds shows two-phase purchases on the ledger: pharmacy authorizations held on the cards'
// funds, half captured (some for less) with the merchant's fee in the same linked group, a
// quarter voided, the rest expired by the sweep; the capture batch is then redelivered.
func (d *demo) holds(ctx context.Context) error {
	d.holdResults = map[string]map[ledger.Result]int{}
	pharmacy := clearing.PartyAccount(clearing.PartyMerchant, d.city.Merchants[0])
	fee := clearing.FeeIncomeAccount
	if err := d.st.CreateAccounts(ctx, []postgres.AccountSpec{{Account: ledger.Account{ID: fee, Currency: "CNY", Kind: ledger.KindFeeIncome}, Name: "merchant fee income"}}); err != nil {
		return err
	}
	auths := make([]ledger.Transfer, 0, demoAuths)
	for i := 0; i < demoAuths; i++ {
		card := cards.AccountID("funds", d.city.Cards[d.rng.IntN(len(d.city.Cards))])
		timeout := demoHoldTimeout
		if i%4 == 3 { // left to expire
			timeout = demoShortHold
		}
		auths = append(auths, ledger.Transfer{ID: newID(), DebitAccountID: card, CreditAccountID: pharmacy,
			Amount: 2000 + d.rng.Int64N(15000), Code: clearing.CodeAuthorization, Flags: ledger.Pending,
			TimeoutSeconds: uint32(timeout / time.Second)})
	}
	res, err := d.commitHolds(ctx, "1 pharmacy authorizations held", auths)
	if err != nil {
		return err
	}
	var batch []ledger.Transfer
	for i, a := range auths {
		if res.Results[i] != ledger.Created {
			continue
		}
		switch i % 4 {
		case 0, 1:
			amount := a.Amount
			if i%4 == 1 {
				amount = a.Amount * 3 / 4 // a partial capture: the pharmacy dispensed less
			}
			mdr := decimal.New(amount, -2).Mul(demoMDR).RoundBank(2).Shift(2).IntPart()
			batch = append(batch,
				ledger.Transfer{ID: newID(), Ref: a.ID, Amount: amount, Code: clearing.CodePurchase, Flags: ledger.PostPending | ledger.Linked},
				ledger.Transfer{ID: newID(), DebitAccountID: pharmacy, CreditAccountID: fee, Amount: max(mdr, 1), Code: clearing.CodeMerchantFee})
		case 2:
			batch = append(batch, ledger.Transfer{ID: newID(), Ref: a.ID, Code: clearing.CodeAuthorizationVoid, Flags: ledger.VoidPending})
		}
	}
	if _, err := d.commitHolds(ctx, "2 captures with fees, voids", batch); err != nil {
		return err
	}
	if _, err := d.commitHolds(ctx, "3 the same batch redelivered", batch); err != nil {
		return err
	}
	// Wait out the short holds, then sweep as serve does every few seconds.
	select {
	case <-time.After(demoShortHold + 100*time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	expired := 0
	for {
		n, err := d.st.ExpireHolds(ctx, 0)
		if err != nil {
			return err
		}
		expired += n
		if n == 0 {
			break
		}
	}
	d.holdResults["4 expiry sweep"] = map[ledger.Result]int{ledger.Created: expired}
	return nil
}

func newID() ledger.ID { return ledger.ID(uuid.Must(uuid.NewV7())) }

func (d *demo) commitHolds(ctx context.Context, step string, batch []ledger.Transfer) (postgres.BatchResult, error) {
	res, err := d.st.CommitBatch(ctx, batch, nil)
	if err != nil {
		return res, fmt.Errorf("%s: %w", step, err)
	}
	counts := map[ledger.Result]int{}
	for _, r := range res.Results {
		counts[r]++
	}
	d.holdResults[step] = counts
	return res, nil
}

func (d *demo) report(ctx context.Context) error {
	w := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "event\tresult\tcount")
	keys := make([]string, 0, len(d.results))
	for k := range d.results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		typ, result, _ := strings.Cut(k, " ")
		fmt.Fprintf(w, "%s\t%s\t%d\n", typ, result, d.results[k])
	}
	fmt.Fprintln(w, "\ndead letter\tcount")
	reasons := make([]string, 0, len(d.reasons))
	for r := range d.reasons {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "%s\t%d\n", r, d.reasons[r])
	}

	fmt.Fprintln(w, "\ntwo-phase purchases on the ledger\tresults")
	steps := make([]string, 0, len(d.holdResults))
	for s := range d.holdResults {
		steps = append(steps, s)
	}
	sort.Strings(steps)
	for _, s := range steps {
		var parts []string
		for _, r := range ledger.Results() {
			if n := d.holdResults[s][r]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", r, n))
			}
		}
		fmt.Fprintf(w, "%s\t%s\n", s, strings.Join(parts, ", "))
	}

	fmt.Fprintln(w, "\naccount\tkind\tdebits posted\tcredits posted\tpending (dr/cr)\tnet")
	show := []ledger.ID{
		clearing.PartyAccount(clearing.PartyBank, d.city.Banks[0]),
		clearing.PartyAccount(clearing.PartyMerchant, d.city.Merchants[0]),
		clearing.PartyAccount(clearing.PartyMerchant, d.city.Merchants[1]),
		clearing.PartyAccount(clearing.PartyInsuranceFund, d.city.Cities[0]),
		cards.AccountID("funds", d.city.Cards[0]),
		cards.AccountID("medical", d.city.Cards[0]),
	}
	for _, id := range show {
		b, err := d.st.Balance(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s / %s\t%s\n", b.Name, b.Kind,
			ledger.FormatAmount(b.DebitsPosted, b.Currency), ledger.FormatAmount(b.CreditsPosted, b.Currency),
			ledger.FormatAmount(b.DebitsPending, b.Currency), ledger.FormatAmount(b.CreditsPending, b.Currency),
			ledger.FormatAmount(b.Net(), b.Currency))
	}

	tb, err := d.st.TrialBalance(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\ntrial balance (whole ledger)\taccounts\tdebits posted\tcredits posted\tpending (dr/cr)")
	for _, k := range tb {
		fmt.Fprintf(w, "%s %s\t%d\t%s\t%s\t%s / %s\n", k.Currency, k.Kind, k.Accounts,
			ledger.FormatAmount(k.DebitsPosted, k.Currency), ledger.FormatAmount(k.CreditsPosted, k.Currency),
			ledger.FormatAmount(k.DebitsPending, k.Currency), ledger.FormatAmount(k.CreditsPending, k.Currency))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	rep, err := d.st.Verify(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\n%s", rep.String())
	if !rep.OK() {
		return fmt.Errorf("ledger failed verification with %d problems", len(rep.Problems))
	}
	return nil
}
