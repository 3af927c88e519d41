package http

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/tariffs"
	"github.com/joinincard/engine/transit"
)

func init() {
	statuses["POST /v1/tariffs/{kind}"] = []int{200, 201, 400, 401, 403, 413, 500, 503}
	statuses["GET /v1/tariffs/{kind}"] = []int{200, 400, 401, 403, 500, 503}
	rawRequestBodies["POST /v1/tariffs/{kind}"] = []string{"application/json"}
	responseTypes["POST /v1/tariffs/{kind}"] = tariffListView{}
	responseTypes["GET /v1/tariffs/{kind}"] = tariffListView{}
	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeTariffs(t, e.clock.Now)
		e.features["tariffs"] = f
		cfg.Features = append(cfg.Features, NewTariffs(f))
	})
	featureStatusCases = append(featureStatusCases, tariffStatusCases()...)
}

// fakeTariffs keeps uploads in memory, deciding them with the tariffs package as the store does.
type fakeTariffs struct {
	mu       sync.Mutex
	base     *tariffs.Base
	now      func() time.Time
	versions []tariffs.Version
	errs     map[string]error
}

func newFakeTariffs(t testing.TB, now func() time.Time) *fakeTariffs {
	t.Helper()
	f, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	b, err := tariffs.NewBase(f)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeTariffs{base: b, now: now, errs: map[string]error{}}
}

func tariffsFailing(method string, err error) envOption {
	return func(c *Config) {
		for _, f := range c.Features {
			if tf, ok := f.(*Tariffs); ok {
				fake := tf.svc.(*fakeTariffs)
				fake.mu.Lock()
				fake.errs[method] = err
				fake.mu.Unlock()
			}
		}
	}
}

func (f *fakeTariffs) Upload(_ context.Context, up tariffs.Upload) ([]tariffs.Version, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Upload"]; err != nil {
		return nil, false, err
	}
	for _, v := range f.versions {
		if v.Kind == up.Kind && v.From == up.From && string(v.Body) == string(up.Body) {
			return []tariffs.Version{v}, true, nil
		}
	}
	y, m, d := f.now().In(cards.Shanghai).Date()
	vs, _, err := f.base.Accept(f.versions, up, events.Date{Year: y, Month: m, Day: d}, len(f.versions)+1, f.now())
	if err != nil {
		return nil, false, err
	}
	f.versions = append(f.versions, vs...)
	return vs, false, nil
}

func (f *fakeTariffs) Versions(_ context.Context, kind tariffs.Kind, id string) ([]tariffs.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Versions"]; err != nil {
		return nil, err
	}
	var out []tariffs.Version
	for _, v := range append(f.base.Files(kind), f.versions...) {
		if v.Kind == kind && (id == "" || v.ID == id) {
			out = append(out, v)
		}
	}
	return out, nil
}

var _ TariffService = (*fakeTariffs)(nil)

// shippedFile is a file built into the binary, of kind, with texts replaced pairwise.
func shippedFile(t testing.TB, kind tariffs.Kind, name string, pairs ...string) string {
	t.Helper()
	f, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	files := map[tariffs.Kind]map[string][]byte{tariffs.Fares: f.Fares, tariffs.FeePlans: f.FeePlans, tariffs.MedicalPolicies: f.Medical,
		tariffs.MedicalCatalogues: f.Catalogues}[kind]
	s := string(files[name])
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s has no %q", name, pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func tariffUpload(kind, query, body string) request {
	return request{method: "POST", path: "/v1/tariffs/" + kind + query, body: body}
}

