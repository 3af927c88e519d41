// Package http is the engine's HTTP edge: health, readiness and metrics for the platform, and the
// admin API of the card registry (parties, card registration, card status).
//
// Errors follow WTF Dial: handlers return an *Error carrying a code (EINVALID, ENOTFOUND, ...),
// and only this package maps codes to HTTP statuses. A database that did not answer is a 503 that
// says to send the request again unchanged. Anything else is an internal error: it is logged in
// full and answered with a 500 "internal error" that says nothing more.
//
// Personal numbers (card, passport, social security, work permit, bank account) reach the engine
// only through POST /v1/cards. The handler turns each into a token and a masked form at once; the
// clear numbers are never logged, stored, put into an event or echoed in a response or an error.
package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
)

// Error codes: what went wrong, in terms a client can act on. statusOf maps them to HTTP statuses.
const (
	EINVALID      = "invalid"            // the request is malformed or breaks a rule: fix it
	EUNAUTHORIZED = "unauthorized"       // no credentials
	EFORBIDDEN    = "forbidden"          // wrong credentials
	ENOTFOUND     = "not_found"          // the resource does not exist
	EMETHOD       = "method_not_allowed" // the path exists, the method does not
	ECONFLICT     = "conflict"           // the request contradicts what the engine already holds
	ETOOLARGE     = "too_large"          // the body is over its bound
	ETOOMANY      = "too_many_requests"  // too many failed attempts from this client: wait, then retry
	EINTERNAL     = "internal"           // a bug or an unexpected failure, logged, never detailed
	EUNAVAILABLE  = "unavailable"        // not now: not configured, not ready, or busy; retry later
)

var statusOf = map[string]int{
	EINVALID:      http.StatusBadRequest,
	EUNAUTHORIZED: http.StatusUnauthorized,
	EFORBIDDEN:    http.StatusForbidden,
	ENOTFOUND:     http.StatusNotFound,
	EMETHOD:       http.StatusMethodNotAllowed,
	ECONFLICT:     http.StatusConflict,
	ETOOLARGE:     http.StatusRequestEntityTooLarge,
	ETOOMANY:      http.StatusTooManyRequests,
	EINTERNAL:     http.StatusInternalServerError,
	EUNAVAILABLE:  http.StatusServiceUnavailable,
}

// errDatabaseUnavailable answers a request the database did not answer: a connection refused or
// cut, a server shutting down. A write may have been committed all the same.
var errDatabaseUnavailable = &Error{Code: EUNAVAILABLE, Message: "the database did not answer, and the request may have been applied: " +
	"send it again unchanged (same idempotency key, same ids) to learn its outcome"}

// Error is an error a client may see: a code, a lowercase message for people and, where a
// client may act on it apart from others of its code, a reason naming the case.
type Error struct {
	Code    string
	Message string
	Reason  string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON of every error response: {"error": {"code": "...", "message": "..."}},
// with "reason" too where the error names its case.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
}

// maxRequestBytes bounds every request body. The largest valid body, a card registration with
// every text field at the event schema's 256-byte bound, is under 4 KiB; written entirely in \u
// escapes it stays under 12 KiB. 16 KiB keeps a broken client from making the server buffer
// megabytes per request.
const maxRequestBytes = 16 << 10

// writeJSON writes v as the response with status.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var (
		b       []byte
		spelled bool
	)
	if a, ok := v.(jsonAppender); ok {
		b, spelled = a.appendJSON(nil)
	}
	if !spelled {
		var err error
		if b, err = json.Marshal(v); err != nil {
			s.writeError(w, r, fmt.Errorf("encode response: %w", err))
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Framed by its length, not chunked, whatever its size: the answer is whole already.
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	// Responses carry personal data (names, masked numbers) and balances: no cache may keep them.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if _, err := w.Write(append(b, '\n')); err != nil {
		s.log.DebugContext(r.Context(), "write response", "route", r.Pattern, "err", err)
	}
}

// jsonAppender is a response that spells itself in JSON, compact, as encoding/json would, without
// its reflection and the compaction of what a MarshalJSON returns: appendJSON appends it to b, or
// answers false, having appended nothing, for encoding/json to spell it.
type jsonAppender interface {
	appendJSON(b []byte) ([]byte, bool)
}

