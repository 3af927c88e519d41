package http

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/joinincard/engine/medical"
)

// --- refunds ------------------------------------------------------------------------------------

type medicalRefundRequest struct {
	RefundID string `json:"refund_id"`
	Amount   string `json:"amount"`
	Reason   string `json:"reason"`
}

// medicalPartsView is an amount's three parts.
type medicalPartsView struct {
	Fund            string `json:"fund"`
	PersonalAccount string `json:"personal_account"`
	Cash            string `json:"cash"`
}

func partsView(p medical.Parts) medicalPartsView {
	return medicalPartsView{Fund: medical.FormatAmount(p.Fund), PersonalAccount: medical.FormatAmount(p.Personal),
		Cash: medical.FormatAmount(p.Cash)}
}

// medicalRefundView is one refund of a settlement, a line of its receipt.
type medicalRefundView struct {
	ID                          string                  `json:"id"`
	RefundID                    string                  `json:"refund_id"`
	Reason                      string                  `json:"reason"`
	Amount                      string                  `json:"amount"`
	Parts                       medicalPartsView        `json:"parts"`
	Accumulated                 medicalAccumulatorsView `json:"accumulated"`
	BusinessDay                 string                  `json:"business_day"`
	At                          string                  `json:"at"`
	Transfers                   medicalTransfersView    `json:"transfers"`
	PersonalAccountBalanceAfter string                  `json:"personal_account_balance_after"`
	FundsAvailableAfter         string                  `json:"funds_available_after"`
}

func refundView(r medical.Refund) medicalRefundView {
	return medicalRefundView{ID: r.ID.String(), RefundID: r.Ref, Reason: r.Reason, Amount: medical.FormatAmount(r.Amount),
		Parts: partsView(r.Parts), Accumulated: accumulatorsView(r.Delta), BusinessDay: r.Day.String(), At: shanghaiTime(r.At),
		Transfers: medicalTransfersView{Fund: transferID(r.FundTransfer), PersonalAccount: transferID(r.PersonalTransfer),
			Cash: transferID(r.CashTransfer)},
		PersonalAccountBalanceAfter: medical.FormatAmount(r.PersonalBalanceAfter),
		FundsAvailableAfter:         medical.FormatAmount(r.FundsAvailableAfter)}
}

// medicalRefundReceiptView answers a refund: the refund, and the settlement's receipt with every
// refund so far.
type medicalRefundReceiptView struct {
	Refund     medicalRefundView  `json:"refund"`
	Settlement medicalReceiptView `json:"settlement"`
}

// medicalStayView marks a bill of an inpatient stay.
type medicalStayView struct {
	StayID string `json:"stay_id"`
	Bill   string `json:"bill"`
}

// medicalTrueUpView is a stay's true-up, on its final bill's receipt: the whole stay as one bill,
// what its bills paid, and the adjustments between them, of either sign.
type medicalTrueUpView struct {
	ID                          string                  `json:"id"`
	StayID                      string                  `json:"stay_id"`
	Bills                       []string                `json:"bills"`
	Whole                       medicalSplitView        `json:"whole"`
	Billed                      medicalPartsView        `json:"billed"`
	Adjustment                  medicalPartsView        `json:"adjustment"`
	Released                    medicalAccumulatorsView `json:"released"`
	Accumulated                 medicalAccumulatorsView `json:"accumulated"`
	BusinessDay                 string                  `json:"business_day"`
	At                          string                  `json:"at"`
	Transfers                   medicalTransfersView    `json:"transfers"`
	PersonalAccountBalanceAfter string                  `json:"personal_account_balance_after"`
	FundsAvailableAfter         string                  `json:"funds_available_after"`
}

