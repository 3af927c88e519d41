package http

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
)

// ReconciliationService is what the reconciliation endpoints need of the reconciler.
type ReconciliationService interface {
	// Import imports the statement rd reads, streaming its entries in one transaction: a
	// statement the reader refuses is refused whole (the reader's error, a *statement.FieldError
	// or several joined) and nothing of it is kept. The same statement again is a replay
	// (replayed true); its id or sequence number with other content fails with
	// postgres.ErrStatementConflict, a bank not registered with postgres.ErrUnknownBank, an
	// import the store had to run again after reading the statement with
	// postgres.ErrStatementReadOnce (nothing kept).
	Import(ctx context.Context, rd *statement.Reader) (postgres.Imported, bool, error)
	// Reconcile decides bank's statement entries not matched yet, records matches, suggestions
	// and breaks, and resolves the breaks whose want is met.
	Reconcile(ctx context.Context, bank string) (postgres.ReconcileReport, error)
	// Breaks lists breaks, newest first by the date their age counts from, at most f.Limit.
	Breaks(ctx context.Context, f postgres.BreakFilter) ([]postgres.Break, error)
	// Break returns one break with its statement entries, or an error wrapping
	// postgres.ErrNotFound.
	Break(ctx context.Context, id ledger.ID) (postgres.Break, error)
	// ResolveWithNote resolves a break with a note, recording who and when: postgres.ErrNotFound,
	// postgres.ErrBreakResolved for a break resolved before.
	ResolveWithNote(ctx context.Context, id ledger.ID, by, note string) (postgres.Break, error)
	// ResolveWithAdjustment resolves a break by an adjustment of the bank's settlement position
	// through the ledger, with a note, who and when: the errors of ResolveWithNote, and
	// postgres.ErrNotAdjustable for a break without an amount difference.
	ResolveWithAdjustment(ctx context.Context, id ledger.ID, by, note string) (postgres.Break, error)
}

var _ ReconciliationService = (*postgres.Reconciler)(nil)

// Reconciliation is the reconciliation API, a Feature for the admin: import a bank's statement
// (camt.053 XML or CSV) and reconcile the bank at once, list and read the breaks with their
// statement entries and ageing, and resolve a break with a note or with an adjustment through
// the ledger. The finance page offers the same breaks to people.
type Reconciliation struct {
	svc ReconciliationService
	// MaxStatementBytes bounds a statement's body; zero is maxStatementBodyBytes.
	MaxStatementBytes int64
}

// NewReconciliation returns the reconciliation API over svc (the reconciler).
func NewReconciliation(svc ReconciliationService) *Reconciliation {
	return &Reconciliation{svc: svc}
}

const (
	// maxStatementBodyBytes bounds a statement's body. The body streams into the import, so
	// memory does not depend on it; it stops a runaway upload holding an import transaction open
	// for hours. In camt.053 XML an entry as banks book settlement items (an item id as its
	// reference, no additional information) takes about 520 bytes, a million of them about
	// 500 MB; in CSV about 85 bytes. 1 GiB takes two million such XML entries, four cycles of
	// the largest settlement files (bankfile.MaxItems items each), and the CSV of a statement at
	// the format's own bound (statement.MaxEntries). A bank with more sends its period as
	// several statements of its sequence, or uses `joinin reconcile import` on the file.
	maxStatementBodyBytes = 1 << 30
	// statementTimeout is how long a statement's request may take, body and answer, in place of
	// the server's own timeouts (a minute in joinin serve, for requests that take
	// milliseconds): a statement at the bound takes some 15 minutes to send over a 10 Mbit/s
	// link, and its import and reconciliation minutes more. Only the admin can hold a request
	// this long.
	statementTimeout = 30 * time.Minute
	// breaksPageMax bounds one listing of breaks: the store's own bound, a page finance staff
	// read. It is also the listing's length without a limit.
	breaksPageMax = 1000
	// breakNoteMaxBytes bounds a resolution's note: the store's own bound, a paragraph.
	breakNoteMaxBytes = 2000
)

