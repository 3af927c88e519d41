package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
)

// FinanceStore is what the finance page reads and does: the settlement cycles with every bank's
// position, files and acknowledgements; reconciliation's cycle reports, breaks and suggestions;
// the trial balance at any instant; the banks' names.
type FinanceStore interface {
	// ListCycles returns the cycles closed or closing, newest first, at most limit.
	ListCycles(ctx context.Context, limit int) ([]postgres.Cycle, error)
	// Cycle returns cycle d, or an error wrapping postgres.ErrNotFound if it was never closed.
	Cycle(ctx context.Context, d settlement.Date) (postgres.Cycle, error)
	// Positions adds cycle d's items up per bank; bank "" holds the items of parties without a
	// settlement bank.
	Positions(ctx context.Context, d settlement.Date) (*settlement.Positions, error)
	// Files returns the records of cycle d's files, in bank order.
	Files(ctx context.Context, d settlement.Date) ([]postgres.FileRecord, error)
	// FileAcks returns the acknowledgements of cycle d's files, by bank.
	FileAcks(ctx context.Context, d settlement.Date) (map[string]postgres.FileAck, error)
	// CycleReport reports cycle d per bank: opening, settled, matched, breaks by kind and age,
	// closing, control totals; an error wrapping postgres.ErrNotFound if it was never closed.
	CycleReport(ctx context.Context, d settlement.Date) (postgres.CycleReport, error)
	// SettledWeek is what each bank's files stated for the seven cycles up to d, by cycle and bank.
	SettledWeek(ctx context.Context, d settlement.Date) (map[settlement.Date]map[string]int64, error)
	// Breaks lists breaks, newest first, at most the store's bound.
	Breaks(ctx context.Context, f postgres.BreakFilter) ([]postgres.Break, error)
	// Break returns one break with its entries, or an error wrapping postgres.ErrNotFound.
	Break(ctx context.Context, id ledger.ID) (postgres.Break, error)
	// ResolveWithNote resolves a break with a note, recording who and when: postgres.ErrNotFound,
	// postgres.ErrBreakResolved for a break resolved before.
	ResolveWithNote(ctx context.Context, id ledger.ID, by, note string) (postgres.Break, error)
	// ResolveWithAdjustment resolves a break by an adjustment of the bank's position through the
	// ledger, with a note, who and when: the errors of ResolveWithNote, and
	// postgres.ErrNotAdjustable for a break without an amount difference.
	ResolveWithAdjustment(ctx context.Context, id ledger.ID, by, note string) (postgres.Break, error)
	// Suggestions lists the suggestions waiting for a person, of bank ("" every bank).
	Suggestions(ctx context.Context, bank string) ([]postgres.Suggestion, error)
	// Confirm accepts or refuses a suggestion, recording who: postgres.ErrNotFound, and
	// postgres.ErrNotPending for a match that is not a suggestion waiting.
	Confirm(ctx context.Context, matchID ledger.ID, accepted bool, by string) error
	// TrialBalanceAt is the trial balance by account kind and currency as it stood at instant at.
	TrialBalanceAt(ctx context.Context, at time.Time) ([]postgres.KindTotal, error)
	// Banks lists the registered banks with their names.
	Banks(ctx context.Context) ([]postgres.Party, error)
	// The sessions of the people logged in.
	FinanceSessions
}

// PostgresFinance is the finance page's store on PostgreSQL: the ledger store, the settlement
// engine and the reconciler, as one FinanceStore.
type PostgresFinance struct {
	store *postgres.Store
	set   *postgres.Settlement
	rec   *postgres.Reconciler
}

var _ FinanceStore = (*PostgresFinance)(nil)

// NewPostgresFinance returns the finance page's store over the three.
func NewPostgresFinance(store *postgres.Store, set *postgres.Settlement, rec *postgres.Reconciler) *PostgresFinance {
	return &PostgresFinance{store: store, set: set, rec: rec}
}

func (p *PostgresFinance) StartFinanceSession(ctx context.Context, sess postgres.FinanceSession, maxSessions int) error {
	return p.store.StartFinanceSession(ctx, sess, maxSessions)
}

func (p *PostgresFinance) FinanceSessionAt(ctx context.Context, idHash [sha256.Size]byte, now time.Time) (postgres.FinanceSession, bool, error) {
	return p.store.FinanceSessionAt(ctx, idHash, now)
}

func (p *PostgresFinance) EndFinanceSession(ctx context.Context, idHash [sha256.Size]byte) error {
	return p.store.EndFinanceSession(ctx, idHash)
}

func (p *PostgresFinance) ListCycles(ctx context.Context, limit int) ([]postgres.Cycle, error) {
	return p.set.ListCycles(ctx, limit)
}

func (p *PostgresFinance) Cycle(ctx context.Context, d settlement.Date) (postgres.Cycle, error) {
	return p.set.Cycle(ctx, d)
}

func (p *PostgresFinance) Positions(ctx context.Context, d settlement.Date) (*settlement.Positions, error) {
	return p.set.Positions(ctx, d)
}

