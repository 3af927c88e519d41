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

// readListBody reads at most maxBytes of body, answering 413 past it.
func readListBody(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, Errorf(ETOOLARGE, "request body is larger than %d bytes", maxBytes)
		}
		return nil, Errorf(EINVALID, "cannot read request body")
	}
	return body, nil
}

// decodeList reads a body {"<list>": [item, ...]} strictly, as decodeBody reads a flat one: valid
// UTF-8, one object and nothing after it, the one field named list, an array of 1 to maxItems
// objects (more is 413), each of the fields named in fields, each once, each of its kind, never
// null. Errors name the field with its item's index (transfers[3].amount), never a value.
func decodeList(body []byte, list string, maxItems int, fields map[string]jsonKind) ([]listItem, error) {
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
