package settlement

import "fmt"

// Position is a bank's net position in a cycle and what makes it up, in fen. Amounts a bank pays
// are positive in Spent and MedicalFundShare; Net is signed from the bank's point of view
// (positive: it receives).
type Position struct {
	Bank  string
	Items int64
	// Spent is what its cardholders spent, net of refunds, and the parts of it: fares, purchases
	// and the cash parts of medical bills.
	Spent, SpentTransit, SpentPurchases, SpentMedical int64
	// Earned is what its merchants, venues, pharmacies, hospitals and operators earned net of
	// fees; Fees is the fees taken from them (positive).
	Earned, Fees int64
	// MedicalFundShare is what the medical funds banking with it paid hospitals and pharmacies:
	// the pooled fund's parts and the personal accounts' parts.
	MedicalFundShare int64
	// Reoffered is the items offered again (rejected or held before), signed as Net.
	Reoffered int64
	Net       int64
}

// Positions adds a cycle's items up per bank.
type Positions struct {
	byBank map[string]*Position
}

// Add counts item it in its bank's position.
func (p *Positions) Add(it Item) error {
	if p.byBank == nil {
		p.byBank = map[string]*Position{}
	}
	pos, ok := p.byBank[it.Bank]
	if !ok {
		pos = &Position{Bank: it.Bank}
		p.byBank[it.Bank] = pos
	}
	add := func(dst *int64, v int64) error {
		s, ok := addChecked(*dst, v)
		if !ok {
			return fmt.Errorf("bank %s: position overflows", it.Bank)
		}
		*dst = s
		return nil
	}
	pos.Items++
	b := it.Breakdown
	var err error
	switch it.Kind {
	case KindCardholderSpend:
		err = firstErr(add(&pos.Spent, -it.Amount), add(&pos.SpentTransit, -b.Transit), add(&pos.SpentPurchases, -b.Purchases),
			add(&pos.SpentMedical, -b.Medical))
	case KindMerchantEarnings, KindOperatorEarnings:
		err = firstErr(add(&pos.Earned, it.Amount), add(&pos.Fees, -b.Fees))
	case KindMedicalFundShare:
		err = add(&pos.MedicalFundShare, -it.Amount)
	case KindReoffered:
		err = add(&pos.Reoffered, it.Amount)
	default:
		err = fmt.Errorf("item %s: unknown kind %q", it.ID, it.Kind)
	}
	if err != nil {
		return err
	}
	return add(&pos.Net, it.Amount)
}

// Bank returns bank's position; a bank without items has a zero one.
func (p *Positions) Bank(bank string) Position {
	if pos, ok := p.byBank[bank]; ok {
		return *pos
	}
	return Position{Bank: bank}
}

// Banks lists the banks with items, "" (items held for want of a bank) included.
func (p *Positions) Banks() []string {
	out := make([]string, 0, len(p.byBank))
	for b := range p.byBank {
		out = append(out, b)
	}
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