func (p *PostgresFinance) Files(ctx context.Context, d settlement.Date) ([]postgres.FileRecord, error) {
	return p.set.Files(ctx, d)
}

func (p *PostgresFinance) FileAcks(ctx context.Context, d settlement.Date) (map[string]postgres.FileAck, error) {
	return p.set.FileAcks(ctx, d)
}

func (p *PostgresFinance) CycleReport(ctx context.Context, d settlement.Date) (postgres.CycleReport, error) {
	return p.rec.CycleReport(ctx, p.set, d)
}

func (p *PostgresFinance) SettledWeek(ctx context.Context, d settlement.Date) (map[settlement.Date]map[string]int64, error) {
	return p.rec.SettledWeek(ctx, d)
}

func (p *PostgresFinance) Breaks(ctx context.Context, f postgres.BreakFilter) ([]postgres.Break, error) {
	return p.rec.Breaks(ctx, f)
}

func (p *PostgresFinance) Break(ctx context.Context, id ledger.ID) (postgres.Break, error) {
	return p.rec.Break(ctx, id)
}

func (p *PostgresFinance) ResolveWithNote(ctx context.Context, id ledger.ID, by, note string) (postgres.Break, error) {
	return p.rec.ResolveWithNote(ctx, id, by, note)
}

func (p *PostgresFinance) ResolveWithAdjustment(ctx context.Context, id ledger.ID, by, note string) (postgres.Break, error) {
	return p.rec.ResolveWithAdjustment(ctx, id, by, note)
}

func (p *PostgresFinance) Suggestions(ctx context.Context, bank string) ([]postgres.Suggestion, error) {
	return p.rec.Suggestions(ctx, bank)
}

func (p *PostgresFinance) Confirm(ctx context.Context, matchID ledger.ID, accepted bool, by string) error {
	return p.rec.Confirm(ctx, matchID, accepted, by)
}

func (p *PostgresFinance) TrialBalanceAt(ctx context.Context, at time.Time) ([]postgres.KindTotal, error) {
	return p.store.TrialBalanceAt(ctx, at)
}

func (p *PostgresFinance) Banks(ctx context.Context) ([]postgres.Party, error) {
	return p.store.Banks(ctx)
}

// Finance is the finance page, a Feature: server-rendered HTML for finance staff, behind a login
// with the admin token. It shows the settlement cycles, each with every bank's position, its
// files and acknowledgements and its report; the reconciliation breaks with their ageing, each
// resolved on its own page with a note or an adjustment; the suggestions waiting for a person;
// the trial balance at any instant; a chart of a week's settled amounts per bank; and exports
// the trial balance and the cycle reports as CSV.
//
// Its routes are pages, not API (FeatureRoute.Page): they answer HTML and downloads, and they
// know a person by a session cookie that the login sets, never by a bearer token, so that no
// API key (a merchant's, an operator's, a bank's, not even the admin's as a header) opens them.
type Finance struct {
	store FinanceStore
	// SecureCookie marks the session cookie Secure on every answer, not only on requests that
	// came over TLS. Set it in production, where the engine sits behind a proxy that terminates
	// TLS: the request reaches the engine in clear, yet the browser must never send the cookie
	// but over HTTPS.
	SecureCookie bool
	// Rand draws session ids and form tokens; nil is crypto/rand.
	Rand io.Reader
}

// NewFinance returns the finance page over store.
func NewFinance(store FinanceStore) *Finance { return &Finance{store: store} }

//go:embed finance/*.html finance/*.css
var financeFiles embed.FS

// financePages are the page templates, each rendered inside finance/layout.html.
var financePages = []string{"login", "overview", "cycle", "breaks", "break", "suggestions", "trial", "error"}

const (
	// financeCyclesShown bounds the cycles the overview lists: two months of daily cycles. An
	// older cycle opens by its address, /finance/cycles/{date}.
	financeCyclesShown = 62
	// financeChartDays is the chart's span: a week of cycles.
	financeChartDays = 7
	// financeNoteMaxBytes is the bound of a resolution's note, the store's own (a paragraph).
	financeNoteMaxBytes = 2000
	// financeFormMaxBytes bounds a form's body: the longest form, a note of financeNoteMaxBytes
	// of CJK text percent-encoded (three times as long) with the form token, is under 7 KiB.
	financeFormMaxBytes = 16 << 10
)

