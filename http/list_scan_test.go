package http

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// listScanSeeds are bodies scanList takes and bodies it leaves to readList.
var listScanSeeds = []string{
	`{"transfers":[{"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","debit_account_id":"a","credit_account_id":"b","amount":"1.00","currency":"CNY"}]}`,
	` { "transfers" : [ {"id":"x","code":7,"timeout_seconds":0,"flags":["linked", "pending"]} , {} ] } ` + "\n",
	`{"transfers":[{"flags":[]}]}`,
	`{"transfers":[]}`,
	`{"transfers":[{"code":07}]}`,
	`{"transfers":[{"code":1.5}]}`,
	`{"transfers":[{"code":-1}]}`,
	`{"transfers":[{"code":1e3}]}`,
	`{"transfers":[{"id":"a\"b"}]}`,
	`{"transfers":[{"id":"\u00e9"}]}`,
	`{"transfers":[{"id":"é"}]}`,
	`{"transfers":[{"id":null}]}`,
	`{"transfers":[{"id":"a","id":"b"}]}`,
	`{"transfers":[{"nope":"a"}]}`,
	`{"transfers":[{"flags":["a",]}]}`,
	`{"transfers":[{"id":"a"},]}`,
	`{"transfers":[{"id":"a"}],"transfers":[]}`,
	`{"transfers":[{"id":"a"}]} x`,
	`{"transfers":[{"id":"a"}]`,
	`{"other":[]}`,
	`[]`,
	``,
	`{"transfers":[{"id":"a"},{"id":"b"},{"id":"c"}]}`,
}

// scanList takes a body only as readList takes it: the same items, and never a body readList
// refuses.
func FuzzScanListAgreesWithReadList(f *testing.F) {
	for _, s := range listScanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScanList(t, body)
	})
}

func TestScanListAgreesWithReadList(t *testing.T) {
	took := 0
	for _, s := range listScanSeeds {
		if checkScanList(t, []byte(s)) {
			took++
		}
	}
	if took < 4 {
		t.Errorf("scanList took %d of the seeds, want the plain ones", took)
	}
	// A body of more items than the bound is readList's to refuse.
	body := `{"transfers":[` + strings.Repeat(`{"id":"a"},`, 3) + `{"id":"a"}]}`
	if _, ok := scanList([]byte(body), "transfers", 3, transferFields); ok {
		t.Error("scanList took more items than the bound")
	}
}

func checkScanList(t *testing.T, body []byte) bool {
	t.Helper()
	fast, ok := scanList(body, "transfers", 3, transferFields)
	slow, err := readList(body, "transfers", 3, transferFields)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("scanList took %q, which readList refuses: %v", body, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: scanList read %v, readList %v", body, fast, slow)
	}
	return true
}

// The transfers answer is spelled as encoding/json spells it, plain or not.
func TestTransfersViewSpelledAsEncodingJSON(t *testing.T) {
	for _, v := range []transfersView{
		{Results: []transferResultView{{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Result: "created"}, {ID: "b", Result: "exists"}}, Timestamp: "2026-12-06T23:00:00.123456Z"},
		{Results: []transferResultView{}, Timestamp: ""},
		{Results: []transferResultView{{ID: "<a&b>\"\\\n", Result: "é"}}, Timestamp: "t"},
	} {
		got, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(reflectedTransfersView(v))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("spelled %s, want %s", got, want)
		}
	}
}