// writeError answers with err: an *Error as it is, anything else as a 500 whose detail goes to
// the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, postgres.ErrClockBehind):
		// Not the request's fault nor a bug: this engine's clock is behind what the ledger holds
		// (a clock stepped back, or not yet synchronised). Nothing was written; the same request
		// succeeds once the clocks agree, and operators must hear of it.
		s.log.WarnContext(r.Context(), "clock behind the ledger", "method", r.Method, "route", r.Pattern, "err", err)
		e = &Error{Code: EUNAVAILABLE, Reason: "clock_behind", Message: "the ledger's history is stamped ahead of this engine's clock: " +
			"nothing was written; send the request again once the clocks agree"}
	case postgres.IsUnavailable(err):
		// The request may be in: its COMMIT may have landed unanswered. The same request again
		// is answered with what was done, or does it.
		s.log.WarnContext(r.Context(), "database unavailable", "method", r.Method, "route", r.Pattern, "err", err)
		e = errDatabaseUnavailable
	default:
		s.log.ErrorContext(r.Context(), "internal error", "method", r.Method, "route", r.Pattern, "err", err)
		e = &Error{Code: EINTERNAL, Message: "internal error"}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		s.log.ErrorContext(r.Context(), "error code without a status", "code", e.Code, "route", r.Pattern)
		e, status = &Error{Code: EINTERNAL, Message: "internal error"}, http.StatusInternalServerError
	}
	if e.Code == EUNAVAILABLE {
		w.Header().Set("Retry-After", "1")
	}
	// A message may quote what the request named (a bank, a city, a party): a client may have put
	// a personal number there, and the answer must not repeat it.
	s.writeJSON(w, r, status, errorBody{Error: errorDetail{Code: e.Code, Message: events.RedactText(e.Message), Reason: e.Reason}})
}

// decodeBody reads one JSON object into dst, a pointer to a struct whose fields are all strings,
// strictly: at most maxRequestBytes of UTF-8; exactly one object and nothing after it but
// whitespace; only the struct's field names, spelled exactly (encoding/json alone would match
// "Card_Number" and keep the last of two "card_number"s), each at most once, each a string.
//
// Error messages name fields, never values: a value may be a personal number.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeBytes(body, dst)
}

// decodeEmptyBody reads the body of a request that has nothing to say: none at all, or an empty
// JSON object, read as strictly as decodeBody reads others.
func decodeEmptyBody(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decodeBytes(body, &struct{}{})
}

// readBody reads at most maxRequestBytes of a JSON body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readJSONBody(w, r, maxRequestBytes)
}

// readJSONBody reads at most limit bytes of a body that is JSON by its Content-Type
// (application/json, in UTF-8 if it names a charset) or that names none, as simple clients send
// it; any other type is refused before the body is read. Past limit it answers 413.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, Errorf(EINVALID, "content-type: want application/json")
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return nil, Errorf(EINVALID, "content-type: charset must be utf-8")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, Errorf(ETOOLARGE, "request body is larger than %d bytes", limit)
		}
		return nil, Errorf(EINVALID, "cannot read request body")
	}
	return body, nil
}

// decodeBytes is decodeBody on a body read.
func decodeBytes(body []byte, dst any) error {
	if !utf8.Valid(body) {
		return Errorf(EINVALID, "request body is not valid utf-8")
	}
	if fields := jsonFields(dst); !flatStrings(body, fields) {
		if err := checkObject(body, fields); err != nil {
			return err
		}
	}
	if why := unpairedSurrogate(body); why != "" {
		return Errorf(EINVALID, "%s", why)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		// checkObject has seen every field: this is a bug, not the client's fault. The decoder's
		// message may quote a value, so it is not passed on.
		return fmt.Errorf("decode checked request body into %T: %w", dst, err)
	}
	return nil
}

