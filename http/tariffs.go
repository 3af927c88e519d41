package http

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/tariffs"
)

// TariffService is what the tariff endpoints need of the store.
type TariffService interface {
	// Upload adds a version, or several fare tables together; the same files with the same
	// first day again return the versions they added (replayed). A refusal is a
	// *tariffs.Refusal, naming the field.
	Upload(ctx context.Context, up tariffs.Upload) ([]tariffs.Version, bool, error)
	// Versions lists a kind's versions, of one id when id is not empty.
	Versions(ctx context.Context, kind tariffs.Kind, id string) ([]tariffs.Version, error)
}

var _ TariffService = (*postgres.Tariffs)(nil)

// Tariffs is the API of tariffs as data: the admin uploads versions of fare tables, fee plans
// and medical policies while the engine runs, and lists them.
type Tariffs struct {
	svc TariffService
}

// NewTariffs returns the tariffs API on svc.
func NewTariffs(svc TariffService) *Tariffs { return &Tariffs{svc: svc} }

// Routes registers the tariff endpoints.
func (t *Tariffs) Routes(s *Server) []FeatureRoute {
	h := &tariffHandlers{s: s, svc: t.svc}
	return []FeatureRoute{
		{Method: http.MethodPost, Path: "/v1/tariffs/{kind}", Query: true, Admin: true, Handler: h.upload},
		{Method: http.MethodGet, Path: "/v1/tariffs/{kind}", Query: true, Admin: true, Handler: h.list},
	}
}

type tariffHandlers struct {
	s   *Server
	svc TariffService
}

// maxUploaderBytes bounds who uploaded a version: a person's name, as the finance page records.
const maxUploaderBytes = 128

// tariffVersionView is a version as the API shows it.
type tariffVersionView struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Seq numbers the uploads of a kind from 1; 0 for a file the engine started with.
	Seq int `json:"seq"`
	// EffectiveFrom is the first day the version prices; absent for a file without a date.
	EffectiveFrom string `json:"effective_from,omitempty"`
	Source        string `json:"source"`
	File          string `json:"file,omitempty"`
	SHA256        string `json:"sha256"`
	Bytes         int    `json:"bytes"`
	UploadedBy    string `json:"uploaded_by,omitempty"`
	UploadedAt    string `json:"uploaded_at,omitempty"`
	Repriced      bool   `json:"repriced"`
	// Repricing is how far a fee plan version's re-pricing of the purchases since has gone.
	Repricing *repricingView `json:"repricing,omitempty"`
}

type repricingView struct {
	Purchases  int64  `json:"purchases"`
	Adjusted   int64  `json:"adjusted"`
	Charged    string `json:"charged"`
	FinishedAt string `json:"finished_at,omitempty"`
}

type tariffListView struct {
	Kind     string              `json:"kind"`
	Versions []tariffVersionView `json:"versions"`
}

func viewTariff(v tariffs.Version) tariffVersionView {
	out := tariffVersionView{Kind: v.Kind.Segment(), ID: v.ID, Seq: v.Seq, Source: string(v.Source), File: v.File,
		SHA256: hex.EncodeToString(v.SHA256[:]), Bytes: len(v.Body), UploadedBy: v.UploadedBy, Repriced: v.Repriced}
	if v.From != (events.Date{}) {
		out.EffectiveFrom = v.From.String()
	}
	if !v.UploadedAt.IsZero() {
		out.UploadedAt = v.UploadedAt.UTC().Format(time.RFC3339Nano)
	}
	if r := v.Repricing; r != nil {
		out.Repricing = &repricingView{Purchases: r.Purchases, Adjusted: r.Adjusted, Charged: fenText(r.Charged)}
		if !r.FinishedAt.IsZero() {
			out.Repricing.FinishedAt = r.FinishedAt.UTC().Format(time.RFC3339Nano)
		}
	}
	return out
}

// tariffKind reads the path's kind: fares, fee-plans, medical-policies or medical-catalogues.
func tariffKind(r *http.Request) (tariffs.Kind, error) {
	k, ok := tariffs.KindOf(r.PathValue("kind"))
	if !ok {
		segs := make([]string, 0, len(tariffs.Kinds()))
		for _, k := range tariffs.Kinds() {
			segs = append(segs, k.Segment())
		}
		return "", Errorf(EINVALID, "kind: must be one of %q", segs)
	}
	return k, nil
}

