package http

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

func TestStrictJSON(t *testing.T) {
	valid := registration(nil)
	inner := strings.TrimSuffix(strings.TrimPrefix(valid, "{"), "}")
	for _, c := range []struct {
		name, body, message string
		status              int
	}{
		{"unknown field", `{` + inner + `,"pin":"1234"}`, `unknown field "pin"`, 400},
		{"field in another case", `{` + strings.Replace(inner, `"holder_name"`, `"Holder_Name"`, 1) + `}`, `unknown field "Holder_Name"`, 400},
		{"duplicate field", `{` + inner + `,"holder_name":"Eve"}`, "holder_name: duplicate field", 400},
		{"trailing object", valid + ` {}`, "data after the json object", 400},
		{"trailing garbage", valid + `x`, "data after the json object", 400},
		{"trailing whitespace is fine", valid + " \n\t", "", 201},
		{"two objects in an array", `[` + valid + `,` + valid + `]`, "must be a json object", 400},
		{"a string", `"card"`, "must be a json object", 400},
		{"empty", ``, "must be a json object", 400},
		{"whitespace", "  ", "must be a json object", 400},
		{"truncated", valid[:len(valid)-1], "not valid json", 400},
		{"not json", `{card_number: 1}`, "not valid json", 400},
		{"null value", `{` + inner + `,"physical_token":null}`, "physical_token: must be a string, not null", 400},
		{"number value", strings.Replace(valid, `"`+testPAN+`"`, testPAN, 1), "card_number: must be a string", 400},
		{"object value", `{"holder_name":{"first":"Anna"}}`, "holder_name: must be a string", 400},
		{"invalid utf-8", `{"holder_name":"` + "\xff" + `"}`, "not valid utf-8", 400},
		{"too large", `{"holder_name":"` + strings.Repeat(" ", maxRequestBytes) + `"}`, "larger than 16384 bytes", 413},
		{"key that is a number", `{"` + testPAN + `":"x"}`, "unknown field", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			w := e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body.String())
			}
			if c.status >= 400 {
				if got := errorOf(t, w).Message; !strings.Contains(got, c.message) {
					t.Errorf("message %q, want it to contain %q", got, c.message)
				}
			}
			if strings.Contains(w.Body.String(), testPAN) {
				t.Errorf("the response echoes the card number: %s", w.Body.String())
			}
			if len(e.store.ingested) != 0 && c.status >= 400 {
				t.Errorf("a refused request reached the store")
			}
		})
	}
}

func TestRegisterCardView(t *testing.T) {
	e := newEnv(t)
	tok := testTokenizer(t)
	w := e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: registration(withPhysical)})
	if w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body.String())
	}
	got := cardOf(t, w)
	token := tok.Token(testPAN)
	if loc := w.Header().Get("Location"); loc != "/v1/cards/"+token {
		t.Errorf("Location %q", loc)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("a card response may be cached: Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	c, err := e.store.Card(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	want := cardView{
		Token: token, PhysicalToken: physicalToken, HolderName: "Anna Schmidt", Nationality: "DEU",
		CardNumberMasked: "622848******4899", PassportMasked: "*****5678", SocialSecurityMasked: "**************1234",
		WorkPermitMasked: "*********1234", BankAccountMasked: "***************0123", PermitValidUntil: "2027-06-30",
		InsuranceCity: "jiaxing", IssuerBank: "ICBC-JX", Status: "active",
		FundsAccountID: c.FundsAccount.String(), MedicalAccountID: c.MedicalAccount.String(),
		FundsBalance: balanceView{Currency: "CNY", Available: "0.00", Posted: "0.00"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registered card\n got %+v\nwant %+v", got, want)
	}
	// What the store holds are the tokens of the numbers, as a producer would compute them.
	if c.PassportToken != tok.Token(testPassport) || c.SSNToken != tok.Token(testSSN) ||
		c.PermitToken != tok.Token(testPermit) || c.BankAccountToken != tok.Token(testBankAcct) {
		t.Errorf("stored tokens are not the Tokenizer's tokens of the numbers: %+v", c)
	}

	// The balance: 1,234.56 posted, 10.00 held.
	e.store.setBalance(c.FundsAccount, ledger.Balance{CreditsPosted: 123456, DebitsPending: 1000})
	w = e.do(t, request{method: "GET", path: "/v1/cards/" + token})
	if got := cardOf(t, w).FundsBalance; got != (balanceView{Currency: "CNY", Available: "1224.56", Posted: "1234.56"}) {
		t.Errorf("balance %+v", got)
	}

	// Status derives from the clock: the day after the permit's last day it has expired.
	e.clock.Advance(time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC).Sub(t0))
	w = e.do(t, request{method: "GET", path: "/v1/cards/" + physicalToken})
	if got := cardOf(t, w).Status; got != "permit_expired" {
		t.Errorf("status after the permit's end %q, want permit_expired", got)
	}
}

