package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
	"github.com/joinincard/engine/settlement/calendar"
)

// SettlementService is what the settlement endpoints need of the settlement engine.
type SettlementService interface {
	// Cycles returns the rules cycles close by: when each ends.
	Cycles() settlement.Cycles
	// Close closes cycle d, and every cycle before it not closed yet, in order; closing a closed
	// cycle changes nothing. It fails with postgres.ErrCycleNotOver before d's cut-off, with a
	// *calendar.MissingYearError when a value date falls in a year the calendar does not have,
	// with postgres.ErrCycleOrder when the last cycle closed does not end before d's cut-off
	// (another close ran at the same time), and with postgres.ErrNotFound for a cycle before the
	// first one closed, which holds everything before it.
	Close(ctx context.Context, d settlement.Date) (postgres.Cycle, error)
	// Cycle returns cycle d, or an error wrapping postgres.ErrNotFound if it was never closed.
	Cycle(ctx context.Context, d settlement.Date) (postgres.Cycle, error)
	// ListCycles returns the cycles closed or closing, newest first, at most limit.
	ListCycles(ctx context.Context, limit int) ([]postgres.Cycle, error)
	// Positions adds cycle d's items up per bank; bank "" holds the items of parties without a
	// settlement bank.
	Positions(ctx context.Context, d settlement.Date) (*settlement.Positions, error)
	// Files returns the records of cycle d's files, in bank order.
	Files(ctx context.Context, d settlement.Date) ([]postgres.FileRecord, error)
	// FileAcks returns the acknowledgements of cycle d's files, by bank.
	FileAcks(ctx context.Context, d settlement.Date) (map[string]postgres.FileAck, error)
	// File returns the record of bank's file of cycle d, or an error wrapping
	// postgres.ErrNotFound.
	File(ctx context.Context, bank string, d settlement.Date) (postgres.FileRecord, error)
	// Manifest lists bank's files of cycle d with their checksums; postgres.ErrNotFound when the
	// bank has no file of the cycle.
	Manifest(ctx context.Context, bank string, d settlement.Date) (bankfile.Manifest, error)
	// WriteFile writes bank's file of cycle d in format f to w: the original the first time it is
	// fetched (fetch true), a duplicate copy, marked so, every later time (duplicate true).
	WriteFile(ctx context.Context, w io.Writer, bank string, d settlement.Date, f bankfile.Format, fetch bool) (rec postgres.FileRecord, duplicate bool, err error)
	// Acknowledge records bank's acknowledgement of one of its files; the same report again
	// answers the first result with replayed true, another report of an acknowledged file fails
	// with postgres.ErrAckConflict, one that does not fit its file with postgres.ErrAckInvalid.
	Acknowledge(ctx context.Context, bank string, ack *bankfile.Ack) (res postgres.AckResult, replayed bool, err error)
}

var _ SettlementService = (*postgres.Settlement)(nil)

// BankKeys issues and finds banks' API keys, kept as their SHA-256.
type BankKeys interface {
	// CreateBankKey records a key of a registered bank; postgres.ErrNotFound for a bank that is
	// not registered.
	CreateBankKey(ctx context.Context, bank string, keyHash [32]byte) error
	// BankByKey finds the bank by its key's hash, or fails with postgres.ErrNotFound.
	BankByKey(ctx context.Context, keyHash [32]byte) (string, error)
	// RevokeBankKeys revokes every key of a registered bank and says how many there were;
	// postgres.ErrNotFound for a bank that is not registered. A revoked key finds no bank.
	RevokeBankKeys(ctx context.Context, bank string) (int64, error)
}

var _ BankKeys = (*postgres.Store)(nil)

// Settlement is the settlement API, a Feature: the admin closes cycles, reads them with every
// bank's position and file, and issues banks their API keys; each bank, with its own key, fetches
// its manifests and files and posts its acknowledgements, and sees nothing of another bank's.
type Settlement struct {
	svc  SettlementService
	keys BankKeys
	// Rand issues API keys; nil is crypto/rand.
	Rand io.Reader
}