// upload validates a version (or a JSON array of fare tables uploaded together) exactly as the
// engine validates its files at start and adds it: 201 with the versions, 200 for the same files
// with the same first day again, 400 naming the field and the reason for anything refused, which
// changes nothing.
func (h *tariffHandlers) upload(w http.ResponseWriter, r *http.Request) {
	kind, err := tariffKind(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	up := tariffs.Upload{Kind: kind}
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "effective_from", "reprice", "uploaded_by":
			if len(q[k]) != 1 {
				h.s.writeError(w, r, Errorf(EINVALID, "%s: want one query parameter", k))
				return
			}
		default:
			h.s.writeError(w, r, unknownParameter(k, "effective_from, reprice and uploaded_by"))
			return
		}
	}
	from, err := time.Parse(time.DateOnly, q.Get("effective_from"))
	if err != nil || len(q.Get("effective_from")) != len(time.DateOnly) {
		h.s.writeError(w, r, Errorf(EINVALID, `effective_from: want the first day the version prices, yyyy-mm-dd such as "2026-04-01"`))
		return
	}
	up.From = events.Date{Year: from.Year(), Month: from.Month(), Day: from.Day()}
	switch q.Get("reprice") {
	case "", "false":
	case "true":
		up.Reprice = true
	default:
		h.s.writeError(w, r, Errorf(EINVALID, "reprice: want true or false"))
		return
	}
	up.By = q.Get("uploaded_by")
	switch {
	case up.By == "":
		h.s.writeError(w, r, Errorf(EINVALID, "uploaded_by: missing, want the name of who uploads the version"))
		return
	case checkProse(up.By) != "" || len(up.By) > maxUploaderBytes:
		why := checkProse(up.By)
		if why == "" {
			why = "must be at most 128 bytes"
		}
		h.s.writeError(w, r, Errorf(EINVALID, "uploaded_by: %s", why))
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		h.s.writeError(w, r, Errorf(EINVALID, "content-type: want application/json"))
		return
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		h.s.writeError(w, r, Errorf(EINVALID, "content-type: charset must be utf-8"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(tariffs.MaxBody(kind))))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.s.writeError(w, r, Errorf(ETOOLARGE, "request body is larger than %d bytes", tariffs.MaxBody(kind)))
			return
		}
		h.s.writeError(w, r, Errorf(EINVALID, "cannot read request body"))
		return
	}
	if !utf8.Valid(body) {
		h.s.writeError(w, r, Errorf(EINVALID, "request body is not valid utf-8"))
		return
	}
	if why := unpairedSurrogate(body); why != "" {
		h.s.writeError(w, r, Errorf(EINVALID, "%s", why))
		return
	}
	up.Body = body
	vs, replayed, err := h.svc.Upload(r.Context(), up)
	var refused *tariffs.Refusal
	if errors.As(err, &refused) {
		// The parsers name the field and never a personal number; a number in a name is redacted
		// as everywhere the engine answers text.
		h.s.writeError(w, r, Errorf(EINVALID, "%s", cleanText(events.RedactText(refused.Message))))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	h.s.writeJSON(w, r, status, viewTariffs(kind, vs))
}

func viewTariffs(kind tariffs.Kind, vs []tariffs.Version) tariffListView {
	out := tariffListView{Kind: kind.Segment(), Versions: make([]tariffVersionView, len(vs))}
	for i, v := range vs {
		out.Versions[i] = viewTariff(v)
	}
	return out
}

// cleanText replaces what a message must not carry (control characters, bytes that are not
// UTF-8) with "?": a parser's message may quote a piece of the file, a JSON key for instance.
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// list answers the versions of a kind: the files the engine started with, then the uploads in
// order, each with its first day, its checksum, who uploaded it and when.
func (h *tariffHandlers) list(w http.ResponseWriter, r *http.Request) {
	kind, err := tariffKind(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "id" {
			h.s.writeError(w, r, unknownParameter(k, "id"))
			return
		}
	}
	id := q.Get("id")
	if len(q["id"]) > 1 {
		h.s.writeError(w, r, Errorf(EINVALID, "id: want one query parameter"))
		return
	}
	if id != "" {
		if why := checkText(id); why != "" {
			h.s.writeError(w, r, Errorf(EINVALID, "id: %s", why))
			return
		}
	}
	vs, err := h.svc.Versions(r.Context(), kind, id)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, viewTariffs(kind, vs))
}
