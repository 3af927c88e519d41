package cards

import (
	"crypto/sha256"

	"github.com/joinincard/engine/ledger"
)

// AccountID derives the ledger account id of a card's or a party's account from what it is and
// whose it is. Deriving rather than drawing ids makes registering the same card twice, or
// replaying its registration after a crash, land on the same accounts.
func AccountID(purpose, owner string) ledger.ID {
	h := sha256.Sum256([]byte("joinin/account/" + purpose + "/" + owner))
	var id ledger.ID
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x80 // version 8: a name-based UUID of our own layout (RFC 9562)
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}
