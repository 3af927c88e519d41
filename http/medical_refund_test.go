package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/joinincard/engine/medical"
)

func init() {
	r := "POST /v1/medical/settlements/{settlement_id}/refunds"
	statuses[r] = []int{200, 201, 400, 401, 403, 404, 409, 413, 500, 503}
	requestTypes[r] = medicalRefundRequest{}
	responseTypes[r] = medicalRefundReceiptView{}
	featureStatusCases = append(featureStatusCases, refundStatusCases()...)
}

// Refund gives back part of a settlement in the fake as the real store does: apportioned by
// medical.PlanRefund, idempotent by refund id, refused past the bill, on an ended settlement and
// on a stay's bill.
func (f *fakeMedical) Refund(_ context.Context, in medical.Institution, settlementRef, refundRef string, amount int64,
	reason string) (medical.Refund, medical.Settlement, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Refund"]; err != nil {
		return medical.Refund{}, medical.Settlement{}, false, err
	}
	st, ok := f.settlements[[2]string{in.ID, settlementRef}]
	if !ok {
		return medical.Refund{}, medical.Settlement{}, false, medical.Refuse(medical.ReasonUnknownSettlement, "no settlement %q of %s", settlementRef, in.ID)
	}
	s := &st.s
	for _, r := range s.Refunds {
		if r.Ref != refundRef {
			continue
		}
		if r.Amount != amount || r.Reason != reason {
			return medical.Refund{}, medical.Settlement{}, false, medical.Refuse(medical.ReasonRefundIDReused, "refund id %q was used for another refund", refundRef)
		}
		return r, *s, true, nil
	}
	switch {
	case s.End != nil:
		return medical.Refund{}, medical.Settlement{}, false, medical.Refuse(medical.ReasonAlreadyCancelled, "settlement %q was %s", settlementRef, s.End.Kind)
	case s.Stay != nil && s.TrueUp == nil:
		return medical.Refund{}, medical.Settlement{}, false, medical.Refuse(medical.ReasonStayBill, "settlement %q is a bill of a stay", settlementRef)
	}
	left, err := medical.RefundableOf(medical.RefundBase(s), s.Refunds)
	if err != nil {
		return medical.Refund{}, medical.Settlement{}, false, err
	}
	parts, delta, err := medical.PlanRefund(left, amount)
	if err != nil {
		return medical.Refund{}, medical.Settlement{}, false, err
	}
	c := f.cards[s.CardToken]
	acc, err := c.acc.Minus(delta)
	if err != nil {
		return medical.Refund{}, medical.Settlement{}, false, err
	}
	c.acc, c.personal, c.funds = acc, c.personal+parts.Personal, c.funds+parts.Cash
	now := f.clock.Now()
	r := medical.Refund{ID: uuid.New(), SettlementID: s.ID, Ref: refundRef, Reason: reason, Amount: amount, Parts: parts, Delta: delta,
		Day: medical.DayOf(now), At: now, PersonalBalanceAfter: c.personal, FundsAvailableAfter: c.funds}
	s.Refunds = append(s.Refunds, r)
	return r, *s, false, nil
}

