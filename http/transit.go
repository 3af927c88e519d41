package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

// TransitService is what the transit endpoints need of the store.
type TransitService interface {
	// CreateTransitOperator registers an operator with the SHA-256 of its API key; errors wrap
	// postgres.ErrOperatorExists or postgres.ErrAccountConflict.
	CreateTransitOperator(ctx context.Context, id, name string, keyHash [32]byte) (postgres.TransitOperator, error)
	// TransitOperatorByKey finds the operator by the SHA-256 of its key, or fails with
	// postgres.ErrNotFound.
	TransitOperatorByKey(ctx context.Context, keyHash [32]byte) (string, error)
	// SubmitTapBatch decides and records a batch; the same batch id again replays the first
	// answer, with another body it fails with postgres.ErrBatchConflict.
	SubmitTapBatch(ctx context.Context, ts *transit.Tables, b postgres.TapBatch) (postgres.TapBatchResult, bool, error)
	// TapBatch returns an operator's own batch, or postgres.ErrNotFound.
	TapBatch(ctx context.Context, operator, batchID string) (postgres.TapBatchResult, error)
	// DenyList pages through the cards readers refuse, in token order.
	DenyList(ctx context.Context, after string, limit int) ([]postgres.DenyEntry, error)
	// CardDenyStatus says whether readers refuse a card, and why; postgres.ErrNotFound for no
	// such card.
	CardDenyStatus(ctx context.Context, token string) (postgres.DenyEntry, bool, error)
	// TransitTrips returns a card's own token and its priced travel days, with their journeys
	// priced by ts; postgres.ErrNotFound for no such card.
	TransitTrips(ctx context.Context, ts *transit.Tables, token string, from, to transit.Day) (string, []postgres.TripDay, error)
	// SetCardConcession records a card's concession class from now on ("" for none), by who;
	// postgres.ErrNotFound for no such card.
	SetCardConcession(ctx context.Context, token, class, by string) (postgres.CardConcession, error)
}

var _ TransitService = (*postgres.Store)(nil)

// Transit is the transit API: operators registered by the admin upload batches of taps with
// their own API keys and see only their own batches; they read the deny list; the admin reads a
// card's trip history and records its concession class.
type Transit struct {
	svc    TransitService
	tables func() *transit.Tables
}

// NewTransit returns the transit API on svc, pricing with tables.
func NewTransit(svc TransitService, tables *transit.Tables) *Transit {
	return NewTransitLive(svc, func() *transit.Tables { return tables })
}

// NewTransitLive returns the transit API on svc, pricing with the tables that tables returns at
// each request: the fare tables in force, which the admin's uploads change.
func NewTransitLive(svc TransitService, tables func() *transit.Tables) *Transit {
	return &Transit{svc: svc, tables: tables}
}

// Routes registers the transit endpoints.
func (tr *Transit) Routes(s *Server) []FeatureRoute {
	h := &transitHandlers{s: s, svc: tr.svc, tables: tr.tables}
	return []FeatureRoute{
		{Method: http.MethodPost, Path: "/v1/transit/operators", Admin: true, Handler: h.createOperator},
		{Method: http.MethodPost, Path: "/v1/transit/batches", Handler: h.operatorOnly(h.submitBatch)},
		{Method: http.MethodGet, Path: "/v1/transit/batches/{id}", Handler: h.operatorOnly(h.getBatch)},
		{Method: http.MethodGet, Path: "/v1/transit/deny-list", Query: true, Handler: h.operatorOnly(h.denyList)},
		{Method: http.MethodGet, Path: "/v1/transit/deny-list/{token}", Handler: h.operatorOnly(h.denyStatus)},
		{Method: http.MethodGet, Path: "/v1/transit/cards/{token}/trips", Query: true, Admin: true, Handler: h.trips},
		{Method: http.MethodPut, Path: "/v1/transit/cards/{token}/concession", Admin: true, Handler: h.setConcession},
	}
}

type transitHandlers struct {
	s      *Server
	svc    TransitService
	tables func() *transit.Tables
}

