package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// Transfer codes of the demo day. The clearing and fee packages own these meanings as they grow.
const (
	codeFunding ledger.Code = 1  // the linked bank account's funds mirrored onto the card
	codeTap     ledger.Code = 10 // a transit journey's fare
	codeAuth    ledger.Code = 20 // a purchase authorization's hold
	codeCapture ledger.Code = 21 // a captured purchase
	codeVoid    ledger.Code = 22 // a released authorization
	codeMDR     ledger.Code = 30 // the merchant discount fee
	codeSettle  ledger.Code = 40 // a clearing balance moved to its bank at the day's close
)

const (
	demoCards = 200  // cardholders in the demo city
	demoTaps  = 4000 // metro journeys over the day
	demoAuths = 400  // pharmacy authorizations
	// demoBatch is how many transfers the demo commits at once, as a consumer would.
	demoBatch = 1000
	// demoHoldTimeout is how long a pharmacy authorization holds funds before it expires.
	demoHoldTimeout = 15 * time.Minute
)

// demoMDR is the pharmacy's merchant discount rate in the demo: 0.35%.
var demoMDR = decimal.RequireFromString("0.0035")

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("demo", "run a small city day end to end on a fresh chart of accounts and print what it did")
	seed := fs.Uint64("seed", 2024_12_01, "seed of the day's random traffic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	st, err := c.openStore(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()

	// The demo's day runs on its own clock so that holds can expire without waiting.
	clock := time.Now().UTC()
	st.Now = func() time.Time { return clock }
	d := &demo{st: st, rng: rand.New(rand.NewPCG(*seed, 1)), out: stdout, results: map[string]map[ledger.Result]int{}}
	started := time.Now()

	if err := d.openAccounts(ctx); err != nil {
		return err
	}
	if err := d.fund(ctx); err != nil {
		return err
	}
	if err := d.ride(ctx); err != nil {
		return err
	}
	holds, err := d.authorize(ctx)
	if err != nil {
		return err
	}
	if err := d.captureAndVoid(ctx, holds); err != nil {
		return err
	}
	clock = clock.Add(demoHoldTimeout + time.Minute)
	expired := 0
	for {
		n, err := st.ExpireHolds(ctx, demoBatch)
		if err != nil {
			return err
		}
		expired += n
		if n < demoBatch {
			break
		}
	}
	d.results["6 expiry sweep"] = map[ledger.Result]int{ledger.Created: expired}
	if err := d.closeDay(ctx); err != nil {
		return err
	}
	elapsed := time.Since(started)
	return d.report(ctx, elapsed)
}

type demo struct {
	st      *postgres.Store
	rng     *rand.Rand
	out     io.Writer
	results map[string]map[ledger.Result]int
	written int

	cards                                 []ledger.ID
	issuer, acquirer, metro, pharmacy, fee ledger.ID
	replay                                []ledger.Transfer
}

func newID() ledger.ID { return ledger.ID(uuid.Must(uuid.NewV7())) }

func (d *demo) openAccounts(ctx context.Context) error {
	d.issuer, d.acquirer, d.metro, d.pharmacy, d.fee = newID(), newID(), newID(), newID(), newID()
	specs := []postgres.AccountSpec{
		{Account: ledger.Account{ID: d.issuer, Currency: "CNY", Kind: ledger.KindBankSettlement}, Name: "Jiaxing issuer bank settlement"},
		{Account: ledger.Account{ID: d.acquirer, Currency: "CNY", Kind: ledger.KindBankSettlement}, Name: "Hangzhou acquiring bank settlement"},
		{Account: ledger.Account{ID: d.metro, Currency: "CNY", Kind: ledger.KindOperatorClearing}, Name: "Hangzhou Metro clearing"},
		{Account: ledger.Account{ID: d.pharmacy, Currency: "CNY", Kind: ledger.KindMerchantClearing}, Name: "Jiaxing pharmacy clearing (MCC 5912)"},
		{Account: ledger.Account{ID: d.fee, Currency: "CNY", Kind: ledger.KindFeeIncome}, Name: "merchant discount income"},
	}
	for i := 0; i < demoCards; i++ {
		id := newID()
		d.cards = append(d.cards, id)
		specs = append(specs, postgres.AccountSpec{
			Account: ledger.Account{ID: id, Currency: "CNY", Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits},
			Name:    fmt.Sprintf("cardholder %03d funds", i+1),
		})
	}
	return d.st.CreateAccounts(ctx, specs)
}

func (d *demo) commit(ctx context.Context, step string, batch []ledger.Transfer) (postgres.BatchResult, error) {
	res, err := d.st.CommitBatch(ctx, batch, nil)
	if err != nil {
		return res, fmt.Errorf("%s: %w", step, err)
	}
	counts := d.results[step]
	if counts == nil {
		counts = map[ledger.Result]int{}
		d.results[step] = counts
	}
	for _, r := range res.Results {
		counts[r]++
	}
	d.written += len(res.Created)
	return res, nil
}

