package events

import (
	"fmt"
	"unicode/utf8"
)

// A strict JSON parser for one message. encoding/json cannot serve here: it matches field names
// case-insensitively, keeps the last of duplicate fields, and replaces invalid UTF-8 and lone
// surrogates silently, each of which would let two consumers read one message differently. This
// parser accepts exactly RFC 8259 JSON in UTF-8 and keeps the first two levels of objects (the
// envelope and data) as member lists; deeper values are checked and skipped, since no field of the
// schema nests deeper and the decoder refuses them whole.

type jsonKind uint8

const (
	jsonString jsonKind = iota + 1
	jsonNumber
	jsonBool
	jsonNull
	jsonObject
	jsonArray
)

func (k jsonKind) String() string {
	switch k {
	case jsonString:
		return "a string"
	case jsonNumber:
		return "a number"
	case jsonBool:
		return "a boolean"
	case jsonNull:
		return "null"
	case jsonObject:
		return "an object"
	case jsonArray:
		return "an array"
	}
	return "nothing"
}

type jsonValue struct {
	kind jsonKind
	// text is a string's unescaped value, or a number's literal text.
	text string
	// members are an object's fields in message order, for objects at depth keptDepth or less.
	members []jsonMember
}

type jsonMember struct {
	key string
	val jsonValue
}

const (
	// keptDepth: the envelope is depth 1, data depth 2. Deeper objects are only checked.
	keptDepth = 2
	// maxNesting bounds the parser's recursion. The schema nests 2 deep; 16 leaves room for an
	// unknown field's value to be reported as an unknown field rather than as too deep.
	maxNesting = 16
	// maxMembers bounds a kept object's fields. The largest type has 16; duplicate detection is
	// quadratic in this bound, 64*64 comparisons at worst.
	maxMembers = 64
)

// fieldNames holds the schema's field names and fixed values, so that parsing them allocates nothing.
var fieldNames = func() map[string]string {
	m := make(map[string]string)
	add := func(s string) { m[s] = s }
	for _, f := range envelopeFields {
		add(f)
	}
	for t, fields := range dataFields {
		add(string(t))
		for _, f := range fields {
			add(f)
		}
	}
	for _, s := range []string{SchemaV1, "CNY", "HKD", "USD", "EUR", "JPY", "in", "out", "single",
		"metro", "bus", "active", "blocked", "closed"} {
		add(s)
	}
	return m
}()

// objectMembers is the room an object's member list gets from the arena: the largest type's
// field count, so that a valid event's two kept objects (envelope and data) fit in one arena.
const objectMembers = 16

// memberArena holds the member lists of one message's kept objects, which live only while the
// message is decoded (scratch).
type memberArena [keptDepth * objectMembers]jsonMember

type parser struct {
	b   []byte
	pos int
	// arena lends the kept objects their member lists, objectMembers each, until it is used up;
	// an object with more members, or one past the arena, gets a list of its own.
	arena *memberArena
	used  int
}

// members is the member list of a kept object.
func (p *parser) members() []jsonMember {
	if p.arena == nil || p.used+objectMembers > len(p.arena) {
		return make([]jsonMember, 0, objectMembers)
	}
	m := p.arena[p.used : p.used : p.used+objectMembers]
	p.used += objectMembers
	return m
}

// parseJSON parses b as one JSON value with nothing but whitespace after it. The kept objects'
// member lists may live in arena: they are valid until it is reused.
func parseJSON(b []byte, arena *memberArena) (jsonValue, error) {
	p := parser{b: b, arena: arena}
	p.space()
	if p.pos == len(b) {
		return jsonValue{}, &DecodeError{Reason: "empty message"}
	}
	v, err := p.value(0, "")
	if err != nil {
		return jsonValue{}, err
	}
	p.space()
	if p.pos != len(b) {
		return jsonValue{}, &DecodeError{Reason: fmt.Sprintf("trailing data after the event object at byte %d", p.pos)}
	}
	return v, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return &DecodeError{Reason: fmt.Sprintf("invalid JSON at byte %d: ", p.pos) + fmt.Sprintf(format, args...)}
}