const (
	// transitKeyBytes is the entropy of an operator's API key: 256 bits, so that a plain SHA-256
	// of it is as good a stored form as a slow password hash.
	transitKeyBytes = 32
	// transitKeyPrefix marks an operator key, so that one pasted where it does not belong is
	// recognized.
	transitKeyPrefix = "tk_"
	// maxBatchBytes bounds a batch body: MaxTransitBatchTaps taps of at most 400 bytes each, a tap
	// with every identifier at the schema's 64-byte bound, in JSON.
	maxBatchBytes = postgres.MaxTransitBatchTaps * 400
	// defaultDenyListPage is the deny list's page without a limit: what a gate downloads at once.
	defaultDenyListPage = 1000
	// defaultTripDays is the trip history without dates: the last week.
	defaultTripDays = 7
)

var transitKeyLen = len(transitKeyPrefix) + base64.RawURLEncoding.EncodedLen(transitKeyBytes)

func newTransitKey() (string, [32]byte, error) {
	var b [transitKeyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", [32]byte{}, fmt.Errorf("new api key: %w", err)
	}
	key := transitKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, sha256.Sum256([]byte(key)), nil
}

type transitOperatorRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// transitOperatorView is a registered operator with its API key: shown once, never again.
type transitOperatorView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	City      string `json:"city"`
	Mode      string `json:"mode"`
	AccountID string `json:"account_id"`
	APIKey    string `json:"api_key"`
}

// createOperator registers an operator that has a fare table, opens its clearing account and
// answers its API key, once.
func (h *transitHandlers) createOperator(w http.ResponseWriter, r *http.Request) {
	var req transitOperatorRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	switch {
	case req.ID == "":
		h.s.writeError(w, r, Errorf(EINVALID, "id: missing required field"))
		return
	case checkID(req.ID) != "":
		h.s.writeError(w, r, Errorf(EINVALID, "id: %s", checkID(req.ID)))
		return
	case req.Name == "":
		h.s.writeError(w, r, Errorf(EINVALID, "name: missing required field"))
		return
	case checkProse(req.Name) != "":
		h.s.writeError(w, r, Errorf(EINVALID, "name: %s", checkProse(req.Name)))
		return
	}
	if err := checkPartyInFiles(clearing.PartyOperator, req.ID, req.Name); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	op, ok := h.tables().Operator(req.ID)
	if !ok {
		h.s.writeError(w, r, Errorf(EINVALID, "id: no fare table for operator %q: upload one first (POST /v1/tariffs/fares)", req.ID))
		return
	}
	key, hash, err := newTransitKey()
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	created, err := h.svc.CreateTransitOperator(r.Context(), req.ID, req.Name, hash)
	switch {
	case errors.Is(err, postgres.ErrOperatorExists):
		h.s.writeError(w, r, Errorf(ECONFLICT, "operator %q is registered already", req.ID))
		return
	case errors.Is(err, postgres.ErrAccountConflict):
		h.s.writeError(w, r, Errorf(ECONFLICT, "operator %q is registered as a party under another name", req.ID))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusCreated, transitOperatorView{ID: created.ID, Name: created.Name, City: op.City,
		Mode: string(op.Mode), AccountID: created.Account.String(), APIKey: key})
}

type operatorHandler func(w http.ResponseWriter, r *http.Request, operator string)

// operatorOnly lets a request through with an operator's API key as its bearer token, and hands
// the handler the operator: an operator sees only its own batches.
func (h *transitHandlers) operatorOnly(next operatorHandler) http.HandlerFunc {
	return apiKey[string]{
		holder: "operator", realm: "joinin-transit",
		wellFormed: func(key string) bool { return len(key) == transitKeyLen && strings.HasPrefix(key, transitKeyPrefix) },
		lookup:     h.svc.TransitOperatorByKey,
	}.require(h.s, next)
}

// transitBatchRequest is a JSON batch: {"taps": [...]}. The handler reads it tap by tap, so that
// one malformed tap is answered as such and the others are decided.
type transitBatchRequest struct {
	Taps []transitTapRequest `json:"taps"`
}

// transitTapRequest is one tap of a batch, as in the transit.tap event's data without the
// operator, which is the key's.
type transitTapRequest struct {
	DeviceID  string      `json:"device_id"`
	DeviceSeq json.Number `json:"device_seq"`
	CardToken string      `json:"card_token"`
	TappedAt  string      `json:"tapped_at"`
	StationID string      `json:"station_id"`
	Line      string      `json:"line,omitempty"`
	Direction string      `json:"direction"`
	Mode      string      `json:"mode"`
}

