package reconcile

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// Date is a civil date: a value date, a booking date.
type Date = events.Date

// BreakKind says what is wrong.
type BreakKind string

const (
	MissingAtBank   BreakKind = "missing_at_bank"   // the engine settled an item the bank's statements do not show
	MissingInLedger BreakKind = "missing_in_ledger" // the bank booked an entry that names nothing the engine settled
	AmountMismatch  BreakKind = "amount_mismatch"   // the bank booked another amount than the engine settled
	Duplicate       BreakKind = "duplicate"         // the bank booked the same item again
	Timing          BreakKind = "timing"            // the bank booked it on another value date
	StatementGap    BreakKind = "statement_gap"     // a statement of the bank's sequence is missing
)

// BreakKinds lists every kind, in the order reports show them.
func BreakKinds() []BreakKind {
	return []BreakKind{MissingAtBank, MissingInLedger, AmountMismatch, Duplicate, Timing, StatementGap}
}

// MatchKind says how entries matched.
type MatchKind string

const (
	OneToOne  MatchKind = "one_to_one"  // one entry for one item
	ManyToOne MatchKind = "many_to_one" // several entries that together are one item
	OneToMany MatchKind = "one_to_many" // one entry for a file's net position: all its items
)

// Status is what became of a group of entries.
type Status string

const (
	Matched   Status = "matched"   // the bank booked what the engine settled
	Suggested Status = "suggested" // an entry that may be an item: a person confirms
	Broken    Status = "break"     // a break, of a kind
)

// Expected is what the engine settled with a bank: an item of a file, or a file's net position.
type Expected struct {
	Item      ledger.ID // zero for a file's net position
	File      string    // the file's message id
	Cycle     Date
	ValueDate Date
	// Amount is signed from the bank's point of view: positive, the bank receives.
	Amount int64
}

// Key names what was expected: an item's id, or a file's message id.
func (e Expected) Key() string {
	if !e.Item.IsZero() {
		return e.Item.String()
	}
	return e.File
}

// Actual is a bank statement's entry.
type Actual struct {
	Statement string
	Line      int64 // the entry's place in its statement, from 1
	EntryRef  string
	// Amount is signed as the bank's account moved: positive, credited (the bank received).
	Amount      int64
	BookingDate Date
	ValueDate   Date
}

// same reports whether a and b are the same booking twice: every field but the place alike.
func (a Actual) same(b Actual) bool {
	return a.EntryRef == b.EntryRef && a.Amount == b.Amount && a.BookingDate == b.BookingDate && a.ValueDate == b.ValueDate
}

// Outcome is a decision on a group of entries.
type Outcome struct {
	Status Status
	Match  MatchKind // for Matched and Suggested
	Break  BreakKind // for Broken
	// Expected is what the entries were matched against; zero for a break of entries alone
	// (MissingInLedger) and for StatementGap.
	Expected *Expected
	Actual   []Actual
	Detail   string
}