// addAfterViews adds to a receipt what followed its settlement: refunds, the stay, its true-up.
func addAfterViews(v *medicalReceiptView, s medical.Settlement) {
	v.Refunded = medical.FormatAmount(s.Refunded())
	v.Refunds = make([]medicalRefundView, len(s.Refunds))
	for i, r := range s.Refunds {
		v.Refunds[i] = refundView(r)
	}
	if s.Stay != nil {
		v.Stay = &medicalStayView{StayID: s.Stay.Ref, Bill: string(s.Stay.Kind)}
	}
	if u := s.TrueUp; u != nil {
		tv := &medicalTrueUpView{ID: u.ID.String(), StayID: u.StayRef, Bills: make([]string, len(u.Bills)), Whole: splitView(u.Whole),
			Billed: partsView(u.Billed), Adjustment: partsView(u.Adjustment), Released: accumulatorsView(u.Released),
			Accumulated: accumulatorsView(u.Whole.Delta), BusinessDay: u.Day.String(), At: shanghaiTime(u.At),
			Transfers: medicalTransfersView{Fund: transferID(u.FundTransfer), PersonalAccount: transferID(u.PersonalTransfer),
				Cash: transferID(u.CashTransfer)},
			PersonalAccountBalanceAfter: medical.FormatAmount(u.PersonalBalanceAfter),
			FundsAvailableAfter:         medical.FormatAmount(u.FundsAvailableAfter)}
		for i, id := range u.Bills {
			tv.Bills[i] = id.String()
		}
		v.TrueUp = tv
	}
}

// stayOf reads a settlement's stay fields: none, or both.
func stayOf(req *medicalSettleRequest) (*medical.StayBill, error) {
	switch {
	case req.StayID == "" && req.StayBill == "":
		return nil, nil
	case req.StayID == "":
		return nil, Errorf(EINVALID, "stay_id: missing required field with stay_bill")
	case req.StayBill == "":
		return nil, Errorf(EINVALID, "stay_bill: missing required field with stay_id")
	case !slices.Contains(medical.StayBillKinds(), medical.StayBillKind(req.StayBill)):
		return nil, Errorf(EINVALID, "stay_bill: must be one of %q", medical.StayBillKinds())
	}
	if why := checkSegment(req.StayID); why != "" || len(req.StayID) > medical.MaxStayRefBytes {
		if why == "" {
			why = "too long"
		}
		return nil, Errorf(EINVALID, "stay_id: %s", why)
	}
	if req.VisitKind != string(medical.Inpatient) {
		return nil, Errorf(EINVALID, "stay_id: a stay's bills are inpatient")
	}
	return &medical.StayBill{Ref: req.StayID, Kind: medical.StayBillKind(req.StayBill)}, nil
}

// refund gives back part of a settled bill: 201 with the refund and the settlement's receipt, or
// 200 with the same for a replay of the refund id with the same amount and reason.
func (h *medicalHandlers) refund(w http.ResponseWriter, r *http.Request, in medical.Institution) {
	var req medicalRefundRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	for _, f := range []struct{ name, value string }{{"refund_id", req.RefundID}, {"amount", req.Amount}, {"reason", req.Reason}} {
		if f.value == "" {
			h.s.writeError(w, r, Errorf(EINVALID, "%s: missing required field", f.name))
			return
		}
	}
	if why := checkSegment(req.RefundID); why != "" {
		h.s.writeError(w, r, Errorf(EINVALID, "refund_id: %s", why))
		return
	}
	if why := checkProse(req.Reason); why != "" {
		h.s.writeError(w, r, Errorf(EINVALID, "reason: %s", why))
		return
	}
	amount, err := medical.ParseAmount(req.Amount)
	if err != nil {
		h.s.writeError(w, r, Errorf(EINVALID, "amount: %v", err))
		return
	}
	if amount == 0 {
		h.s.writeError(w, r, Errorf(EINVALID, "amount: must be positive"))
		return
	}
	ref, err := pathID(r, "settlement_id")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	rf, s, replayed, err := h.store.Refund(r.Context(), in, ref, req.RefundID, amount, req.Reason)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/medical/settlements/"+url.PathEscape(s.Ref))
	h.s.writeJSON(w, r, status, medicalRefundReceiptView{Refund: refundView(rf), Settlement: receiptView(s)})
}
