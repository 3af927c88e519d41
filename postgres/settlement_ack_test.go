package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement/bankfile"
)

// A bank that sends its verdicts on a file again, under a new report id and time, in either
// format, listing the items it accepts or not, is answered as the first time and nothing is
// returned twice; a report giving another verdict on an item already judged is refused, naming
// the item, and changes nothing.
func TestAcknowledgementSentAgainUnderANewIDIsTheSameReport(t *testing.T) {
	ctx := context.Background()
	w, _, day := settledDay(t)
	w.clock.Set(sh("2026-03-04 08:05"))
	f := fileOf(t, w, "ACQ-Y", day)
	if len(f.Items) < 2 {
		t.Fatalf("the file has %d items, want 2 or more", len(f.Items))
	}
	rejected := f.Items[0]
	ack := &bankfile.Ack{MessageID: "ACK-ACQ-Y-1", CreatedAt: sh("2026-03-04 08:00"), FileMessageID: f.Header.MessageID, BankID: "ACQ-Y",
		Status: bankfile.StatusPartial, Items: []bankfile.ItemStatus{{ItemID: rejected.ID, ReasonCode: "AC04", Reason: "account closed"}}}
	first, replayed, err := w.set.Acknowledge(ctx, "ACQ-Y", ack)
	if err != nil || replayed || first.Rejected != 1 {
		t.Fatalf("acknowledgement: %+v %v %v", first, replayed, err)
	}
	party := balance(t, w.st, itemAccount(t, w.st, rejected.ID)).Net()

	again := *ack
	again.MessageID, again.CreatedAt = "ACK-ACQ-Y-2", sh("2026-03-04 09:00")
	again.Items = append([]bankfile.ItemStatus{}, ack.Items...)
	for _, it := range f.Items[1:] {
		again.Items = append(again.Items, bankfile.ItemStatus{ItemID: it.ID, Accepted: true})
	}
	res, replayed, err := w.set.Acknowledge(ctx, "ACQ-Y", &again)
	if err != nil || !replayed || res != first {
		t.Fatalf("the same verdicts under a new report id: %+v replayed %v, %v; want %+v", res, replayed, err, first)
	}

	for name, change := range map[string]func(a *bankfile.Ack){
		"the rejected item accepted": func(a *bankfile.Ack) { a.Status, a.Items = bankfile.StatusAccepted, nil },
		"another reason":             func(a *bankfile.Ack) { a.Items = []bankfile.ItemStatus{{ItemID: rejected.ID, ReasonCode: "AM04"}} },
		"another item rejected too": func(a *bankfile.Ack) {
			a.Items = append(a.Items, bankfile.ItemStatus{ItemID: f.Items[1].ID, ReasonCode: "AC04", Reason: "account closed"})
		},
	} {
		other := *ack
		other.MessageID = "ACK-ACQ-Y-3"
		other.Items = append([]bankfile.ItemStatus{}, ack.Items...)
		change(&other)
		_, _, err := w.set.Acknowledge(ctx, "ACQ-Y", &other)
		var differs *postgres.AckVerdictError
		if !errors.Is(err, postgres.ErrAckConflict) || !errors.As(err, &differs) || !strings.Contains(err.Error(), "item ") {
			t.Errorf("%s: %v, want a conflict naming the item", name, err)
		}
	}
	if got := balance(t, w.st, itemAccount(t, w.st, rejected.ID)).Net(); got != party {
		t.Errorf("the party holds %d after the reports sent again, %d before", got, party)
	}
}

// Two copies of one report sent at once: one records it, the other answers what it did.
func TestAcknowledgementSentTwiceAtOnceHasOneEffect(t *testing.T) {
	ctx := context.Background()
	w, _, day := settledDay(t)
	w.clock.Set(sh("2026-03-04 08:05"))
	f := fileOf(t, w, "ACQ-Y", day)
	rejected := f.Items[0]
	before := balance(t, w.st, itemAccount(t, w.st, rejected.ID)).Net()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		replays  int
		failures []error
		results  []postgres.AckResult
	)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ack := &bankfile.Ack{MessageID: "ACK-ACQ-Y-" + string(rune('A'+i)), CreatedAt: sh("2026-03-04 08:00"), FileMessageID: f.Header.MessageID,
				BankID: "ACQ-Y", Status: bankfile.StatusPartial, Items: []bankfile.ItemStatus{{ItemID: rejected.ID, ReasonCode: "AC04"}}}
			res, replayed, err := w.set.Acknowledge(ctx, "ACQ-Y", ack)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			if replayed {
				replays++
			}
			results = append(results, res)
		}()
	}
	wg.Wait()
	if len(failures) > 0 || replays != 1 || len(results) != 2 || results[0] != results[1] {
		t.Fatalf("two at once: %d replayed, results %+v, failures %v", replays, results, failures)
	}
	if got := balance(t, w.st, itemAccount(t, w.st, rejected.ID)).Net(); got != before+abs(rejected.Amount) {
		t.Errorf("the party holds %d, %d before: returned more than once", got, before)
	}
}

// itemAccount is the account of the settlement item a file names by id.
func itemAccount(t *testing.T, st *postgres.Store, fileItemID string) ledger.ID {
	t.Helper()
	var id [16]byte
	if err := st.Pool().QueryRow(context.Background(), `SELECT account_id FROM settlement_items WHERE item_id = $1`,
		uuid.MustParse(fileItemID)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return ledger.ID(id)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestAcknowledgementReasonsKeepNoPersonalNumber: a bank's text on a rejected item may name the
// account holder's passport or social security number: the engine keeps the reason with it
// withheld, and the same report sent again is still the same report.
func TestAcknowledgementReasonsKeepNoPersonalNumber(t *testing.T) {
	ctx := context.Background()
	w, _, day := settledDay(t)
	w.clock.Set(sh("2026-03-04 08:05"))
	f := fileOf(t, w, "ACQ-Y", day)
	const n = "E98765432X"
	ack := &bankfile.Ack{MessageID: "ACK-ACQ-Y-1", CreatedAt: sh("2026-03-04 08:00"), FileMessageID: f.Header.MessageID, BankID: "ACQ-Y",
		Status: bankfile.StatusPartial, Items: []bankfile.ItemStatus{{ItemID: f.Items[0].ID, ReasonCode: "AC04", Reason: "holder passport " + n + " closed"}}}
	first, replayed, err := w.set.Acknowledge(ctx, "ACQ-Y", ack)
	if err != nil || replayed || first.Rejected != 1 {
		t.Fatalf("acknowledgement: %+v %v %v", first, replayed, err)
	}
	var reason string
	if err := w.st.Pool().QueryRow(ctx, `SELECT reason FROM settlement_item_results`).Scan(&reason); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(reason, n) || !strings.HasPrefix(reason, "holder passport ") || !strings.HasSuffix(reason, " closed") {
		t.Errorf("reason kept as %q", reason)
	}
	again := *ack
	again.MessageID = "ACK-ACQ-Y-2"
	if res, replayed, err := w.set.Acknowledge(ctx, "ACQ-Y", &again); err != nil || !replayed || res != first {
		t.Errorf("the same report again: %+v %v %v", res, replayed, err)
	}
}
