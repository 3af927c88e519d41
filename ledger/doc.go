// Package ledger is the double-entry core of the clearing engine: accounts, transfers, two-phase
// holds and the batch engine that applies thousands of transfers in memory against prefetched
// account states.
//
// The package is pure. It does no I/O, reads no clock and logs nothing: the store prefetches what a
// batch needs into a State, Apply executes the batch in memory and returns one Result per transfer
// and the new balances of the accounts it touched, and the store writes those in one transaction.
//
// Money is int64 minor units (fen for CNY). Expected failures (insufficient funds, an unknown
// account, a replay with different fields) are Result values; error is returned only when the
// engine catches itself breaking an invariant, which is a programmer error.
package ledger
