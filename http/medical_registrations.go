package http

import (
	"net/http"
	"strings"

	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/medical"
)

// registrationRequest registers a treatment city for a card in advance (异地就医备案): the
// city by any of its names, the first day it covers, optionally the last, and who registers it.
type registrationRequest struct {
	TreatmentCity string `json:"treatment_city"`
	ValidFrom     string `json:"valid_from"`
	ValidUntil    string `json:"valid_until,omitempty"`
	RegisteredBy  string `json:"registered_by"`
}

type registrationView struct {
	CardToken     string `json:"card_token"`
	TreatmentCity string `json:"treatment_city"`
	ValidFrom     string `json:"valid_from"`
	ValidUntil    string `json:"valid_until,omitempty"`
	RegisteredBy  string `json:"registered_by"`
	RegisteredAt  string `json:"registered_at"`
}

type registrationListView struct {
	CardToken     string             `json:"card_token"`
	Registrations []registrationView `json:"registrations"`
}

func registrationViewOf(r medical.Registration) registrationView {
	v := registrationView{CardToken: r.CardToken, TreatmentCity: r.City, ValidFrom: r.From.String(), RegisteredBy: r.By,
		RegisteredAt: shanghaiTime(r.At)}
	if r.Until != (events.Date{}) {
		v.ValidUntil = r.Until.String()
	}
	return v
}

// register records a card's registration of a treatment city: 201 with it, or 200 when the same
// registration was made before.
func (h *medicalHandlers) register(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var req registrationRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	reg, err := registrationOf(&req)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	reg, created, err := h.store.Register(r.Context(), token, reg)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.s.writeJSON(w, r, status, registrationViewOf(reg))
}

func registrationOf(req *registrationRequest) (medical.Registration, error) {
	for _, f := range []struct{ name, value string }{
		{"treatment_city", req.TreatmentCity}, {"valid_from", req.ValidFrom}, {"registered_by", req.RegisteredBy},
	} {
		if f.value == "" {
			return medical.Registration{}, Errorf(EINVALID, "%s: missing required field", f.name)
		}
	}
	for _, f := range []struct{ name, value string }{{"treatment_city", req.TreatmentCity}, {"registered_by", req.RegisteredBy}} {
		if why := checkProse(f.value); why != "" {
			return medical.Registration{}, Errorf(EINVALID, "%s: %s", f.name, why)
		}
	}
	reg := medical.Registration{City: cities.Canonical(req.TreatmentCity), By: req.RegisteredBy}
	var err error
	if reg.From, err = parseDay(req.ValidFrom); err != nil {
		return reg, Errorf(EINVALID, "valid_from: %v", err)
	}
	if req.ValidUntil != "" {
		if reg.Until, err = parseDay(req.ValidUntil); err != nil {
			return reg, Errorf(EINVALID, "valid_until: %v", err)
		}
	}
	return reg, nil
}

// registrations lists a card's registrations of treatment cities.
func (h *medicalHandlers) registrations(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if err := onlyParameters(r); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	regs, err := h.store.Registrations(r.Context(), token)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	v := registrationListView{CardToken: token, Registrations: make([]registrationView, len(regs))}
	for i, reg := range regs {
		v.Registrations[i] = registrationViewOf(reg)
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// bankRegistrationRequest is a registration asked by the cardholder's bank: who registers it is
// the bank, by its key.
type bankRegistrationRequest struct {
	TreatmentCity string `json:"treatment_city"`
	ValidFrom     string `json:"valid_from"`
	ValidUntil    string `json:"valid_until,omitempty"`
}

// bank lets a request through with a bank's API key (as the settlement API issues them) and
// hands the handler the bank.
func (h *medicalHandlers) bank(next func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return apiKey[string]{
		holder: "bank", realm: bankRealm,
		wellFormed: func(key string) bool { return len(key) == bankKeyLen && strings.HasPrefix(key, bankKeyPrefix) },
		lookup:     h.store.BankByKey,
	}.require(h.s, next)
}

// bankRegister records a registration asked by the card's issuer bank, registered by it: 201,
// or 200 when the same was made before. A card the bank did not issue is unknown to it.
func (h *medicalHandlers) bankRegister(w http.ResponseWriter, r *http.Request, bank string) {
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var req bankRegistrationRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	reg, err := registrationOf(&registrationRequest{TreatmentCity: req.TreatmentCity, ValidFrom: req.ValidFrom,
		ValidUntil: req.ValidUntil, RegisteredBy: "bank " + bank})
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	reg, created, err := h.store.RegisterForBank(r.Context(), bank, token, reg)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.s.writeJSON(w, r, status, registrationViewOf(reg))
}