// Routes registers the finance pages.
func (f *Finance) Routes(s *Server) []FeatureRoute {
	h := newFinanceHandlers(s, f)
	page := func(method, path string, fn http.HandlerFunc) FeatureRoute {
		return FeatureRoute{Method: method, Path: path, Page: true, Handler: fn}
	}
	return []FeatureRoute{
		page(http.MethodGet, "/finance/login", h.loginPage),
		page(http.MethodPost, "/finance/login", h.login),
		page(http.MethodPost, "/finance/logout", h.form(nil, h.logout)),
		page(http.MethodGet, "/finance/{$}", h.page(h.overview)),
		page(http.MethodGet, "/finance/cycles/{date}", h.page(h.cycle)),
		page(http.MethodGet, "/finance/cycles/{date}/report.csv", h.page(h.cycleCSV)),
		page(http.MethodGet, "/finance/breaks", h.page(h.breaks)),
		page(http.MethodGet, "/finance/breaks/{id}", h.page(h.breakPage)),
		page(http.MethodPost, "/finance/breaks/{id}/resolve", h.form([]string{"action", "note"}, h.resolve)),
		page(http.MethodGet, "/finance/suggestions", h.page(h.suggestions)),
		page(http.MethodPost, "/finance/suggestions/{id}", h.form([]string{"decision"}, h.confirm)),
		page(http.MethodGet, "/finance/trial-balance", h.page(h.trialBalance)),
		page(http.MethodGet, "/finance/trial-balance.csv", h.page(h.trialBalanceCSV)),
	}
}

type financeHandlers struct {
	s        *Server
	store    FinanceStore
	secure   bool
	rand     io.Reader
	sessions *financeSessions
	tmpl     map[string]*template.Template
	css      template.CSS
	csp      string
	origin   *http.CrossOriginProtection
}

func newFinanceHandlers(s *Server, f *Finance) *financeHandlers {
	h := &financeHandlers{s: s, store: f.store, secure: f.SecureCookie, rand: f.Rand, tmpl: map[string]*template.Template{},
		origin: http.NewCrossOriginProtection()}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	h.sessions = newFinanceSessions(h.rand, f.store)
	css, err := financeFiles.ReadFile("finance/style.css")
	if err != nil {
		panic(fmt.Sprintf("http: finance style: %v", err))
	}
	h.css = template.CSS(css)
	h.csp = financeCSP(css)
	for _, name := range financePages {
		t := template.New(name).Funcs(financeFuncs)
		h.tmpl[name] = template.Must(t.ParseFS(financeFiles, "finance/layout.html", "finance/"+name+".html"))
	}
	return h
}

// --- rendering --------------------------------------------------------------------------------------

// pageData is what the layout renders: the page's title, the person logged in and their form
// token (empty on the login page), an error to show, and the page's own view.
type pageData struct {
	Title string
	Nav   string // the navigation entry of the page
	Who   string
	CSRF  string
	Error string
	CSS   template.CSS
	Page  any
}

// headers sets what every page and download answers with. The policy lets the page load
// nothing at all but its own style sheet (by its hash): no script, no frame, no form posting
// elsewhere.
func (h *financeHandlers) headers(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	// Pages show balances, breaks and names: no cache may keep them.
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// The page's own links send the Referer, which the form check reads; no other site gets it.
	hd.Set("Referrer-Policy", "same-origin")
}

func (h *financeHandlers) render(w http.ResponseWriter, r *http.Request, status int, page string, d pageData) {
	d.CSS = h.css
	var buf bytes.Buffer
	if err := h.tmpl[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		h.s.log.ErrorContext(r.Context(), "render finance page", "page", page, "err", err)
		h.headers(w)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h.headers(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		h.s.log.DebugContext(r.Context(), "write finance page", "route", r.Pattern, "err", err)
	}
}

// fail answers err as a page: an *Error with its status and message, anything else a 500 whose
// detail goes to the log only. sess is nil when no one is logged in.
func (h *financeHandlers) fail(w http.ResponseWriter, r *http.Request, sess *financeSession, err error) {
	var e *Error
	if !errors.As(err, &e) {
		h.s.log.ErrorContext(r.Context(), "internal error", "method", r.Method, "route", r.Pattern, "err", err)
		e = &Error{Code: EINTERNAL, Message: "internal error"}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status, e = http.StatusInternalServerError, &Error{Code: EINTERNAL, Message: "internal error"}
	}
	if e.Code == EUNAVAILABLE {
		w.Header().Set("Retry-After", "1")
	}
	d := pageData{Title: http.StatusText(status), Error: e.Message}
	if sess != nil {
		d.Who, d.CSRF = sess.who, sess.csrf
	}
	h.render(w, r, status, "error", d)
}

// storeFail answers a store's error: busy when writers kept colliding, else internal.
func (h *financeHandlers) storeFail(w http.ResponseWriter, r *http.Request, sess *financeSession, err error) {
	h.fail(w, r, sess, h.s.storeError(r.Context(), err))
}

// --- reading requests -------------------------------------------------------------------------------

// query reads a page's query parameters: only those named, each at most once, each printable
// text. An unknown one is refused, as the API refuses it.
func pageQuery(r *http.Request, names ...string) (map[string]string, error) {
	q := r.URL.Query()
	out := make(map[string]string, len(q))
	for k, v := range q {
		if !slices.Contains(names, k) {
			want := "none"
			if len(names) > 0 {
				want = strings.Join(names, ", ")
			}
			return nil, unknownParameter(k, want)
		}
		if len(v) != 1 {
			return nil, Errorf(EINVALID, "%s: give it once", k)
		}
		if why := checkText(v[0]); why != "" && v[0] != "" {
			return nil, Errorf(EINVALID, "%s: %s", k, why)
		}
		out[k] = v[0]
	}
	return out, nil
}

func pathUUID(r *http.Request, what string) (ledger.ID, error) {
	u, err := uuid.Parse(r.PathValue("id"))
	if err != nil || u == uuid.Nil || len(r.PathValue("id")) != 36 {
		return ledger.ID{}, Errorf(EINVALID, "id: want a %s id (a UUID)", what)
	}
	return ledger.ID(u), nil
}

// --- formatting --------------------------------------------------------------------------------------

// money writes fen for people: grouped by thousands, two decimals, "1,234.56".
func fmtMoney(fen int64) string { return ledger.FormatAmount(fen, "CNY") }

// moneyPtr writes an amount that may be absent.
func fmtMoneyPtr(fen *int64) string {
	if fen == nil {
		return ""
	}
	return fmtMoney(*fen)
}

// count writes a count grouped by thousands.
func fmtCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}