// unexpected describes the byte at p.pos, or the end of input.
func (p *parser) unexpected(want string) error {
	if p.pos >= len(p.b) {
		return p.errorf("unexpected end of message, want %s", want)
	}
	c := p.b[p.pos]
	if 0x20 < c && c < 0x7f {
		return p.errorf("unexpected %q, want %s", rune(c), want)
	}
	return p.errorf("unexpected byte 0x%02x, want %s", c, want)
}

func (p *parser) space() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses the value at p.pos; depth is the nesting of the enclosing object or array, path
// the JSON path of the value for error messages ("" for the envelope).
func (p *parser) value(depth int, path string) (jsonValue, error) {
	if p.pos >= len(p.b) {
		return jsonValue{}, p.unexpected("a value")
	}
	switch c := p.b[p.pos]; {
	case c == '{':
		return p.object(depth+1, path)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		return jsonValue{kind: jsonString, text: s}, err
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true", jsonBool)
	case c == 'f':
		return p.literal("false", jsonBool)
	case c == 'n':
		return p.literal("null", jsonNull)
	}
	return jsonValue{}, p.unexpected("a value")
}

func (p *parser) literal(word string, kind jsonKind) (jsonValue, error) {
	if len(p.b)-p.pos < len(word) || string(p.b[p.pos:p.pos+len(word)]) != word {
		return jsonValue{}, p.errorf("invalid literal, want %s", word)
	}
	p.pos += len(word)
	return jsonValue{kind: kind, text: word}, nil
}

func (p *parser) object(depth int, path string) (jsonValue, error) {
	if depth > maxNesting {
		return jsonValue{}, p.errorf("nested deeper than %d levels", maxNesting)
	}
	keep := depth <= keptDepth
	v := jsonValue{kind: jsonObject}
	if keep {
		v.members = p.members()
	}
	p.pos++ // '{'
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		if p.pos >= len(p.b) || p.b[p.pos] != '"' {
			return jsonValue{}, p.unexpected("a field name in double quotes")
		}
		key, err := p.str()
		if err != nil {
			return jsonValue{}, err
		}
		p.space()
		if p.pos >= len(p.b) || p.b[p.pos] != ':' {
			return jsonValue{}, p.unexpected("':' after a field name")
		}
		p.pos++
		p.space()
		childPath := "" // only objects kept as member lists report their fields' paths
		if depth < keptDepth && p.pos < len(p.b) && p.b[p.pos] == '{' {
			childPath = path + fieldName(key) + "."
		}
		val, err := p.value(depth, childPath)
		if err != nil {
			return jsonValue{}, err
		}
		if keep {
			for _, m := range v.members {
				if m.key == key {
					return jsonValue{}, &DecodeError{Field: path + fieldName(key), Reason: "duplicate field"}
				}
			}
			if len(v.members) == maxMembers {
				return jsonValue{}, &DecodeError{Field: trimDot(path), Reason: fmt.Sprintf("more than %d fields", maxMembers)}
			}
			v.members = append(v.members, jsonMember{key: key, val: val})
		}
		p.space()
		if p.pos < len(p.b) && p.b[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.b) && p.b[p.pos] == '}' {
			p.pos++
			return v, nil
		}
		return jsonValue{}, p.unexpected("',' or '}' after a field")
	}
}

func trimDot(path string) string {
	if path == "" {
		return ""
	}
	return path[:len(path)-1]
}

func (p *parser) array(depth int) (jsonValue, error) {
	if depth > maxNesting {
		return jsonValue{}, p.errorf("nested deeper than %d levels", maxNesting)
	}
	p.pos++ // '['
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.pos++
		return jsonValue{kind: jsonArray}, nil
	}
	for {
		p.space()
		if _, err := p.value(depth, ""); err != nil {
			return jsonValue{}, err
		}
		p.space()
		if p.pos < len(p.b) && p.b[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.b) && p.b[p.pos] == ']' {
			p.pos++
			return jsonValue{kind: jsonArray}, nil
		}
		return jsonValue{}, p.unexpected("',' or ']' after an array element")
	}
}

