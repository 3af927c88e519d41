// Package medical is the domain of medical purchases paid with the card: the split of a basket of
// medical items between a city's pooled insurance fund, the cardholder's personal medical account
// and cash (the card's funds), following the city's policy for the year.
//
// Policies are data: one JSON file per city and year under policies/, embedded into the binary. A
// policy says which catalogue classes the fund covers (class A fully, class B after a self-pay
// share, class C not at all), whether the personal account pays first, the deductibles (起付线)
// per year or per visit, the fund's ratio by institution tier and visit kind, and the yearly fund
// caps (最高支付限额). A new city is a new file.
//
// The package is pure, like ledger: no I/O, no clock, no logger. Money is int64 fen; policy
// figures are decimal strings in yuan, read once when a policy loads; ratios are decimals applied
// with half-even rounding to the fen, written at the one place they are applied (mulRatio). A
// partial refund gives back each part of a bill in proportion, rounded half-even too (shareOf), and
// an inpatient stay billed in parts is trued up at its final bill to one bill of the whole stay.
package medical
