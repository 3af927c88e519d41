package archive

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/joinincard/engine/ledger"
)

// ErrTotals is returned by CheckTotals for an archive whose files do not add up to the control
// totals its manifest states, or whose totals do not balance.
var ErrTotals = errors.New("archive's files do not add up to its control totals")

// recomputed are a currency's totals as the files give them.
type recomputed struct {
	transfers, transferAmount, accounts    int64
	opening, debits, credits, closing, net int64
}

// CheckTotals recomputes, from the data files of the archive in fsys, the control totals its
// manifest m states, and checks them: the number of cycles; per currency, the number and sum of
// the transfers, the number of accounts, their opening and closing balances, and what the month
// posted to them, and (from FormatV2) the net of the settlement items no bank rejected. Each
// account's line must add up (opening plus credits less debits is its closing), the balances sum
// to zero and the debits equal the credits. Every total that disagrees is named with both values,
// joined in one error wrapping ErrTotals. A FormatV1 archive's settlement net is not recomputed:
// its settlement_items.csv does not mark the items a bank rejected. Run Check first: it checks
// the bytes.
func CheckTotals(fsys fs.FS, m Manifest) error {
	files, err := DataFiles(m.Format)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTotals, err)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Name] = true
	}
	got := map[string]*recomputed{}
	total := func(currency string) *recomputed {
		t := got[currency]
		if t == nil {
			t = &recomputed{}
			got[currency] = t
		}
		return t
	}
	var cycles int64
	var errs []error
	for _, f := range files {
		if !listed[f.Name] {
			return fmt.Errorf("%s: not in the manifest: %w", f.Name, ErrTotals)
		}
		err := readRows(fsys, f.Name, f.Header, func(line int, row []string) error {
			switch f.Name {
			case "cycles.csv":
				cycles++
			case "transfers.csv":
				c := ledger.Currency(row[5])
				amount, err := ledger.ParseDecimal(row[4], c)
				if err != nil || amount <= 0 {
					return fmt.Errorf("%s line %d: amount: not a positive amount in its currency: %w", f.Name, line, ErrTotals)
				}
				t := total(string(c))
				t.transfers++
				if t.transferAmount, err = add(t.transferAmount, amount); err != nil {
					return fmt.Errorf("%s line %d: %w", f.Name, line, err)
				}
			case "accounts.csv":
				c := ledger.Currency(row[2])
				var v [4]int64
				for i := range v {
					n, err := ledger.ParseDecimal(row[3+i], c)
					if err != nil {
						return fmt.Errorf("%s line %d: %s: not an amount in its currency: %w", f.Name, line, f.Header[3+i], ErrTotals)
					}
					v[i] = n
				}
				opening, debits, credits, closing := v[0], v[1], v[2], v[3]
				if opening+credits-debits != closing {
					return fmt.Errorf("%s line %d: opening plus credits less debits is not the closing balance: %w", f.Name, line, ErrTotals)
				}
				t := total(string(c))
				t.accounts++
				var err error
				for _, s := range []struct {
					sum *int64
					v   int64
				}{{&t.opening, opening}, {&t.debits, debits}, {&t.credits, credits}, {&t.closing, closing}} {
					if *s.sum, err = add(*s.sum, s.v); err != nil {
						return fmt.Errorf("%s line %d: %w", f.Name, line, err)
					}
				}
			case "settlement_items.csv":
				if m.Format == FormatV1 {
					return nil
				}
				c := ledger.Currency(row[7])
				amount, err := ledger.ParseDecimal(row[6], c)
				if err != nil {
					return fmt.Errorf("%s line %d: amount: not an amount in its currency: %w", f.Name, line, ErrTotals)
				}
				switch row[10] {
				case "false":
					t := total(string(c))
					if t.net, err = add(t.net, amount); err != nil {
						return fmt.Errorf("%s line %d: %w", f.Name, line, err)
					}
				case "true":
				default:
					return fmt.Errorf("%s line %d: rejected: %q is neither true nor false: %w", f.Name, line, row[10], ErrTotals)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if cycles != int64(m.Cycles) {
		errs = append(errs, fmt.Errorf("cycles: the manifest states %d, cycles.csv has %d", m.Cycles, cycles))
	}
	stated := map[string]Totals{}
	for _, t := range m.Totals {
		stated[t.Currency] = t
	}
	currencies := make([]string, 0, len(got)+len(stated))
	for c := range got {
		currencies = append(currencies, c)
	}
	for c := range stated {
		if _, ok := got[c]; !ok {
			currencies = append(currencies, c)
		}
	}
	slices.Sort(currencies)
	for _, currency := range currencies {
		c := ledger.Currency(currency)
		g := got[currency]
		if g == nil {
			g = &recomputed{}
		}
		s, ok := stated[currency]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: the files move money in it, the manifest has no totals for it", currency))
			continue
		}
		money := func(v int64) string { return ledger.FormatDecimal(v, c) }
		for _, cmp := range []struct {
			name, stated, files, file string
		}{
			{"transfers", strconv.FormatInt(s.Transfers, 10), strconv.FormatInt(g.transfers, 10), "transfers.csv"},
			{"transfer_amount", s.TransferAmount, money(g.transferAmount), "transfers.csv"},
			{"accounts", strconv.FormatInt(s.Accounts, 10), strconv.FormatInt(g.accounts, 10), "accounts.csv"},
			{"opening_net", s.Opening, money(g.opening), "accounts.csv"},
			{"debits_posted", s.Debits, money(g.debits), "accounts.csv"},
			{"credits_posted", s.Credits, money(g.credits), "accounts.csv"},
			{"closing_net", s.Closing, money(g.closing), "accounts.csv"},
			{"settlement_items_net", s.SettlementNet, money(g.net), "settlement_items.csv"},
		} {
			if cmp.name == "settlement_items_net" && m.Format == FormatV1 {
				continue
			}
			if cmp.stated != cmp.files {
				errs = append(errs, fmt.Errorf("%s %s: the manifest states %s, %s adds up to %s", currency, cmp.name, cmp.stated, cmp.file, cmp.files))
			}
		}
		if g.opening != 0 || g.closing != 0 || g.debits != g.credits {
			errs = append(errs, fmt.Errorf("%s: the balances do not sum to zero (opening %s, closing %s, debits %s, credits %s)",
				currency, money(g.opening), money(g.closing), money(g.debits), money(g.credits)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrTotals, errors.Join(errs...))
	}
	return nil
}

// readRows reads the CSV file name, whose first row must be header, and hands each row after it
// to row with its line.
func readRows(fsys fs.FS, name string, header []string, row func(line int, fields []string) error) error {
	f, err := fsys.Open(name)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = len(header)
	first, err := r.Read()
	if err != nil || !slices.Equal(first, header) {
		return fmt.Errorf("%s: the header is not %s: %w", name, strings.Join(header, ","), ErrTotals)
	}
	for {
		fields, err := r.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return fmt.Errorf("%s: %w: %w", name, ErrTotals, err)
		}
		if err := row(line, fields); err != nil {
			return err
		}
	}
}

// add is a + b, or an error when the sum leaves int64.
func add(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, fmt.Errorf("a total overflows: %w", ErrTotals)
	}
	return s, nil
}
