package http

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestStatementPagesReachEveryLine reads an account's statement page by page on the real store,
// as a client does, where one request's transfers, committed together, share one time: a page
// boundary falls among them, and so does a page smaller than them. Following each page's next
// reaches every line once, in order; a cursor that is not one is refused, naming after.
func TestStatementPagesReachEveryLine(t *testing.T) {
	e, _ := newLedgerEnv(t)

	bank, acct := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if w := e.do(t, request{method: "POST", path: "/v1/accounts", body: fmt.Sprintf(`{"accounts":[
		{"id":%q,"name":"Funding bank","kind":"bank_settlement","currency":"CNY"},
		{"id":%q,"name":"Suspense","kind":"suspense","currency":"CNY"}]}`, bank, acct)}); w.Code != http.StatusCreated {
		t.Fatalf("open: %d %s", w.Code, w.Body.String())
	}
	// Two requests: 5 transfers, then 2; each request's transfers commit together.
	var want []string
	for _, n := range []int{5, 2} {
		var parts []string
		for i := 0; i < n; i++ {
			id := uuid.Must(uuid.NewV7()).String()
			parts = append(parts, fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"1.%02d","currency":"CNY"}`, id, bank, acct, i+1))
			want = append(want, id)
		}
		if w := e.do(t, request{method: "POST", path: "/v1/transfers", body: `{"transfers":[` + strings.Join(parts, ",") + `]}`}); w.Code != http.StatusOK ||
			strings.Count(w.Body.String(), `"created"`) != n {
			t.Fatalf("transfers: %d %s", w.Code, w.Body.String())
		}
	}
	whole := e.do(t, request{method: "GET", path: "/v1/accounts/" + acct.String() + "/statement"})
	var all statementView
	decodeStrictly(t, whole, &all)
	if len(all.Lines) != len(want) || all.More || all.Next != "" || all.Lines[0].Time != all.Lines[4].Time {
		t.Fatalf("whole statement: %s", whole.Body.String())
	}
	for _, limit := range []int{1, 2, 3, 5, 6} {
		var got []string
		after := ""
		for page := 0; page <= len(want); page++ {
			path := fmt.Sprintf("/v1/accounts/%s/statement?limit=%d", acct, limit)
			if after != "" {
				path += "&after=" + url.QueryEscape(after)
			}
			w := e.do(t, request{method: "GET", path: path})
			var v statementView
			decodeStrictly(t, w, &v)
			for _, l := range v.Lines {
				got = append(got, l.TransferID)
			}
			if !v.More {
				break
			}
			if v.Next == "" {
				t.Fatalf("limit %d: a full page without next: %s", limit, w.Body.String())
			}
			after = v.Next
		}
		var inOrder []string
		for _, l := range all.Lines {
			inOrder = append(inOrder, l.TransferID)
		}
		if strings.Join(got, " ") != strings.Join(inOrder, " ") {
			t.Errorf("limit %d: pages read %v, want every line once: %v", limit, got, inOrder)
		}
	}
	for _, bad := range []string{"x", "AAAA", strings.Repeat("A", 33)} {
		w := e.do(t, request{method: "GET", path: "/v1/accounts/" + acct.String() + "/statement?after=" + bad})
		if w.Code != http.StatusBadRequest || !strings.HasPrefix(errorOf(t, w).Message, "after: ") {
			t.Errorf("after=%s: %d %s", bad, w.Code, w.Body.String())
		}
	}
}