// localTime writes an instant in Asia/Shanghai, as finance staff keep time.
func fmtLocalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(cards.Shanghai).Format("2006-01-02 15:04:05")
}

func fmtDatePtr(d *settlement.Date) string {
	if d == nil {
		return ""
	}
	return d.String()
}

var financeFuncs = template.FuncMap{
	"money": fmtMoney,
	"count": fmtCount,
	"neg":   func(fen int64) bool { return fen < 0 },
	// px writes an SVG coordinate to a tenth of a pixel.
	"px": func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
}

// bankNames maps the banks' ids to their names.
func (h *financeHandlers) bankNames(ctx context.Context) (map[string]string, error) {
	banks, err := h.store.Banks(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(banks))
	for _, b := range banks {
		names[b.ID] = b.Name
	}
	return names, nil
}

// --- the overview -------------------------------------------------------------------------------------

type cycleRow struct {
	Date, ValueDate, Status, FeeIncome, StartsAfter, EndsAt, ClosedAt string
}

func newCycleRow(c postgres.Cycle) cycleRow {
	row := cycleRow{Date: c.Date.String(), ValueDate: c.ValueDate.String(), Status: string(c.Status), FeeIncome: fmtMoney(c.FeeIncome),
		StartsAfter: fmtLocalTime(c.StartsAfter), EndsAt: fmtLocalTime(c.EndsAt)}
	if c.ClosedAt != nil {
		row.ClosedAt = fmtLocalTime(*c.ClosedAt)
	}
	return row
}

// bucketCount is how many breaks are in an age bucket.
type bucketCount struct {
	Bucket string
	Count  int64
}

type overviewView struct {
	Cycles     []cycleRow
	MoreCycles bool
	// OpenBreaks counts the open breaks, at most the store's listing bound (AtLeast then).
	OpenBreaks  int
	BreaksAtMax bool
	Buckets     []bucketCount
	Suggestions int
	Chart       chartView
}

// maxBreakListing is the store's bound on one listing of breaks or suggestions: a count that
// reaches it is shown as "at least".
const maxBreakListing = 1000

func (h *financeHandlers) overview(w http.ResponseWriter, r *http.Request, sess *financeSession) {
	if _, err := pageQuery(r); err != nil {
		h.fail(w, r, sess, err)
		return
	}
	ctx := r.Context()
	cycles, err := h.store.ListCycles(ctx, financeCyclesShown+1)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	v := overviewView{}
	if len(cycles) > financeCyclesShown {
		cycles, v.MoreCycles = cycles[:financeCyclesShown], true
	}
	for _, c := range cycles {
		v.Cycles = append(v.Cycles, newCycleRow(c))
	}
	open, err := h.store.Breaks(ctx, postgres.BreakFilter{Open: true, Limit: maxBreakListing})
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	v.OpenBreaks, v.BreaksAtMax, v.Buckets = len(open), len(open) >= maxBreakListing, ageing(open)
	sugg, err := h.store.Suggestions(ctx, "")
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	v.Suggestions = len(sugg)
	names, err := h.bankNames(ctx)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	if len(cycles) > 0 {
		last := cycles[0].Date
		week, err := h.store.SettledWeek(ctx, last)
		if err != nil {
			h.storeFail(w, r, sess, err)
			return
		}
		v.Chart = newChart(last, week, names)
	} else {
		v.Chart = chartView{Empty: true}
	}
	h.render(w, r, http.StatusOK, "overview", pageData{Title: "Overview", Nav: "overview", Who: sess.who, CSRF: sess.csrf, Page: v})
}

// ageing counts breaks per age bucket, every bucket listed.
func ageing(breaks []postgres.Break) []bucketCount {
	counts := map[reconcile.AgeBucket]int64{}
	for _, b := range breaks {
		counts[b.Bucket]++
	}
	out := make([]bucketCount, 0, len(reconcile.AgeBuckets()))
	for _, a := range reconcile.AgeBuckets() {
		out = append(out, bucketCount{Bucket: string(a) + " days", Count: counts[a]})
	}
	return out
}

