package http

import (
	"bytes"
	"encoding/csv"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
)

// The finance page's CSV exports are for people, who open them in a spreadsheet. A spreadsheet
// runs a cell that starts with = + - or @ (or a tab or a carriage return before one) as a
// formula, and a formula can fetch what it likes or run a command: every text cell that starts
// so is written behind an apostrophe, which spreadsheets show as text. A plain number, such as
// the amount -123.45, is written as it is, so that it stays a number to add up.
//
// settlement/bankfile quotes its CSV cells too, but for files that banks' programs read back: it
// also quotes a leading apostrophe, so that every value reads back as written, and quotes every
// leading minus, since its amounts carry no sign (a direction column says which way). Exports are
// read by people, with signed amounts: they keep the numbers and quote only what a spreadsheet
// would run.

// formulaStart are the first bytes that make a spreadsheet read a cell as a formula.
const formulaStart = "=+-@\t\r"

// spreadsheetCell writes a cell of an export: a plain decimal number as it is, a text that a
// spreadsheet would run as a formula behind an apostrophe.
func spreadsheetCell(s string) string {
	if s == "" || isPlainNumber(s) {
		return s
	}
	for i := 0; i < len(formulaStart); i++ {
		if s[0] == formulaStart[i] {
			return "'" + s
		}
	}
	return s
}

// isPlainNumber reports whether s is an optional minus, digits, and optionally a point and
// digits: "-123.45", "0", "12.5". Nothing else ("-1+2", "1e3", "-", "-.5") is a number here.
func isPlainNumber(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	digits, point := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !point && digits > 0 && i < len(s)-1:
			point = true
		default:
			return false
		}
	}
	return digits > 0
}

// utf8BOM starts every export: spreadsheets read a CSV without it in the computer's own code
// page, and show the Chinese names as noise.
const utf8BOM = "\ufeff"

// writeCSV answers rows as a CSV download named name, every cell through spreadsheetCell.
func (h *financeHandlers) writeCSV(w http.ResponseWriter, r *http.Request, name string, rows [][]string) {
	var buf bytes.Buffer
	buf.WriteString(utf8BOM)
	cw := csv.NewWriter(&buf)
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = spreadsheetCell(c)
		}
		if err := cw.Write(cells); err != nil {
			h.fail(w, r, nil, err)
			return
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	h.headers(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/csv; charset=utf-8")
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	hd.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(buf.Bytes()); err != nil {
		h.s.log.DebugContext(r.Context(), "write finance export", "route", r.Pattern, "err", err)
	}
}

func decimal(fen int64) string { return ledger.FormatDecimal(fen, "CNY") }

// trialBalanceCSV exports the trial balance at the query's instant (now without one).
func (h *financeHandlers) trialBalanceCSV(w http.ResponseWriter, r *http.Request, sess *financeSession) {
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
	stamp := at.In(cards.Shanghai).Format(time.RFC3339Nano)
	rows := [][]string{{"at", "currency", "kind", "accounts", "debits_pending", "debits_posted", "credits_pending", "credits_posted", "net"}}
	for _, l := range lines {
		c := l.Currency
		rows = append(rows, []string{stamp, string(c), l.Kind.String(), strconv.FormatInt(l.Accounts, 10),
			postgres.FormatTotalDecimal(l.DebitsPending, c), postgres.FormatTotalDecimal(l.DebitsPosted, c),
			postgres.FormatTotalDecimal(l.CreditsPending, c), postgres.FormatTotalDecimal(l.CreditsPosted, c), ledger.FormatDecimal(l.Net(), c)})
	}
	h.writeCSV(w, r, "trial-balance-"+at.In(cards.Shanghai).Format("20060102T150405")+".csv", rows)
}

// cycleCSV exports a cycle's report: a row per bank with its positions, control totals, what
// its statements matched, and its breaks by kind and age.
func (h *financeHandlers) cycleCSV(w http.ResponseWriter, r *http.Request, sess *financeSession) {
	d, err := financeCycleDate(r)
	if err != nil {
		h.fail(w, r, sess, err)
		return
	}
	if _, err := pageQuery(r); err != nil {
		h.fail(w, r, sess, err)
		return
	}
	rep, err := h.store.CycleReport(r.Context(), d)
	if errors.Is(err, postgres.ErrNotFound) {
		h.fail(w, r, sess, Errorf(ENOTFOUND, "cycle %s was never closed", d))
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
	header := []string{"cycle", "value_date", "cycle_fee_income", "bank", "bank_name", "opening", "settled", "items", "control_sum",
		"matched_items", "matched", "closing", "open_breaks", "rejected_items", "rejected"}
	for _, k := range reconcile.BreakKinds() {
		for _, a := range reconcile.AgeBuckets() {
			header = append(header, string(k)+" "+string(a))
		}
	}
	rows := [][]string{header}
	for _, b := range rep.Banks {
		row := []string{d.String(), rep.Cycle.ValueDate.String(), decimal(rep.FeeIncome), b.Bank, names[b.Bank], decimal(b.Opening),
			decimal(b.Settled), strconv.FormatInt(b.Items, 10), decimal(b.ControlSum), strconv.FormatInt(b.MatchedItems, 10),
			decimal(b.Matched), decimal(b.Closing), strconv.FormatInt(b.Open, 10), strconv.FormatInt(b.RejectedItems, 10), decimal(b.Rejected)}
		for _, k := range reconcile.BreakKinds() {
			for _, a := range reconcile.AgeBuckets() {
				row = append(row, strconv.FormatInt(b.Breaks[k][a], 10))
			}
		}
		rows = append(rows, row)
	}
	h.writeCSV(w, r, "cycle-report-"+d.String()+".csv", rows)
}
