package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
)

const (
	// financeSessionTTL is how long a login lasts: a working day. A person logs in once in the
	// morning; a session left open on a shared screen, or a cookie copied off a machine, stops
	// working by the evening. It does not slide: every login ends at most this long after it.
	financeSessionTTL = 8 * time.Hour
	// maxFinanceSessions bounds the sessions kept: a finance team is tens of people with a
	// browser or two each. At the bound a login ends the session closest to its end.
	maxFinanceSessions = 256
	// financeTokenBytes is the entropy of a session id and of a form token: 256 bits, which no
	// one guesses.
	financeTokenBytes = 32
	// financeCookie names the session cookie; its path is the page's, so that no API request
	// ever carries it.
	financeCookie     = "joinin_finance"
	financeCookiePath = "/finance"
	// maxWhoBytes bounds the name a person logs in with, recorded on every resolution and
	// confirmation they make: a full name in any script fits.
	maxWhoBytes = 100
	// loginFreeFailures is how many failed logins in a row are answered at once: a person
	// mistypes the token a time or two.
	loginFreeFailures = 3
	// loginBackoffFirst is the wait after the first failure beyond the free ones; each further
	// failure doubles it, up to loginBackoffMax. Logins are throttled per client (its address,
	// an IPv6 client by its /64), so that one client's guessing never slows another's login.
	loginBackoffFirst = time.Second
	// loginBackoffMax caps the wait: while someone guesses, the admin waits at most this long to
	// log in.
	loginBackoffMax = 30 * time.Second
	// maxLoginClients bounds the clients whose failed logins are remembered: only clients with a
	// failure not yet forgotten are kept, and a finance team is tens of people, of whom a few
	// mistype at a time. Clients beyond the bound share one throttle, so that a guesser spreading
	// over many addresses is slowed down as one client beyond it: at most maxLoginClients + 1
	// guesses per loginBackoffMax once the free ones are spent, however many addresses it has.
	maxLoginClients = 64
	// loginForgetAfter is how long after its last failure a client's count is forgotten (and
	// the client may leave the table): a guesser that waits this long gets loginFreeFailures
	// guesses more, a handful an hour.
	loginForgetAfter = time.Hour
)

var financeTokenLen = base64.RawURLEncoding.EncodedLen(financeTokenBytes)

// financeSession is a person logged in to the finance page. It never changes once made.
type financeSession struct {
	who     string // the name given at login, recorded on what the person does
	csrf    string // the token every form of the session carries
	expires time.Time
}

// FinanceSessions keeps the finance page's sessions where every engine finds them, by the
// SHA-256 of their ids: the ids themselves live only in the browsers' cookies, and finding a
// session by the hash of what a request presents times nothing about the ids kept.
type FinanceSessions interface {
	// StartFinanceSession records a session, ending the oldest beyond maxSessions open.
	StartFinanceSession(ctx context.Context, sess postgres.FinanceSession, maxSessions int) error
	// FinanceSessionAt returns the session whose id hashes to idHash, if it is open at now.
	FinanceSessionAt(ctx context.Context, idHash [sha256.Size]byte, now time.Time) (postgres.FinanceSession, bool, error)
	// EndFinanceSession ends a session; one not open is no error.
	EndFinanceSession(ctx context.Context, idHash [sha256.Size]byte) error
}

var _ FinanceSessions = (*postgres.Store)(nil)

// financeSessions opens, finds and ends sessions: it draws their ids and derives their form
// tokens, and keeps them in a FinanceSessions.
type financeSessions struct {
	rand  io.Reader
	store FinanceSessions
}

func newFinanceSessions(rand io.Reader, store FinanceSessions) *financeSessions {
	return &financeSessions{rand: rand, store: store}
}