// TestNoClearNumbers sends the clear numbers through every path that reads them, including the
// refusals and a failing store, and looks for them everywhere they could leak.
func TestNoClearNumbers(t *testing.T) {
	clear := []string{testPAN, testPassport, testSSN, testPermit, testBankAcct, otherPAN}
	// The numbers as written with separators, and as normalized, must not appear either.
	spaced := func(s string) string {
		var b strings.Builder
		for i, r := range s {
			if i > 0 && i%4 == 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	var needles []string
	for _, n := range clear {
		needles = append(needles, n, strings.ToLower(n))
		if mid := n[2 : len(n)-2]; len(mid) >= 8 { // long enough not to turn up by chance
			needles = append(needles, mid)
		}
	}

	e := newEnv(t)
	var responses []string
	do := func(rq request) {
		w := e.do(t, rq)
		responses = append(responses, w.Body.String())
		for k, v := range w.Header() {
			responses = append(responses, k+": "+strings.Join(v, ","))
		}
	}
	key := keyAt(t, t0)
	do(request{method: "POST", path: "/v1/cards", key: key, body: registration(nil)})
	e.clock.Advance(time.Hour)
	do(request{method: "POST", path: "/v1/cards", key: key, body: registration(nil)}) // replay
	do(request{method: "POST", path: "/v1/cards", key: key, body: registration(func(m map[string]string) {
		m["card_number"] = spaced(testPAN) // the same card written differently: the same event
	})})
	do(request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: registration(nil)}) // already registered
	do(request{method: "POST", path: "/v1/cards", key: key, body: registration(func(m map[string]string) {
		m["card_number"] = otherPAN // key reuse
	})})
	for field, bad := range map[string]string{
		"card_number":            testPAN[:len(testPAN)-1] + "0", // fails Luhn
		"passport_number":        testPassport + "/",
		"social_security_number": testSSN + strings.Repeat("9", 30),
		"work_permit_number":     "WP",
		"bank_account_number":    testBankAcct + "#",
		"physical_token":         testPAN,
		"digital_token":          testBankAcct,
		"holder_name":            testPassport + " ",
		"issuer_bank":            testSSN + " x",
		"nationality":            testPAN[:3],
	} {
		do(request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: registration(func(m map[string]string) { m[field] = bad })})
	}
	do(request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: `{"card_number":` + testPAN + `}`})
	do(request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: `{"card_number":"` + testPAN + `","card_number":"` + testPAN + `"}`})
	do(request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: `{"x":"` + testPAN + `"}`})
	do(request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: `{"card_number":"` + testPAN + `"` + strings.Repeat(" ", maxRequestBytes) + `}`})
	do(request{method: "GET", path: "/v1/cards/" + testPAN}) // a number where a token belongs
	do(request{method: "POST", path: "/v1/cards/" + testPAN + "/status", key: keyAt(t, t0), body: `{"status":"blocked","reason":"` + testPAN + `"}`})
	e.store.fail("Ingest", errBroken)
	do(request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: registration(func(m map[string]string) { m["card_number"] = otherPAN })})

	if len(e.store.ingested) < 3 {
		t.Fatalf("only %d messages reached the store: the test sent too little", len(e.store.ingested))
	}
	var stored []string
	for _, m := range e.store.ingested {
		stored = append(stored, string(m.Raw), m.Event.CardToken)
		if r, ok := m.Event.Data.(*events.CardRegistered); ok {
			stored = append(stored, r.PassportToken, r.PassportMasked, r.SocialSecurityMasked, r.WorkPermitMasked, r.BankAccountMasked, r.CardNumberMasked)
		}
	}
	for _, c := range e.store.cards {
		stored = append(stored, c.Token, c.PassportMasked, c.SSNMasked, c.PermitMasked, c.BankAccountMasked, c.CardNumberMasked)
	}
	logs := e.log.String()
	if !strings.Contains(logs, "http request") || !strings.Contains(logs, errBroken.Error()) {
		t.Fatalf("the log is missing the access lines or the internal error: the capture is broken:\n%s", logs)
	}
	for _, n := range needles {
		for _, r := range responses {
			if strings.Contains(r, n) {
				t.Errorf("a response contains %q: %s", n, r)
			}
		}
		if strings.Contains(logs, n) {
			t.Errorf("the log contains %q:\n%s", n, logs)
		}
		for _, s := range stored {
			if strings.Contains(s, n) {
				t.Errorf("the store was given %q: %s", n, s)
			}
		}
	}
}