// NewSettlement returns the settlement API over svc (the settlement engine) and keys (the
// store, which keeps banks' API keys).
func NewSettlement(svc SettlementService, keys BankKeys) *Settlement {
	return &Settlement{svc: svc, keys: keys}
}

const (
	// bankKeyBytes is a bank key's entropy: 256 bits, so that a plain SHA-256 of it is as good a
	// stored form as a slow password hash.
	bankKeyBytes = 32
	// bankKeyPrefix marks a bank key, so that one pasted where it does not belong is recognized.
	bankKeyPrefix = "bk_"
	// bankRealm names the bank keys in WWW-Authenticate.
	bankRealm = "joinin-settlement"
	// maxAckBodyBytes bounds an acknowledgement's body. ACCP and RJCT reports need not list
	// items, and PART lists the rejected ones; only a bank that lists every item of a file sends
	// a long report. In pain.002 XML an item status takes about 150 bytes accepted, 300 rejected
	// with a short reason and 600 with the longest (105 CJK characters); the CSV a third of that.
	// 32 MiB holds a listing of every item of a file of over 100,000 items with short reasons,
	// more than the cards and merchants of a bank in the pilot's province, while a broken
	// client cannot make the server parse more. (bankfile's own bound, for files at rest, is
	// bankfile.MaxItems item statuses.)
	maxAckBodyBytes = 32 << 20
	// copyHeader tells a bank whether a file is the original or a duplicate copy.
	copyHeader = "X-Joinin-Copy"
)

var bankKeyLen = len(bankKeyPrefix) + base64.RawURLEncoding.EncodedLen(bankKeyBytes)

// cyclesPageMax bounds one listing of cycles: the store's own bound, a year of settlement days
// and then some. It is also the listing's length without a limit.
const cyclesPageMax = 400

// Routes registers the settlement endpoints.
func (s *Settlement) Routes(srv *Server) []FeatureRoute {
	h := &settlementHandlers{s: srv, svc: s.svc, keys: s.keys, rand: s.Rand}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	return []FeatureRoute{
		{Method: http.MethodPost, Path: "/v1/settlement/cycles/{date}/close", Admin: true, Handler: h.close},
		{Method: http.MethodGet, Path: "/v1/settlement/cycles", Query: true, Admin: true, Handler: h.list},
		{Method: http.MethodGet, Path: "/v1/settlement/cycles/{date}", Admin: true, Handler: h.get},
		{Method: http.MethodPost, Path: "/v1/banks/{bank}/keys", Admin: true, Handler: h.issueKey},
		{Method: http.MethodDelete, Path: "/v1/banks/{bank}/keys", Admin: true, Handler: h.revokeKeys},
		{Method: http.MethodGet, Path: "/v1/bank/cycles/{date}/manifest", Handler: h.bankOnly(h.manifest)},
		{Method: http.MethodGet, Path: "/v1/bank/cycles/{date}/files/{format}", Handler: h.bankOnly(h.file)},
		{Method: http.MethodPost, Path: "/v1/bank/cycles/{date}/acknowledgement", Handler: h.bankOnly(h.acknowledge)},
	}
}

type settlementHandlers struct {
	s    *Server
	svc  SettlementService
	keys BankKeys
	rand io.Reader
}

// pathDate reads the date path parameter: a cycle date, YYYY-MM-DD.
func pathDate(r *http.Request) (settlement.Date, error) {
	d, err := settlement.ParseDate(r.PathValue("date"))
	if err != nil {
		return d, Errorf(EINVALID, `date: want a cycle date yyyy-mm-dd such as "2026-03-03"`)
	}
	return d, nil
}

// --- the admin's cycles ---------------------------------------------------------------------------

type cycleSummaryView struct {
	Date        string `json:"date"`
	StartsAfter string `json:"starts_after"`
	EndsAt      string `json:"ends_at"`
	ValueDate   string `json:"value_date"`
	Status      string `json:"status"`
	FeeIncome   string `json:"fee_income"`
	ClosingAt   string `json:"closing_at"`
	// ClosedAt is absent while the cycle is closing.
	ClosedAt string `json:"closed_at,omitempty"`
}

type cycleListView struct {
	Cycles []cycleSummaryView `json:"cycles"`
}