func tariffStatusCases() []statusCase {
	// The test clock is t0; a fare table from that day, a plan from the day after.
	day := t0.In(cards.Shanghai).Format(time.DateOnly)
	next := t0.In(cards.Shanghai).Add(24 * time.Hour).Format(time.DateOnly)
	var cases []statusCase
	add := func(c ...statusCase) { cases = append(cases, c...) }
	fares := func(t testing.TB) string {
		return shippedFile(t, tariffs.Fares, "SHMETRO.json", `"base_fare": "3.00"`, `"base_fare": "4.00"`)
	}
	plan := func(t testing.TB) string {
		return shippedFile(t, tariffs.FeePlans, "domestic-standard.json", `"rate": "0.0035"`, `"rate": "0.0050"`)
	}
	up := func(query string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, tariffUpload("fares", query, fares(t)))
		}
	}
	q := "?effective_from=" + day + "&uploaded_by=Wang%20Li"
	add(
		statusCase{name: "upload", route: "POST /v1/tariffs/{kind}", status: 201, run: up(q)},
		statusCase{name: "upload a fee plan", route: "POST /v1/tariffs/{kind}", status: 201, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, tariffUpload("fee-plans", "?effective_from="+next+"&uploaded_by=Wang%20Li",
				shippedFile(t, tariffs.FeePlans, "domestic-standard.json", `"rate": "0.0035"`, `"rate": "0.0030"`)))
		}},
		statusCase{name: "upload a medical catalogue", route: "POST /v1/tariffs/{kind}", status: 201, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, tariffUpload("medical-catalogues", "?effective_from="+next+"&uploaded_by=Wang%20Li",
				shippedFile(t, tariffs.MedicalCatalogues, "shanghai@2025-01-01.json", `"price_ceiling": "600.00"`, `"price_ceiling": "650.00"`)))
		}},
		statusCase{name: "upload of a catalogue naming the field", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID,
			message: `items[3].self_pay_ratio: ratio "0.1.0" is not a plain decimal`,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, tariffUpload("medical-catalogues", "?effective_from="+next+"&uploaded_by=Wang%20Li",
					shippedFile(t, tariffs.MedicalCatalogues, "shanghai@2025-01-01.json", `"self_pay_ratio": "0.10"`, `"self_pay_ratio": "0.1.0"`)))
			}},
		statusCase{name: "list the medical catalogues", route: "GET /v1/tariffs/{kind}", status: 200, run: send(request{method: "GET",
			path: "/v1/tariffs/medical-catalogues?id=shanghai"})},
		statusCase{name: "upload a fee plan re-priced from the past", route: "POST /v1/tariffs/{kind}", status: 201,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				w := e.do(t, tariffUpload("fee-plans", "?effective_from=2026-02-20&reprice=true&uploaded_by=Wang%20Li", plan(t)))
				var l tariffListView
				if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || len(l.Versions) != 1 || !l.Versions[0].Repriced {
					t.Fatalf("a re-priced fee plan: %s %v", w.Body.String(), err)
				}
				return w
			}},
		statusCase{name: "upload a fee plan in the past without reprice", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID,
			message: "effective_from: 2026-02-20 is not after today (2026-03-01): today's and earlier purchases are priced already; ask to re-price (reprice=true)",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, tariffUpload("fee-plans", "?effective_from=2026-02-20&uploaded_by=Wang%20Li", plan(t)))
			}},
		statusCase{name: "upload a fee plan re-priced from too long ago", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID,
			message: "effective_from: 2026-01-28 is more than 31 days before today",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, tariffUpload("fee-plans", "?effective_from=2026-01-28&reprice=true&uploaded_by=Wang%20Li", plan(t)))
			}},
		statusCase{name: "upload a medical policy re-priced", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID,
			message: "a medical policy takes effect from tomorrow at the earliest, with or without reprice",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, tariffUpload("medical-policies", "?effective_from="+day+"&reprice=true&uploaded_by=Wang%20Li",
					shippedFile(t, tariffs.MedicalPolicies, "shanghai-2026.json", `"name": "`, `"name": "Re-split `)))
			}},
		statusCase{name: "upload again", route: "POST /v1/tariffs/{kind}", status: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			up(q)(t, e)
			return up(q)(t, e)
		}},
		statusCase{name: "upload of an unknown kind", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID, message: "kind: must be one of",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, tariffUpload("prices", q, fares(t)))
			}},
		statusCase{name: "upload without a date", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID, message: "effective_from:",
			run: up("?uploaded_by=Wang%20Li")},
		statusCase{name: "upload by nobody", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID, message: "uploaded_by: missing",
			run: up("?effective_from=" + day)},
		statusCase{name: "upload with another parameter", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID,
			message: `unknown query parameter "force"`, run: up(q + "&force=true")},
		statusCase{name: "upload re-priced maybe", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID, message: "reprice: want true or false",
			run: up(q + "&reprice=yes")},
		statusCase{name: "upload in the past", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID,
			message: "effective_from: 2026-02-20 is before today", run: up("?effective_from=2026-02-20&uploaded_by=Wang%20Li")},
		statusCase{name: "upload of a broken table", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID,
			message: "max_fare: 5.00 is below the highest station-to-station fare 7.00",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, tariffUpload("fares", q, shippedFile(t, tariffs.Fares, "SHMETRO.json", `"max_fare": "10.00"`, `"max_fare": "5.00"`)))
			}},
		statusCase{name: "upload as csv", route: "POST /v1/tariffs/{kind}", status: 400, code: EINVALID, message: "content-type",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := tariffUpload("fares", q, fares(t))
				rq.header = map[string]string{"Content-Type": "text/csv"}
				return e.do(t, rq)
			}},
		statusCase{name: "upload without auth", route: "POST /v1/tariffs/{kind}", status: 401, code: EUNAUTHORIZED,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := tariffUpload("fares", q, fares(t))
				rq.auth = "-"
				return e.do(t, rq)
			}},
		statusCase{name: "upload with an operator key", route: "POST /v1/tariffs/{kind}", status: 403, code: EFORBIDDEN,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := tariffUpload("fares", q, fares(t))
				rq.auth = "Bearer " + hzMetroKey
				return e.do(t, rq)
			}},
		statusCase{name: "upload too large", route: "POST /v1/tariffs/{kind}", status: 413, code: ETOOLARGE,
			run: send(tariffUpload("fares", q, `{"name":"`+strings.Repeat("a", tariffs.MaxBodyBytes)+`"}`))},
		statusCase{name: "upload store broken", route: "POST /v1/tariffs/{kind}", status: 500, code: EINTERNAL,
			opts: []envOption{tariffsFailing("Upload", errBroken)}, run: up(q)},
		statusCase{name: "upload store busy", route: "POST /v1/tariffs/{kind}", status: 503, code: EUNAVAILABLE,
			opts: []envOption{tariffsFailing("Upload", busy)}, run: up(q)},
	)
	list := func(kind, query string) request { return request{method: "GET", path: "/v1/tariffs/" + kind + query} }
	add(
		statusCase{name: "list", route: "GET /v1/tariffs/{kind}", status: 200, run: send(list("medical-policies", ""))},
		statusCase{name: "list one", route: "GET /v1/tariffs/{kind}", status: 200, run: send(list("fares", "?id=SHMETRO"))},
		statusCase{name: "list of an unknown kind", route: "GET /v1/tariffs/{kind}", status: 400, code: EINVALID, message: "kind:",
			run: send(list("fee_plans", ""))},
		statusCase{name: "list with another parameter", route: "GET /v1/tariffs/{kind}", status: 400, code: EINVALID, message: "unknown query parameter",
			run: send(list("fares", "?from=2026-01-01"))},
		statusCase{name: "list without auth", route: "GET /v1/tariffs/{kind}", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/tariffs/fares", auth: "-"})},
		statusCase{name: "list with a merchant's key", route: "GET /v1/tariffs/{kind}", status: 403, code: EFORBIDDEN,
			run: send(request{method: "GET", path: "/v1/tariffs/fares", auth: "Bearer " + testAdminToken + "x"})},
		statusCase{name: "list broken", route: "GET /v1/tariffs/{kind}", status: 500, code: EINTERNAL,
			opts: []envOption{tariffsFailing("Versions", errBroken)}, run: send(list("fares", ""))},
		statusCase{name: "list busy", route: "GET /v1/tariffs/{kind}", status: 503, code: EUNAVAILABLE,
			opts: []envOption{tariffsFailing("Versions", busy)}, run: send(list("fares", ""))},
	)
	return cases
}