// Routes registers the reconciliation endpoints, all for the admin.
func (rc *Reconciliation) Routes(srv *Server) []FeatureRoute {
	h := &reconHandlers{s: srv, svc: rc.svc, maxBody: rc.MaxStatementBytes}
	if h.maxBody <= 0 {
		h.maxBody = maxStatementBodyBytes
	}
	return []FeatureRoute{
		{Method: http.MethodPost, Path: "/v1/reconciliation/statements", Admin: true, Handler: h.importStatement},
		{Method: http.MethodGet, Path: "/v1/reconciliation/breaks", Query: true, Admin: true, Handler: h.breaks},
		{Method: http.MethodGet, Path: "/v1/reconciliation/breaks/{id}", Admin: true, Handler: h.getBreak},
		{Method: http.MethodPost, Path: "/v1/reconciliation/breaks/{id}/resolution", Admin: true, Handler: h.resolve},
	}
}

type reconHandlers struct {
	s       *Server
	svc     ReconciliationService
	maxBody int64
}

// --- statements -------------------------------------------------------------------------------------

// statementImportView is what importing a statement did, and what reconciling its bank found.
type statementImportView struct {
	Bank        string `json:"bank"`
	StatementID string `json:"statement_id"`
	Sequence    int64  `json:"sequence"`
	Entries     int64  `json:"entries"`
	// Replayed says the statement was imported before, with the same content: nothing new.
	Replayed       bool             `json:"replayed"`
	Reconciliation reconcileRunView `json:"reconciliation"`
}

// reconcileRunView is one reconciliation of a bank: the entries it decided for the first time,
// the matches, suggestions and breaks it recorded, the breaks it resolved because what they
// wanted arrived.
type reconcileRunView struct {
	Bank      string         `json:"bank"`
	Entries   int64          `json:"entries"`
	Matched   int64          `json:"matched"`
	Suggested int64          `json:"suggested"`
	Breaks    breakCountView `json:"breaks"`
	Resolved  int64          `json:"resolved"`
}

// breakCountView counts the breaks a reconciliation recorded, every kind named.
type breakCountView struct {
	MissingAtBank   int64 `json:"missing_at_bank"`
	MissingInLedger int64 `json:"missing_in_ledger"`
	AmountMismatch  int64 `json:"amount_mismatch"`
	Duplicate       int64 `json:"duplicate"`
	Timing          int64 `json:"timing"`
	StatementGap    int64 `json:"statement_gap"`
}

func reconcileRun(rep postgres.ReconcileReport) (reconcileRunView, error) {
	v := reconcileRunView{Bank: rep.Bank, Entries: rep.Entries, Matched: rep.Matched, Suggested: rep.Suggested, Resolved: rep.Resolved}
	for k, n := range rep.Breaks {
		switch k {
		case reconcile.MissingAtBank:
			v.Breaks.MissingAtBank = n
		case reconcile.MissingInLedger:
			v.Breaks.MissingInLedger = n
		case reconcile.AmountMismatch:
			v.Breaks.AmountMismatch = n
		case reconcile.Duplicate:
			v.Breaks.Duplicate = n
		case reconcile.Timing:
			v.Breaks.Timing = n
		case reconcile.StatementGap:
			v.Breaks.StatementGap = n
		default:
			return v, fmt.Errorf("reconciliation of %s counted breaks of kind %q, which the api does not show", rep.Bank, k)
		}
	}
	return v, nil
}

// statementFormat picks the statement's format by the body's Content-Type, as an
// acknowledgement's is picked.
func statementFormat(r *http.Request) (statement.Format, error) {
	const want = "content-type: want application/xml or text/csv"
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return "", Errorf(EINVALID, want)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", Errorf(EINVALID, "content-type: charset must be utf-8")
	}
	switch mt {
	case "application/xml":
		return statement.FormatXML, nil
	case "text/csv":
		return statement.FormatCSV, nil
	}
	return "", Errorf(EINVALID, want)
}