type transitBatchView struct {
	BatchID    string              `json:"batch_id"`
	OperatorID string              `json:"operator_id"`
	ReceivedAt string              `json:"received_at"`
	Counts     transitBatchCounts  `json:"counts"`
	Taps       []transitAnswerView `json:"taps"`
}

type transitBatchCounts struct {
	Taps       int `json:"taps"`
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
}

type transitAnswerView struct {
	Index     int    `json:"index"`
	DeviceID  string `json:"device_id"`
	DeviceSeq string `json:"device_seq"`
	Result    string `json:"result"`
	Reason    string `json:"reason,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

func viewBatch(res postgres.TapBatchResult) transitBatchView {
	v := transitBatchView{BatchID: res.BatchID, OperatorID: res.Operator, ReceivedAt: res.ReceivedAt.UTC().Format(time.RFC3339Nano),
		Counts: transitBatchCounts{Taps: len(res.Answers), Accepted: res.Accepted, Duplicates: res.Duplicates, Rejected: res.Rejected},
		Taps:   make([]transitAnswerView, len(res.Answers))}
	for i, a := range res.Answers {
		v.Taps[i] = transitAnswerView{Index: i, DeviceID: a.DeviceID, DeviceSeq: a.DeviceSeq, Result: string(a.Result),
			Reason: string(a.Reason), Detail: a.Detail}
	}
	return v
}

// submitBatch decides an operator's batch of taps, JSON or CSV, under the operator's batch id
// (the Idempotency-Key header): 201 with a result per tap; the same batch again 200 with the same
// answer; another body under the same id 409.
func (h *transitHandlers) submitBatch(w http.ResponseWriter, r *http.Request, operator string) {
	batchID, err := batchIDOf(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	kind, err := batchKind(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBatchBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.s.writeError(w, r, Errorf(ETOOLARGE, "request body is larger than %d bytes", maxBatchBytes))
			return
		}
		h.s.writeError(w, r, Errorf(EINVALID, "cannot read request body"))
		return
	}
	if !utf8.Valid(body) {
		h.s.writeError(w, r, Errorf(EINVALID, "request body is not valid utf-8"))
		return
	}
	var taps []parsedTap
	if kind == "csv" {
		taps, err = parseCSVBatch(body)
	} else {
		taps, err = parseJSONBatch(body)
	}
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	b := postgres.TapBatch{Operator: operator, BatchID: batchID, RequestHash: sha256.Sum256(append([]byte(kind+"\n"), body...))}
	tables := h.tables()
	for _, pt := range taps {
		c := transit.Candidate{Refused: transit.Outcome{Result: transit.Rejected, Reason: transit.ReasonMalformed, Detail: pt.malformed}}
		if pt.malformed == "" {
			c = tables.ParseTap(operator, &pt.raw)
		}
		b.Taps = append(b.Taps, c)
		b.Refs = append(b.Refs, postgres.TapRef{DeviceID: pt.raw.DeviceID, DeviceSeq: pt.raw.DeviceSeq})
	}
	res, replayed, err := h.svc.SubmitTapBatch(r.Context(), tables, b)
	if errors.Is(err, postgres.ErrBatchConflict) {
		h.s.writeError(w, r, Errorf(ECONFLICT, "batch id %q was used before with a different body", batchID))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/transit/batches/"+url.PathEscape(batchID))
	h.s.writeJSON(w, r, status, viewBatch(res))
}

// batchIDOf reads the operator's batch id from the Idempotency-Key header: an identifier.
func batchIDOf(r *http.Request) (string, error) {
	values := r.Header.Values(idempotencyHeader)
	switch {
	case len(values) == 0 || values[0] == "":
		return "", Errorf(EINVALID, "missing idempotency-key header, want the batch id")
	case len(values) > 1:
		return "", Errorf(EINVALID, "more than one idempotency-key header")
	}
	if why := checkSegment(values[0]); why != "" {
		return "", Errorf(EINVALID, "idempotency-key: the batch id %s", why)
	}
	return values[0], nil
}

// batchKind reads the body's Content-Type: "json" or "csv".
func batchKind(r *http.Request) (string, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return "", Errorf(EINVALID, "content-type: want application/json or text/csv")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", Errorf(EINVALID, "content-type: charset must be utf-8")
	}
	switch mt {
	case "application/json":
		return "json", nil
	case "text/csv":
		return "csv", nil
	}
	return "", Errorf(EINVALID, "content-type: want application/json or text/csv")
}

// parsedTap is an uploaded tap's fields as text, or why they could not be read.
type parsedTap struct {
	raw       transit.RawTap
	malformed string
}

// tapFieldNames are the fields of a tap, JSON or CSV.
var tapFieldNames = jsonFields(&transitTapRequest{})

// parseJSONBatch reads {"taps": [...]}, each tap an object of the tap's fields: strings, but
// device_seq a JSON integer, line optional. A tap that breaks a rule is returned malformed, with
// why; a body that is not such an object at all is an error.
func parseJSONBatch(body []byte) ([]parsedTap, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	syntax := func() error {
		return Errorf(EINVALID, "request body is not valid json at byte %d", dec.InputOffset())
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, Errorf(EINVALID, `request body must be a json object {"taps": [...]}`)
	}
	var (
		taps    []parsedTap
		hasTaps bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax()
		}
		if tok != "taps" {
			return nil, unknownField(fmt.Sprint(tok))
		}
		if hasTaps {
			return nil, Errorf(EINVALID, "taps: duplicate field")
		}
		hasTaps = true
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, Errorf(EINVALID, "taps: must be an array")
		}
		for dec.More() {
			if len(taps) == postgres.MaxTransitBatchTaps {
				return nil, Errorf(ETOOLARGE, "more than %d taps in one batch", postgres.MaxTransitBatchTaps)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, syntax()
			}
			taps = append(taps, parseJSONTap(raw))
		}
		if _, err := dec.Token(); err != nil { // the closing bracket
			return nil, syntax()
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntax()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(EINVALID, "request body has data after the json object")
	}
	if !hasTaps {
		return nil, Errorf(EINVALID, "taps: missing required field")
	}
	if len(taps) == 0 {
		return nil, Errorf(EINVALID, "taps: no taps")
	}
	return taps, nil
}

// parseJSONTap reads one tap object strictly: known fields, each once, of its type.
func parseJSONTap(raw json.RawMessage) parsedTap {
	var pt parsedTap
	bad := func(format string, args ...any) parsedTap {
		pt.malformed = fmt.Sprintf(format, args...)
		return pt
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad("a tap must be a json object")
	}
	fields := map[string]*string{
		"device_id": &pt.raw.DeviceID, "device_seq": &pt.raw.DeviceSeq, "card_token": &pt.raw.CardToken,
		"tapped_at": &pt.raw.TappedAt, "station_id": &pt.raw.StationID, "line": &pt.raw.Line,
		"direction": &pt.raw.Direction, "mode": &pt.raw.Mode,
	}
	seen := map[string]bool{}
	var why string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("a tap is not valid json")
		}
		key, _ := tok.(string)
		val, err := dec.Token()
		if err != nil {
			return bad("a tap is not valid json")
		}
		if _, isObj := val.(json.Delim); isObj {
			return bad("%s: must not be an object or array", tapFieldName(key))
		}
		dst, known := fields[key]
		switch {
		case !known:
			var unknown *Error
			if errors.As(unknownField(key), &unknown) {
				why = firstReason(why, unknown.Message)
			}
			continue
		case seen[key]:
			why = firstReason(why, key+": duplicate field")
			continue
		}
		seen[key] = true
		switch v := val.(type) {
		case json.Number:
			if key != "device_seq" {
				why = firstReason(why, key+": must be a string")
				continue
			}
			if !tapDigits(string(v)) {
				why = firstReason(why, "device_seq: want an integer from 0 to 9223372036854775807")
				continue
			}
			*dst = string(v)
		case string:
			if key == "device_seq" {
				why = firstReason(why, "device_seq: must be a json integer")
				continue
			}
			*dst = v
		case nil:
			why = firstReason(why, key+": must not be null (leave an optional field out)")
		default:
			why = firstReason(why, key+": must be a string")
		}
	}
	if why == "" {
		why = unpairedSurrogate(raw)
	}
	if why != "" {
		return bad("%s", why)
	}
	for name := range tapFieldNames {
		if !seen[name] && name != "line" {
			return bad("%s: missing required field", name)
		}
	}
	return pt
}

// firstReason keeps the first reason a tap is malformed.
func firstReason(first, next string) string {
	if first != "" {
		return first
	}
	return next
}

// tapFieldName repeats a field name only when it looks like one.
func tapFieldName(key string) string {
	if tapFieldNames[key] {
		return key
	}
	return "a field"
}

func tapDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseCSVBatch reads a header of the tap's field names (any order, line optional) and a tap a
// row. A row with the wrong number of fields is a malformed tap; a header that is not the tap's
// fields, or text that is not CSV, is an error.
func parseCSVBatch(body []byte) ([]parsedTap, error) {
	// A spreadsheet saving "CSV UTF-8" starts the file with a byte order mark, which would
	// otherwise glue itself to the first column's name.
	body = bytes.TrimPrefix(body, []byte("\ufeff"))
	rd := csv.NewReader(bytes.NewReader(body))
	rd.FieldsPerRecord = -1 // checked per row: a short row is one malformed tap, not a failed batch
	rd.ReuseRecord = false
	header, err := rd.Read()
	if errors.Is(err, io.EOF) {
		return nil, Errorf(EINVALID, "csv: no header")
	}
	if err != nil {
		return nil, tapCSVError(err)
	}
	col := map[string]int{}
	for i, name := range header {
		name = strings.TrimSpace(name)
		if !tapFieldNames[name] {
			// Named only when it looks like a field name: a header cell may hold anything, even a
			// number that must not be echoed.
			if looksLikeFieldName(name) {
				return nil, Errorf(EINVALID, "csv: unknown column %q", name)
			}
			return nil, Errorf(EINVALID, "csv: unknown column %d", i+1)
		}
		if _, dup := col[name]; dup {
			return nil, Errorf(EINVALID, "csv: column %q twice", name)
		}
		col[name] = i
	}
	for name := range tapFieldNames {
		if _, ok := col[name]; !ok && name != "line" {
			return nil, Errorf(EINVALID, "csv: no %q column", name)
		}
	}
	var taps []parsedTap
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, tapCSVError(err)
		}
		if len(taps) == postgres.MaxTransitBatchTaps {
			return nil, Errorf(ETOOLARGE, "more than %d taps in one batch", postgres.MaxTransitBatchTaps)
		}
		var pt parsedTap
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		pt.raw = transit.RawTap{DeviceID: get("device_id"), DeviceSeq: get("device_seq"), CardToken: get("card_token"),
			TappedAt: get("tapped_at"), StationID: get("station_id"), Line: get("line"), Direction: get("direction"), Mode: get("mode")}
		if len(rec) != len(header) {
			pt.malformed = fmt.Sprintf("csv row has %d fields, the header %d", len(rec), len(header))
		}
		taps = append(taps, pt)
	}
	if len(taps) == 0 {
		return nil, Errorf(EINVALID, "csv: no taps")
	}
	return taps, nil
}

// tapCSVError describes a CSV syntax error by where it is, never by what it holds.
func tapCSVError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return Errorf(EINVALID, "csv: line %d column %d: %s", pe.Line, pe.Column, strings.ToLower(pe.Err.Error()))
	}
	return Errorf(EINVALID, "csv: cannot read")
}

// getBatch answers an operator's own batch, as it was answered.
func (h *transitHandlers) getBatch(w http.ResponseWriter, r *http.Request, operator string) {
	id, err := pathID(r, "id")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	res, err := h.svc.TapBatch(r.Context(), operator, id)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "batch not found"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, viewBatch(res))
}

type denyEntryView struct {
	CardToken string   `json:"card_token"`
	Tokens    []string `json:"tokens"`
	// Reason is why: lost, stolen, blocked, closed, permit_expired or fares_owed.
	Reason string `json:"reason"`
	Owed   string `json:"owed"`
	Since  string `json:"since"`
}

type denyListView struct {
	Cards []denyEntryView `json:"cards"`
	// NextAfter is the after of the next page when this one is full.
	NextAfter string `json:"next_after,omitempty"`
}

type denyStatusView struct {
	CardToken string   `json:"card_token"`
	Tokens    []string `json:"tokens"`
	Denied    bool     `json:"denied"`
	Reason    string   `json:"reason,omitempty"`
	Owed      string   `json:"owed"`
	Since     string   `json:"since,omitempty"`
}

// denyList pages through the cards readers refuse: blocked, closed or with an expired permit, or
// owing fares until they pay.
func (h *transitHandlers) denyList(w http.ResponseWriter, r *http.Request, _ string) {
	if err := onlyParameters(r, "limit", "after"); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit := defaultDenyListPage
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > postgres.MaxDenyListPage {
			h.s.writeError(w, r, Errorf(EINVALID, "limit: want 1 to %d", postgres.MaxDenyListPage))
			return
		}
		limit = n
	}
	after := q.Get("after")
	if after != "" {
		if err := checkCardToken("after", after); err != nil {
			h.s.writeError(w, r, err)
			return
		}
	}
	list, err := h.svc.DenyList(r.Context(), after, limit)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v := denyListView{Cards: make([]denyEntryView, len(list))}
	for i, e := range list {
		v.Cards[i] = denyEntryView{CardToken: e.Card, Tokens: e.Tokens, Reason: string(e.Reason), Owed: fenText(e.Owed),
			Since: e.Since.UTC().Format(time.RFC3339Nano)}
	}
	if len(list) == limit {
		v.NextAfter = list[len(list)-1].Card
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// denyStatus says whether one card, by any of its tokens, is on the deny list.
func (h *transitHandlers) denyStatus(w http.ResponseWriter, r *http.Request, _ string) {
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	e, denied, err := h.svc.CardDenyStatus(r.Context(), token)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "card not found"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v := denyStatusView{CardToken: e.Card, Tokens: e.Tokens, Denied: denied, Owed: fenText(e.Owed)}
	if denied {
		v.Reason, v.Since = string(e.Reason), e.Since.UTC().Format(time.RFC3339Nano)
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

type tripsView struct {
	CardToken string        `json:"card_token"`
	From      string        `json:"from"`
	To        string        `json:"to"`
	Days      []tripDayView `json:"days"`
}

type tripDayView struct {
	TravelDay  string            `json:"travel_day"`
	OperatorID string            `json:"operator_id"`
	Priced     string            `json:"priced"`
	CapCredit  string            `json:"cap_credit"`
	Paid       string            `json:"paid"`
	Owed       string            `json:"owed"`
	Journeys   []tripJourneyView `json:"journeys"`
	Postings   []tripPostingView `json:"postings"`
}

type tripJourneyView struct {
	Kind         string `json:"kind"`
	StartedAt    string `json:"started_at"`
	EndedAt      string `json:"ended_at"`
	FromStation  string `json:"from_station"`
	ToStation    string `json:"to_station"`
	Line         string `json:"line,omitempty"`
	TimeBand     string `json:"time_band,omitempty"`
	Concession   string `json:"concession,omitempty"`
	Fare         string `json:"fare"`
	Discount     string `json:"discount"`
	TierDiscount string `json:"tier_discount"`
	Charged      string `json:"charged"`
	CapCredit    string `json:"cap_credit"`
}

type tripPostingView struct {
	TransferID string `json:"transfer_id"`
	Code       string `json:"code"`
	Amount     string `json:"amount"`
	PostedAt   string `json:"posted_at"`
}

// trips answers a card's trip history: each travel day per operator with its journeys, fares,
// transfer discounts, cap credits and the postings that charged it.
func (h *transitHandlers) trips(w http.ResponseWriter, r *http.Request) {
	if err := onlyParameters(r, "from", "to"); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	today := transit.DayOfTime(h.s.now().In(cards.Shanghai))
	to, from := today, today-defaultTripDays+1
	var err error
	if s := q.Get("to"); s != "" {
		if to, err = transit.ParseDay(s); err != nil {
			h.s.writeError(w, r, Errorf(EINVALID, "to: want a date yyyy-mm-dd"))
			return
		}
		from = to - defaultTripDays + 1
	}
	if s := q.Get("from"); s != "" {
		if from, err = transit.ParseDay(s); err != nil {
			h.s.writeError(w, r, Errorf(EINVALID, "from: want a date yyyy-mm-dd"))
			return
		}
	}
	if to < from || int(to-from) >= postgres.MaxTripDays {
		h.s.writeError(w, r, Errorf(EINVALID, "from and to: want from <= to, at most %d days", postgres.MaxTripDays))
		return
	}
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	card, days, err := h.svc.TransitTrips(r.Context(), h.tables(), token, from, to)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "card not found"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v := tripsView{CardToken: card, From: from.String(), To: to.String(), Days: make([]tripDayView, len(days))}
	for i, d := range days {
		dv := tripDayView{TravelDay: d.Day.String(), OperatorID: d.Operator, Priced: fenText(d.Priced), CapCredit: fenText(d.CapCredit),
			Paid: fenText(d.Paid), Owed: fenText(d.Owed), Journeys: make([]tripJourneyView, len(d.Journeys)), Postings: make([]tripPostingView, len(d.Postings))}
		for k, j := range d.Journeys {
			dv.Journeys[k] = tripJourneyView{Kind: string(j.Kind), StartedAt: j.Start.UTC().Format(time.RFC3339Nano),
				EndedAt: j.End.UTC().Format(time.RFC3339Nano), FromStation: j.From, ToStation: j.To, Line: j.Line,
				TimeBand: j.TimeBand, Concession: j.Concession, Fare: fenText(j.Fare), Discount: fenText(j.Discount),
				TierDiscount: fenText(j.TierDiscount), Charged: fenText(j.Charged), CapCredit: fenText(j.CapCredit)}
		}
		for k, p := range d.Postings {
			dv.Postings[k] = tripPostingView{TransferID: p.TransferID.String(), Code: postingCode(p.Code), Amount: fenText(p.Amount),
				PostedAt: p.PostedAt.UTC().Format(time.RFC3339Nano)}
		}
		v.Days[i] = dv
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

type concessionRequest struct {
	// Class is the concession class ("senior", "student", ...), "" for none.
	Class string `json:"class"`
	SetBy string `json:"set_by"`
}

type concessionView struct {
	CardToken string                 `json:"card_token"`
	Class     string                 `json:"class"`
	History   []concessionChangeView `json:"history"`
}

type concessionChangeView struct {
	At    string `json:"at"`
	Class string `json:"class"`
	By    string `json:"by"`
}

// setConcession records the card's concession class from now on: its journeys from this instant
// pay the class's fare where a fare table names it. Travel days already closed keep their prices.
func (h *transitHandlers) setConcession(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var req concessionRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if req.Class != "" {
		if why := transit.CheckClass(req.Class); why != "" {
			h.s.writeError(w, r, Errorf(EINVALID, "class: %s", why))
			return
		}
	}
	switch {
	case req.SetBy == "":
		h.s.writeError(w, r, Errorf(EINVALID, "set_by: missing, want the name of who records the class"))
		return
	case checkProse(req.SetBy) != "" || len(req.SetBy) > maxUploaderBytes:
		why := checkProse(req.SetBy)
		if why == "" {
			why = "must be at most 128 bytes"
		}
		h.s.writeError(w, r, Errorf(EINVALID, "set_by: %s", why))
		return
	}
	cc, err := h.svc.SetCardConcession(r.Context(), token, req.Class, req.SetBy)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "card not found"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v := concessionView{CardToken: cc.Card, Class: cc.Class, History: make([]concessionChangeView, len(cc.History))}
	for i, c := range cc.History {
		v.History[i] = concessionChangeView{At: c.At.UTC().Format(time.RFC3339Nano), Class: c.Class, By: c.By}
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// fen writes fen as a CNY decimal: "3.00", "-1.50".
func fenText(v int64) string { return decimalAmount(v, "CNY") }

func postingCode(c ledger.Code) string {
	switch c {
	case clearing.CodeTransitFare:
		return "transit_fare"
	case clearing.CodeTransitAdjustment:
		return "transit_adjustment"
	}
	return fmt.Sprintf("code_%d", c)
}