// daysBetween is b minus a in days.
func daysBetween(a, b Date) int {
	ta := time.Date(a.Year, a.Month, a.Day, 0, 0, 0, 0, time.UTC)
	tb := time.Date(b.Year, b.Month, b.Day, 0, 0, 0, 0, time.UTC)
	return int(tb.Sub(ta).Hours() / 24)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func money(fen int64) string { return ledger.FormatAmount(fen, "CNY") }

// Decide decides what the bank booked against e: the entries whose end-to-end reference names
// it, matched before or not. Of the entries of an amount within tolerance, the first on time of
// the nearest amount matches (one to one), or, none on time, the first late one of the nearest
// amount is a timing break; any other entry of that amount is a duplicate, of another amount a
// mismatch. With no entry of the amount, entries that sum to it match together
// (many to one); otherwise the whole group is an amount mismatch. A file's net position matches
// one to many. matched says e was matched before, by entries not in the group: then every entry
// is extra.
func Decide(r Rules, e Expected, entries []Actual, matched bool) []Outcome {
	if len(entries) == 0 {
		return nil
	}
	one := OneToOne
	if e.Item.IsZero() {
		one = OneToMany
	}
	ex := &e
	var out []Outcome
	extra := func(a Actual, why string) Outcome {
		kind := AmountMismatch
		if abs(a.Amount-e.Amount) <= r.AmountTolerance {
			kind = Duplicate
		}
		return Outcome{Status: Broken, Break: kind, Expected: ex, Actual: []Actual{a},
			Detail: fmt.Sprintf("%s: %s booked, %s expected", why, money(a.Amount), money(e.Amount))}
	}
	if matched {
		for _, a := range entries {
			out = append(out, extra(a, "booked again after it was matched"))
		}
		return out
	}
	// The entry that matches is the first on time of the nearest amount; failing that, the first
	// late one of the nearest amount (a timing break). Which place the bank booked it in does not
	// decide.
	best, bestLate, bestOff := -1, false, int64(0)
	for i, a := range entries {
		off := abs(a.Amount - e.Amount)
		if off > r.AmountTolerance {
			continue
		}
		late := abs(int64(daysBetween(e.ValueDate, a.ValueDate))) > int64(r.ValueDateDays)
		if best < 0 || !late && bestLate || late == bestLate && off < bestOff {
			best, bestLate, bestOff = i, late, off
		}
	}
	if best >= 0 {
		i, a := best, entries[best]
		if d := daysBetween(e.ValueDate, a.ValueDate); bestLate {
			out = append(out, Outcome{Status: Broken, Break: Timing, Expected: ex, Actual: []Actual{a},
				Detail: fmt.Sprintf("value date %s, expected %s (%+d days)", a.ValueDate, e.ValueDate, d)})
		} else {
			out = append(out, Outcome{Status: Matched, Match: one, Expected: ex, Actual: []Actual{a}})
		}
		for j, b := range entries {
			if j == i {
				continue
			}
			why := "booked again"
			if b.same(a) {
				why = "the same entry twice"
			}
			out = append(out, extra(b, why))
		}
		return out
	}
	var sum int64
	for _, a := range entries {
		sum += a.Amount
	}
	if len(entries) > 1 && abs(sum-e.Amount) <= r.AmountTolerance {
		late := 0
		for _, a := range entries {
			if abs(int64(daysBetween(e.ValueDate, a.ValueDate))) > int64(r.ValueDateDays) {
				late++
			}
		}
		if late > 0 {
			return []Outcome{{Status: Broken, Break: Timing, Expected: ex, Actual: entries,
				Detail: fmt.Sprintf("%d of %d entries booked off the value date %s", late, len(entries), e.ValueDate)}}
		}
		return []Outcome{{Status: Matched, Match: ManyToOne, Expected: ex, Actual: entries}}
	}
	detail := fmt.Sprintf("%s booked, %s expected", money(sum), money(e.Amount))
	if len(entries) > 1 {
		detail = fmt.Sprintf("%s booked in %d entries, %s expected", money(sum), len(entries), money(e.Amount))
	}
	return []Outcome{{Status: Broken, Break: AmountMismatch, Expected: ex, Actual: entries, Detail: detail}}
}

// Suggest finds, for an entry that names nothing of ours, the unmatched expected items it may be:
// an amount within tolerance and a value date within SuggestDays, the nearest date first, then
// the nearest amount, the earliest cycle, an item before a file's net and the lowest key, so that the same candidates in any
// order give the same suggestion. With a candidate the entry is suggested for it (a person
// confirms); with none it is missing in the ledger.
func Suggest(r Rules, a Actual, candidates []Expected) Outcome {
	best, bestDays, bestOff := -1, 0, int64(0)
	for i, c := range candidates {
		off := abs(a.Amount - c.Amount)
		if off > r.AmountTolerance {
			continue
		}
		d := int(abs(int64(daysBetween(c.ValueDate, a.ValueDate))))
		if d > r.SuggestDays {
			continue
		}
		if best < 0 || d < bestDays || d == bestDays && (off < bestOff || off == bestOff && before(c, candidates[best])) {
			best, bestDays, bestOff = i, d, off
		}
	}
	if best < 0 {
		return Outcome{Status: Broken, Break: MissingInLedger, Actual: []Actual{a},
			Detail: fmt.Sprintf("%s booked on %s names nothing the engine settled", money(a.Amount), a.ValueDate)}
	}
	c := candidates[best]
	kind := OneToOne
	if c.Item.IsZero() {
		kind = OneToMany
	}
	return Outcome{Status: Suggested, Match: kind, Expected: &c, Actual: []Actual{a},
		Detail: fmt.Sprintf("no reference; the amount and value date fit %s", c.Key())}
}

// before orders candidates of an entry alike in date and amount: the earlier cycle, then an item
// before a file's net (a file of one item nets to its amount), then the lower key.
func before(c, d Expected) bool {
	if n := daysBetween(d.Cycle, c.Cycle); n != 0 {
		return n < 0
	}
	if c.Item.IsZero() != d.Item.IsZero() {
		return !c.Item.IsZero()
	}
	return c.Key() < d.Key()
}

// IsMissing reports whether expected item e, unmatched, is missing at the bank: the bank's
// statements run to covered, MissingAfterDays or more past its value date.
func IsMissing(r Rules, e Expected, covered Date) bool {
	return daysBetween(e.ValueDate, covered) >= r.MissingAfterDays
}

// Gaps lists the statement sequence numbers missing from a bank's, given in increasing order.
func Gaps(sequences []int64) []int64 {
	var gaps []int64
	next := int64(1)
	for _, s := range sequences {
		for ; next < s; next++ {
			gaps = append(gaps, next)
		}
		if s >= next {
			next = s + 1
		}
	}
	return gaps
}

// BreakID derives a break's id from what it is about, so that deciding the same thing again finds
// the break recorded rather than recording it twice.
func BreakID(bank string, kind BreakKind, key string) ledger.ID {
	h := sha256.Sum256([]byte("joinin reconciliation break\x00" + bank + "\x00" + string(kind) + "\x00" + key))
	var id ledger.ID
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x80
	id[8] = id[8]&0x3f | 0x80
	return id
}

// BreakKey names what a break is about: its expected item or file, and its entries.
func (o Outcome) BreakKey() string {
	k := ""
	if o.Expected != nil {
		k = o.Expected.Key()
	}
	for _, a := range o.Actual {
		k += fmt.Sprintf("\x00%s/%d", a.Statement, a.Line)
	}
	return k
}

// AgeBucket is how old a break is, in the buckets finance staff read: 0-1, 2-7, 8-30 and over 30
// days.
type AgeBucket string

const (
	Age0to1   AgeBucket = "0-1"
	Age2to7   AgeBucket = "2-7"
	Age8to30  AgeBucket = "8-30"
	AgeOver30 AgeBucket = "over 30"
)

// AgeBuckets lists the buckets, youngest first.
func AgeBuckets() []AgeBucket { return []AgeBucket{Age0to1, Age2to7, Age8to30, AgeOver30} }

// Age is how many days a break dated since has been open at today, and its bucket.
func Age(since, today Date) (int, AgeBucket) {
	d := max(daysBetween(since, today), 0)
	switch {
	case d <= 1:
		return d, Age0to1
	case d <= 7:
		return d, Age2to7
	case d <= 30:
		return d, Age8to30
	}
	return d, AgeOver30
}
