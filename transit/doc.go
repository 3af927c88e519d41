// Package transit is transit clearing's domain: operators' fare tables (loaded from data files,
// one per operator), tap intake rules (what a tap must be to be accepted, and why it is not),
// journey pairing, and the pricing of a card's travel day with transfer discounts and daily and
// weekly caps.
//
// The package is pure: no I/O beyond reading the fare files it is handed, no clock (every
// function that needs the time takes it), no logger. Money is int64 fen; decimals appear only in
// the fare files, parsed exactly. The store (package postgres) decides which taps and which days
// to price and posts the charges to the ledger.
//
// Travel days and weeks are reckoned in Asia/Shanghai (cards.Shanghai). A travel day starts at
// the operator's start hour, so a 01:30 tap after a late night still belongs to the day before.
package transit
