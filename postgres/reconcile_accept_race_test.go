package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/postgres"
)

// TestAcceptingASuggestionWhileTheItemIsMatchedHasOneEffect: a person accepts the suggestion of an
// entry for an item while a reconciliation matches the same item by a newer entry that names it.
// Whichever commits first, the item stands matched once: the acceptance is refused as matched
// since, or the named entry is not matched a second time. Odd rounds hold the reconciliation in
// the middle of its transaction, so that the acceptance must wait for it; even rounds start both
// at once.
func TestAcceptingASuggestionWhileTheItemIsMatchedHasOneEffect(t *testing.T) {
	const rounds = 4
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			ctx := context.Background()
			w, rec, item := oneItemDay(t)
			bookItem(t, w, 1, nil)
			if _, err := rec.Reconcile(ctx, "ISS"); err != nil {
				t.Fatal(err)
			}
			sugg, err := rec.Suggestions(ctx, "ISS")
			if err != nil || len(sugg) != 1 || sugg[0].Item != item {
				t.Fatalf("suggestions %+v: %v", sugg, err)
			}
			bookItem(t, w, 2, item)
			if round%2 == 1 {
				// A reconciliation in the middle of matching the item: it holds the bank, as every
				// run does, and has written the match, not committed yet. The acceptance waits for
				// it, then finds the item matched.
				tx, err := w.st.Pool().Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx) //nolint:errcheck // committed below
				if _, err := tx.Exec(ctx, `SELECT 1 FROM parties WHERE kind = 'bank' AND party_id = 'ISS' FOR NO KEY UPDATE`); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, `INSERT INTO recon_matches (match_id, bank_id, kind, status, item_id, amount, detail, matched_at)
					VALUES (gen_random_uuid(), 'ISS', 'one_to_one', 'matched', $1, -12345, 'matched by reference', now())`, item); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- rec.Confirm(ctx, sugg[0].ID, true, "王芳") }()
				select {
				case err := <-done:
					t.Fatalf("the acceptance did not wait for the reconciliation holding the bank: %v", err)
				case <-time.After(300 * time.Millisecond):
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if err := <-done; !errors.Is(err, postgres.ErrMatchedSince) {
					t.Fatalf("accepted a suggestion for an item matched while it waited: %v, want ErrMatchedSince", err)
				}
				return
			}
			var (
				wg        sync.WaitGroup
				start     = make(chan struct{})
				acceptErr error
				rep       postgres.ReconcileReport
				repErr    error
			)
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-start
				acceptErr = rec.Confirm(ctx, sugg[0].ID, true, "王芳")
			}()
			go func() {
				defer wg.Done()
				<-start
				rep, repErr = rec.Reconcile(ctx, "ISS")
			}()
			close(start)
			wg.Wait()
			if repErr != nil {
				t.Fatal(repErr)
			}
			if acceptErr != nil && !errors.Is(acceptErr, postgres.ErrMatchedSince) {
				t.Fatalf("accepting: %v", acceptErr)
			}
			var standing int
			if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
				WHERE m.item_id = $1 AND (m.status = 'matched' OR k.accepted)`, item).Scan(&standing); err != nil {
				t.Fatal(err)
			}
			if standing != 1 {
				t.Errorf("the item has %d standing matches, want 1 (accepted: %v; the run: %+v)", standing, acceptErr == nil, rep)
			}
			if acceptErr == nil && rep.Matched != 0 {
				t.Errorf("the suggestion was accepted and the run matched %d entries as well", rep.Matched)
			}
		})
	}
}
