package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/tariffs"
)

// lockedBuffer is a writer serve prints to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The proof, on a running serve: a new operator's fare table uploaded over HTTP is validated as
// at start (a bad one changes nothing and says why), the operator registers against it, and its
// taps are priced by the next transit pass, without a restart. The card is insured in "上海",
// which is Shanghai's fund.
func TestServeTakesAFareTableAtRunTime(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const token = "admin-token-for-the-serve-test"
	srv := startServe(t, "--database-url", url, "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--transit-interval", "200ms", "--settle-grace", "0", "--log-level", "warn")
	defer func() {
		if err := srv.stop(); err != nil {
			t.Errorf("serve: %v\n%s", err, srv.errs.String())
		}
	}()
	addr := srv.addr
	call := func(method, path, contentType, body string, key string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		if body != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, v
	}
	jsonCall := func(method, path, body string) (int, map[string]any) {
		return call(method, path, "application/json", body, "")
	}

	for _, p := range []string{`{"kind":"bank","id":"BOC-SH","name":"Bank of China Shanghai"}`,
		`{"kind":"insurance_fund","id":"Shanghai","name":"Shanghai medical insurance fund"}`} {
		if st, v := jsonCall("POST", "/v1/parties", p); st != http.StatusCreated {
			t.Fatalf("party: %d %v", st, v)
		}
	}
	key, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	// The card was issued four days ago, before its taps of two days ago: the key's time dates it.
	issued := uint64(time.Now().AddDate(0, 0, -4).UnixMilli())
	for i := range 6 {
		key[i] = byte(issued >> (40 - 8*i))
	}
	const pan = "6228480402564899" // a test number, Luhn-valid; the database is the test's own
	st, v := call("POST", "/v1/cards", "application/json", `{"card_number":"`+pan+`","passport_number":"E12345678",`+
		`"social_security_number":"330100199001011234","work_permit_number":"WP20250001234","bank_account_number":"6222021234567890123",`+
		`"holder_name":"Anna Schmidt","nationality":"DEU","permit_valid_until":"`+time.Now().AddDate(2, 0, 0).Format(time.DateOnly)+`","insurance_city":"上海","issuer_bank":"BOC-SH"}`, key.String())
	if st != http.StatusCreated || v["insurance_city"] != "shanghai" {
		t.Fatalf("card: %d %v", st, v)
	}
	card := v["token"].(string)

	// Chengdu's metro, from three days ago (its taps are two days old), to be re-priced: none yet.
	files, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	table := strings.NewReplacer(`"operator_id": "SHMETRO"`, `"operator_id": "CDMETRO"`, `"name": "Shanghai Metro"`, `"name": "Chengdu Metro"`,
		`"city": "shanghai"`, `"city": "成都"`, `"base_fare": "3.00"`, `"base_fare": "2.00"`).Replace(string(files.Fares["SHMETRO.json"]))
	today := time.Now().In(cards.Shanghai)
	from := today.AddDate(0, 0, -3).Format(time.DateOnly)
	before := func() string {
		st, v := jsonCall("GET", "/v1/tariffs/fares", "")
		if st != http.StatusOK {
			t.Fatalf("list: %d %v", st, v)
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	listed := before()
	bad := strings.Replace(table, `"travel_day_start_hour": 5`, `"travel_day_start_hour": 25`, 1)
	st, v = jsonCall("POST", "/v1/tariffs/fares?effective_from="+from+"&reprice=true&uploaded_by=Wang%20Li", bad)
	if st != http.StatusBadRequest || !strings.Contains(fmt.Sprint(v["error"]), "travel_day_start_hour: 25, want 0 to 23") {
		t.Fatalf("a bad table: %d %v", st, v)
	}
	if before() != listed {
		t.Fatal("a refused upload changed the versions")
	}
	if st, v := jsonCall("POST", "/v1/transit/operators", `{"id":"CDMETRO","name":"Chengdu Metro"}`); st != http.StatusBadRequest {
		t.Fatalf("an operator before its table: %d %v", st, v)
	}
	st, v = jsonCall("POST", "/v1/tariffs/fares?effective_from="+from+"&reprice=true&uploaded_by=Wang%20Li", table)
	if vs, _ := v["versions"].([]any); st != http.StatusCreated || len(vs) != 1 || vs[0].(map[string]any)["id"] != "CDMETRO" ||
		vs[0].(map[string]any)["uploaded_by"] != "Wang Li" || vs[0].(map[string]any)["repriced"] != true {
		t.Fatalf("upload: %d %v", st, v)
	}
	st, v = jsonCall("POST", "/v1/transit/operators", `{"id":"CDMETRO","name":"Chengdu Metro"}`)
	if st != http.StatusCreated || v["city"] != "chengdu" {
		t.Fatalf("register: %d %v", st, v)
	}
	opKey := v["api_key"].(string)

	day := today.AddDate(0, 0, -2)
	at := func(hm string) string {
		tm, err := time.ParseInLocation("2006-01-02 15:04", day.Format(time.DateOnly)+" "+hm, cards.Shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Format(time.RFC3339)
	}
	batch := fmt.Sprintf(`{"taps":[
		{"device_id":"G-0101","device_seq":1,"card_token":%q,"tapped_at":%q,"station_id":"0101","direction":"in","mode":"metro"},
		{"device_id":"G-0113","device_seq":1,"card_token":%q,"tapped_at":%q,"station_id":"0113","direction":"out","mode":"metro"}]}`,
		card, at("08:00"), card, at("08:40"))
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/transit/batches", strings.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+opKey)
	req.Header.Set("Idempotency-Key", "b-1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"accepted":2`) {
		t.Fatalf("batch: %d %s", resp.StatusCode, b)
	}
	// 0101 to 0113 is 15.8 km: 2.00 and 1.00 for the 10 km past 6; the card has no funds, so it
	// owes the day and is on the deny list until it pays.
	d := day.Format(time.DateOnly)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, v := jsonCall("GET", "/v1/transit/cards/"+card+"/trips?from="+d+"&to="+d, "")
		if st != http.StatusOK {
			t.Fatalf("trips: %d %v", st, v)
		}
		if days, _ := v["days"].([]any); len(days) == 1 {
			dv := days[0].(map[string]any)
			if dv["operator_id"] != "CDMETRO" || dv["priced"] != "3.00" || dv["owed"] != "3.00" {
				t.Fatalf("the day: %v", dv)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the taps were not priced: %v\n%s", v, srv.errs.String())
		}
	}
}

// The directories serve starts with: each kind's files from its flag, checked when loaded; a
// file that does not check stops the engine at start.
func TestTariffDirectories(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Empty: the files built in.
	files, err := (&tariffFlags{}).files(log)
	if err != nil {
		t.Fatal(err)
	}
	if files.FaresFrom != tariffs.SourceBuiltIn || len(files.Fares) != 4 || files.Medical["jiaxing-2026.json"] == nil {
		t.Fatalf("built in: %v %d", files.FaresFrom, len(files.Fares))
	}
	// Directories: their files, and only them. A new operator, plan or city is a new file; a
	// version is a file named with its first day.
	fares, plans, policies := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fares, "BJSUBWAY.json", string(files.Fares["BJSUBWAY.json"]))
	write(fares, "BJSUBWAY@2026-07-01.json", strings.Replace(string(files.Fares["BJSUBWAY.json"]), `"base_fare": "3.00"`, `"base_fare": "4.00"`, 1))
	write(plans, "domestic-standard.json", string(files.FeePlans["domestic-standard.json"]))
	write(policies, "hangzhou-2026.json", strings.Replace(string(files.Medical["shanghai-2026.json"]), `"city": "shanghai"`, `"city": "杭州"`, 1))
	f := &tariffFlags{faresDir: fares, feePlansDir: plans, medicalDir: policies}
	files, err = f.files(log)
	if err != nil {
		t.Fatal(err)
	}
	base, err := tariffs.NewBase(files)
	if err != nil {
		t.Fatal(err)
	}
	set, err := base.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	if ops := set.Fares.Operators(); len(ops) != 1 || len(set.Fares.Versions("BJSUBWAY")) != 2 {
		t.Fatalf("fares from the directory: %d operators", len(ops))
	}
	if ids := set.FeePlans.PlanIDs(); len(ids) != 1 || set.FeePlans.Foreign.SurchargeOver != 20000 {
		t.Fatalf("plans %v, the built-in foreign-card comparison %+v", ids, set.FeePlans.Foreign)
	}
	if _, ok := set.Medical.For("Hangzhou", 2026); !ok || len(set.Medical.All()) != 1 {
		t.Fatalf("policies from the directory: %d", len(set.Medical.All()))
	}
	// A file that does not check stops the engine at start, naming it.
	write(policies, "ningbo-2026.json", `{"city":"ningbo"}`)
	files, err = f.files(log)
	if err == nil {
		_, err = tariffs.NewBase(files)
	}
	if err == nil || !strings.Contains(err.Error(), "ningbo-2026.json") {
		t.Fatalf("a broken policy file: %v", err)
	}
	if _, err := (&tariffFlags{faresDir: t.TempDir()}).files(log); err == nil || !strings.Contains(err.Error(), "no fare tables") {
		t.Fatalf("an empty fares directory: %v", err)
	}
}

// --medical-catalogues: a city's catalogue and its versions from a directory, checked when
// loaded; a refused file names itself and the field.
func TestMedicalCatalogueDirectory(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	builtIn, err := (&tariffFlags{}).files(log)
	if err != nil {
		t.Fatal(err)
	}
	if builtIn.CatFrom != tariffs.SourceBuiltIn || builtIn.Catalogues["shanghai@2025-01-01.json"] == nil {
		t.Fatalf("built-in catalogues: %v %d", builtIn.CatFrom, len(builtIn.Catalogues))
	}
	dir := t.TempDir()
	sh := string(builtIn.Catalogues["shanghai@2025-01-01.json"])
	for name, body := range map[string]string{
		"hangzhou.json":            strings.Replace(sh, `"city": "shanghai"`, `"city": "杭州"`, 1),
		"hangzhou@2026-07-01.json": strings.Replace(strings.Replace(sh, `"city": "shanghai"`, `"city": "Hangzhou"`, 1), `"price_ceiling": "600.00"`, `"price_ceiling": "620.00"`, 1),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files, err := (&tariffFlags{cataloguesDir: dir}).files(log)
	if err != nil {
		t.Fatal(err)
	}
	base, err := tariffs.NewBase(files)
	if err != nil {
		t.Fatal(err)
	}
	set, err := base.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	if files.CatFrom != tariffs.SourceDirectory || len(set.Catalogues.All()) != 2 {
		t.Fatalf("catalogues from the directory: %d", len(set.Catalogues.All()))
	}
	if c, ok := set.Catalogues.On("hangzhou", events.Date{Year: 2026, Month: 7, Day: 1}); !ok || c.From.Month != 7 {
		t.Fatalf("Hangzhou's July version: %+v %v", c, ok)
	}
	if _, ok := set.Catalogues.On("shanghai", events.Date{Year: 2026, Month: 7, Day: 1}); ok {
		t.Fatal("a directory replaces the built-in catalogues")
	}
	if err := os.WriteFile(filepath.Join(dir, "ningbo.json"), []byte(strings.Replace(sh, `"class": "A"}`, `"class": "X"}`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err = (&tariffFlags{cataloguesDir: dir}).files(log)
	if err == nil {
		_, err = tariffs.NewBase(files)
	}
	if err == nil || !strings.Contains(err.Error(), "ningbo.json") || !strings.Contains(err.Error(), "items[0].class") {
		t.Fatalf("a broken catalogue file: %v", err)
	}
}