// --- a cycle ------------------------------------------------------------------------------------------

type positionRow struct {
	Bank, Name                                            string
	Items                                                 int64
	Spent, Earned, Fees, MedicalFundShare, Reoffered, Net string
	SpentTransit, SpentPurchases, SpentMedical            string
}

type fileRow struct {
	Bank, Name, MessageID, CreatedAt       string
	Sequence, Entries                      int64
	ControlSum, Net                        string
	AckStatus, AckReceivedAt               string
	Rejected                               int64
	XMLName, CSVName, XMLSHA256, CSVSHA256 string
}

// reportRow is one bank's part of a cycle's report.
type reportRow struct {
	Bank, Name                         string
	Opening, Settled, Matched, Closing string
	Items, MatchedItems                int64
	// Rejected and RejectedItems are what the bank rejected in its acknowledgement, neither
	// settled nor matched; Owed is the items it did not reject.
	Rejected            string
	RejectedItems, Owed int64
	ControlSum          string
	Open, Total         int64
	Breaks              []breakKindRow
}

// breakKindRow counts a bank's breaks of one kind by age bucket, in reconcile.AgeBuckets order.
type breakKindRow struct {
	Kind    string
	Buckets []int64
	Total   int64
}

type financeCycleView struct {
	Cycle     cycleRow
	Positions []positionRow
	Held      *positionRow
	Files     []fileRow
	Report    []reportRow
	Buckets   []string
	CSV       string
}

func (h *financeHandlers) cycle(w http.ResponseWriter, r *http.Request, sess *financeSession) {
	d, err := financeCycleDate(r)
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	ctx := r.Context()
	c, err := h.store.Cycle(ctx, d)
	if errors.Is(err, postgres.ErrNotFound) {
		h.fail(w, r, sess, Errorf(ENOTFOUND, "cycle %s was never closed", d))
		return
	}
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	names, err := h.bankNames(ctx)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	pos, err := h.store.Positions(ctx, d)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	files, err := h.store.Files(ctx, d)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	acks, err := h.store.FileAcks(ctx, d)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	rep, err := h.store.CycleReport(ctx, d)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	v := financeCycleView{Cycle: newCycleRow(c), CSV: "/finance/cycles/" + d.String() + "/report.csv"}
	for _, b := range reconcile.AgeBuckets() {
		v.Buckets = append(v.Buckets, string(b))
	}
	banks := pos.Banks()
	slices.Sort(banks)
	for _, b := range banks {
		p := pos.Bank(b)
		row := positionRow{Bank: b, Name: names[b], Items: p.Items, Spent: fmtMoney(p.Spent), SpentTransit: fmtMoney(p.SpentTransit),
			SpentPurchases: fmtMoney(p.SpentPurchases), SpentMedical: fmtMoney(p.SpentMedical), Earned: fmtMoney(p.Earned), Fees: fmtMoney(p.Fees),
			MedicalFundShare: fmtMoney(p.MedicalFundShare), Reoffered: fmtMoney(p.Reoffered), Net: fmtMoney(p.Net)}
		if b == "" {
			v.Held = &row
			continue
		}
		v.Positions = append(v.Positions, row)
	}
	for _, f := range files {
		row := fileRow{Bank: f.Header.BankID, Name: f.Header.BankName, MessageID: f.Header.MessageID, CreatedAt: fmtLocalTime(f.Header.CreatedAt),
			Sequence: f.Header.Sequence, Entries: f.Header.NumberOfEntries, ControlSum: fmtMoney(f.Header.ControlSum), Net: fmtMoney(f.Header.Net),
			AckStatus: "pending", XMLName: f.XML.Name, CSVName: f.CSV.Name,
			XMLSHA256: fmt.Sprintf("%x", f.XML.SHA256), CSVSHA256: fmt.Sprintf("%x", f.CSV.SHA256)}
		if a, ok := acks[f.Header.BankID]; ok && a.Status != "" {
			row.AckStatus, row.AckReceivedAt, row.Rejected = a.Status, fmtLocalTime(a.ReceivedAt), a.Rejected
		}
		v.Files = append(v.Files, row)
	}
	for _, b := range rep.Banks {
		v.Report = append(v.Report, newReportRow(b, names[b.Bank]))
	}
	h.render(w, r, http.StatusOK, "cycle", pageData{Title: "Cycle " + d.String(), Nav: "overview", Who: sess.who, CSRF: sess.csrf, Page: v})
}

func newReportRow(b postgres.BankCycleReport, name string) reportRow {
	row := reportRow{Bank: b.Bank, Name: name, Opening: fmtMoney(b.Opening), Settled: fmtMoney(b.Settled), Matched: fmtMoney(b.Matched),
		Closing: fmtMoney(b.Closing), Items: b.Items, MatchedItems: b.MatchedItems, ControlSum: fmtMoney(b.ControlSum), Open: b.Open,
		Rejected: fmtMoney(b.Rejected), RejectedItems: b.RejectedItems, Owed: b.Items - b.RejectedItems}
	for _, k := range reconcile.BreakKinds() {
		byAge := b.Breaks[k]
		if len(byAge) == 0 {
			continue
		}
		kr := breakKindRow{Kind: breakKindName(k)}
		for _, a := range reconcile.AgeBuckets() {
			kr.Buckets = append(kr.Buckets, byAge[a])
			kr.Total += byAge[a]
		}
		row.Total += kr.Total
		row.Breaks = append(row.Breaks, kr)
	}
	return row
}