func TestIdempotentReplay(t *testing.T) {
	e := newEnv(t)
	key := keyAt(t, t0)
	first := e.do(t, request{method: "POST", path: "/v1/cards", key: key, body: registration(nil)})
	if first.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", first.Code, first.Body.String())
	}
	// A retry a day later, with the numbers spelled with spaces and in another field order, is the
	// same request: the same event, answered with the same card.
	e.clock.Advance(24 * time.Hour)
	body := `{"issuer_bank":"ICBC-JX","card_number":"6228 4804 0256 4899","passport_number":"e12345678",` +
		`"social_security_number":"` + testSSN + `","work_permit_number":"` + testPermit + `",` +
		`"bank_account_number":"` + testBankAcct + `","holder_name":"Anna Schmidt","nationality":"DEU",` +
		`"permit_valid_until":"2027-06-30","insurance_city":"jiaxing"}`
	replay := e.do(t, request{method: "POST", path: "/v1/cards", key: key, body: body})
	if replay.Code != http.StatusOK {
		t.Fatalf("replay: %d %s", replay.Code, replay.Body.String())
	}
	if a, b := cardOf(t, first), cardOf(t, replay); a != b {
		t.Errorf("replay answered another card\nfirst  %+v\nreplay %+v", a, b)
	}
	if n := len(e.store.processed); n != 1 {
		t.Errorf("%d events decided, want 1", n)
	}

	// The same key with another body is refused, and changes nothing.
	w := e.do(t, request{method: "POST", path: "/v1/cards", key: key, body: registration(func(m map[string]string) { m["insurance_city"] = "hangzhou" })})
	if w.Code != http.StatusConflict || errorOf(t, w).Message != "idempotency key reused with a different body" {
		t.Fatalf("reuse: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, request{method: "GET", path: "/v1/cards/" + cardToken(t)})
	if got := cardOf(t, w).InsuranceCity; got != "jiaxing" {
		t.Errorf("insurance city %q after a refused reuse", got)
	}

	// A status change replayed after a later change answers the card as it is now.
	block, unblock := keyAt(t, e.clock.Now()), keyAt(t, e.clock.Now().Add(time.Second))
	path := "/v1/cards/" + cardToken(t) + "/status"
	if w := e.do(t, request{method: "POST", path: path, key: block, body: `{"status":"blocked","reason":"lost"}`}); cardOf(t, w).Status != "blocked" {
		t.Fatalf("block: %s", w.Body.String())
	}
	if w := e.do(t, request{method: "POST", path: path, key: unblock, body: `{"status":"active","reason":"found"}`}); cardOf(t, w).Status != "active" {
		t.Fatalf("unblock: %s", w.Body.String())
	}
	w = e.do(t, request{method: "POST", path: path, key: block, body: `{"status":"blocked","reason":"lost"}`})
	if w.Code != http.StatusOK || cardOf(t, w).Status != "active" {
		t.Errorf("replayed block: %d %s, want 200 with the card still active", w.Code, w.Body.String())
	}
}

func TestOffsetsAreDistinctOnAStoppedClock(t *testing.T) {
	e := newEnv(t) // the clock does not move
	seen := map[int64]bool{}
	for range 100 {
		o := e.srv.nextOffset()
		if seen[o] {
			t.Fatalf("offset %d given twice", o)
		}
		seen[o] = true
	}
}