// SettleStay settles a stay's bill in the fake as Settle does and, on the final bill, trues the
// stay up with medical.TrueUpStay.
func (f *fakeMedical) SettleStay(ctx context.Context, in medical.Institution, ref, token string, b medical.Bill,
	stay medical.StayBill) (medical.Settlement, bool, error) {
	if err := stay.Validate(b.VisitKind); err != nil {
		return medical.Settlement{}, false, err
	}
	f.mu.Lock()
	for _, st := range f.settlements {
		if st.s.Institution == in.ID && st.s.Stay != nil && st.s.Stay.Ref == stay.Ref && st.s.TrueUp != nil && st.s.Ref != ref {
			f.mu.Unlock()
			return medical.Settlement{}, false, medical.Refuse(medical.ReasonStayClosed, "stay %q was trued up", stay.Ref)
		}
	}
	f.mu.Unlock()
	s, replayed, err := f.Settle(ctx, in, ref, token, b)
	if err != nil || replayed {
		return s, replayed, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.settlements[[2]string{in.ID, ref}]
	st.s.Stay = &stay
	if stay.Kind == medical.StayFinal {
		var (
			items    []medical.Item
			billed   medical.Parts
			released = medical.Accumulators{}.Clone()
			bills    []uuid.UUID
		)
		for _, o := range f.settlements {
			if o.s.Institution == in.ID && o.s.Stay != nil && o.s.Stay.Ref == stay.Ref && o.s.End == nil {
				items = append(items, o.s.Items...)
				billed = billed.Plus(medical.PartsOf(o.s.Split))
				released = released.Plus(o.s.Split.Delta)
				bills = append(bills, o.s.ID)
			}
		}
		c := f.cards[token]
		p, _ := f.policies.For(c.city, st.s.PolicyYear)
		u, err := p.TrueUpStay(items, st.s.Split.Elsewhere, in.Tier, billed, released, c.acc, c.personal)
		if err != nil {
			return medical.Settlement{}, false, err
		}
		if c.acc, err = u.After(c.acc); err != nil {
			return medical.Settlement{}, false, err
		}
		c.personal -= u.Adjustment.Personal
		c.funds -= u.Adjustment.Cash
		u.ID, u.StayRef, u.Bills, u.Day, u.At = uuid.New(), stay.Ref, bills, st.s.Day, st.s.SettledAt
		u.PersonalBalanceAfter, u.FundsAvailableAfter = c.personal, c.funds
		st.s.TrueUp = &u
	}
	return st.s, false, nil
}

func refundStatusCases() []statusCase {
	r := "POST /v1/medical/settlements/{settlement_id}/refunds"
	path := "/v1/medical/settlements/S-1/refunds"
	body := `{"refund_id":"R-1","amount":"100.00","reason":"returned unopened"}`
	hk := medHospitalKey
	do := send(medRequest("POST", path, body, hk))
	cs := []statusCase{
		{name: "refund", status: 201, run: settled("S-1", do)},
		{name: "again", status: 200, run: settled("S-1", func(t *testing.T, e *env) *httptest.ResponseRecorder {
			do(t, e)
			return do(t, e)
		})},
		{name: "no amount", status: 400, code: EINVALID, message: "amount: missing",
			run: send(medRequest("POST", path, `{"refund_id":"R-1","reason":"x"}`, hk))},
		{name: "negative amount", status: 400, code: EINVALID, message: "amount:",
			run: send(medRequest("POST", path, `{"refund_id":"R-1","amount":"-1.00","reason":"x"}`, hk))},
		{name: "zero amount", status: 400, code: EINVALID, message: "amount: must be positive",
			run: send(medRequest("POST", path, `{"refund_id":"R-1","amount":"0.00","reason":"x"}`, hk))},
		{name: "no refund id", status: 400, code: EINVALID, message: "refund_id: missing",
			run: send(medRequest("POST", path, `{"amount":"1.00","reason":"x"}`, hk))},
		{name: "unknown", status: 404, code: ENOTFOUND, message: "unknown_settlement", run: do},
		{name: "past the bill", status: 409, code: ECONFLICT, message: "refund_exceeds_settlement",
			run: settled("S-1", send(medRequest("POST", path, `{"refund_id":"R-1","amount":"1520.01","reason":"x"}`, hk)))},
		{name: "refund id reused", status: 409, code: ECONFLICT, message: "refund_id_reused",
			run: settled("S-1", func(t *testing.T, e *env) *httptest.ResponseRecorder {
				do(t, e)
				return e.do(t, medRequest("POST", path, `{"refund_id":"R-1","amount":"100.01","reason":"returned unopened"}`, hk))
			})},
		{name: "too large", status: 413, code: ETOOLARGE,
			run: send(medRequest("POST", path, `{"reason":"`+strings.Repeat("a", maxMedicalBodyBytes)+`"}`, hk))},
		{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("Refund", errBroken, do)},
		{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("Refund", busy, do)},
		{name: "no key", status: 401, code: EUNAUTHORIZED, run: send(medRequest("POST", path, body, "-"))},
		{name: "wrong key", status: 403, code: EFORBIDDEN, message: "invalid institution api key",
			run: send(medRequest("POST", path, body, "jmi_guessed"))},
		{name: "key lookup broken", status: 500, code: EINTERNAL,
			run: medFailing("InstitutionByKey", errBroken, send(medRequest("POST", path, body, hk)))},
		{name: "key lookup busy", status: 503, code: EUNAVAILABLE,
			run: medFailing("InstitutionByKey", busy, send(medRequest("POST", path, body, hk)))},
	}
	for i := range cs {
		cs[i].route = r
	}
	return cs
}

// A refund through the API: its parts, exact to the fen, and the receipt's refund lines.
func TestMedicalRefundAPI(t *testing.T) {
	e := newEnv(t)
	// A1500 C20 at the tier 3 hospital, 500 in the personal account: deductible 1000, 60% of
	// 500 = 300 to the fund; personal 500, cash 720.
	w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("S-1", medCard, "outpatient", "A:1500.00", "C:20.00"), medHospitalKey))
	if w.Code != http.StatusCreated {
		t.Fatalf("settle: %d %s", w.Code, w.Body.String())
	}
	// 380.00 of 1520.00: fund 300 × 380 / 1520 = 75, personal 125, cash 180.
	w = e.do(t, medRequest("POST", "/v1/medical/settlements/S-1/refunds", `{"refund_id":"R-1","amount":"380.00","reason":"returned"}`, medHospitalKey))
	if w.Code != http.StatusCreated {
		t.Fatalf("refund: %d %s", w.Code, w.Body.String())
	}
	var v medicalRefundReceiptView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	want := medicalPartsView{Fund: "75.00", PersonalAccount: "125.00", Cash: "180.00"}
	if v.Refund.Parts != want || v.Refund.Amount != "380.00" || v.Refund.RefundID != "R-1" {
		t.Errorf("refund %+v", v.Refund)
	}
	if v.Settlement.Status != "partially_refunded" || v.Settlement.Refunded != "380.00" || len(v.Settlement.Refunds) != 1 ||
		v.Settlement.Refunds[0].Parts != want {
		t.Errorf("receipt %+v", v.Settlement)
	}
	if d := v.Refund.Accumulated.Deductible; len(d) != 1 || d[0].Amount != "250.00" {
		t.Errorf("refund accumulated %+v", v.Refund.Accumulated)
	}
	// The fund's day counts the refund, negatively; the detail has its line.
	day := medical.DayOf(e.clock.Now()).String()
	w = e.do(t, request{method: "GET", path: "/v1/medical/reconciliation?fund=jiaxing&day=" + day})
	var rec medicalReconciliationView
	if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil || w.Code != http.StatusOK {
		t.Fatalf("reconciliation: %d %s", w.Code, w.Body.String())
	}
	if rec.Total.Settlements != 1 || rec.Total.Refunds != 1 || rec.Total.Total != "1140.00" || rec.Total.Fund != "225.00" {
		t.Errorf("reconciliation %+v", rec.Total)
	}
	w = e.do(t, request{method: "GET", path: "/v1/medical/reconciliation/detail?fund=jiaxing&day=" + day})
	if !strings.Contains(w.Body.String(), ",refund,") || !strings.Contains(w.Body.String(), "-380.00") {
		t.Errorf("detail without the refund line:\n%s", w.Body.String())
	}
	// The stay fields go together and only with an inpatient basket.
	for _, c := range []struct{ body, msg string }{
		{`{"settlement_id":"IP-1","card_token":"` + medCard + `","visit_kind":"inpatient","items":[{"code":"A","quantity":1,"unit_price":"1.00"}],"stay_id":"ADM-1"}`, "stay_bill: missing"},
		{`{"settlement_id":"IP-1","card_token":"` + medCard + `","visit_kind":"inpatient","items":[{"code":"A","quantity":1,"unit_price":"1.00"}],"stay_id":"ADM-1","stay_bill":"partial"}`, "stay_bill: must be one of"},
		{`{"settlement_id":"IP-1","card_token":"` + medCard + `","visit_kind":"outpatient","items":[{"code":"A","quantity":1,"unit_price":"1.00"}],"stay_id":"ADM-1","stay_bill":"final"}`, "a stay's bills are inpatient"},
	} {
		w := e.do(t, medRequest("POST", "/v1/medical/settlements", c.body, medHospitalKey))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), c.msg) {
			t.Errorf("%s: %d %s", c.msg, w.Code, w.Body.String())
		}
	}
}