// breakKindName names a kind of break for people.
func breakKindName(k reconcile.BreakKind) string {
	return strings.ReplaceAll(string(k), "_", " ")
}

// financeCycleDate reads the path's cycle date.
func financeCycleDate(r *http.Request) (settlement.Date, error) {
	d, err := settlement.ParseDate(r.PathValue("date"))
	if err != nil {
		return d, Errorf(EINVALID, `date: want a cycle date yyyy-mm-dd such as "2026-03-03"`)
	}
	return d, nil
}

// --- breaks -------------------------------------------------------------------------------------------

type breakRow struct {
	ID, Bank, Name, Kind, Cycle string
	Expected, Actual            string
	AsOf                        string
	Age                         int
	Bucket                      string
	Detail                      string
	Resolved                    bool
	ResolvedBy                  string
}

type bankOption struct {
	ID, Name string
	Selected bool
}

type breaksView struct {
	Status  string // open or all
	Bank    string
	Banks   []bankOption
	Breaks  []breakRow
	AtMax   bool
	Open    int
	Buckets []bucketCount
	Heading string
}

func (h *financeHandlers) breaks(w http.ResponseWriter, r *http.Request, sess *financeSession) {
	q, err := pageQuery(r, "status", "bank")
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	f := postgres.BreakFilter{Open: true, Limit: maxBreakListing}
	status := "open"
	switch q["status"] {
	case "", "open":
	case "all":
		f.Open, status = false, "all"
	default:
		h.fail(w, r, sess, Errorf(EINVALID, "status: want open or all"))
		return
	}
	if b := q["bank"]; b != "" {
		if why := checkID(b); why != "" {
			h.fail(w, r, sess, Errorf(EINVALID, "bank: %s", why))
			return
		}
		f.Bank = b
	}
	ctx := r.Context()
	names, err := h.bankNames(ctx)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	list, err := h.store.Breaks(ctx, f)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	v := breaksView{Status: status, Bank: f.Bank, AtMax: len(list) >= maxBreakListing}
	var open []postgres.Break
	for _, b := range list {
		v.Breaks = append(v.Breaks, newBreakRow(b, names[b.Bank]))
		if b.Resolution == nil {
			open = append(open, b)
		}
	}
	v.Open, v.Buckets = len(open), ageing(open)
	ids := make([]string, 0, len(names))
	for id := range names {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		v.Banks = append(v.Banks, bankOption{ID: id, Name: names[id], Selected: id == f.Bank})
	}
	v.Heading = "Open breaks"
	if status == "all" {
		v.Heading = "All breaks"
	}
	h.render(w, r, http.StatusOK, "breaks", pageData{Title: "Breaks", Nav: "breaks", Who: sess.who, CSRF: sess.csrf, Page: v})
}

func newBreakRow(b postgres.Break, name string) breakRow {
	row := breakRow{ID: b.ID.String(), Bank: b.Bank, Name: name, Kind: breakKindName(b.Kind), Cycle: fmtDatePtr(b.Cycle),
		Expected: fmtMoneyPtr(b.Expected), Actual: fmtMoneyPtr(b.Actual), AsOf: b.AsOf.String(), Age: b.Age, Bucket: string(b.Bucket),
		Detail: b.Detail, Resolved: b.Resolution != nil}
	if b.Resolution != nil {
		row.ResolvedBy = b.Resolution.By
	}
	return row
}

type entryRow struct {
	Statement                    string
	Line                         int64
	EntryRef, Ref                string
	Amount                       string
	BookingDate, ValueDate, Info string
}

type resolutionView struct {
	Kind, Note, By, At, Transfer string
}

type breakView struct {
	breakRow
	Item, File               string
	ExpectedDate, ActualDate string
	Difference               string
	DetectedAt               string
	Entries                  []entryRow
	Resolution               *resolutionView
	Action                   string
	NoteMax                  int
}

func (h *financeHandlers) breakPage(w http.ResponseWriter, r *http.Request, sess *financeSession) {
	id, err := pathUUID(r, "break")
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	if _, err := pageQuery(r); err != nil {
		h.fail(w, r, sess, err)
		return
	}
	b, err := h.store.Break(r.Context(), id)
	if errors.Is(err, postgres.ErrNotFound) {
		h.fail(w, r, sess, Errorf(ENOTFOUND, "no break %s", id))
		return
	}
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	names, err := h.bankNames(r.Context())
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	h.render(w, r, http.StatusOK, "break", pageData{Title: "Break", Nav: "breaks", Who: sess.who, CSRF: sess.csrf,
		Page: newBreakView(b, names[b.Bank])})
}