func (ss *financeSessions) token() (string, error) {
	var b [financeTokenBytes]byte
	if _, err := io.ReadFull(ss.rand, b[:]); err != nil {
		return "", fmt.Errorf("draw a session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// formToken is the form token of the session of id: derived from the id, which only the
// browser's cookie holds, so that any engine can check a form without the token being stored,
// and a page of another site, which cannot read the cookie, cannot make it. It is not the id's
// hash the sessions are kept by.
func formToken(id string) string {
	sum := sha256.Sum256([]byte("joinin finance form token\x00" + id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// start opens a session for who, and returns its id.
func (ss *financeSessions) start(ctx context.Context, who string, now time.Time) (string, *financeSession, error) {
	id, err := ss.token()
	if err != nil {
		return "", nil, err
	}
	sess := postgres.FinanceSession{IDHash: sha256.Sum256([]byte(id)), Who: who, Started: now, Expires: now.Add(financeSessionTTL)}
	if err := ss.store.StartFinanceSession(ctx, sess, maxFinanceSessions); err != nil {
		return "", nil, err
	}
	return id, &financeSession{who: who, csrf: formToken(id), expires: sess.Expires}, nil
}

// get returns the session of id, or nil for none or one that has ended.
func (ss *financeSessions) get(ctx context.Context, id string, now time.Time) (*financeSession, error) {
	if len(id) != financeTokenLen {
		return nil, nil
	}
	sess, ok, err := ss.store.FinanceSessionAt(ctx, sha256.Sum256([]byte(id)), now)
	if err != nil || !ok {
		return nil, err
	}
	return &financeSession{who: sess.Who, csrf: formToken(id), expires: sess.Expires}, nil
}

// end ends the session of id.
func (ss *financeSessions) end(ctx context.Context, id string) error {
	if len(id) != financeTokenLen {
		return nil
	}
	return ss.store.EndFinanceSession(ctx, sha256.Sum256([]byte(id)))
}

// loginThrottle slows a guesser of the admin token, at the finance page's login and as the API's
// bearer token alike: after loginFreeFailures failures in a row,
// each attempt must wait for the one before it, the wait doubling per failure up to
// loginBackoffMax. An attempt that comes too early is refused without looking at its token. A
// login that succeeds clears the count; a right token through the API does not (check). An attempt let through counts as a failure until it is
// decided, so that guesses sent at once are not all checked before the first is counted: at most
// loginFreeFailures are checked at once, and past them one at a time.
type loginThrottle struct {
	mu       sync.Mutex
	failures int
	checking int       // attempts let through and not yet decided
	next     time.Time // no attempt is checked before it
	last     time.Time // the last failure
}

// forgettable says whether the throttle holds nothing worth keeping at now: no attempt being
// checked, and no failure, or none for loginForgetAfter and no wait still running.
func (l *loginThrottle) forgettable(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checking == 0 && (l.failures == 0 || !now.Before(l.last.Add(loginForgetAfter)) && !now.Before(l.next))
}

// loginThrottles throttles logins per client: a loginThrottle for each client address with
// failures, at most maxLoginClients of them, and one shared by the clients beyond the bound.
type loginThrottles struct {
	mu       sync.Mutex
	clients  map[string]*loginThrottle
	overflow loginThrottle
}

// admit lets an attempt from client at now be checked, returning zero and the throttle to tell
// how it went; otherwise it returns how long the attempt must still wait.
// The attempt is admitted under the table's lock, so that a throttle is never forgotten between
// being found and counting the attempt.
func (ls *loginThrottles) admit(client string, now time.Time) (time.Duration, *loginThrottle) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.of(client, now)
	return l.admit(now), l
}

// check decides an attempt with the admin token as the API's bearer token, under the throttle's
// lock: it returns how long the attempt must still wait, its token not looked at; otherwise
// whether right says the token is right, a wrong one counted as a failure. Deciding under the
// lock (a hash and a comparison) leaves no attempt in flight, so that requests sent at once, the
// admin's automation's or a guesser's, are decided one after the other without holding each other
// up. A right token does not clear the count as a login does: a client sending many requests
// from one address shared with a guesser (one host, one NAT) would otherwise clear the guesser's
// count with each of them. The count is forgotten loginForgetAfter after the last failure.
func (ls *loginThrottles) check(client string, now time.Time, right func() bool) (time.Duration, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.of(client, now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetOld(now)
	if now.Before(l.next) {
		return l.next.Sub(now), false
	}
	if l.checking > 0 && l.failures+l.checking >= loginFreeFailures {
		return loginBackoffFirst, false // a login of the client is being checked
	}
	if right() {
		return 0, true
	}
	l.fail(now)
	return 0, false
}

// of returns client's throttle, making one if there is room, after forgetting the clients that
// have nothing worth keeping; beyond the bound, the shared one. The caller holds ls.mu.
func (ls *loginThrottles) of(client string, now time.Time) *loginThrottle {
	if l, ok := ls.clients[client]; ok {
		return l
	}
	if ls.clients == nil {
		ls.clients = map[string]*loginThrottle{}
	}
	if len(ls.clients) >= maxLoginClients {
		for k, l := range ls.clients {
			if l.forgettable(now) {
				delete(ls.clients, k)
			}
		}
	}
	if len(ls.clients) >= maxLoginClients {
		return &ls.overflow
	}
	l := &loginThrottle{}
	ls.clients[client] = l
	return l
}

// size is how many clients the table holds.
func (ls *loginThrottles) size() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.clients)
}

// retryAfterSeconds is a wait in whole seconds, rounded up, for a Retry-After header.
func retryAfterSeconds(wait time.Duration) int { return int((wait + time.Second - 1) / time.Second) }

// loginClient names the client of r for the throttle: its address without the port, an IPv6
// address by its /64, which one host or network gets whole. Forwarding headers are not read:
// anyone can write them. Behind a proxy every client has the proxy's address and shares one
// throttle.
func loginClient(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}

// admit lets an attempt at now be checked, and returns zero; the caller then says how it went,
// failed or succeeded. Otherwise it returns how long the attempt must still wait.
func (l *loginThrottle) admit(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetOld(now)
	if now.Before(l.next) {
		return l.next.Sub(now)
	}
	if l.checking > 0 && l.failures+l.checking >= loginFreeFailures {
		// Another attempt is being checked and may be the failure that makes this one wait.
		return loginBackoffFirst
	}
	l.checking++
	return 0
}

func (l *loginThrottle) failed(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checking = max(l.checking-1, 0)
	l.fail(now)
}

// forgetOld forgets the failures of a client that has had none for loginForgetAfter, with no wait
// running and no attempt being checked. The caller holds l.mu.
func (l *loginThrottle) forgetOld(now time.Time) {
	if l.failures > 0 && l.checking == 0 && !now.Before(l.last.Add(loginForgetAfter)) && !now.Before(l.next) {
		l.failures, l.next = 0, time.Time{}
	}
}

// fail counts a failure at now, and sets the wait it brings. The caller holds l.mu.
func (l *loginThrottle) fail(now time.Time) {
	l.failures++
	l.last = now
	if n := l.failures - loginFreeFailures; n > 0 {
		d := loginBackoffMax
		if n <= 16 { // 2^15 s is past the cap: no shift that could overflow
			d = min(loginBackoffFirst<<(n-1), loginBackoffMax)
		}
		l.next = now.Add(d)
	}
}

func (l *loginThrottle) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checking = max(l.checking-1, 0)
	l.failures, l.next = 0, time.Time{}
}

// --- sessions on requests ---------------------------------------------------------------------------

// session returns the request's session, or nil. Only the cookie counts: an Authorization header,
// whatever key it carries, is not a session. An error is the store's.
func (h *financeHandlers) session(r *http.Request) (*financeSession, error) {
	c, err := r.Cookie(financeCookie)
	if err != nil {
		return nil, nil
	}
	return h.sessions.get(r.Context(), c.Value, h.s.now())
}

// closed answers when the engine has no admin token: no one can log in.
func (h *financeHandlers) closed(w http.ResponseWriter, r *http.Request) bool {
	if h.s.adminSet {
		return false
	}
	h.fail(w, r, nil, Errorf(EUNAVAILABLE, "the finance page is closed: the engine has no admin token configured"))
	return true
}

func (h *financeHandlers) toLogin(w http.ResponseWriter, r *http.Request) {
	h.headers(w)
	http.Redirect(w, r, "/finance/login", http.StatusSeeOther)
}

// page lets a request through to a page with a session, and sends one without to the login.
func (h *financeHandlers) page(next func(http.ResponseWriter, *http.Request, *financeSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.closed(w, r) {
			return
		}
		sess, err := h.session(r)
		if err != nil {
			h.storeFail(w, r, nil, err)
			return
		}
		if sess == nil {
			h.toLogin(w, r)
			return
		}
		next(w, r, sess)
	}
}

// form lets a form's POST through with a session, from the page's own origin, carrying the
// session's form token, with the fields named (and the token) and nothing else. A form from
// another site is refused twice over: the browser says where it came from (Sec-Fetch-Site,
// Origin or Referer), and another site cannot know the session's token.
func (h *financeHandlers) form(fields []string, next func(http.ResponseWriter, *http.Request, *financeSession, map[string]string)) http.HandlerFunc {
	allowed := append(slices.Clone(fields), "csrf")
	return func(w http.ResponseWriter, r *http.Request) {
		if h.closed(w, r) {
			return
		}
		sess, err := h.session(r)
		if err != nil {
			h.storeFail(w, r, nil, err)
			return
		}
		if sess == nil {
			h.toLogin(w, r)
			return
		}
		if err := h.sameOrigin(r); err != nil {
			h.fail(w, r, sess, err)
			return
		}
		form, err := readForm(w, r, allowed)
		if err != nil {
			h.fail(w, r, sess, err)
			return
		}
		if subtle.ConstantTimeCompare([]byte(form["csrf"]), []byte(sess.csrf)) != 1 {
			h.fail(w, r, sess, Errorf(EFORBIDDEN, "the form is out of date or came from elsewhere: reload the page and send it again"))
			return
		}
		next(w, r, sess, form)
	}
}

// sameOrigin refuses a request that its browser says came from another site: by Sec-Fetch-Site
// or Origin (net/http's cross-origin protection), or, from a browser that sends neither, by
// Referer. A request with none of them is not a browser's cross-site form, and is let through to
// the form token.
func (h *financeHandlers) sameOrigin(r *http.Request) error {
	refused := Errorf(EFORBIDDEN, "the form came from another site")
	if err := h.origin.Check(r); err != nil {
		return refused
	}
	if r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != "" {
		return nil
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || u.Host != r.Host {
			return refused
		}
	}
	return nil
}

// readForm reads a urlencoded form of the fields named, each at most once, each valid UTF-8
// without control characters (a note may hold line breaks and tabs). Errors name fields, never
// values.
func readForm(w http.ResponseWriter, r *http.Request, fields []string) (map[string]string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, Errorf(EINVALID, "content-type: want a form, application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, financeFormMaxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, Errorf(ETOOLARGE, "request body is larger than %d bytes", financeFormMaxBytes)
		}
		return nil, Errorf(EINVALID, "cannot read request body")
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, Errorf(EINVALID, "request body is not a valid form")
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		if !slices.Contains(fields, k) {
			return nil, unknownField(k)
		}
		if len(v) != 1 {
			return nil, Errorf(EINVALID, "%s: duplicate field", k)
		}
		if why := checkFormText(v[0], k == "note"); why != "" {
			return nil, Errorf(EINVALID, "%s: %s", k, why)
		}
		out[k] = v[0]
	}
	return out, nil
}

// checkFormText returns why s is not acceptable in a form field, or "": invalid UTF-8 or a
// control character (PostgreSQL refuses a NUL in text); multiline allows line breaks and tabs.
func checkFormText(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		return "must be valid utf-8"
	}
	for _, c := range s {
		if multiline && (c == '\n' || c == '\r' || c == '\t') {
			continue
		}
		if unicode.IsControl(c) {
			return "must not contain control characters"
		}
	}
	return ""
}

// --- login and logout -------------------------------------------------------------------------------

type loginView struct {
	Name    string
	NameMax int
}

func (h *financeHandlers) loginPage(w http.ResponseWriter, r *http.Request) {
	if h.closed(w, r) {
		return
	}
	if _, err := pageQuery(r); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	sess, err := h.session(r)
	if err != nil {
		h.storeFail(w, r, nil, err)
		return
	}
	if sess != nil {
		h.headers(w)
		http.Redirect(w, r, "/finance/", http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "login", pageData{Title: "Log in", Page: loginView{NameMax: maxWhoBytes}})
}

// login checks the admin token (its SHA-256 against the server's, in constant time) and opens a
// session in the name given, in place of the browser's session if it had one. Only the admin token logs in: an API key of a merchant, an
// operator, an institution or a bank is just a wrong token here.
func (h *financeHandlers) login(w http.ResponseWriter, r *http.Request) {
	if h.closed(w, r) {
		return
	}
	again := func(status int, name, msg string) {
		h.render(w, r, status, "login", pageData{Title: "Log in", Error: msg, Page: loginView{Name: name, NameMax: maxWhoBytes}})
	}
	if err := h.sameOrigin(r); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	form, err := readForm(w, r, []string{"name", "token"})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			again(statusOf[e.Code], "", e.Message)
			return
		}
		h.fail(w, r, nil, err)
		return
	}
	name, token := strings.TrimSpace(form["name"]), form["token"]
	switch {
	case name == "":
		again(http.StatusBadRequest, "", "name: missing: your name is recorded on what you resolve")
		return
	case len(name) > maxWhoBytes:
		again(http.StatusBadRequest, "", fmt.Sprintf("name: more than %d bytes", maxWhoBytes))
		return
	case events.ContainsCardNumber(name):
		// The name is logged at the login and recorded on what the session resolves: never a
		// card number in clear, and the page does not show it back.
		again(http.StatusBadRequest, "", "name: looks like a card number in clear: write your name")
		return
	case events.MayBePersonalNumber(name):
		again(http.StatusBadRequest, "", "name: may hold a passport, social security, resident id or work permit number: write your name")
		return
	case token == "":
		again(http.StatusBadRequest, name, "token: missing")
		return
	}
	now := h.s.now()
	wait, throttle := h.s.adminGuesses.admit(loginClient(r), now)
	if wait > 0 {
		secs := retryAfterSeconds(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		again(http.StatusTooManyRequests, name, fmt.Sprintf("too many failed logins: try again in %d s", secs))
		return
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], h.s.adminHash[:]) != 1 {
		throttle.failed(now)
		h.s.log.WarnContext(r.Context(), "finance login refused: wrong token")
		again(http.StatusUnauthorized, name, "wrong token: the finance page opens with the engine's admin token")
		return
	}
	throttle.succeeded()
	// A login from a browser that has a session replaces it: the old id, and any copy of its
	// cookie, opens nothing from now on.
	if c, err := r.Cookie(financeCookie); err == nil {
		if err := h.sessions.end(r.Context(), c.Value); err != nil {
			h.storeFail(w, r, nil, err)
			return
		}
	}
	id, _, err := h.sessions.start(r.Context(), name, now)
	if err != nil {
		h.storeFail(w, r, nil, err)
		return
	}
	h.s.log.InfoContext(r.Context(), "finance login", "who", name)
	http.SetCookie(w, &http.Cookie{Name: financeCookie, Value: id, Path: financeCookiePath, MaxAge: int(financeSessionTTL / time.Second),
		Expires: now.Add(financeSessionTTL), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure || r.TLS != nil})
	h.headers(w)
	http.Redirect(w, r, "/finance/", http.StatusSeeOther)
}

// logout ends the session and sends the browser to the login.
func (h *financeHandlers) logout(w http.ResponseWriter, r *http.Request, sess *financeSession, _ map[string]string) {
	if c, err := r.Cookie(financeCookie); err == nil {
		if err := h.sessions.end(r.Context(), c.Value); err != nil {
			h.storeFail(w, r, sess, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: financeCookie, Value: "", Path: financeCookiePath, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: h.secure || r.TLS != nil})
	h.s.log.InfoContext(r.Context(), "finance logout", "who", sess.who)
	h.toLogin(w, r)
}

// financeCSP is the pages' content security policy: nothing loads but the style sheet, inlined
// and allowed by its hash.
func financeCSP(css []byte) string {
	sum := sha256.Sum256(css)
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}
