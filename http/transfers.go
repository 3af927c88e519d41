package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// TransferService is what the transfers endpoint needs: the transfers committer.
type TransferService interface {
	// Do applies a batch of at most ledger.MaxBatchTransfers transfers durably and answers one
	// ledger result per transfer and the time they were decided at (see postgres.Transfers.Do).
	Do(ctx context.Context, batch []ledger.Transfer) ([]ledger.Result, time.Time, error)
}

var _ TransferService = (*postgres.Transfers)(nil)

// Transfers is the ledger's own transfers API, for the admin: finance adjustments, bank funding
// and anything else that moves money between accounts the ledger holds, one transfer or a batch,
// with linked chains and two-phase holds, each answered with the ledger's result.
type Transfers struct {
	svc TransferService
}

// NewTransfers returns the transfers API on svc.
func NewTransfers(svc TransferService) *Transfers { return &Transfers{svc: svc} }

// Routes registers POST /v1/transfers, an admin route.
func (tf *Transfers) Routes(s *Server) []FeatureRoute {
	h := &transferHandlers{s: s, svc: tf.svc}
	return []FeatureRoute{{Method: http.MethodPost, Path: "/v1/transfers", Admin: true, Handler: h.create}}
}

type transferHandlers struct {
	s   *Server
	svc TransferService
}

// maxTransferJSONBytes bounds one transfer in a request body: six ids, an amount, a currency,
// two numbers and every flag take about 450 bytes; 1 KiB leaves room for spacing. A body of a
// full batch is therefore at most 16 MiB.
const maxTransferJSONBytes = 1 << 10

// maxTransfersBodyBytes bounds the body of POST /v1/transfers: a full ledger batch.
const maxTransfersBodyBytes = ledger.MaxBatchTransfers * maxTransferJSONBytes

// transfersRequest is the body of POST /v1/transfers. The handler reads it with decodeList; the
// types name the fields for the document's check.
type transfersRequest struct {
	Transfers []transferRequest `json:"transfers"`
}

// transferRequest is one transfer: ids are UUIDs, the amount a decimal string in currency.
type transferRequest struct {
	ID              string   `json:"id"`
	DebitAccountID  string   `json:"debit_account_id,omitempty"`
	CreditAccountID string   `json:"credit_account_id,omitempty"`
	Amount          string   `json:"amount,omitempty"`
	Currency        string   `json:"currency"`
	RefID           string   `json:"ref_id,omitempty"`
	UserData        string   `json:"user_data,omitempty"`
	TimeoutSeconds  uint32   `json:"timeout_seconds,omitempty"`
	Code            uint16   `json:"code,omitempty"`
	Flags           []string `json:"flags,omitempty"`
}

var transferFields = map[string]jsonKind{
	"id": jsonString, "debit_account_id": jsonString, "credit_account_id": jsonString, "amount": jsonString,
	"currency": jsonString, "ref_id": jsonString, "user_data": jsonString, "timeout_seconds": jsonInteger,
	"code": jsonInteger, "flags": jsonStrings,
}

// transferFlagNames are the flags a client may set, by name. expire_pending is left out: holds
// expire by the engine's sweep, at their timeout, and a client releases one with void_pending.
var transferFlagNames = map[string]ledger.TransferFlags{
	"linked": ledger.Linked, "pending": ledger.Pending, "post_pending": ledger.PostPending,
	"void_pending": ledger.VoidPending, "reversal": ledger.Reversal,
}

// transfersView answers POST /v1/transfers: one result per transfer, in order, and the time of
// the commit that decided them, which every transfer created carries.
type transfersView struct {
	Results   []transferResultView `json:"results"`
	Timestamp string               `json:"timestamp"`
}

type transferResultView struct {
	ID     string `json:"id"`
	Result string `json:"result"`
}

// MarshalJSON spells v as encoding/json would, without its reflection: a full batch answers
// sixteen thousand results.
func (v transfersView) MarshalJSON() ([]byte, error) {
	if b, ok := v.appendJSON(nil); ok {
		return b, nil
	}
	return json.Marshal(reflectedTransfersView(v))
}

// appendJSON is MarshalJSON's spelling, for writeJSON. A string that is not plain ASCII leaves it
// all to encoding/json.
func (v transfersView) appendJSON(b []byte) ([]byte, bool) {
	if !plainJSON(v.Timestamp) || slices.ContainsFunc(v.Results, func(r transferResultView) bool { return !plainJSON(r.ID) || !plainJSON(r.Result) }) {
		return b, false
	}
	b = slices.Grow(b, 32+len(v.Results)*80+len(v.Timestamp))
	b = append(b, `{"results":[`...)
	for i, r := range v.Results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = append(b, r.ID...)
		b = append(b, `","result":"`...)
		b = append(b, r.Result...)
		b = append(b, `"}`...)
	}
	b = append(b, `],"timestamp":"`...)
	b = append(b, v.Timestamp...)
	return append(b, `"}`...), true
}

// reflectedTransfersView is transfersView spelled by encoding/json.
type reflectedTransfersView transfersView