// The answer to an upload and the list: each version with its first day, checksum, who
// uploaded it and when; a refused upload names the field and the reason, and changes nothing.
func TestTariffUploadAndList(t *testing.T) {
	e := newEnv(t)
	body := shippedFile(t, tariffs.Fares, "SHMETRO.json", `"base_fare": "3.00"`, `"base_fare": "4.00"`)
	w := e.do(t, tariffUpload("fares", "?effective_from=2026-03-01&uploaded_by=Wang%20Li", body))
	if w.Code != http.StatusCreated {
		t.Fatalf("upload: %d %s", w.Code, w.Body.String())
	}
	var up tariffListView
	decodeStrictly(t, w, &up)
	if len(up.Versions) != 1 {
		t.Fatalf("versions %+v", up)
	}
	v := up.Versions[0]
	if v.Kind != "fares" || v.ID != "SHMETRO" || v.Seq != 1 || v.EffectiveFrom != "2026-03-01" || v.Source != "upload" ||
		v.UploadedBy != "Wang Li" || v.UploadedAt == "" || v.Bytes != len(body) || len(v.SHA256) != 64 || v.Repriced {
		t.Fatalf("version %+v", v)
	}
	bad := shippedFile(t, tariffs.Fares, "SHMETRO.json", `"time_zone": "Asia/Shanghai"`, `"time_zone": "Asia/Tokyo"`)
	w = e.do(t, tariffUpload("fares", "?effective_from=2026-03-02&uploaded_by=Wang%20Li", bad))
	if w.Code != http.StatusBadRequest || errorOf(t, w).Message != `time_zone: "Asia/Tokyo", want Asia/Shanghai` {
		t.Fatalf("a bad table: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, request{method: "GET", path: "/v1/tariffs/fares?id=SHMETRO"})
	var l tariffListView
	decodeStrictly(t, w, &l)
	if w.Code != http.StatusOK || len(l.Versions) != 2 || l.Versions[0].Source != "built_in" || l.Versions[0].File != "SHMETRO.json" ||
		l.Versions[0].EffectiveFrom != "" || l.Versions[1].Seq != 1 {
		t.Fatalf("list %d %+v", w.Code, l)
	}
}

// The proof on the real store: a new operator's table uploaded over HTTP prices its taps with no
// restart, the operator registered against it; a table versioned mid-month prices the days on
// each side by its own; a bad upload changes nothing and says why.
func TestTariffsAgainstPostgres(t *testing.T) {
	ctx := context.Background()
	store := pgtest.NewStore(t)
	c := &clock{now: time.Date(2026, time.March, 10, 20, 0, 0, 0, cards.Shanghai)}
	store.Now = c.Now
	files, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := store.LoadTariffs(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	e := &env{log: log, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now, Features: []Feature{NewTransitLive(store, tr.Fares), NewTariffs(tr)},
		Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	e.h = e.srv.Handler()
	city := loadtest.NewCity(9, 1, 1, time.Date(2026, time.March, 1, 8, 0, 0, 0, cards.Shanghai))
	for _, p := range city.Parties() {
		if _, err := store.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []clearing.Message
	for i, ev := range append(city.Registrations(), city.Funding(100_00, 100_00)...) {
		raw := loadtest.Encode(ev)
		dec, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, clearing.Message{Source: "setup", Offset: int64(i), Raw: raw, Event: dec})
	}
	if _, err := store.Ingest(ctx, nil, msgs); err != nil {
		t.Fatal(err)
	}
	card := city.Cards[0]

	// Guangzhou's metro does not exist yet: registering it is refused, saying what to do.
	op := `{"id":"GZMETRO","name":"Guangzhou Metro"}`
	if w := e.do(t, request{method: "POST", path: "/v1/transit/operators", body: op}); w.Code != http.StatusBadRequest ||
		!strings.Contains(errorOf(t, w).Message, "upload one first (POST /v1/tariffs/fares)") {
		t.Fatalf("an operator without a table: %d %s", w.Code, w.Body.String())
	}
	// A bad table: refused naming the field; nothing changes.
	gz := shippedFile(t, tariffs.Fares, "SHMETRO.json", `"operator_id": "SHMETRO"`, `"operator_id": "GZMETRO"`,
		`"name": "Shanghai Metro"`, `"name": "Guangzhou Metro"`, `"city": "shanghai"`, `"city": "广州"`, `"base_fare": "3.00"`, `"base_fare": "2.00"`)
	list := func() string {
		w := e.do(t, request{method: "GET", path: "/v1/tariffs/fares"})
		if w.Code != http.StatusOK {
			t.Fatalf("list: %d %s", w.Code, w.Body.String())
		}
		return w.Body.String()
	}
	before := list()
	bad := strings.Replace(gz, `"scope": "operator"`, `"scope": "province"`, 1)
	w := e.do(t, tariffUpload("fares", "?effective_from=2026-03-10&uploaded_by=Wang%20Li", bad))
	if w.Code != http.StatusBadRequest || errorOf(t, w).Message != `caps.scope: "province", want operator or city` {
		t.Fatalf("a bad table: %d %s", w.Code, w.Body.String())
	}
	if list() != before {
		t.Fatal("a refused upload changed the versions")
	}
	// The table, from today; the operator registered against it; its taps accepted and priced.
	if w := e.do(t, tariffUpload("fares", "?effective_from=2026-03-10&uploaded_by=Wang%20Li", gz)); w.Code != http.StatusCreated {
		t.Fatalf("upload: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, request{method: "POST", path: "/v1/transit/operators", body: op})
	if w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body.String())
	}
	var reg transitOperatorView
	decodeJSON(t, w, &reg)
	if reg.City != "guangzhou" {
		t.Fatalf("registered %+v", reg)
	}
	// Its fares change mid-month: 2.50 a base fare from March 12.
	gz12 := strings.Replace(gz, `"base_fare": "2.00"`, `"base_fare": "2.50"`, 1)
	if w := e.do(t, tariffUpload("fares", "?effective_from=2026-03-12&uploaded_by=Wang%20Li", gz12)); w.Code != http.StatusCreated {
		t.Fatalf("upload from March 12: %d %s", w.Code, w.Body.String())
	}
	tap := func(seq int, at, station, dir string) string {
		tm, _ := time.ParseInLocation("2006-01-02 15:04", at, cards.Shanghai)
		return fmt.Sprintf(`{"device_id":"G-%s","device_seq":%d,"card_token":%q,"tapped_at":%q,"station_id":%q,"direction":%q,"mode":"metro"}`,
			station, seq, card, tm.Format(time.RFC3339), station, dir)
	}
	upload := func(batch string, taps ...string) {
		t.Helper()
		w := e.do(t, batchRequest(reg.APIKey, batch, batchBody(taps...)))
		if w.Code != http.StatusCreated || strings.Contains(answers(batchOf(t, w)), "rejected") {
			t.Fatalf("batch %s: %d %s", batch, w.Code, w.Body.String())
		}
	}
	c.Advance(24 * time.Hour)
	upload("11", tap(1, "2026-03-11 08:00", "0101", "in"), tap(2, "2026-03-11 08:30", "0104", "out"))
	c.Advance(24 * time.Hour)
	upload("12", tap(3, "2026-03-12 08:00", "0101", "in"), tap(4, "2026-03-12 08:30", "0104", "out"))
	for _, at := range []time.Time{time.Date(2026, 3, 12, 12, 0, 0, 0, cards.Shanghai), time.Date(2026, 3, 13, 12, 0, 0, 0, cards.Shanghai)} {
		if _, err := store.CloseTransitDays(ctx, tr.Fares(), at); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(24 * time.Hour)
	w = e.do(t, request{method: "GET", path: "/v1/transit/cards/" + card + "/trips?from=2026-03-11&to=2026-03-12"})
	var trips tripsView
	decodeJSON(t, w, &trips)
	if w.Code != http.StatusOK || len(trips.Days) != 2 || trips.Days[0].Priced != "2.00" || trips.Days[1].Priced != "2.50" ||
		trips.Days[1].Journeys[0].TierDiscount != "0.00" {
		t.Fatalf("trips: %d %s", w.Code, w.Body.String())
	}
	if g, _ := tr.Fares().Group("operator/GZMETRO"); g == nil || g.RulesOn(transit.DayOf(2026, 3, 12)).DailyCap != 1800 {
		t.Fatalf("GZMETRO's group: %+v", g)
	}
}
