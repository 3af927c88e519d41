package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Personal numbers (card, passport, social security, work permit, bank account) never travel in
// clear. A producer sends each as a token, the HMAC-SHA256 of the number under a key that only
// producers and the HTTP edge hold, so the engine can match equal numbers without being able to
// read them, plus a masked form for the people who must recognize one.

const (
	tokenPrefix = "tok_"
	// tokenLen: "tok_" and the 43 characters of a 32-byte HMAC-SHA256 in unpadded base64url.
	tokenLen = len(tokenPrefix) + 43
	// minTokenKeyBytes: an HMAC-SHA256 key shorter than the hash output weakens the token.
	minTokenKeyBytes = 32

	// Card numbers (PANs) are 13 to 19 digits; the mask shows the first 6 (the issuer's BIN) and
	// the last 4, so at least 3 stay hidden.
	minCardDigits = 13
	maxCardDigits = 19
	cardHeadShown = 6
	// Other numbers show their last 4 characters only. Passports have at least 6 characters; bank
	// account numbers (IBAN included) at most 34.
	tailShown       = 4
	minTailMaskable = 6
	maxTailMaskable = 34
)

// Tokenizer turns personal numbers into tokens. It is safe for concurrent use.
type Tokenizer struct {
	key []byte
}

// NewTokenizer returns a Tokenizer keyed with a copy of key, which must be at least 32 bytes.
func NewTokenizer(key []byte) (*Tokenizer, error) {
	if len(key) < minTokenKeyBytes {
		return nil, fmt.Errorf("tokenizer key is %d bytes, want at least %d", len(key), minTokenKeyBytes)
	}
	return &Tokenizer{key: append([]byte(nil), key...)}, nil
}

// Token returns "tok_" and the unpadded base64url HMAC-SHA256 of number, after removing spaces
// and hyphens and upper-casing ASCII letters, so that "e1234 5678" and "E12345678" have one token.
func (t *Tokenizer) Token(number string) string {
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte(normalizeNumber(number)))
	var sum [sha256.Size]byte
	b := make([]byte, 0, tokenLen)
	b = append(b, tokenPrefix...)
	b = base64.RawURLEncoding.AppendEncode(b, mac.Sum(sum[:0]))
	return string(b)
}

// Fingerprint returns the HMAC-SHA256 of b under the tokenizer's key: what the engine keeps of a
// message it had to redact, so that whoever holds the key can tell whether a message they have is
// the one refused, and no one else can test a guess of the numbers it held.
func (t *Tokenizer) Fingerprint(b []byte) []byte {
	mac := hmac.New(sha256.New, t.key)
	mac.Write(b)
	return mac.Sum(nil)
}

// MaskCardNumber returns pan with all but its first 6 and last 4 digits replaced by '*':
// "6228481234561234" is "622848******1234". Spaces and hyphens in pan are ignored.
func MaskCardNumber(pan string) (string, error) {
	n := normalizeNumber(pan)
	if len(n) < minCardDigits || len(n) > maxCardDigits || !allDigits(n) {
		return "", fmt.Errorf("card number must be %d to %d digits", minCardDigits, maxCardDigits)
	}
	return n[:cardHeadShown] + strings.Repeat("*", len(n)-cardHeadShown-tailShown) + n[len(n)-tailShown:], nil
}

// MaskTail returns number with all but its last 4 characters replaced by '*': "E12345678" is
// "*****5678". Spaces and hyphens are ignored and letters upper-cased, as for Token.
func MaskTail(number string) (string, error) {
	n := normalizeNumber(number)
	if len(n) < minTailMaskable || len(n) > maxTailMaskable || !alnum(n) {
		return "", fmt.Errorf("number must be %d to %d letters and digits", minTailMaskable, maxTailMaskable)
	}
	return strings.Repeat("*", len(n)-tailShown) + n[len(n)-tailShown:], nil
}

func normalizeNumber(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '-':
		case 'a' <= c && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// alnum reports whether s is upper-case ASCII letters and digits only.
func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// checkToken returns why s is not a token, or "". It never repeats s: a field meant for a token
// may hold the number itself.
func checkToken(s string) string {
	if len(s) != tokenLen || !strings.HasPrefix(s, tokenPrefix) {
		return "not a token, want tok_ followed by 43 base64url characters"
	}
	for i := len(tokenPrefix); i < len(s); i++ {
		// Checked here, not left to the decoder, which skips '\r' and '\n'.
		if c := s[i]; !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-' || c == '_') {
			return "not a token, want tok_ followed by 43 base64url characters"
		}
	}
	// Strict decoding also refuses a last character with bits set beyond the 32 bytes.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s[len(tokenPrefix):])
	if err != nil || len(raw) != sha256.Size {
		return "not a token, want tok_ followed by 43 base64url characters of an HMAC-SHA256"
	}
	return ""
}

