package http

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/purchases"
)

// amountFields lists every amount a request body carries, by its schema and property, with the
// parser its handler reads it with.
var amountFields = map[string]func(string) (int64, error){
	"AuthorizeRequest.amount":           purchases.ParseAmount,
	"PurchaseAmountRequest.amount":      purchases.ParseAmount,
	"CaptureRequest.amount":             purchases.ParseAmount,
	"CardLimitsRequest.per_transaction": purchases.ParseAmount,
	"CardLimitsRequest.per_day": func(s string) (int64, error) {
		v, err := purchases.ParseAmount(s)
		if err != nil {
			v, err = dailyLimitOver(s, err)
		}
		return v, err
	},
	"MedicalRefundRequest.amount":   medical.ParseAmount,
	"MedicalItemRequest.unit_price": medical.ParseAmount,
	"TransferRequest.amount":        func(s string) (int64, error) { return ledger.ParseAmount(s, "CNY") },
	"OpenAccountRequest.limit":      func(s string) (int64, error) { return ledger.ParseAmount(s, "CNY") },
}

// TestOpenAPIAmountsAgreeWithTheServer: every amount a request carries has one pattern in the
// document, and it says exactly what the server takes: whole yuan, one decimal or two ("100",
// "1.5", "1.50"), no sign, exponent, space, leading zero, bare point or third decimal. Amounts
// past the bounds (int64 fen and the endpoint's own) are refused whatever the pattern says.
func TestOpenAPIAmountsAgreeWithTheServer(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type    string `json:"type"`
					Pattern string `json:"pattern"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	// Every request schema's property that names an amount is listed above.
	amountName := regexp.MustCompile(`^(amount|unit_price|limit|per_transaction|per_day)$`)
	for name, s := range doc.Components.Schemas {
		if !strings.HasSuffix(name, "Request") {
			continue
		}
		for prop := range s.Properties {
			if name+"."+prop == "MedicalItemRequest.amount" {
				continue // not taken: the document says so, and the handler refuses it
			}
			if _, ok := amountFields[name+"."+prop]; amountName.MatchString(prop) && !ok {
				t.Errorf("%s.%s: an amount this test does not know", name, prop)
			}
		}
	}
	taken := []string{"100", "1.5", "1.50", "0.01", "12.34", "10", "9.9"}
	refused := []string{"1.", ".5", "01", "00.10", "01.5", "1.234", "1.500", "+1", "-1", "-1.00", "1e2", "1E2", " 1", "1 ", "1\n",
		"1,00", "1,000.00", "１", "1.2.3", "", "0x10", "1_000", "١٢", "NaN", "Infinity", "1.0e1"}
	over := []string{"9223372036854775808", "92233720368547758.08", "99999999999999999999.99", "100000000000000000000000"}
	for field, parse := range amountFields {
		schema, prop, _ := strings.Cut(field, ".")
		p := doc.Components.Schemas[schema].Properties[prop]
		if p.Type != "string" || p.Pattern == "" {
			t.Errorf("%s: type %q pattern %q, want a string with a pattern", field, p.Type, p.Pattern)
			continue
		}
		re, err := regexp.Compile(p.Pattern)
		if err != nil {
			t.Errorf("%s: pattern: %v", field, err)
			continue
		}
		for _, s := range slices.Concat(taken, refused) {
			_, perr := parse(s)
			if want := slices.Contains(taken, s); re.MatchString(s) != want || (perr == nil) != want {
				t.Errorf("%s %q: pattern matches %v, server takes it %v (%v), want both %v", field, s, re.MatchString(s), perr == nil, perr, want)
			}
		}
		for _, s := range over {
			if _, err := parse(s); err == nil {
				t.Errorf("%s %q: taken past int64 fen", field, s)
			}
		}
	}
}