// number checks the RFC 8259 number grammar and returns the literal text:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func (p *parser) number() (jsonValue, error) {
	start := p.pos
	if p.b[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.b) && p.b[p.pos] == '0':
		p.pos++
	case p.pos < len(p.b) && '1' <= p.b[p.pos] && p.b[p.pos] <= '9':
		p.digits()
	default:
		return jsonValue{}, p.unexpected("a digit")
	}
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return jsonValue{}, p.unexpected("a digit after '.'")
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return jsonValue{}, p.unexpected("a digit in the exponent")
		}
	}
	return jsonValue{kind: jsonNumber, text: string(p.b[start:p.pos])}, nil
}

func (p *parser) digits() int {
	start := p.pos
	for p.pos < len(p.b) && '0' <= p.b[p.pos] && p.b[p.pos] <= '9' {
		p.pos++
	}
	return p.pos - start
}

// str parses the string at p.pos (on its opening quote) and returns its unescaped value. It
// refuses raw control characters, invalid UTF-8 and escapes of lone surrogates.
func (p *parser) str() (string, error) {
	p.pos++ // '"'
	start := p.pos
	var buf []byte // the unescaped value so far, once an escape is seen
	lit := start   // start of the run of bytes not yet copied to buf
	for {
		if p.pos >= len(p.b) {
			return "", p.errorf("unterminated string")
		}
		c := p.b[p.pos]
		switch {
		case c == '"':
			var s string
			if buf == nil {
				raw := p.b[start:p.pos]
				if name, ok := fieldNames[string(raw)]; ok { // no allocation for the schema's names
					s = name
				} else {
					s = string(raw)
				}
			} else {
				s = string(append(buf, p.b[lit:p.pos]...))
			}
			p.pos++
			return s, nil
		case c == '\\':
			buf = append(buf, p.b[lit:p.pos]...)
			var err error
			if buf, err = p.escape(buf); err != nil {
				return "", err
			}
			lit = p.pos
		case c < 0x20:
			return "", p.errorf("control character 0x%02x in a string (escape it)", c)
		case c < utf8.RuneSelf:
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.b[p.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", p.errorf("invalid UTF-8 in a string")
			}
			p.pos += size
		}
	}
}

// escape appends the character of the escape sequence at p.pos (on its backslash) to buf.
func (p *parser) escape(buf []byte) ([]byte, error) {
	if p.pos+1 >= len(p.b) {
		p.pos++
		return nil, p.errorf("unterminated string")
	}
	c := p.b[p.pos+1]
	var r rune
	switch c {
	case '"', '\\', '/':
		r = rune(c)
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		u, ok := p.hex4(p.pos + 2)
		if !ok {
			return nil, p.errorf(`invalid \u escape, want 4 hex digits`)
		}
		switch {
		case 0xD800 <= u && u < 0xDC00: // a high surrogate: a low one must follow
			lo, ok := rune(0), false
			if p.pos+7 < len(p.b) && p.b[p.pos+6] == '\\' && p.b[p.pos+7] == 'u' {
				lo, ok = p.hex4(p.pos + 8)
			}
			if !ok || lo < 0xDC00 || lo >= 0xE000 {
				return nil, p.errorf(`\u escape of a lone surrogate`)
			}
			p.pos += 12
			return utf8.AppendRune(buf, 0x10000+(u-0xD800)<<10+(lo-0xDC00)), nil
		case 0xDC00 <= u && u < 0xE000:
			return nil, p.errorf(`\u escape of a lone surrogate`)
		}
		p.pos += 6
		return utf8.AppendRune(buf, u), nil
	default:
		p.pos++
		return nil, p.errorf("invalid escape, want one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u")
	}
	p.pos += 2
	return append(buf, byte(r)), nil
}

func (p *parser) hex4(at int) (rune, bool) {
	if at > len(p.b) {
		return 0, false
	}
	return Hex4(p.b[at:])
}

// Hex4 reads the four hex digits of a JSON \u escape that b starts with (after the \u): false
// when b holds fewer or another byte.
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
