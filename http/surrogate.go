package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/joinincard/engine/events"
)

// A JSON string may spell a character outside the Basic Multilingual Plane as two \u escapes, a
// UTF-16 surrogate pair (\ud83d\ude00). One half alone is not a character: encoding/json reads it
// as U+FFFD without a word, so a name, a reason or a reference would be stored as something the
// client never sent. Every JSON body is refused with one, naming where it is.

// unpairedSurrogate returns why body, JSON text, has a \u escape of a surrogate without its other
// half, naming the field ("items[0].code") and never the value, or "" when it has none. Text that
// is not JSON is left to the reader's own checks: the answer is "" unless the escape is found in a
// string before the text stops being JSON.
//
// Bodies clients send have few escapes or none: the common answer is one scan for a backslash.
func unpairedSurrogate(body []byte) string {
	if !hasUnpairedSurrogate(body) {
		return ""
	}
	where, isKey, found := unpairedSurrogateAt(body)
	switch {
	case !found:
		return ""
	case isKey && where == "":
		return "unknown field: its name has a \\u escape of a lone surrogate"
	case isKey:
		return where + ": unknown field: its name has a \\u escape of a lone surrogate"
	case where == "":
		where = "request body"
	}
	return where + ": has a \\u escape of a lone surrogate (half of a utf-16 pair without the other)"
}

// hasUnpairedSurrogate reports whether raw, JSON text or a piece of it that starts outside a
// string's escapes, has a \u escape of a high surrogate not followed at once by one of a low
// surrogate, or of a low surrogate not preceded by a high one.
func hasUnpairedSurrogate(raw []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			return false
		}
		i += j + 1 // the escaped character
		if i >= len(raw) {
			return false
		}
		if raw[i] != 'u' {
			i++ // \" \\ \/ \b \f \n \r \t
			continue
		}
		r, ok := events.Hex4(raw[i+1:])
		if !ok {
			i++
			continue
		}
		i += 5 // past the four digits
		switch {
		case 0xdc00 <= r && r <= 0xdfff:
			return true
		case 0xd800 <= r && r <= 0xdbff:
			if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
				return true
			}
			lo, ok := events.Hex4(raw[i+2:])
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 6
		}
	}
}

// unpairedSurrogateAt walks body's tokens to the first string with an unpaired surrogate escape
// and returns where it is: the path of the value ("lines[0].stations[2].name", "[1].id" in a top
// level array), or of the object whose member's name has it (isKey).
func unpairedSurrogateAt(body []byte) (where string, isKey, found bool) {
	// Each open object or array, with the member or element being read in it.
	type frame struct {
		object  bool
		key     string // an object's member, once its name is read
		haveKey bool
		index   int // an array's element
	}
	var stack []frame
	path := func(frames []frame) string {
		var b strings.Builder
		for _, f := range frames {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				fmt.Fprintf(&b, "[%d]", f.index)
			}
		}
		return b.String()
	}
	// next moves the innermost container past the value just read.
	next := func() {
		if len(stack) == 0 {
			return
		}
		f := &stack[len(stack)-1]
		if f.object {
			f.haveKey = false
		} else {
			f.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return "", false, false
		}
		end := dec.InputOffset()
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, frame{object: tok == json.Delim('{')})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			next()
			continue
		}
		s, isString := tok.(string)
		bad := isString && hasUnpairedSurrogate(body[start:end])
		if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].haveKey {
			if bad {
				return path(stack[:n-1]), true, true
			}
			stack[n-1].key, stack[n-1].haveKey = s, true
			continue
		}
		if bad {
			return path(stack), false, true
		}
		next()
	}
}