// statementSentinels are the refusals a statement reader wraps; statementError also knows them
// outside a *statement.FieldError.
var statementSentinels = []error{statement.ErrControlCount, statement.ErrControlSum, statement.ErrNetTotal,
	statement.ErrClosingBalance, statement.ErrSequence, statement.ErrCardNumber, statement.ErrTooLarge}

// fieldErrors collects the reader's refusals in err: one *statement.FieldError, or several
// joined (every total that disagrees), through any wrapping.
func fieldErrors(err error) []*statement.FieldError {
	switch x := err.(type) {
	case nil:
		return nil
	case *statement.FieldError:
		return []*statement.FieldError{x}
	case interface{ Unwrap() []error }:
		var out []*statement.FieldError
		for _, e := range x.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return fieldErrors(x.Unwrap())
	}
	return nil
}

// isStatementRefusal reports whether err is the reader's refusal of a statement rather than
// the store's failure.
func isStatementRefusal(err error) bool {
	if len(fieldErrors(err)) > 0 {
		return true
	}
	for _, s := range statementSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// statementError describes a statement the reader refused: by line, record, entry and element
// or column, which the reader's errors name without repeating a value; several refusals (the
// totals that disagree) are joined by "; ". An unexpected element's name is the one thing such a
// message quotes; should one hold what may be a card number, or a byte that is not printable
// UTF-8, it is cut to where the refusal is.
func statementError(err error) error {
	fes := fieldErrors(err)
	if len(fes) == 0 {
		for _, s := range statementSentinels {
			if errors.Is(err, s) {
				return Errorf(EINVALID, "statement: %s", s)
			}
		}
		return Errorf(EINVALID, "statement: cannot read request body")
	}
	parts := make([]string, len(fes))
	for i, fe := range fes {
		msg := fe.Error()
		if events.ContainsCardNumber(msg) || !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool {
			return unicode.IsControl(r) || r == utf8.RuneError
		}) {
			msg = fe.Record + ": refused"
			if fe.Entry > 0 {
				msg = fmt.Sprintf("%s %d: refused", fe.Record, fe.Entry)
			}
			if fe.Line > 0 {
				msg = fmt.Sprintf("line %d: %s", fe.Line, msg)
			}
		}
		parts[i] = msg
	}
	return Errorf(EINVALID, "statement: %s", strings.Join(parts, "; "))
}

