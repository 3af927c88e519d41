package http

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
)

// TestAccountsLeaveTheEnginesIDsAlone: the engine derives the ids of cards', parties' and its own
// accounts (version 8 UUIDs). An account the admin opened first under one of them would make the
// registration of that bank refuse for good, or a cycle's close; so POST /v1/accounts refuses
// them, naming the field, and opens nothing of the batch.
func TestAccountsLeaveTheEnginesIDsAlone(t *testing.T) {
	e, store := newLedgerEnv(t)
	own := uuid.Must(uuid.NewV7())
	for _, id := range []string{
		clearing.PartyAccount(clearing.PartyBank, "BANK-NEW").String(),
		settlement.PositionAccount("BANK-NEW").String(),
		postgres.ReconciliationAccount.String(),
	} {
		body := fmt.Sprintf(`{"accounts":[{"id":%q,"name":"Own","kind":"suspense","currency":"CNY"},
			{"id":%q,"name":"Bank new","kind":"suspense","currency":"CNY"}]}`, own, id)
		w := e.do(t, request{method: "POST", path: "/v1/accounts", body: body})
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "accounts[1].id") {
			t.Errorf("open %s: %d %s, want 400 naming accounts[1].id", id, w.Code, w.Body.String())
		}
		if w := e.do(t, request{method: "GET", path: "/v1/accounts/" + id}); w.Code != http.StatusNotFound {
			t.Errorf("GET %s after the refusal: %d %s", id, w.Code, w.Body.String())
		}
	}
	if w := e.do(t, request{method: "GET", path: "/v1/accounts/" + own.String()}); w.Code != http.StatusNotFound {
		t.Errorf("a refused batch opened its other account: %d %s", w.Code, w.Body.String())
	}
	if _, err := store.RegisterParty(context.Background(), clearing.PartyBank, "BANK-NEW", "Bank new"); err != nil {
		t.Fatalf("register the bank: %v", err)
	}
	body := fmt.Sprintf(`{"accounts":[{"id":%q,"name":"Own","kind":"suspense","currency":"CNY"}]}`, own)
	if w := e.do(t, request{method: "POST", path: "/v1/accounts", body: body}); w.Code != http.StatusCreated {
		t.Errorf("open a uuidv7: %d %s", w.Code, w.Body.String())
	}
}