// fund mirrors each cardholder's linked bank account: 300 to 1,000 CNY.
func (d *demo) fund(ctx context.Context) error {
	batch := make([]ledger.Transfer, 0, len(d.cards))
	for _, card := range d.cards {
		batch = append(batch, ledger.Transfer{ID: newID(), DebitAccountID: d.issuer, CreditAccountID: card,
			Amount: 30000 + d.rng.Int64N(70000), Code: codeFunding})
	}
	_, err := d.commit(ctx, "1 fund cards", batch)
	return err
}

// ride charges metro fares of 2 to 9 CNY; some cards run dry and are declined.
func (d *demo) ride(ctx context.Context) error {
	for done := 0; done < demoTaps; done += demoBatch {
		batch := make([]ledger.Transfer, 0, demoBatch)
		for i := 0; i < demoBatch && done+i < demoTaps; i++ {
			batch = append(batch, ledger.Transfer{ID: newID(), DebitAccountID: d.cards[d.rng.IntN(len(d.cards))],
				CreditAccountID: d.metro, Amount: 200 + 100*d.rng.Int64N(8), Code: codeTap})
		}
		if _, err := d.commit(ctx, "2 metro fares", batch); err != nil {
			return err
		}
	}
	return nil
}

// authorize places pharmacy holds of 20 to 170 CNY.
func (d *demo) authorize(ctx context.Context) ([]ledger.Transfer, error) {
	batch := make([]ledger.Transfer, 0, demoAuths)
	for i := 0; i < demoAuths; i++ {
		batch = append(batch, ledger.Transfer{ID: newID(), DebitAccountID: d.cards[d.rng.IntN(len(d.cards))],
			CreditAccountID: d.pharmacy, Amount: 2000 + d.rng.Int64N(15000), Code: codeAuth,
			Flags: ledger.Pending, TimeoutSeconds: uint32(demoHoldTimeout / time.Second)})
	}
	res, err := d.commit(ctx, "3 pharmacy holds", batch)
	if err != nil {
		return nil, err
	}
	var holds []ledger.Transfer
	for i, r := range res.Results {
		if r == ledger.Created {
			holds = append(holds, batch[i])
		}
	}
	return holds, nil
}

// captureAndVoid captures half the holds (some for less than held) with the pharmacy's fee as a
// linked transfer, voids a quarter and leaves the rest to expire. The capture batch is then
// submitted again, as a consumer would after a crash, and changes nothing.
func (d *demo) captureAndVoid(ctx context.Context, holds []ledger.Transfer) error {
	var batch []ledger.Transfer
	for i, h := range holds {
		switch i % 4 {
		case 0, 1:
			amount := h.Amount
			if i%4 == 1 {
				amount = h.Amount * 3 / 4 // a partial capture: the pharmacy dispensed less
			}
			fee := decimal.New(amount, -2).Mul(demoMDR).RoundBank(2).Shift(2).IntPart()
			batch = append(batch, ledger.Transfer{ID: newID(), Ref: h.ID, Amount: amount, Code: codeCapture,
				Flags: ledger.PostPending | ledger.Linked})
			batch = append(batch, ledger.Transfer{ID: newID(), DebitAccountID: d.pharmacy, CreditAccountID: d.fee,
				Amount: max(fee, 1), Code: codeMDR})
		case 2:
			batch = append(batch, ledger.Transfer{ID: newID(), Ref: h.ID, Code: codeVoid, Flags: ledger.VoidPending})
		}
	}
	if _, err := d.commit(ctx, "4 captures with fees, voids", batch); err != nil {
		return err
	}
	_, err := d.commit(ctx, "5 the same batch redelivered", batch)
	return err
}

// closeDay moves what the metro and the pharmacy cleared today to their acquiring bank's
// settlement account: the shape of the settlement cycle's postings.
func (d *demo) closeDay(ctx context.Context) error {
	var batch []ledger.Transfer
	for _, id := range []ledger.ID{d.metro, d.pharmacy} {
		b, err := d.st.Balance(ctx, id)
		if err != nil {
			return err
		}
		if net := b.Net(); net > 0 {
			batch = append(batch, ledger.Transfer{ID: newID(), DebitAccountID: id, CreditAccountID: d.acquirer, Amount: net, Code: codeSettle})
		}
	}
	_, err := d.commit(ctx, "7 day close to the acquiring bank", batch)
	return err
}

func (d *demo) report(ctx context.Context, elapsed time.Duration) error {
	w := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "Join in Card demo day: %d cardholders, %d transfers written in %s (%.0f transfers/s, batches of %d)\n\n",
		len(d.cards), d.written, elapsed.Round(time.Millisecond), float64(d.written)/elapsed.Seconds(), demoBatch)
	fmt.Fprintln(w, "step\tresults")
	steps := make([]string, 0, len(d.results))
	for s := range d.results {
		steps = append(steps, s)
	}
	sort.Strings(steps)
	for _, s := range steps {
		var parts []string
		for _, r := range ledger.Results() {
			if n := d.results[s][r]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", r, n))
			}
		}
		fmt.Fprintf(w, "%s\t%s\n", s, strings.Join(parts, ", "))
	}

	fmt.Fprintln(w, "\naccount\tkind\tdebits posted\tcredits posted\tpending (dr/cr)\tnet")
	show := []ledger.ID{d.issuer, d.acquirer, d.metro, d.pharmacy, d.fee, d.cards[0], d.cards[1], d.cards[2]}
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