// cycleView is a cycle with every bank's position, what it holds for want of a settlement
// bank, and every bank's file with its acknowledgement.
type cycleView struct {
	Date        string `json:"date"`
	StartsAfter string `json:"starts_after"`
	EndsAt      string `json:"ends_at"`
	ValueDate   string `json:"value_date"`
	Status      string `json:"status"`
	FeeIncome   string `json:"fee_income"`
	ClosingAt   string `json:"closing_at"`
	ClosedAt    string `json:"closed_at,omitempty"`
	// Positions are the banks with items in the cycle, in bank order.
	Positions []positionView `json:"positions"`
	// Held is what the cycle holds back: the items of parties without a settlement bank, posted
	// nowhere, offered to the party's bank at the first close after it has one.
	Held  heldView   `json:"held"`
	Files []fileView `json:"files"`
}

// positionView is a bank's net position in a cycle and what makes it up. Spent and
// medical_fund_share are what the bank pays, earned and fees what its merchants and operators
// earned and were charged; net is signed from the bank's point of view: positive, it receives.
type positionView struct {
	Bank             string `json:"bank"`
	Items            int64  `json:"items"`
	Spent            string `json:"spent"`
	SpentTransit     string `json:"spent_transit"`
	SpentPurchases   string `json:"spent_purchases"`
	SpentMedical     string `json:"spent_medical"`
	Earned           string `json:"earned"`
	Fees             string `json:"fees"`
	MedicalFundShare string `json:"medical_fund_share"`
	Reoffered        string `json:"reoffered"`
	Net              string `json:"net"`
}

// heldView is the items held for want of a settlement bank: merchants', operators' and funds'
// (a cardholder is always settled by the card's issuer bank).
type heldView struct {
	Items            int64  `json:"items"`
	Earned           string `json:"earned"`
	Fees             string `json:"fees"`
	MedicalFundShare string `json:"medical_fund_share"`
	Net              string `json:"net"`
}

type fileView struct {
	Bank            string         `json:"bank"`
	Sequence        int64          `json:"sequence"`
	MessageID       string         `json:"message_id"`
	CreatedAt       string         `json:"created_at"`
	Entries         int64          `json:"entries"`
	ControlSum      string         `json:"control_sum"`
	Net             string         `json:"net"`
	XML             fileFormatView `json:"xml"`
	CSV             fileFormatView `json:"csv"`
	Acknowledgement fileAckView    `json:"acknowledgement"`
}

type fileFormatView struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// fileAckView is what the bank said of its file: status pending until it acknowledges.
type fileAckView struct {
	Status     string `json:"status"`
	ReceivedAt string `json:"received_at,omitempty"`
	Rejected   int64  `json:"rejected"`
}

func cycleSummary(c postgres.Cycle) cycleSummaryView {
	v := cycleSummaryView{Date: c.Date.String(), StartsAfter: shanghaiTime(c.StartsAfter), EndsAt: shanghaiTime(c.EndsAt),
		ValueDate: c.ValueDate.String(), Status: string(c.Status), FeeIncome: fenText(c.FeeIncome), ClosingAt: shanghaiTime(c.ClosingAt)}
	if c.ClosedAt != nil {
		v.ClosedAt = shanghaiTime(*c.ClosedAt)
	}
	return v
}

