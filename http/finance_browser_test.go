package http

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/reconcile"
)

// browserCandidates are where a Chromium or Chrome is looked for: Debian's chromium first.
var browserCandidates = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findBrowser returns a Chromium to drive, or "" when the machine has none.
func findBrowser() string {
	for _, c := range browserCandidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// browserOutput is where the browser test leaves screenshots of what it saw when it failed
// (git-ignored).
const browserOutput = "testdata/browser-output"

// browserTimeout bounds the browser's whole run: starting Chromium takes a second or two, each
// page a few hundred milliseconds.
const browserTimeout = 60 * time.Second

// TestFinancePageInABrowser settles a day with breaks on the real PostgreSQL, serves the finance
// page, and has Chromium do what a person does: open the page (and be sent to the login), log in
// with the admin token and a Chinese name, see the open breaks and the week's chart, follow the
// amount mismatch to its page, resolve it with a note, and see it resolved with the note and the
// name, and the open breaks one fewer; then accept the suggestion, resolve the other break with
// an adjustment through the ledger, and read the cycle's report and the trial balance. A failed
// step leaves a screenshot in testdata/browser-output.
func TestFinancePageInABrowser(t *testing.T) {
	browser := findBrowser()
	if browser == "" {
		t.Skip("no Chromium or Chrome on this machine (apt-get install chromium): the finance page is not tried in a real browser")
	}
	srv, rec, log := financeOnPostgres(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()

	// fail stops the test at a step, leaving a screenshot of the page as it stood.
	fail := func(step string, err error) {
		t.Helper()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer scancel()
		if shot, serr := chromedp.Run(sctx, chromedp.FullScreenshot(100)); serr == nil {
			if merr := os.MkdirAll(browserOutput, 0o755); merr == nil {
				name := filepath.Join(browserOutput, t.Name()+"-"+strings.ReplaceAll(step, " ", "-")+".png")
				if werr := os.WriteFile(name, shot, 0o644); werr == nil {
					t.Logf("screenshot of the failed step: %s", name)
				}
			}
		}
		t.Fatalf("%s: %v", step, err)
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			fail(step, err)
		}
	}
	read := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		s, err := chromedp.Run(ctx, a)
		if err != nil {
			fail("read "+what, err)
		}
		return strings.TrimSpace(s)
	}
	text := func(sel string) string {
		t.Helper()
		return read(sel, chromedp.Text(chromedp.CSS(sel)))
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	const who = "王芳 Wang Fang"
	do("open the page and be sent to the login", chromedp.Navigate(srv.URL+"/finance/"), chromedp.WaitVisible(css("#token")))
	if got := read("the address", chromedp.Location()); got != srv.URL+"/finance/login" {
		t.Fatalf("without a session the page sent the browser to %s", got)
	}
	do("log in",
		chromedp.SendKeys(css("#name"), who),
		chromedp.SendKeys(css("#token"), testAdminToken),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#open-breaks")))
	if got := text("#who"); got != who {
		t.Errorf("logged in as %q", got)
	}
	if got := text("#open-breaks"); got != "2" {
		fail("count the open breaks", fmt.Errorf("%q, want 2", got))
	}
	chart := read("the chart", chromedp.OuterHTML(css("#settled-chart")))
	for _, want := range []string{"中国工商银行嘉兴分行 ICBC Jiaxing, cycle 2026-03-03: -345.50 CNY",
		"中国农业银行嘉兴分行 ABC Jiaxing, cycle 2026-03-03: 345.50 CNY", "net settled, CNY"} {
		if !strings.Contains(chart, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}

	do("follow the amount mismatch to its page",
		chromedp.Click(css(`a[href="/finance/breaks"]`)),
		chromedp.WaitVisible(css("#breaks")),
		chromedp.Click(chromedp.Search(`//table[@id="breaks"]//a[text()="amount mismatch"]`)),
		chromedp.WaitVisible(css("#resolve")))
	if got := text("#break-expected"); !strings.HasPrefix(got, "-345.50") {
		t.Errorf("expected %q", got)
	}
	if got := text("#break-actual"); !strings.HasPrefix(got, "-345.00") {
		t.Errorf("booked %q", got)
	}
	breakURL := read("the break's address", chromedp.Location())

	const note = "银行少付五角手续费 the bank took a 0.50 fee; agreed with ICBC"
	do("resolve it with a note",
		chromedp.SendKeys(css("#note"), note),
		chromedp.Click(css("#resolve-note")),
		chromedp.WaitVisible(css("#resolution")))
	if got := text("#break-status"); got != "resolved" {
		t.Errorf("status %q", got)
	}
	if got := text("#resolution-note"); got != note {
		t.Errorf("note %q", got)
	}
	if got := text("#resolution-by"); got != who {
		t.Errorf("resolved by %q", got)
	}
	if got := text("#resolution-at"); got != "2026-03-05 10:10:00" {
		t.Errorf("resolved at %q", got)
	}
	do("see the open breaks one fewer",
		chromedp.Click(css(`a[href="/finance/"]`)),
		chromedp.WaitVisible(css("#open-breaks")))
	if got := text("#open-breaks"); got != "1" {
		fail("count the open breaks again", fmt.Errorf("%q after resolving one, want 1", got))
	}

	do("accept the suggestion",
		chromedp.Click(css(`a[href="/finance/suggestions"]`)),
		chromedp.WaitVisible(css("#suggestions")),
		chromedp.Click(css(`#suggestions button[value="accept"]`)),
		chromedp.WaitVisible(css("#no-suggestions")))

	do("resolve the other break with an adjustment",
		chromedp.Click(css(`a[href="/finance/breaks"]`)),
		chromedp.WaitVisible(css("#breaks")),
		chromedp.Click(chromedp.Search(`//table[@id="breaks"]//a[text()="missing in ledger"]`)),
		chromedp.WaitVisible(css("#resolve")),
		chromedp.SendKeys(css("#note"), "未知来款 12.34 held in suspense until ABC explains it"),
		chromedp.Click(css("#resolve-adjustment")),
		chromedp.WaitVisible(css("#resolution")))
	if got := text("#resolution-kind"); got != "adjustment" {
		t.Errorf("resolved by %q, want an adjustment", got)
	}
	do("see no open break", chromedp.Click(css(`a[href="/finance/breaks"]`)), chromedp.WaitVisible(css("#no-breaks")))

	do("read the cycle's report", chromedp.Click(css(`a[href="/finance/"]`)), chromedp.WaitVisible(css("#cycles")),
		chromedp.Click(css(`#cycles a[href="/finance/cycles/2026-03-03"]`)), chromedp.WaitVisible(css("#report")))
	report := read("the report", chromedp.OuterHTML(css("#report")))
	// Bank, opening, settled, rejected, items rejected, matched, items matched, closing, items,
	// control sum, breaks, open: ABC-JX's two items matched (one by its reference, one by the
	// suggestion accepted); ICBC-JX's one not, its break resolved; no bank rejected any.
	for _, want := range []string{`<span class="mono">ABC-JX</span> 中国农业银行嘉兴分行 ABC Jiaxing</td><td class="num">0.00</td><td class="num">345.50</td>` +
		`<td class="num">0.00</td><td class="num">0</td><td class="num">345.50</td><td class="num">2 of 2</td><td class="num">345.50</td><td class="num">2</td><td class="num">345.50</td><td class="num">0</td><td class="num">0</td>`,
		`<span class="mono">ICBC-JX</span> 中国工商银行嘉兴分行 ICBC Jiaxing</td><td class="num">0.00</td><td class="num">-345.50</td>` +
			`<td class="num">0.00</td><td class="num">0</td><td class="num">0.00</td><td class="num">0 of 1</td><td class="num">-345.50</td><td class="num">1</td><td class="num">345.50</td><td class="num">1</td><td class="num">0</td>`} {
		if !strings.Contains(strings.ReplaceAll(report, "\n", ""), want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	do("read the trial balance", chromedp.Click(css(`a[href="/finance/trial-balance"]`)), chromedp.WaitVisible(css("#trial")))
	if got := text("#trial tfoot"); !strings.Contains(got, "debits equal credits") {
		t.Errorf("the trial balance's totals: %q", got)
	}

	// What the browser did is in the store, in the person's name.
	id, err := uuid.Parse(breakURL[strings.LastIndex(breakURL, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	b, err := rec.Break(context.Background(), ledger.ID(id))
	if err != nil || b.Resolution == nil || b.Resolution.By != who || b.Resolution.Note != note || b.Kind != reconcile.AmountMismatch {
		t.Fatalf("the break in the store: %+v %v", b, err)
	}
	if sugg, err := rec.Suggestions(context.Background(), ""); err != nil || len(sugg) != 0 {
		t.Fatalf("suggestions after accepting: %+v %v", sugg, err)
	}
	if strings.Contains(log.String(), `"level":"ERROR"`) {
		t.Errorf("errors were logged:\n%s", log.String())
	}
}