func newBreakView(b postgres.Break, name string) breakView {
	v := breakView{breakRow: newBreakRow(b, name), File: b.File, ExpectedDate: fmtDatePtr(b.ExpectedDate), ActualDate: fmtDatePtr(b.ActualDate),
		DetectedAt: fmtLocalTime(b.DetectedAt), Action: "/finance/breaks/" + b.ID.String() + "/resolve", NoteMax: financeNoteMaxBytes}
	if !b.Item.IsZero() {
		v.Item = b.Item.String()
	}
	if b.Expected != nil && b.Actual != nil {
		v.Difference = fmtMoney(*b.Actual - *b.Expected)
	}
	for _, e := range b.Entries {
		v.Entries = append(v.Entries, entryRow{Statement: e.Statement, Line: e.Line, EntryRef: e.EntryRef, Ref: e.Ref, Amount: fmtMoney(e.Amount),
			BookingDate: e.BookingDate.String(), ValueDate: e.ValueDate.String(), Info: e.Info})
	}
	if res := b.Resolution; res != nil {
		v.Resolution = &resolutionView{Kind: res.Kind, Note: res.Note, By: res.By, At: fmtLocalTime(res.At)}
		if !res.TransferID.IsZero() {
			v.Resolution.Transfer = res.TransferID.String()
		}
	}
	return v
}

// resolve resolves a break with the form's note, or with an adjustment and the note, in the
// name of the person logged in, and shows the break again.
func (h *financeHandlers) resolve(w http.ResponseWriter, r *http.Request, sess *financeSession, form map[string]string) {
	id, err := pathUUID(r, "break")
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	resolve := h.store.ResolveWithNote
	switch form["action"] {
	case "note":
	case "adjustment":
		resolve = h.store.ResolveWithAdjustment
	default:
		h.fail(w, r, sess, Errorf(EINVALID, "action: want note or adjustment"))
		return
	}
	// The form's resolution is checked as the API's is: the note is kept and shown to everyone
	// who opens the break, so it must not hold a card number in clear either.
	note, err := resolveBreakRequest{Kind: form["action"], Note: form["note"], By: sess.who}.check()
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	_, err = resolve(r.Context(), id, sess.who, note)
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		h.fail(w, r, sess, Errorf(ENOTFOUND, "no break %s", id))
		return
	case errors.Is(err, postgres.ErrBreakResolved):
		h.fail(w, r, sess, Errorf(ECONFLICT, "the break was resolved before: open it again to see how"))
		return
	case errors.Is(err, postgres.ErrNotAdjustable):
		h.fail(w, r, sess, Errorf(ECONFLICT, "the break has no amount difference to adjust: resolve it with a note"))
		return
	case err != nil:
		h.storeFail(w, r, sess, err)
		return
	}
	h.s.log.InfoContext(r.Context(), "break resolved", "break", id.String(), "action", form["action"], "by", sess.who)
	http.Redirect(w, r, "/finance/breaks/"+id.String(), http.StatusSeeOther)
}

// --- suggestions --------------------------------------------------------------------------------------

type suggestionRow struct {
	ID, Bank, Name, What, Amount, Detail, Action string
}

type suggestionsView struct {
	Suggestions []suggestionRow
	AtMax       bool
	Bank        string
	Banks       []bankOption
}

func (h *financeHandlers) suggestions(w http.ResponseWriter, r *http.Request, sess *financeSession) {
	q, err := pageQuery(r, "bank")
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	bank := q["bank"]
	if bank != "" {
		if why := checkID(bank); why != "" {
			h.fail(w, r, sess, Errorf(EINVALID, "bank: %s", why))
			return
		}
	}
	names, err := h.bankNames(r.Context())
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	list, err := h.store.Suggestions(r.Context(), bank)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	v := suggestionsView{AtMax: len(list) >= maxBreakListing, Bank: bank}
	for _, s := range list {
		what := "file " + s.File
		if !s.Item.IsZero() {
			what = "item " + s.Item.String()
		}
		v.Suggestions = append(v.Suggestions, suggestionRow{ID: s.ID.String(), Bank: s.Bank, Name: names[s.Bank], What: what,
			Amount: fmtMoney(s.Amount), Detail: s.Detail, Action: "/finance/suggestions/" + s.ID.String()})
	}
	ids := make([]string, 0, len(names))
	for id := range names {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		v.Banks = append(v.Banks, bankOption{ID: id, Name: names[id], Selected: id == bank})
	}
	h.render(w, r, http.StatusOK, "suggestions", pageData{Title: "Suggestions", Nav: "suggestions", Who: sess.who, CSRF: sess.csrf, Page: v})
}