// cycleView reads what the view of cycle c shows besides c itself.
func (h *settlementHandlers) cycleView(ctx context.Context, c postgres.Cycle) (cycleView, error) {
	pos, err := h.svc.Positions(ctx, c.Date)
	if err != nil {
		return cycleView{}, err
	}
	files, err := h.svc.Files(ctx, c.Date)
	if err != nil {
		return cycleView{}, err
	}
	acks, err := h.svc.FileAcks(ctx, c.Date)
	if err != nil {
		return cycleView{}, err
	}
	sum := cycleSummary(c)
	v := cycleView{Date: sum.Date, StartsAfter: sum.StartsAfter, EndsAt: sum.EndsAt, ValueDate: sum.ValueDate, Status: sum.Status,
		FeeIncome: sum.FeeIncome, ClosingAt: sum.ClosingAt, ClosedAt: sum.ClosedAt,
		Positions: []positionView{}, Files: make([]fileView, 0, len(files))}
	held := pos.Bank("") // zero when nothing is held
	v.Held = heldView{Items: held.Items, Earned: fenText(held.Earned), Fees: fenText(held.Fees),
		MedicalFundShare: fenText(held.MedicalFundShare), Net: fenText(held.Net)}
	banks := pos.Banks()
	slices.Sort(banks)
	for _, b := range banks {
		if b == "" {
			continue
		}
		p := pos.Bank(b)
		v.Positions = append(v.Positions, positionView{Bank: b, Items: p.Items, Spent: fenText(p.Spent),
			SpentTransit: fenText(p.SpentTransit), SpentPurchases: fenText(p.SpentPurchases), SpentMedical: fenText(p.SpentMedical),
			Earned: fenText(p.Earned), Fees: fenText(p.Fees), MedicalFundShare: fenText(p.MedicalFundShare),
			Reoffered: fenText(p.Reoffered), Net: fenText(p.Net)})
	}
	for _, f := range files {
		fv := fileView{Bank: f.Header.BankID, Sequence: f.Header.Sequence, MessageID: f.Header.MessageID,
			CreatedAt: shanghaiTime(f.Header.CreatedAt), Entries: f.Header.NumberOfEntries, ControlSum: fenText(f.Header.ControlSum),
			Net: fenText(f.Header.Net), XML: formatView(f.XML), CSV: formatView(f.CSV), Acknowledgement: fileAckView{Status: "pending"}}
		if a, ok := acks[f.Header.BankID]; ok && a.Status != "" {
			fv.Acknowledgement = fileAckView{Status: a.Status, ReceivedAt: shanghaiTime(a.ReceivedAt), Rejected: a.Rejected}
		}
		v.Files = append(v.Files, fv)
	}
	return v, nil
}

func formatView(e bankfile.ManifestEntry) fileFormatView {
	return fileFormatView{Name: e.Name, Size: e.Size, SHA256: fmt.Sprintf("%x", e.SHA256)}
}

// close closes a cycle, and every cycle before it not closed yet, and answers its view. Closing
// a closed cycle changes nothing and answers the same.
func (h *settlementHandlers) close(w http.ResponseWriter, r *http.Request) {
	d, err := pathDate(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	// The request has nothing to say: a body that says something (an option this endpoint does
	// not have) is refused rather than ignored, before any cycle closes.
	if err := decodeEmptyBody(w, r); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	c, err := h.svc.Close(r.Context(), d)
	var (
		missing *calendar.MissingYearError
		refused *postgres.PostingRefusedError
	)
	switch {
	case errors.Is(err, postgres.ErrCycleNotOver):
		h.s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "cycle_not_over", Message: fmt.Sprintf("cycle %s is not over: it ends at %s", d,
			h.svc.Cycles().Cutoff(d).In(cards.Shanghai).Format(time.RFC3339))})
		return
	case errors.As(err, &missing):
		// Not the request's fault: the engine lacks a year of the calendar, and the same request
		// succeeds once it has it.
		h.s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "calendar_year_missing", Message: fmt.Sprintf(
			"cycle %s cannot close: the settlement calendar has no year %d, which a value date falls in; add that year's calendar",
			d, missing.Year)})
		return
	case errors.Is(err, postgres.ErrCycleOrder):
		h.s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "close_raced", Message: fmt.Sprintf(
			"cycle %s does not follow the last cycle closed: another close ran at the same time (retry)", d)})
		return
	case errors.Is(err, postgres.ErrNotFound):
		h.s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "before_first_cycle", Message: fmt.Sprintf(
			"cycle %s is before the first cycle closed, which holds everything before it", d)})
		return
	case errors.As(err, &refused):
		// Not fixed by asking again: the cycle waits, closing, for a person. Said as an error in
		// the log too, since every later cycle waits behind it.
		h.s.log.ErrorContext(r.Context(), "settlement cycle cannot close", "cycle", refused.Cycle.String(), "bank", refused.Bank,
			"posting", refused.Posting.String(), "result", refused.Result.String())
		h.s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "posting_refused", Message: fmt.Sprintf(
			"cycle %s cannot close: the ledger refused the settlement posting to bank %s's position (%s); "+
				"the cycle stays closing, and the cycles after it wait, until an operator resolves it", refused.Cycle, refused.Bank, refused.Result)})
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v, err := h.cycleView(r.Context(), c)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// get answers a cycle's view.
func (h *settlementHandlers) get(w http.ResponseWriter, r *http.Request) {
	d, err := pathDate(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	c, err := h.svc.Cycle(r.Context(), d)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "cycle %s was never closed", d))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v, err := h.cycleView(r.Context(), c)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// list answers the cycles closed or closing, newest first.