// importStatement imports a bank's statement (camt.053 XML or CSV, by Content-Type), streaming
// the body into the store, then reconciles the statement's bank: 201 with what both did; the
// same statement again 200 (reconciled again, which finds what arrived since); its id or
// sequence with other content 409; a statement of a bank not registered, one whose period ends
// after today (postgres.StatementFutureDays), or one the reader refuses, 400 and nothing of it
// kept.
func (h *reconHandlers) importStatement(w http.ResponseWriter, r *http.Request) {
	format, err := statementFormat(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	// Deadlines are the connection's, in wall time whatever the server's clock says; the
	// connection closes after the answer, so that no later request inherits them. A connection
	// that has none (a test's recorder) is left as it is.
	w.Header().Set("Connection", "close")
	rc, deadline := http.NewResponseController(w), time.Now().Add(statementTimeout)
	for _, set := range []func(time.Time) error{rc.SetReadDeadline, rc.SetWriteDeadline} {
		if err := set(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			h.s.writeError(w, r, fmt.Errorf("extend the deadline of a statement's request: %w", err))
			return
		}
	}
	body := &boundedBody{r: http.MaxBytesReader(w, r.Body, h.maxBody)}
	tooLarge := Errorf(ETOOLARGE, "request body is larger than %d bytes", h.maxBody)
	rd, err := statement.Open(body, format)
	if body.over {
		h.s.writeError(w, r, tooLarge)
		return
	}
	if err != nil {
		h.s.writeError(w, r, statementError(err))
		return
	}
	hdr := rd.Header()
	imp, replayed, err := h.svc.Import(r.Context(), rd)
	var future *postgres.FutureStatementError
	switch {
	case body.over:
		h.s.writeError(w, r, tooLarge)
		return
	case errors.Is(err, postgres.ErrUnknownBank):
		// The reader has checked the bank's id: printable ASCII, no card number.
		h.s.writeError(w, r, Errorf(EINVALID, "statement: header: bank %q is not registered", hdr.BankID))
		return
	case errors.Is(err, postgres.ErrStatementConflict):
		h.s.writeError(w, r, Errorf(ECONFLICT, "statement %s of bank %s, sequence %d: its id or its sequence was imported before with other content",
			hdr.StatementID, hdr.BankID, hdr.Sequence))
		return
	case errors.As(err, &future):
		// The reader has checked the statement's id and bank: printable ASCII, no card number.
		h.s.writeError(w, r, Errorf(EINVALID, "statement: header: statement %s of bank %s: its period ends %s, after %s, "+
			"today in Asia/Shanghai plus %d day: a statement reports days that have passed", future.Statement, future.Bank,
			future.To, future.Latest, postgres.StatementFutureDays))
		return
	case errors.Is(err, postgres.ErrStatementReadOnce):
		// A concurrent writer made the store run the import again after the body was read.
		h.s.writeError(w, r, Errorf(EUNAVAILABLE, "busy: the import ran into a concurrent one after reading the statement, "+
			"and kept nothing: send it again"))
		return
	case err != nil && isStatementRefusal(err):
		h.s.writeError(w, r, statementError(err))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	// Imported (or replayed): reconcile the bank now. Should this fail, the statement is kept,
	// and posting it again replays it and reconciles.
	rep, err := h.svc.Reconcile(r.Context(), imp.Bank)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	run, err := reconcileRun(rep)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	h.s.log.InfoContext(r.Context(), "statement imported", "bank", imp.Bank, "statement", imp.Statement, "sequence", imp.Sequence,
		"entries", imp.Entries, "replayed", replayed)
	h.s.writeJSON(w, r, status, statementImportView{Bank: imp.Bank, StatementID: imp.Statement, Sequence: imp.Sequence,
		Entries: imp.Entries, Replayed: replayed, Reconciliation: run})
}

// --- breaks -----------------------------------------------------------------------------------------

// reconBreakView is a break: what the engine settled with a bank (expected) against what the bank
// booked (actual), both signed from the bank's point of view, with its age. Fields that do not
// apply to its kind are left out: a statement gap has no amounts, an entry missing in the
// ledger no expected item.
type reconBreakView struct {
	ID           string `json:"id"`
	Bank         string `json:"bank"`
	Kind         string `json:"kind"`
	Cycle        string `json:"cycle,omitempty"`
	ItemID       string `json:"item_id,omitempty"`
	FileID       string `json:"file_id,omitempty"`
	Expected     string `json:"expected,omitempty"`
	Actual       string `json:"actual,omitempty"`
	ExpectedDate string `json:"expected_date,omitempty"`
	ActualDate   string `json:"actual_date,omitempty"`
	AsOf         string `json:"as_of"`
	AgeDays      int    `json:"age_days"`
	AgeBucket    string `json:"age_bucket"`
	Detail       string `json:"detail"`
	DetectedAt   string `json:"detected_at"`
	// Resolution is null while the break is open.
	Resolution *reconResolutionView `json:"resolution"`
}

// reconResolutionView is how a break was resolved: kind note or adjustment by a person, matched
// or superseded by the engine; transfer_id is the adjustment's ledger transfer.
type reconResolutionView struct {
	Kind       string `json:"kind"`
	Note       string `json:"note"`
	TransferID string `json:"transfer_id,omitempty"`
	By         string `json:"by"`
	At         string `json:"at"`
}

// reconBreakDetailView is a break with the statement entries it is about.
type reconBreakDetailView struct {
	reconBreakView
	Entries []reconEntryView `json:"entries"`
}

// reconEntryView is a statement entry: amount signed as the bank's account moved (positive, the
// bank received); ref is the end-to-end reference the bank carried, empty for none.
type reconEntryView struct {
	StatementID string `json:"statement_id"`
	Line        int64  `json:"line"`
	EntryRef    string `json:"entry_ref"`
	Ref         string `json:"ref"`
	Amount      string `json:"amount"`
	BookingDate string `json:"booking_date"`
	ValueDate   string `json:"value_date"`
	Info        string `json:"info"`
}

type reconBreakListView struct {
	Breaks []reconBreakView `json:"breaks"`
}

func newReconBreakView(b postgres.Break) reconBreakView {
	v := reconBreakView{ID: b.ID.String(), Bank: b.Bank, Kind: string(b.Kind), AsOf: b.AsOf.String(), AgeDays: b.Age,
		AgeBucket: string(b.Bucket), Detail: b.Detail, DetectedAt: shanghaiTime(b.DetectedAt), FileID: b.File}
	if b.Cycle != nil {
		v.Cycle = b.Cycle.String()
	}
	if !b.Item.IsZero() {
		v.ItemID = settlement.FileItemID(b.Item)
	}
	if b.Expected != nil {
		v.Expected = fenText(*b.Expected)
	}
	if b.Actual != nil {
		v.Actual = fenText(*b.Actual)
	}
	if b.ExpectedDate != nil {
		v.ExpectedDate = b.ExpectedDate.String()
	}
	if b.ActualDate != nil {
		v.ActualDate = b.ActualDate.String()
	}
	if res := b.Resolution; res != nil {
		v.Resolution = &reconResolutionView{Kind: res.Kind, Note: res.Note, By: res.By, At: shanghaiTime(res.At)}
		if !res.TransferID.IsZero() {
			v.Resolution.TransferID = res.TransferID.String()
		}
	}
	return v
}

func newReconBreakDetailView(b postgres.Break) reconBreakDetailView {
	v := reconBreakDetailView{reconBreakView: newReconBreakView(b), Entries: make([]reconEntryView, len(b.Entries))}
	for i, e := range b.Entries {
		v.Entries[i] = reconEntryView{StatementID: e.Statement, Line: e.Line, EntryRef: e.EntryRef, Ref: e.Ref, Amount: fenText(e.Amount),
			BookingDate: e.BookingDate.String(), ValueDate: e.ValueDate.String(), Info: e.Info}
	}
	return v
}

// breaksFilter reads the listing's query: bank, open (true or false), cycle and limit, each at
// most once; any other parameter is refused.
func breaksFilter(r *http.Request) (postgres.BreakFilter, error) {
	const names = "bank, open, cycle or limit"
	f := postgres.BreakFilter{Limit: breaksPageMax}
	for k, v := range r.URL.Query() {
		switch k {
		case "bank", "open", "cycle", "limit":
		default:
			return f, unknownParameter(k, names)
		}
		if len(v) != 1 {
			return f, Errorf(EINVALID, "%s: give it once", k)
		}
		switch val := v[0]; k {
		case "bank":
			if val == "" {
				return f, Errorf(EINVALID, "bank: missing")
			}
			if why := checkID(val); why != "" {
				return f, Errorf(EINVALID, "bank: %s", why)
			}
			f.Bank = val
		case "open":
			switch val {
			case "true":
				f.Open = true
			case "false":
			default:
				return f, Errorf(EINVALID, "open: want true or false")
			}
		case "cycle":
			d, err := settlement.ParseDate(val)
			if err != nil {
				return f, Errorf(EINVALID, `cycle: want a cycle date yyyy-mm-dd such as "2026-03-03"`)
			}
			f.Cycle = &d
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > breaksPageMax {
				return f, Errorf(EINVALID, "limit: want one number from 1 to %d", breaksPageMax)
			}
			f.Limit = n
		}
	}
	return f, nil
}

// breaks lists breaks, newest first by the date their age counts from: every bank's or one's,
// open or all, of one cycle or all.
func (h *reconHandlers) breaks(w http.ResponseWriter, r *http.Request) {
	f, err := breaksFilter(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	list, err := h.svc.Breaks(r.Context(), f)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v := reconBreakListView{Breaks: make([]reconBreakView, len(list))}
	for i, b := range list {
		v.Breaks[i] = newReconBreakView(b)
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// getBreak answers one break with its statement entries.
func (h *reconHandlers) getBreak(w http.ResponseWriter, r *http.Request) {
	id, err := pathUUID(r, "break")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	b, err := h.svc.Break(r.Context(), id)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "no break %s", id))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, newReconBreakDetailView(b))
}

// resolveBreakRequest resolves a break: kind note records the note; kind adjustment also moves
// the bank's settlement position by the difference through the ledger. By names who resolves it.
type resolveBreakRequest struct {
	Kind string `json:"kind"`
	Note string `json:"note"`
	By   string `json:"by"`
}

// check checks the request's fields and returns the note as it is kept: without the spaces
// and line breaks around it.
func (q resolveBreakRequest) check() (string, error) {
	if q.Kind != "note" && q.Kind != "adjustment" {
		return "", Errorf(EINVALID, "kind: want note or adjustment")
	}
	if q.By == "" {
		return "", Errorf(EINVALID, "by: missing: name who resolves the break")
	}
	if why := checkProse(q.By); why != "" {
		return "", Errorf(EINVALID, "by: %s", why)
	}
	note := strings.TrimSpace(q.Note)
	switch {
	case note == "":
		return "", Errorf(EINVALID, "note: missing: say why the break is resolved")
	case len(note) > breakNoteMaxBytes:
		return "", Errorf(EINVALID, "note: more than %d bytes", breakNoteMaxBytes)
	}
	// A note is a paragraph: line breaks and tabs, as the finance page's, and nothing else
	// that is not printable.
	if why := checkFormText(note, true); why != "" {
		return "", Errorf(EINVALID, "note: %s", why)
	}
	for field, s := range map[string]string{"by": q.By, "note": note} {
		if events.ContainsCardNumber(s) {
			return "", Errorf(EINVALID, "%s: looks like a card number in clear: write the card's masked form", field)
		}
		if events.MayBePersonalNumber(s) {
			return "", Errorf(EINVALID, "%s: may hold a passport, social security, resident id or work permit number: write none here", field)
		}
	}
	return note, nil
}

// resolve resolves a break with a note, or with an adjustment and a note, in the name given:
// 201 with the break resolved; 409 for a break resolved before, or one without an amount
// difference to adjust.
func (h *reconHandlers) resolve(w http.ResponseWriter, r *http.Request) {
	id, err := pathUUID(r, "break")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var req resolveBreakRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	note, err := req.check()
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	resolve := h.svc.ResolveWithNote
	if req.Kind == "adjustment" {
		resolve = h.svc.ResolveWithAdjustment
	}
	b, err := resolve(r.Context(), id, req.By, note)
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		h.s.writeError(w, r, Errorf(ENOTFOUND, "no break %s", id))
		return
	case errors.Is(err, postgres.ErrBreakResolved):
		h.s.writeError(w, r, Errorf(ECONFLICT, "break %s was resolved before: read it to see how", id))
		return
	case errors.Is(err, postgres.ErrNotAdjustable):
		h.s.writeError(w, r, Errorf(ECONFLICT, "break %s has no amount difference to adjust: resolve it with a note", id))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.log.InfoContext(r.Context(), "break resolved", "break", id.String(), "kind", req.Kind, "by", req.By)
	h.s.writeJSON(w, r, http.StatusCreated, newReconBreakDetailView(b))
}