// confirm accepts or refuses a suggestion in the name of the person logged in.
func (h *financeHandlers) confirm(w http.ResponseWriter, r *http.Request, sess *financeSession, form map[string]string) {
	id, err := pathUUID(r, "suggestion")
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	var accepted bool
	switch form["decision"] {
	case "accept":
		accepted = true
	case "refuse":
	default:
		h.fail(w, r, sess, Errorf(EINVALID, "decision: want accept or refuse"))
		return
	}
	err = h.store.Confirm(r.Context(), id, accepted, sess.who)
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		h.fail(w, r, sess, Errorf(ENOTFOUND, "no suggestion %s", id))
		return
	case errors.Is(err, postgres.ErrNotPending):
		h.fail(w, r, sess, Errorf(ECONFLICT, "the suggestion was accepted or refused before"))
		return
	case errors.Is(err, postgres.ErrMatchedSince):
		h.fail(w, r, sess, Errorf(ECONFLICT, "what the suggestion names was matched since by entries that name it: refuse the suggestion"))
		return
	case err != nil:
		h.storeFail(w, r, sess, err)
		return
	}
	h.s.log.InfoContext(r.Context(), "suggestion decided", "match", id.String(), "accepted", accepted, "by", sess.who)
	http.Redirect(w, r, "/finance/suggestions", http.StatusSeeOther)
}

// --- the trial balance --------------------------------------------------------------------------------

type trialRow struct {
	Kind, Currency                                             string
	Accounts                                                   int64
	DebitsPending, DebitsPosted, CreditsPending, CreditsPosted string
	Net                                                        string
}

type trialTotal struct {
	Currency                                                   string
	DebitsPending, DebitsPosted, CreditsPending, CreditsPosted string
	Balanced                                                   bool
}

type trialView struct {
	At      string // as people read it
	AtInput string // the form field's value
	Rows    []trialRow
	Totals  []trialTotal
	CSV     string
}

// trialAtLayouts are the forms an instant is given in: the form's datetime-local field, with or
// without seconds, in Asia/Shanghai; or RFC 3339 with its zone.
var trialAtLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04"}

// trialAt reads the query's instant; none is now.
func (h *financeHandlers) trialAt(r *http.Request) (time.Time, error) {
	q, err := pageQuery(r, "at")
	if err != nil {
		return time.Time{}, err
	}
	s := q["at"]
	if s == "" {
		return h.s.now(), nil
	}
	for _, layout := range trialAtLayouts {
		if t, err := time.ParseInLocation(layout, s, cards.Shanghai); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, Errorf(EINVALID, "at: want a date and time such as 2026-03-04T10:00 (Asia/Shanghai)")
}

func (h *financeHandlers) trialBalance(w http.ResponseWriter, r *http.Request, sess *financeSession) {
	at, err := h.trialAt(r)
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	lines, err := h.store.TrialBalanceAt(r.Context(), at)
	if err != nil {
		h.storeFail(w, r, sess, err)
		return
	}
	input := at.In(cards.Shanghai).Format(trialAtLayouts[0])
	link := input
	if at.Nanosecond() != 0 {
		// The form's local time has whole seconds: the download names the instant whole, so
		// that it shows the page's figures.
		link = url.QueryEscape(at.In(cards.Shanghai).Format(time.RFC3339Nano))
	}
	v := trialView{At: fmtLocalTime(at), AtInput: input, CSV: "/finance/trial-balance.csv?at=" + link}
	type sums struct{ dp, dpo, cp, cpo int64 }
	totals := map[ledger.Currency]*sums{}
	var currencies []ledger.Currency
	for _, l := range lines {
		c := l.Currency
		v.Rows = append(v.Rows, trialRow{Kind: l.Kind.String(), Currency: string(c), Accounts: l.Accounts,
			DebitsPending: postgres.FormatTotal(l.DebitsPending, c), DebitsPosted: postgres.FormatTotal(l.DebitsPosted, c),
			CreditsPending: postgres.FormatTotal(l.CreditsPending, c), CreditsPosted: postgres.FormatTotal(l.CreditsPosted, c),
			Net: ledger.FormatAmount(l.Net(), c)})
		t := totals[c]
		if t == nil {
			t = &sums{}
			totals[c] = t
			currencies = append(currencies, c)
		}
		// The totals are kept modulo 2^64, as the store's are: a currency's may pass int64 where
		// each account's fit. Go's int64 addition wraps so; FormatTotal reads them unsigned.
		t.dp += l.DebitsPending
		t.dpo += l.DebitsPosted
		t.cp += l.CreditsPending
		t.cpo += l.CreditsPosted
	}
	for _, c := range currencies {
		t := totals[c]
		v.Totals = append(v.Totals, trialTotal{Currency: string(c), DebitsPending: postgres.FormatTotal(t.dp, c),
			DebitsPosted: postgres.FormatTotal(t.dpo, c), CreditsPending: postgres.FormatTotal(t.cp, c),
			CreditsPosted: postgres.FormatTotal(t.cpo, c), Balanced: t.dp == t.cp && t.dpo == t.cpo})
	}
	h.render(w, r, http.StatusOK, "trial", pageData{Title: "Trial balance", Nav: "trial", Who: sess.who, CSRF: sess.csrf, Page: v})
}