func (h *settlementHandlers) list(w http.ResponseWriter, r *http.Request) {
	if err := onlyParameters(r, "limit"); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit := cyclesPageMax
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 1 || n > cyclesPageMax {
			h.s.writeError(w, r, Errorf(EINVALID, "limit: want one number from 1 to %d", cyclesPageMax))
			return
		}
		limit = n
	}
	cycles, err := h.svc.ListCycles(r.Context(), limit)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v := cycleListView{Cycles: make([]cycleSummaryView, len(cycles))}
	for i, c := range cycles {
		v.Cycles[i] = cycleSummary(c)
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// --- banks' keys ----------------------------------------------------------------------------------

// bankKeyView is a bank's new API key: shown once, never again.
type bankKeyView struct {
	Bank   string `json:"bank"`
	APIKey string `json:"api_key"`
}

// issueKey issues an API key for a registered bank. A bank may hold several: each call issues
// another, and the earlier ones keep working.
func (h *settlementHandlers) issueKey(w http.ResponseWriter, r *http.Request) {
	bank, err := pathID(r, "bank")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if err := decodeEmptyBody(w, r); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var raw [bankKeyBytes]byte
	if _, err := io.ReadFull(h.rand, raw[:]); err != nil {
		h.s.writeError(w, r, fmt.Errorf("draw bank key: %w", err))
		return
	}
	key := bankKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	if err := h.keys.CreateBankKey(r.Context(), bank, sha256.Sum256([]byte(key))); err != nil {
		h.s.writeError(w, r, h.bankKeysError(r, bank, err))
		return
	}
	h.s.writeJSON(w, r, http.StatusCreated, bankKeyView{Bank: bank, APIKey: key})
}

// bankKeysError answers a store's failure to issue or revoke a bank's keys: 404 for a bank that is
// not registered, the store's own answer otherwise.
func (h *settlementHandlers) bankKeysError(r *http.Request, bank string, err error) error {
	if errors.Is(err, postgres.ErrNotFound) {
		return Errorf(ENOTFOUND, "bank %q is not registered", bank)
	}
	return h.s.storeError(r.Context(), err)
}

// bankKeysRevokedView is what a revocation did: the bank, and how many of its keys stopped working.
type bankKeysRevokedView struct {
	Bank    string `json:"bank"`
	Revoked int64  `json:"revoked"`
}

// revokeKeys revokes every API key of a registered bank, at once in every process (a key is
// looked up on every request): a bank whose key leaked, or that replaces its keys, has the admin
// revoke them all and issue a new one.
func (h *settlementHandlers) revokeKeys(w http.ResponseWriter, r *http.Request) {
	bank, err := pathID(r, "bank")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if err := onlyParameters(r); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if err := decodeEmptyBody(w, r); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	n, err := h.keys.RevokeBankKeys(r.Context(), bank)
	if err != nil {
		h.s.writeError(w, r, h.bankKeysError(r, bank, err))
		return
	}
	h.s.log.InfoContext(r.Context(), "bank keys revoked", "bank", bank, "revoked", n)
	h.s.writeJSON(w, r, http.StatusOK, bankKeysRevokedView{Bank: bank, Revoked: n})
}

// bankOnly lets a request through with a bank's API key as its bearer token, and hands the
// handler the bank: a bank sees and acknowledges its own files only. Another holder's key (a
// merchant's, an operator's, the admin's) is refused by its shape, before the store is asked.
func (h *settlementHandlers) bankOnly(next func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return apiKey[string]{
		holder: "bank", realm: bankRealm,
		wellFormed: func(key string) bool { return len(key) == bankKeyLen && strings.HasPrefix(key, bankKeyPrefix) },
		lookup:     h.keys.BankByKey,
	}.require(h.s, next)
}

// --- a bank's files -------------------------------------------------------------------------------

func noFile(bank string, d settlement.Date) error {
	return Errorf(ENOTFOUND, "no settlement file of bank %s for cycle %s", bank, d)
}

// writeDownload answers body as a file of type contentType; with name, as an attachment so named.
func (h *settlementHandlers) writeDownload(w http.ResponseWriter, r *http.Request, contentType, name string, body []byte) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	if name != "" {
		hdr.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	// Files name cardholders' masked cards and what they spent: no cache may keep them.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(body); err != nil {
		h.s.log.DebugContext(r.Context(), "write settlement file", "route", r.Pattern, "err", err)
	}
}