// checkMaskedTail returns why s is not a number masked to its last 4 characters, or "".
func checkMaskedTail(s string) string {
	if len(s) < minTailMaskable || len(s) > maxTailMaskable {
		return fmt.Sprintf("a masked number is %d to %d characters", minTailMaskable, maxTailMaskable)
	}
	head, tail := s[:len(s)-tailShown], s[len(s)-tailShown:]
	for i := 0; i < len(head); i++ {
		if head[i] != '*' {
			if c := head[i]; '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' {
				return "reveals more than the last 4 characters"
			}
			return "not a masked number, want '*'s then the last 4 letters or digits"
		}
	}
	if !alnum(tail) {
		return "not a masked number, want '*'s then the last 4 upper-case letters or digits"
	}
	return ""
}

// checkMaskedCard returns why s is not a card number masked to its first 6 and last 4 digits, or "".
func checkMaskedCard(s string) string {
	if len(s) < minCardDigits || len(s) > maxCardDigits {
		return fmt.Sprintf("a masked card number is %d to %d characters", minCardDigits, maxCardDigits)
	}
	head, mid, tail := s[:cardHeadShown], s[cardHeadShown:len(s)-tailShown], s[len(s)-tailShown:]
	for i := 0; i < len(mid); i++ {
		if mid[i] != '*' {
			if '0' <= mid[i] && mid[i] <= '9' {
				return "reveals more than the first 6 and last 4 digits"
			}
			return "not a masked card number, want 6 digits, '*'s, then 4 digits"
		}
	}
	if !allDigits(head) || !allDigits(tail) {
		return "not a masked card number, want 6 digits, '*'s, then 4 digits"
	}
	return ""
}

// CheckCardToken returns why s cannot be a card token, or nil. It is the one check of a card
// token wherever one arrives: an event's card_token and its Kafka key, a path or a body of the
// HTTP API, a transit operator's upload. A card token is 1 to 64 printable ASCII characters
// without spaces, so it never holds a NUL byte or invalid UTF-8, which PostgreSQL refuses, nor
// anything a log or a URL would have to escape; and it is never a card number in clear. The error
// never repeats s: a field meant for a token may hold the number itself.
func CheckCardToken(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > maxCardTokenBytes:
		return fmt.Errorf("is %d bytes, more than %d", len(s), maxCardTokenBytes)
	}
	if why := checkID(s, maxCardTokenBytes); why != "" {
		return errors.New(why)
	}
	if looksLikeCardNumber(s) {
		return errors.New("looks like a card number in clear, send the card's token")
	}
	return nil
}

// looksLikeCardNumber reports whether s could be a card number in clear: 13 to 19 digits, spaces
// and hyphens aside, that pass the Luhn check. The Kafka key is logged and stored everywhere, so
// it must never be one.
func looksLikeCardNumber(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			digits++
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	if digits < minCardDigits || digits > maxCardDigits {
		return false
	}
	return luhn(s)
}

// luhn reports whether the digits of s, anything else skipped, pass the Luhn check.
func luhn(s string) bool {
	sum, n := 0, 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n > 0 && sum%10 == 0
}

// Card number groups as printed: a 16-digit card in four groups of 4, a 15-digit one as 4-6-5,
// a 19-digit one ending in a group of 3.
const (
	minPrintedGroup = 3
	maxPrintedGroup = 6
)

// ContainsCardNumber reports whether s holds what may be a card number in clear: 13 to 19 digits
// that pass the Luhn check, written as one run of digits or as consecutive groups of 3 to 6
// digits each separated by a single space or hyphen, as cards print them. A longer run of digits
// is not a card number as a whole. Free text bound for files and logs (a party, a name, a
// reference) is checked with it and refused, never masked: the writer had the wrong field.
func ContainsCardNumber(s string) bool {
	// groups holds the consecutive printed-size groups of the current chain, as byte ranges.
	var groups [][2]int
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			groups = groups[:0]
			i++
			continue
		}
		j := i
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		if looksLikeCardNumber(s[i:j]) {
			return true
		}
		if n := j - i; n < minPrintedGroup || n > maxPrintedGroup {
			groups = groups[:0]
		} else {
			groups = append(groups, [2]int{i, j})
			if printedCardNumber(s, groups) {
				return true
			}
		}
		// A single separator continues the chain; anything else ends it.
		if j+1 < len(s) && (s[j] == ' ' || s[j] == '-') && '0' <= s[j+1] && s[j+1] <= '9' {
			i = j + 1
		} else {
			groups = groups[:0]
			i = j
		}
	}
	return false
}

// printedCardNumber reports whether the groups of a chain ending with its last group form a card
// number: it joins groups backwards from the last while the digits stay within 19.
func printedCardNumber(s string, groups [][2]int) bool {
	var buf [maxCardDigits]byte
	n := 0
	for k := len(groups) - 1; k >= 0; k-- {
		g := s[groups[k][0]:groups[k][1]]
		if n+len(g) > maxCardDigits {
			return false
		}
		copy(buf[len(g):n+len(g)], buf[:n])
		copy(buf[:len(g)], g)
		n += len(g)
		if k < len(groups)-1 && n >= minCardDigits && looksLikeCardNumber(string(buf[:n])) {
			return true
		}
	}
	return false
}