// plainJSON reports whether s is spelled in JSON as it is, between quotes: printable ASCII that
// encoding/json does not escape.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// create applies a batch of transfers: 200 with the ledger's result for each once every one was
// decided, refused ones included; 400 for a body that is not a batch of transfers, naming the
// transfer and its field, and nothing applied.
func (h *transferHandlers) create(w http.ResponseWriter, r *http.Request) {
	body, err := readListBody(w, r, maxTransfersBodyBytes)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	items, err := decodeList(body, "transfers", ledger.MaxBatchTransfers, transferFields)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	batch := make([]ledger.Transfer, len(items))
	for i, it := range items {
		if err := parseTransfer(i, it, &batch[i]); err != nil {
			h.s.writeError(w, r, err)
			return
		}
	}
	results, at, err := h.svc.Do(r.Context(), batch)
	var foreign *postgres.ForeignAccountError
	switch {
	case errors.As(err, &foreign):
		h.s.writeError(w, r, Errorf(ECONFLICT, "%s", foreign.Error()))
		return
	case errors.Is(err, postgres.ErrTransfersBusy):
		h.s.writeError(w, r, Errorf(EUNAVAILABLE, "busy, retry"))
		return
	case errors.Is(err, postgres.ErrTransfersStopped):
		h.s.writeError(w, r, Errorf(EUNAVAILABLE, "shutting down, retry"))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	case len(results) != len(batch):
		h.s.writeError(w, r, fmt.Errorf("%d results for %d transfers", len(results), len(batch)))
		return
	}
	v := transfersView{Results: make([]transferResultView, len(batch)), Timestamp: at.UTC().Format(time.RFC3339Nano)}
	for i := range batch {
		v.Results[i] = transferResultView{ID: batch[i].ID.String(), Result: results[i].String()}
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// parseTransfer reads item i of the request into t. The rules here are the request's shape;
// everything the ledger decides (ids that must not be zero, accounts that must exist, refs,
// amounts, flags that exclude each other) is its per-transfer result.
func parseTransfer(i int, it listItem, t *ledger.Transfer) error {
	bad := func(field, format string, args ...any) error {
		return Errorf(EINVALID, "transfers[%d].%s: %s", i, field, fmt.Sprintf(format, args...))
	}
	if names, ok := it["flags"].([]string); ok {
		for _, name := range names {
			f, known := transferFlagNames[name]
			switch {
			case name == "expire_pending":
				return bad("flags", "expire_pending is the engine's: holds expire at their timeout, void_pending releases one before")
			case !known:
				return bad("flags", "unknown flag, want some of %q", slices.Sorted(maps.Keys(transferFlagNames)))
			case t.Flags&f != 0:
				return bad("flags", "a flag twice")
			}
			t.Flags |= f
		}
	}
	refers := t.Flags&(ledger.PostPending|ledger.VoidPending|ledger.Reversal) != 0
	cur, ok := it.text("currency")
	if !ok {
		return bad("currency", "missing required field")
	}
	if _, known := ledger.Currency(cur).MinorUnits(); !known {
		return bad("currency", "not a currency the ledger books")
	}
	t.Currency = ledger.Currency(cur)
	ids := []struct {
		field    string
		dst      *ledger.ID
		required bool
	}{
		{"id", &t.ID, true},
		// A post, void or reversal acts between the accounts of the transfer it names, and
		// may leave them out.
		{"debit_account_id", &t.DebitAccountID, !refers},
		{"credit_account_id", &t.CreditAccountID, !refers},
		{"ref_id", &t.Ref, false},
		{"user_data", &t.UserData, false},
	}
	for _, f := range ids {
		s, ok := it.text(f.field)
		if !ok {
			if f.required {
				return bad(f.field, "missing required field")
			}
			continue
		}
		id, err := parseUUID(s)
		if err != nil {
			return bad(f.field, "want a uuid")
		}
		*f.dst = id
	}
	// A void releases the whole hold: its amount may be left out.
	if s, ok := it.text("amount"); ok {
		amount, err := ledger.ParseAmount(s, t.Currency)
		if err != nil {
			return bad("amount", "%v", err)
		}
		if amount > ledger.MaxAmount {
			return bad("amount", "over the largest amount the engine takes, %s %s", ledger.FormatDecimal(ledger.MaxAmount, t.Currency), t.Currency)
		}
		t.Amount = amount
	} else if t.Flags&ledger.VoidPending == 0 {
		return bad("amount", "missing required field")
	}
	if s, ok := it.text("timeout_seconds"); ok {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return bad("timeout_seconds", "want 0 to 4294967295")
		}
		t.TimeoutSeconds = uint32(n)
	}
	if s, ok := it.text("code"); ok {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return bad("code", "want 0 to 65535")
		}
		t.Code = ledger.Code(n)
	}
	return nil
}

// parseUUID reads a UUID in its 8-4-4-4-12 form only: uuid.Parse also takes braces, a urn prefix
// and 32 bare hex digits, which a client of this API has no reason to send.
func parseUUID(s string) (ledger.ID, error) {
	if len(s) != 36 || strings.Count(s, "-") != 4 {
		return ledger.ID{}, errors.New("not a uuid")
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return ledger.ID{}, errors.New("not a uuid")
	}
	return ledger.ID(u), nil
}