// manifest answers the bank's manifest of a cycle: its two files with their sizes and SHA-256,
// to check what it fetches against.
func (h *settlementHandlers) manifest(w http.ResponseWriter, r *http.Request, bank string) {
	d, err := pathDate(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	m, err := h.svc.Manifest(r.Context(), bank, d)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, noFile(bank, d))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	var buf bytes.Buffer
	if err := bankfile.WriteManifest(&buf, m); err != nil {
		h.s.writeError(w, r, fmt.Errorf("write the manifest of %s for cycle %s: %w", bank, d, err))
		return
	}
	h.writeDownload(w, r, "text/plain; charset=utf-8", "", buf.Bytes())
}

// file answers the bank's settlement file of a cycle in a format. The first GET of each format
// gets the original; every later one a duplicate copy, marked so in the file and in the
// X-Joinin-Copy header. A HEAD fetches nothing: it leaves the original to the next GET.
func (h *settlementHandlers) file(w http.ResponseWriter, r *http.Request, bank string) {
	d, err := pathDate(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var (
		f           bankfile.Format
		contentType string
	)
	switch r.PathValue("format") {
	case "xml":
		f, contentType = bankfile.FormatXML, "application/xml"
	case "csv":
		f, contentType = bankfile.FormatCSV, "text/csv; charset=utf-8"
	default:
		h.s.writeError(w, r, Errorf(EINVALID, "format: want xml or csv"))
		return
	}
	// The store checks the file against its recorded checksum before handing over a byte, and
	// decides original or copy only then: the file is answered once whole.
	var buf bytes.Buffer
	rec, dup, err := h.svc.WriteFile(r.Context(), &buf, bank, d, f, r.Method != http.MethodHead)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, noFile(bank, d))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	switch {
	case r.Method == http.MethodHead: // it fetched nothing, and cannot say what the next GET gets
	case dup:
		w.Header().Set(copyHeader, "duplicate")
	default:
		w.Header().Set(copyHeader, "original")
	}
	h.writeDownload(w, r, contentType, settlement.FileName(rec.Header, f), buf.Bytes())
}

// --- a bank's acknowledgements ----------------------------------------------------------------------

// ackResultView is what an acknowledgement did. Status is accepted, rejected or partial;
// returned is the money of the rejected items, given back to their clearing accounts to be
// offered again at the next close.
type ackResultView struct {
	Bank          string `json:"bank"`
	Cycle         string `json:"cycle"`
	FileMessageID string `json:"file_message_id"`
	MessageID     string `json:"message_id"`
	Status        string `json:"status"`
	Items         int64  `json:"items"`
	Rejected      int64  `json:"rejected"`
	Returned      string `json:"returned"`
}

// ackStatusWord names an acknowledgement's status as the cycle view does.
func ackStatusWord(s bankfile.Status) string {
	switch s {
	case bankfile.StatusAccepted:
		return "accepted"
	case bankfile.StatusRejected:
		return "rejected"
	case bankfile.StatusPartial:
		return "partial"
	}
	return string(s)
}

