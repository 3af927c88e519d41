package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// jsonKind is the JSON type a field of a list's item takes.
type jsonKind uint8

const (
	jsonString  jsonKind = iota // a string
	jsonInteger                 // a non-negative integer, without fraction or exponent
	jsonStrings                 // an array of strings
)

// listItem is one item of a list body, as read: each field present, by name, as its text (a
// string, an integer's digits) or, for jsonStrings, a []string.
type listItem map[string]any

func (it listItem) text(name string) (string, bool) {
	v, ok := it[name].(string)
	return v, ok
}

// readListBody reads at most maxBytes of a JSON body, answering 413 past it.
func readListBody(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, error) {
	return readJSONBody(w, r, maxBytes)
}

// decodeList reads a body {"<list>": [item, ...]} strictly, as decodeBody reads a flat one: valid
// UTF-8, one object and nothing after it, the one field named list, an array of 1 to maxItems
// objects (more is 413), each of the fields named in fields, each once, each of its kind, never
// null. Errors name the field with its item's index (transfers[3].amount), never a value.
func decodeList(body []byte, list string, maxItems int, fields map[string]jsonKind) ([]listItem, error) {
	if items, ok := scanList(body, list, maxItems, fields); ok {
		return items, nil
	}
	return readList(body, list, maxItems, fields)
}