// A stay through the API: an interim bill and a final one, whose receipt shows the true-up.
func TestMedicalStayAPI(t *testing.T) {
	e := newEnv(t)
	stayBody := func(ref, bill, amount string) string {
		return fmt.Sprintf(`{"settlement_id":%q,"card_token":%q,"visit_kind":"inpatient","items":[{"code":"A","quantity":1,"unit_price":%q}],"stay_id":"ADM-1","stay_bill":%q}`,
			ref, medCard, amount, bill)
	}
	if w := e.do(t, medRequest("POST", "/v1/medical/settlements", stayBody("IP-1", "interim", "1000.00"), medHospitalKey)); w.Code != http.StatusCreated {
		t.Fatalf("interim: %d %s", w.Code, w.Body.String())
	}
	w := e.do(t, medRequest("POST", "/v1/medical/settlements", stayBody("IP-2", "final", "1000.00"), medHospitalKey))
	if w.Code != http.StatusCreated {
		t.Fatalf("final: %d %s", w.Code, w.Body.String())
	}
	var v medicalReceiptView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	// Each bill of 1000 at tier 3 is all per-visit deductible (800) and 85% of 200 = 170 to the
	// fund; the stay of 2000 is 800 once and 85% of 1200 = 1020: the fund pays 680 more.
	if v.Stay == nil || v.Stay.Bill != "final" || v.TrueUp == nil || v.TrueUp.Adjustment.Fund != "680.00" ||
		v.TrueUp.Whole.Fund != "1020.00" || len(v.TrueUp.Bills) != 2 {
		t.Fatalf("final receipt: stay %+v, true-up %+v", v.Stay, v.TrueUp)
	}
	w = e.do(t, medRequest("POST", "/v1/medical/settlements/IP-1/refunds", `{"refund_id":"R-1","amount":"1.00","reason":"x"}`, medHospitalKey))
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "stay_bill") {
		t.Errorf("refund of a stay bill: %d %s", w.Code, w.Body.String())
	}
	// The stay is refunded through its final bill: 200 of the stay's 2000 gives back a tenth of
	// each whole part.
	w = e.do(t, medRequest("POST", "/v1/medical/settlements/IP-2/refunds", `{"refund_id":"R-1","amount":"200.00","reason":"x"}`, medHospitalKey))
	var rr medicalRefundReceiptView
	if err := json.Unmarshal(w.Body.Bytes(), &rr); err != nil || w.Code != http.StatusCreated {
		t.Fatalf("refund of the stay: %d %s", w.Code, w.Body.String())
	}
	if rr.Refund.Parts != (medicalPartsView{Fund: "102.00", PersonalAccount: "50.00", Cash: "48.00"}) {
		t.Errorf("refund of the stay %+v", rr.Refund.Parts)
	}
}