// ackReader picks the acknowledgement's reader by the body's Content-Type.
func ackReader(r *http.Request) (func(io.Reader) (*bankfile.Ack, error), error) {
	const want = "content-type: want application/xml or text/csv"
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, Errorf(EINVALID, want)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, Errorf(EINVALID, "content-type: charset must be utf-8")
	}
	switch mt {
	case "application/xml":
		return bankfile.ReadAckXML, nil
	case "text/csv":
		return bankfile.ReadAckCSV, nil
	}
	return nil, Errorf(EINVALID, want)
}

// boundedBody reads a body through http.MaxBytesReader and remembers whether it went past the
// bound, whatever the reader reading it makes of the error.
type boundedBody struct {
	r    io.Reader
	over bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.over = true
	}
	return n, err
}

// ackError describes an acknowledgement bankfile refused: by record, line, item and element or
// column, which bankfile's errors name without repeating a value. An unexpected element's name
// is the one thing such a message quotes; should it hold what may be a card number, or a byte
// that is not printable UTF-8, the message is cut to where the refusal is.
func ackError(err error) error {
	var fe *bankfile.FieldError
	if !errors.As(err, &fe) {
		return Errorf(EINVALID, "acknowledgement: cannot read request body")
	}
	msg := fe.Error()
	if events.ContainsCardNumber(msg) || !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool {
		return unicode.IsControl(r) || r == utf8.RuneError
	}) {
		msg = fmt.Sprintf("line %d: %s: refused", fe.Line, fe.Record)
	}
	return Errorf(EINVALID, "acknowledgement: %s", msg)
}

// acknowledge records the bank's acknowledgement (pain.002 XML or CSV) of its file of a cycle:
// 201 with what it did, 200 with the same for the same verdicts again (under any report id), 409
// (reason verdict_differs, naming the item) for a report judging an item or the file otherwise. The report must be the key's bank's, and name the bank's file of the cycle
// in the path.
func (h *settlementHandlers) acknowledge(w http.ResponseWriter, r *http.Request, bank string) {
	d, err := pathDate(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	read, err := ackReader(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	body := &boundedBody{r: http.MaxBytesReader(w, r.Body, maxAckBodyBytes)}
	ack, err := read(body)
	if body.over {
		h.s.writeError(w, r, Errorf(ETOOLARGE, "request body is larger than %d bytes", maxAckBodyBytes))
		return
	}
	if err != nil {
		h.s.writeError(w, r, ackError(err))
		return
	}
	if ack.BankID != bank {
		h.s.writeError(w, r, Errorf(EFORBIDDEN, "acknowledgement: the report is another bank's than the api key's"))
		return
	}
	rec, err := h.svc.File(r.Context(), bank, d)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, noFile(bank, d))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	if ack.FileMessageID != rec.Header.MessageID {
		h.s.writeError(w, r, Errorf(EINVALID, "acknowledgement: the original message id is not that of the bank's file of cycle %s, %s",
			d, rec.Header.MessageID))
		return
	}
	res, replayed, err := h.svc.Acknowledge(r.Context(), bank, ack)
	switch {
	case errors.Is(err, postgres.ErrAckConflict):
		msg := fmt.Sprintf("file %s was acknowledged before with other verdicts", rec.Header.MessageID)
		var differs *postgres.AckVerdictError
		if errors.As(err, &differs) {
			msg = fmt.Sprintf("file %s was acknowledged before: %s; nothing was changed", rec.Header.MessageID, differs.Error())
		}
		h.s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "verdict_differs", Message: msg})
		return
	case errors.Is(err, postgres.ErrAckInvalid):
		// The store's reasons name counts and fields, never values.
		// The reason follows the sentinel's text, behind whatever the store's transaction
		// wrapped it in ("batch transaction: ...").
		_, detail, ok := strings.Cut(err.Error(), postgres.ErrAckInvalid.Error()+": ")
		if !ok {
			detail = postgres.ErrAckInvalid.Error()
		}
		h.s.writeError(w, r, Errorf(EINVALID, "acknowledgement: %s", detail))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	h.s.writeJSON(w, r, status, ackResultView{Bank: bank, Cycle: d.String(), FileMessageID: ack.FileMessageID,
		MessageID: ack.MessageID, Status: ackStatusWord(res.Status), Items: res.Items, Rejected: res.Rejected,
		Returned: fenText(res.Returned)})
}