// readList is decodeList with encoding/json's tokens, for any body.
func readList(body []byte, list string, maxItems int, fields map[string]jsonKind) ([]listItem, error) {
	if !utf8.Valid(body) {
		return nil, Errorf(EINVALID, "request body is not valid utf-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	syntax := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Errorf(EINVALID, "request body is not valid json: unexpected end")
		}
		return Errorf(EINVALID, "request body is not valid json at byte %d", dec.InputOffset())
	}
	shape := Errorf(EINVALID, "request body must be a json object {%q: [...]}", list)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, syntax(err)
		}
		return nil, shape
	}
	var (
		items []listItem
		found bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		key, _ := tok.(string)
		switch {
		case key != list:
			return nil, unknownField(key)
		case found:
			return nil, Errorf(EINVALID, "%s: duplicate field", list)
		}
		found = true
		if tok, err := dec.Token(); err != nil {
			return nil, syntax(err)
		} else if tok != json.Delim('[') {
			return nil, Errorf(EINVALID, "%s: must be an array", list)
		}
		for dec.More() {
			if len(items) == maxItems {
				return nil, Errorf(ETOOLARGE, "%s: more than %d in one request", list, maxItems)
			}
			it, err := decodeListItem(dec, fmt.Sprintf("%s[%d]", list, len(items)), fields, syntax)
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		if _, err := dec.Token(); err != nil { // the closing bracket
			return nil, syntax(err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(EINVALID, "request body has data after the json object")
	}
	switch {
	case !found:
		return nil, Errorf(EINVALID, "%s: missing required field", list)
	case len(items) == 0:
		return nil, Errorf(EINVALID, "%s: must not be empty", list)
	}
	if why := unpairedSurrogate(body); why != "" {
		return nil, Errorf(EINVALID, "%s", why)
	}
	return items, nil
}

// decodeListItem reads one object of a list, named where (transfers[3]) in errors.
func decodeListItem(dec *json.Decoder, where string, fields map[string]jsonKind, syntax func(error) error) (listItem, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err)
	}
	if tok != json.Delim('{') {
		return nil, Errorf(EINVALID, "%s: must be a json object", where)
	}
	it := listItem{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		key, _ := tok.(string)
		kind, known := fields[key]
		if !known {
			var unknown *Error
			errors.As(unknownField(key), &unknown)
			return nil, Errorf(EINVALID, "%s: %s", where, unknown.Message)
		}
		name := where + "." + key
		if _, seen := it[key]; seen {
			return nil, Errorf(EINVALID, "%s: duplicate field", name)
		}
		val, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		if val == nil {
			return nil, Errorf(EINVALID, "%s: must not be null (leave an optional field out)", name)
		}
		switch kind {
		case jsonString:
			s, ok := val.(string)
			if !ok {
				return nil, Errorf(EINVALID, "%s: must be a string", name)
			}
			it[key] = s
		case jsonInteger:
			n, ok := val.(json.Number)
			if !ok || !unsignedDigits(string(n)) {
				return nil, Errorf(EINVALID, "%s: must be a json integer, not negative", name)
			}
			it[key] = string(n)
		case jsonStrings:
			if val != json.Delim('[') {
				return nil, Errorf(EINVALID, "%s: must be an array of strings", name)
			}
			list := []string{}
			for dec.More() {
				v, err := dec.Token()
				if err != nil {
					return nil, syntax(err)
				}
				s, ok := v.(string)
				if !ok {
					return nil, Errorf(EINVALID, "%s: must be an array of strings", name)
				}
				list = append(list, s)
			}
			if _, err := dec.Token(); err != nil { // the closing bracket
				return nil, syntax(err)
			}
			it[key] = list
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntax(err)
	}
	return it, nil
}

// unsignedDigits reports whether s is one or more ASCII digits.
func unsignedDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// scanList is decodeList for the bodies clients send, in one pass without encoding/json's
// tokens: ASCII strings without escapes, integers in their plain form, arrays of such strings,
// every field known and present once. It reports false for anything else, valid or not, which
// decodeList then reads the slow way, and answers as it always did: what scanList takes,
// decodeList takes the same.
func scanList(body []byte, list string, maxItems int, fields map[string]jsonKind) ([]listItem, bool) {
	s := listScanner{b: body}
	if !s.lit('{') {
		return nil, false
	}
	if key, ok := s.str(); !ok || key != list || !s.lit(':') || !s.lit('[') {
		return nil, false
	}
	var items []listItem
	for {
		if len(items) == maxItems {
			return nil, false
		}
		it, ok := s.item(fields)
		if !ok {
			return nil, false
		}
		items = append(items, it)
		if s.lit(']') {
			break
		}
		if !s.lit(',') {
			return nil, false
		}
	}
	if !s.lit('}') {
		return nil, false
	}
	s.space()
	return items, s.i == len(s.b)
}

// listScanner reads a list body from b, at i.
type listScanner struct {
	b []byte
	i int
}

// space skips JSON's whitespace.
func (s *listScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// lit reads c after any whitespace.
func (s *listScanner) lit(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (s *listScanner) str() (string, bool) {
	if !s.lit('"') {
		return "", false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := string(s.b[start:s.i])
			s.i++
			return v, true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

// integer reads a non-negative integer's digits, without a leading zero.
func (s *listScanner) integer() (string, bool) {
	s.space()
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return "", false
	}
	return string(s.b[start:s.i]), true
}

// item reads one object of the list.
func (s *listScanner) item(fields map[string]jsonKind) (listItem, bool) {
	if !s.lit('{') {
		return nil, false
	}
	it := make(listItem, len(fields))
	if s.lit('}') {
		return it, true
	}
	for {
		key, ok := s.str()
		if !ok || !s.lit(':') {
			return nil, false
		}
		kind, known := fields[key]
		if _, seen := it[key]; !known || seen {
			return nil, false
		}
		switch kind {
		case jsonString:
			v, ok := s.str()
			if !ok {
				return nil, false
			}
			it[key] = v
		case jsonInteger:
			v, ok := s.integer()
			if !ok {
				return nil, false
			}
			it[key] = v
		case jsonStrings:
			if !s.lit('[') {
				return nil, false
			}
			vs := []string{}
			for !s.lit(']') {
				if len(vs) > 0 && !s.lit(',') {
					return nil, false
				}
				v, ok := s.str()
				if !ok {
					return nil, false
				}
				vs = append(vs, v)
			}
			it[key] = vs
		default:
			return nil, false
		}
		if s.lit('}') {
			return it, true
		}
		if !s.lit(',') {
			return nil, false
		}
	}
}