// checkObject checks that body is one JSON object of string members named in fields, each once.
func checkObject(body []byte, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	syntax := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Errorf(EINVALID, "request body is not valid json: unexpected end")
		}
		return Errorf(EINVALID, "request body is not valid json at byte %d", dec.InputOffset())
	}
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return Errorf(EINVALID, "request body must be a json object")
	}
	if err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Errorf(EINVALID, "request body must be a json object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		key, _ := tok.(string) // inside an object the decoder yields only string keys
		switch {
		case !fields[key]:
			return unknownField(key)
		case seen[key]:
			return Errorf(EINVALID, "%s: duplicate field", key)
		}
		seen[key] = true
		val, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		switch val.(type) {
		case string:
		case nil:
			return Errorf(EINVALID, "%s: must be a string, not null (leave an optional field out)", key)
		default:
			return Errorf(EINVALID, "%s: must be a string", key)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(EINVALID, "request body has data after the json object")
	}
	return nil
}

// maxFieldNameEcho bounds how much of an unknown field's name an error repeats.
const maxFieldNameEcho = 32

// unknownField describes an unknown key, quoting it only when it looks like a field name: a
// client may have put anything in a key, even a number that must not be echoed.
func unknownField(key string) error {
	if !looksLikeFieldName(key) {
		return Errorf(EINVALID, "unknown field")
	}
	return Errorf(EINVALID, "unknown field %q", key)
}

// looksLikeFieldName reports whether a name a client sent (a JSON key, a CSV header, a query
// parameter) may be repeated in an error: 1 to maxFieldNameEcho ASCII letters and underscores,
// which no personal number is.
func looksLikeFieldName(name string) bool {
	if name == "" || len(name) > maxFieldNameEcho {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_') {
			return false
		}
	}
	return true
}

// fieldsByType holds jsonFields' answer for each type it was asked about: a request's type is
// read by reflection once, not for every request.
var fieldsByType sync.Map // reflect.Type -> map[string]bool, never written after it is stored

// jsonFields returns the JSON names of the fields of the struct dst points to. The map is shared:
// callers only read it.
func jsonFields(dst any) map[string]bool {
	t := reflect.TypeOf(dst).Elem()
	if f, ok := fieldsByType.Load(t); ok {
		return f.(map[string]bool)
	}
	fields := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = true
		}
	}
	f, _ := fieldsByType.LoadOrStore(t, fields)
	return f.(map[string]bool)
}

// flatStrings reports whether body is what checkObject takes, in the form clients send: one JSON
// object whose members are strings, named in fields without escapes, each once, with nothing after
// it but whitespace. It reads body once and allocates nothing, where checkObject's walk of
// json.Decoder's tokens allocates for each of them; a body it does not take (false) may still be
// valid, and checkObject then reads it again and words the refusal.
func flatStrings(body []byte, fields map[string]bool) bool {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return skipSpace(body, i+1) == len(body)
	}
	// A request's structs have a handful of fields: the names seen so far, in a small array.
	var seen [16][]byte
	n := 0
	for {
		if i >= len(body) || body[i] != '"' {
			return false
		}
		end := plainStringEnd(body, i+1, false)
		if end < 0 {
			return false
		}
		name := body[i+1 : end]
		if !fields[string(name)] || n == len(seen) {
			return false
		}
		for _, s := range seen[:n] {
			if bytes.Equal(s, name) {
				return false
			}
		}
		seen[n] = name
		n++
		i = skipSpace(body, end+1)
		if i >= len(body) || body[i] != ':' {
			return false
		}
		i = skipSpace(body, i+1)
		if i >= len(body) || body[i] != '"' {
			return false
		}
		if end = plainStringEnd(body, i+1, true); end < 0 {
			return false
		}
		i = skipSpace(body, end+1)
		if i >= len(body) {
			return false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return skipSpace(body, i+1) == len(body)
		default:
			return false
		}
	}
}

// skipSpace returns the index of the first byte of body at or after i that is not JSON's
// whitespace.
func skipSpace(body []byte, i int) int {
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
		i++
	}
	return i
}

// plainStringEnd returns the index of the quote that closes the JSON string whose contents start
// at i, or -1 when the string is not closed, holds a control character, or holds an escape
// (escapes false) or an escape JSON does not have (escapes true).
func plainStringEnd(body []byte, i int, escapes bool) int {
	for i < len(body) {
		switch c := body[i]; {
		case c == '"':
			return i
		case c < 0x20:
			return -1
		case c == '\\':
			if !escapes || i+1 >= len(body) {
				return -1
			}
			switch body[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := events.Hex4(body[i+2:]); !ok {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default:
			i++
		}
	}
	return -1
}
