package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
)

// TransfersAPIKinds are the kinds of account the transfers API moves money between: the kinds the
// admin opens (POST /v1/accounts). The others belong to cards and parties, and what moves on them
// is recorded by the engine's own flows beside the ledger: a purchase's hold and capture with its
// authorization, a medical split with its settlement, a fare with its travel day, a settlement
// posting with its cycle. A transfer of the admin's on them would leave those records saying
// otherwise than the ledger: a capture reversed through the ledger is still refundable in full by
// its merchant, a hold voided through it is still an open authorization.
var TransfersAPIKinds = []ledger.Kind{ledger.KindBankSettlement, ledger.KindSuspense}

// maxCachedTransferKinds bounds the kinds of account the transfers API remembers: an account's
// kind never changes, so a remembered one saves a read per request. 262,144 ids of 16 bytes and
// their kinds are a few MiB; a load run's 10,000 accounts fit many times over.
const maxCachedTransferKinds = 1 << 18

// ForeignAccountError refuses a transfers API request naming an account of a kind the API does
// not move money on (TransfersAPIKinds), directly or through the transfer its ref_id names.
// Nothing of the request is applied.
type ForeignAccountError struct {
	Index int         // the transfer of the request, from 0
	Field string      // debit_account_id, credit_account_id or ref_id
	Kind  ledger.Kind // the account's kind
}

func (e *ForeignAccountError) Error() string {
	if e.Field == "ref_id" {
		return fmt.Sprintf("transfers[%d].ref_id: names a transfer on a %s account, which the engine's own records account for: "+
			"the transfers API moves money between bank_settlement and suspense accounts only", e.Index, e.Kind)
	}
	return fmt.Sprintf("transfers[%d].%s: a %s account belongs to a card or a party, which the engine's own records account for: "+
		"the transfers API moves money between bank_settlement and suspense accounts only", e.Index, e.Field, e.Kind)
}

// transferKinds remembers the kinds of the accounts the transfers API has looked up.
type transferKinds struct {
	mu    sync.Mutex
	kinds map[ledger.ID]ledger.Kind
}

func (k *transferKinds) get(id ledger.ID) (ledger.Kind, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kind, ok := k.kinds[id]
	return kind, ok
}

func (k *transferKinds) put(id ledger.ID, kind ledger.Kind) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kinds == nil || len(k.kinds) >= maxCachedTransferKinds {
		k.kinds = make(map[ledger.ID]ledger.Kind)
	}
	k.kinds[id] = kind
}

// checkAccounts refuses a batch that names an account of a kind not in TransfersAPIKinds: its own
// accounts, or, for a transfer that acts on another (post_pending, void_pending, reversal), the
// accounts of the transfer it names, in the batch or already recorded. An account or a transfer
// that does not exist is left to the ledger, which answers it not found. Kinds and transfers never
// change once written, so what is read here still holds when the batch commits.
func (tr *Transfers) checkAccounts(ctx context.Context, batch []ledger.Transfer) error {
	type use struct {
		index int
		field string
	}
	uses := make(map[ledger.ID]use)
	note := func(id ledger.ID, u use) {
		if id == (ledger.ID{}) {
			return
		}
		if _, ok := uses[id]; !ok {
			uses[id] = u
		}
	}
	var refs []uuid.UUID
	refUse := map[ledger.ID]use{}
	for i := range batch {
		t := &batch[i]
		note(t.DebitAccountID, use{i, "debit_account_id"})
		note(t.CreditAccountID, use{i, "credit_account_id"})
		if t.Flags&(ledger.PostPending|ledger.VoidPending|ledger.ExpirePending|ledger.Reversal) == 0 || t.Ref == (ledger.ID{}) {
			continue
		}
		// A ref to a transfer of the batch is looked up too: under an id already recorded, the
		// ledger acts on the recorded transfer, not on the batch's (which it refuses as existing).
		// A ref found nowhere names a transfer of the batch, whose accounts are checked as that
		// one's, or none, which the ledger answers not found.
		if _, ok := refUse[t.Ref]; !ok {
			refUse[t.Ref] = use{i, "ref_id"}
			refs = append(refs, uuid.UUID(t.Ref))
		}
	}
	if len(refs) > 0 {
		rows, err := tr.store.pool.Query(ctx, `SELECT id, debit_account_id, credit_account_id FROM transfers WHERE id = ANY($1)`, refs)
		if err != nil {
			return fmt.Errorf("read the transfers named: %w", err)
		}
		for rows.Next() {
			var id, debit, credit uuid.UUID
			if err := rows.Scan(&id, &debit, &credit); err != nil {
				rows.Close()
				return fmt.Errorf("read the transfers named: %w", err)
			}
			u := refUse[ledger.ID(id)]
			note(ledger.ID(debit), u)
			note(ledger.ID(credit), u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read the transfers named: %w", err)
		}
	}
	var missing []uuid.UUID
	kinds := make(map[ledger.ID]ledger.Kind, len(uses))
	for id := range uses {
		if k, ok := tr.kinds.get(id); ok {
			kinds[id] = k
		} else {
			missing = append(missing, uuid.UUID(id))
		}
	}
	if len(missing) > 0 {
		rows, err := tr.store.pool.Query(ctx, `SELECT id, kind FROM accounts WHERE id = ANY($1)`, missing)
		if err != nil {
			return fmt.Errorf("read the accounts named: %w", err)
		}
		for rows.Next() {
			var (
				id   uuid.UUID
				name string
			)
			if err := rows.Scan(&id, &name); err != nil {
				rows.Close()
				return fmt.Errorf("read the accounts named: %w", err)
			}
			k, err := ledger.ParseKind(name)
			if err != nil {
				rows.Close()
				return fmt.Errorf("read the accounts named: %w", err)
			}
			kinds[ledger.ID(id)] = k
			tr.kinds.put(ledger.ID(id), k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read the accounts named: %w", err)
		}
	}
	rank := map[string]int{"debit_account_id": 0, "credit_account_id": 1, "ref_id": 2}
	var first *ForeignAccountError
	for id, u := range uses {
		k, ok := kinds[id]
		if !ok || slices.Contains(TransfersAPIKinds, k) {
			continue
		}
		if first == nil || u.index < first.Index || (u.index == first.Index && rank[u.field] < rank[first.Field]) {
			first = &ForeignAccountError{Index: u.index, Field: u.field, Kind: k}
		}
	}
	if first != nil {
		return first
	}
	return nil
}
