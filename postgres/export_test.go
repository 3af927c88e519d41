package postgres

import "github.com/joinincard/engine/settlement"

// SetAfterFix makes s call f once a cycle's end is fixed, before its items are written.
func SetAfterFix(s *Settlement, f func(settlement.Date)) { s.afterFix = f }
