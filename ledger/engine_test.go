package ledger_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/joinincard/engine/ledger"
)

// The table tests are scripts in the TigerBeetle style: one line per account, transfer or
// expectation, the expected Result at the end of each transfer line.
//
//	account  A1 CNY [debits<=credits|credits<=debits] [limit=N] [dp=N] [dpo=N] [cp=N] [cpo=N]
//	transfer T1 DR CR AMOUNT [linked|pending|post|void|expire|reversal|flags=0xN]...
//	         [ref=ID] [timeout=S] [user=ID] [code=N] [currency=C] RESULT
//	commit   [NOW]              apply the transfers since the last commit as one batch
//	balance  A1 DP DPO CP CPO   debits pending, debits posted, credits pending, credits posted
//	available A1 N
//	touched  A1 A2 | -          the accounts of the last commit's Outcome.Touched, in any order
//	created  T1 T2 | -          the ids of the last commit's Outcome.Created, in order
//	resolutions T1:posted:T2 | -   the last commit's Outcome.Resolutions (target:kind:by), in order
//	stored   T2 DR CR AMOUNT    the transfer the State holds under T2, with inherited fields filled
//
// An id is up to 16 bytes of text, `_` is the zero id. A number is a sum of terms: N, Ns (seconds
// in microseconds) and max (math.MaxInt64), as in max-10 or 110s-1. NOW defaults to one second
// after the previous commit, starting at 1000s.
//
// Every commit also checks, whatever the script says: Apply returned no error, Created holds
// exactly the transfers that got created, in order, stamped with now and stored in the State;
// Touched holds exactly the accounts whose balance changed, once each; Resolutions holds one entry
// per created post, void, expire or reversal; the batch moved debits and credits equally in every
// currency; and the reference model of fuzz_test.go gives the same results and balances.
var scripts = []struct {
	name   string
	script string
}{
	{"plain transfers", `
		account  A1 CNY
		account  A2 CNY
		account  A3 CNY
		transfer T1 A1 A2 100 user=U1 code=7   created
		transfer T2 A2 A1 30                   created
		commit   1000s
		balance  A1 0 100 0 30
		balance  A2 0 30 0 100
		balance  A3 0 0 0 0
		touched  A1 A2
		created  T1 T2
		resolutions -
		stored   T1 A1 A2 100
		transfer T3 A2 A1 70                   created
		commit
		balance  A1 0 100 0 100
		balance  A2 0 100 0 100
		touched  A1 A2
		created  T3
	`},
	{"id and flags", `
		account  A1 CNY
		account  A2 CNY
		transfer _  A1 A2 1                              id_must_not_be_zero
		transfer _  A1 A2 1 flags=0x40                   id_must_not_be_zero
		transfer T1 A1 A2 1 flags=0x40                   flags_invalid
		transfer T2 A1 A2 1 pending flags=0x8000         flags_invalid
		transfer T3 A1 A2 1 pending post flags=0x40      flags_invalid
		transfer T4 A1 A2 1 pending post                 flags_mutually_exclusive
		transfer T5 _  _  1 post void ref=P1             flags_mutually_exclusive
		transfer T6 _  _  1 void expire ref=P1           flags_mutually_exclusive
		transfer T7 _  _  1 expire reversal ref=P1       flags_mutually_exclusive
		transfer T8 A1 A2 1 pending reversal ref=P1      flags_mutually_exclusive
		transfer T9 _  _  -1 linked pending post void expire reversal  flags_mutually_exclusive
		transfer T10 A1 A2 1                             linked_event_failed
		transfer T11 A1 A2 1 linked pending              created
		transfer T12 A1 A2 1                             created
		commit
		touched  A1 A2
		created  T11 T12
		balance  A1 1 1 0 0
	`},
	{"shape of a plain transfer", `
		account  A1 CNY
		account  A2 CNY
		account  A3 USD
		transfer T1  A1 A2 -1                 amount_negative
		transfer T2  _  A1 -1 ref=X1          amount_negative
		transfer T3  A1 A2 1 ref=X1           ref_must_be_zero
		transfer T4  _  _  0 pending ref=X1   ref_must_be_zero
		transfer T5  _  A2 1                  debit_account_id_must_not_be_zero
		transfer T6  _  _  0 timeout=5        debit_account_id_must_not_be_zero
		transfer T7  A1 _  1                  credit_account_id_must_not_be_zero
		transfer T8  A1 A1 1                  accounts_same
		transfer T9  A1 A1 0 timeout=5        accounts_same
		transfer T10 A1 A2 0                  amount_zero
		transfer T11 A1 A2 0 pending          amount_zero
		transfer T12 A1 A2 0 timeout=5        amount_zero
		transfer T13 A1 A2 1 timeout=5        timeout_reserved_for_pending
		transfer T14 X1 X2 1 timeout=5        timeout_reserved_for_pending
		transfer T15 X1 A2 1                  debit_account_not_found
		transfer T16 X1 X2 1 pending          debit_account_not_found
		transfer T17 X1 A3 1                  debit_account_not_found
		transfer T18 A1 X2 1                  credit_account_not_found
		transfer T19 A3 X2 1                  credit_account_not_found
		transfer T20 A1 A3 1                  currency_mismatch
		transfer T21 A3 A1 1 pending          currency_mismatch
		transfer T22 A1 A2 1 pending timeout=5   created
		commit
		touched  A1 A2
		created  T22
		balance  A1 1 0 0 0
		balance  A2 0 0 1 0
		balance  A3 0 0 0 0
	`},
	{"shape of a resolving transfer", `
		account  A1 CNY
		account  A2 CNY
		transfer P1 A1 A2 10 pending                 created
		commit
		transfer T1 _  _  -5 post                    amount_negative
		transfer T2 _  _  5 post                     ref_must_not_be_zero
		transfer T3 _  _  5 void                     ref_must_not_be_zero
		transfer T4 _  _  0 expire timeout=1         ref_must_not_be_zero
		transfer T5 _  _  5 reversal                 ref_must_not_be_zero
		transfer T6 _  _  5 post ref=T6 timeout=1    ref_must_be_different
		transfer T7 A1 A2 5 reversal ref=T7          ref_must_be_different
		transfer T8 _  _  5 post ref=P1 timeout=1    timeout_reserved_for_pending
		transfer T9 _  _  0 void ref=P1 timeout=1    timeout_reserved_for_pending
		transfer T10 _ _  5 reversal ref=X1 timeout=1   timeout_reserved_for_pending
		commit
		touched  -
		created  -
		balance  A1 10 0 0 0
	`},
	{"idempotency of plain transfers", `
		account  A1 CNY
		account  A2 CNY
		account  A3 CNY
		transfer T1 A1 A2 100 user=U1 code=7             created
		transfer T1 A1 A2 100 user=U1 code=7             exists
		commit   1000s
		transfer T1 A1 A2 100 user=U1 code=7             exists
		transfer T1 A1 A2 100 pending user=U1 code=7     exists_with_different_flags
		transfer T1 A1 A2 100 ref=T9 user=U1 code=7      exists_with_different_ref
		transfer T1 A1 A2 100 timeout=5 user=U1 code=7   exists_with_different_timeout
		transfer T1 A3 A2 100 user=U1 code=7             exists_with_different_debit_account_id
		transfer T1 _  A2 100 user=U1 code=7             exists_with_different_debit_account_id
		transfer T1 A1 A3 100 user=U1 code=7             exists_with_different_credit_account_id
		transfer T1 A1 A1 100 user=U1 code=7             exists_with_different_credit_account_id
		transfer T1 A1 A2 99 user=U1 code=7              exists_with_different_amount
		transfer T1 A1 A2 -1 user=U1 code=7              exists_with_different_amount
		transfer T1 A1 A2 0 user=U1 code=7               exists_with_different_amount
		transfer T1 A1 A2 100 user=U2 code=7             exists_with_different_user_data
		transfer T1 A1 A2 100 code=7                     exists_with_different_user_data
		transfer T1 A1 A2 100 user=U1 code=8             exists_with_different_code
		transfer T1 A2 A1 1 pending ref=X1 timeout=9     exists_with_different_flags
		transfer T1 A2 A1 1 ref=X1 timeout=9             exists_with_different_ref
		transfer T1 A2 A1 1 timeout=9                    exists_with_different_timeout
		transfer T1 A2 A1 1                              exists_with_different_debit_account_id
		transfer T1 A1 A1 1                              exists_with_different_credit_account_id
		transfer T1 A1 A2 1                              exists_with_different_amount
		transfer T1 A1 A2 100 code=8                     exists_with_different_user_data
		transfer T1 A1 A2 100 flags=0x40                 flags_invalid
		transfer _  A1 A2 100 user=U1 code=7             id_must_not_be_zero
		commit   1001s
		touched  -
		created  -
		resolutions -
		balance  A1 0 100 0 0
		balance  A2 0 0 0 100
		stored   T1 A1 A2 100
	`},
	{"idempotency of posts, voids, expiries and reversals", `
		account  A1 CNY
		account  A2 CNY
		transfer P1 A1 A2 100 pending              created
		transfer P2 A1 A2 50 pending timeout=10    created
		transfer P3 A1 A2 30 pending               created
		transfer T0 A1 A2 20                       created
		commit   100s
		transfer T1 _  _  60 post ref=P1           created
		transfer V1 _  _  0 void ref=P3            created
		transfer R1 _  _  5 reversal ref=T0        created
		commit   101s
		stored   T1 A1 A2 60
		stored   V1 A1 A2 30
		stored   R1 A2 A1 5
		resolutions P1:posted:T1 P3:voided:V1 T0:reversed:R1
		transfer T1 _  _  60 post ref=P1           exists
		transfer T1 A1 A2 60 post ref=P1           exists
		transfer T1 A1 _  60 post ref=P1           exists
		transfer T1 _  A2 60 post ref=P1           exists
		transfer T1 A2 _  60 post ref=P1           exists_with_different_debit_account_id
		transfer T1 _  A1 60 post ref=P1           exists_with_different_credit_account_id
		transfer T1 _  _  0 post ref=P1            exists_with_different_amount
		transfer T1 _  _  100 post ref=P1          exists_with_different_amount
		transfer T1 _  _  60 post ref=P2           exists_with_different_ref
		transfer T1 _  _  60 void ref=P1           exists_with_different_flags
		transfer T1 _  _  60 post ref=P1 timeout=1 exists_with_different_timeout
		transfer T1 _  _  60 post ref=P1 user=U1   exists_with_different_user_data
		transfer V1 _  _  0 void ref=P3            exists
		transfer V1 _  _  30 void ref=P3           exists
		transfer V1 A1 A2 30 void ref=P3           exists
		transfer V1 _  _  29 void ref=P3           exists_with_different_amount
		transfer V1 _  _  0 void ref=P3 code=1     exists_with_different_code
		transfer R1 _  _  5 reversal ref=T0        exists
		transfer R1 A2 A1 5 reversal ref=T0        exists
		transfer R1 A2 _  5 reversal ref=T0        exists
		transfer R1 A1 A2 5 reversal ref=T0        exists_with_different_debit_account_id
		transfer R1 _  _  0 reversal ref=T0        exists_with_different_amount
		transfer R1 _  _  4 reversal ref=T0        exists_with_different_amount
		commit   102s
		touched  -
		created  -
		resolutions -
		balance  A1 50 80 0 5
		balance  A2 0 5 50 80
		transfer E2 _  _  0 expire ref=P2          created
		commit   110s
		resolutions P2:expired:E2
		stored   E2 A1 A2 50
		transfer E2 _  _  0 expire ref=P2          exists
		transfer E2 _  _  50 expire ref=P2         exists
		transfer E2 A1 A2 0 expire ref=P2          exists
		transfer E2 _  _  49 expire ref=P2         exists_with_different_amount
		commit   111s
		touched  -
		balance  A1 0 80 0 5
		balance  A2 0 5 0 80
	`},
	{"a hold counts against available until it is resolved", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		account  B1 CNY
		available A1 100
		transfer P1 A1 A2 60 pending               created
		commit
		available A1 40
		balance  A1 60 0 0 100
		balance  A2 0 0 60 0
		transfer T1 A1 A2 41                       insufficient_funds
		transfer P2 A1 A2 41 pending               insufficient_funds
		transfer T2 A1 A2 40                       created
		transfer T3 A1 A2 1                        insufficient_funds
		commit
		available A1 0
		balance  A1 60 40 0 100
		transfer P3 B1 A1 50 pending               created
		transfer T4 A1 A2 1                        insufficient_funds
		commit
		available A1 0
		balance  A1 60 40 50 100
	`},
	{"post in full", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		transfer P1 A1 A2 60 pending user=U1 code=3   created
		commit
		transfer T1 _  _  60 post ref=P1              created
		commit
		balance  A1 0 60 0 100
		balance  A2 0 0 0 60
		available A1 40
		touched  A1 A2
		created  T1
		resolutions P1:posted:T1
		stored   T1 A1 A2 60
		stored   P1 A1 A2 60
	`},
	{"a partial post releases the rest", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY credits<=debits limit=60
		transfer P1 A1 A2 60 pending               created
		commit
		transfer T1 A1 A2 25 post ref=P1           created
		commit
		balance  A1 0 25 0 100
		balance  A2 0 0 0 25
		available A1 75
		resolutions P1:posted:T1
		stored   T1 A1 A2 25
		transfer T2 _  _  10 post ref=P1           pending_already_resolved
		transfer T3 A1 A2 35                       created
		transfer T4 A1 A2 1                        exceeds_limit
		transfer T5 B1 A2 1                        debit_account_not_found
		commit
		balance  A1 0 60 0 100
		balance  A2 0 0 0 60
		available A1 40
	`},
	{"post and void a hold in the batch that placed it", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		transfer P1 A1 A2 60 pending               created
		transfer T1 _  _  60 post ref=P1           created
		transfer P2 A1 A2 40 pending               created
		transfer V2 _  _  0 void ref=P2            created
		transfer P3 A1 A2 1 pending                created
		transfer V3 _  _  1 void ref=P3            created
		commit
		balance  A1 0 60 0 100
		balance  A2 0 0 0 60
		touched  A1 A2
		created  P1 T1 P2 V2 P3 V3
		resolutions P1:posted:T1 P2:voided:V2 P3:voided:V3
		transfer P4 A1 A2 40 pending               created
		transfer V4 _  _  0 void ref=P4            created
		commit
		touched  A1 A2
		balance  A1 0 60 0 100
		created  P4 V4
		resolutions P4:voided:V4
	`},
	{"void", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		transfer P1 A1 A2 60 pending               created
		transfer P2 A1 A2 30 pending               created
		commit
		available A1 10
		transfer V1 _  _  0 void ref=P1            created
		transfer V2 A1 A2 30 void ref=P2           created
		commit
		balance  A1 0 0 0 100
		balance  A2 0 0 0 0
		available A1 100
		touched  A1 A2
		created  V1 V2
		resolutions P1:voided:V1 P2:voided:V2
		stored   V1 A1 A2 60
	`},
	{"errors resolving a hold", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		account  A3 CNY
		transfer T0 A1 A2 10                       created
		transfer P1 A1 A2 60 pending               created
		commit
		transfer T1  _  _  10 post ref=X1          pending_not_found
		transfer T2  _  _  0 void ref=X1           pending_not_found
		transfer T3  _  _  0 expire ref=X1         pending_not_found
		transfer T4  _  _  10 post ref=T0          pending_not_pending
		transfer T5  _  _  10 void ref=T0          pending_not_pending
		transfer T6  A3 _  10 post ref=P1          pending_has_different_debit_account
		transfer T7  A2 A1 10 post ref=P1          pending_has_different_debit_account
		transfer T8  _  A3 10 post ref=P1          pending_has_different_credit_account
		transfer T9  A1 A3 0 void ref=P1           pending_has_different_credit_account
		transfer T10 A1 A2 0 post ref=P1           amount_zero
		transfer T11 A1 A2 61 post ref=P1          exceeds_pending_amount
		transfer T12 _  _  max post ref=P1         exceeds_pending_amount
		transfer T13 _  _  59 void ref=P1          void_amount_must_match
		transfer T14 _  _  61 void ref=P1          void_amount_must_match
		transfer T15 _  _  1 expire ref=P1         void_amount_must_match
		transfer T16 _  _  0 expire ref=P1         pending_not_expired
		transfer T17 _  _  60 expire ref=P1        pending_not_expired
		commit
		touched  -
		created  -
		balance  A1 60 10 0 100
		transfer T18 _  _  60 post ref=P1          created
		transfer T19 _  _  60 post ref=T18         pending_not_pending
		transfer T20 _  _  0 void ref=T18          pending_not_pending
		commit
	`},
	{"a hold is resolved once", `
		account  A1 CNY
		account  A2 CNY
		transfer P1 A1 A2 60 pending               created
		transfer P2 A1 A2 60 pending               created
		transfer P3 A1 A2 60 pending timeout=1     created
		commit   100s
		transfer T1 _  _  60 post ref=P1           created
		transfer T2 _  _  60 post ref=P1           pending_already_resolved
		transfer V1 _  _  0 void ref=P2            created
		transfer V2 _  _  0 void ref=P2            pending_already_resolved
		commit   100s
		transfer T3 _  _  0 void ref=P1            pending_already_resolved
		transfer T4 _  _  10 post ref=P2           pending_already_resolved
		transfer T5 _  _  61 post ref=P1           exceeds_pending_amount
		transfer T6 _  _  1 void ref=P2            void_amount_must_match
		transfer T7 A2 _  60 post ref=P1           pending_has_different_debit_account
		commit   100s
		touched  -
		transfer E3 _  _  0 expire ref=P3          created
		commit   101s
		transfer E4 _  _  0 expire ref=P3          pending_already_resolved
		transfer T8 _  _  60 post ref=P3           pending_expired
		transfer V3 _  _  0 void ref=P3            pending_expired
		commit   102s
		balance  A1 0 60 0 0
		balance  A2 0 0 0 60
	`},
	{"expiry", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		transfer P1 A1 A2 60 pending timeout=10    created
		transfer P2 A1 A2 10 pending timeout=10    created
		transfer P3 A1 A2 10 pending timeout=10    created
		transfer P4 A1 A2 10 pending               created
		commit   100s
		available A1 10
		transfer E1 _  _  0 expire ref=P1          pending_not_expired
		commit   101s
		transfer E1 _  _  0 expire ref=P1          pending_not_expired
		transfer T2 _  _  10 post ref=P2           created
		commit   110s-1
		available A1 10
		transfer E1 _  _  0 expire ref=P1          created
		transfer T3 _  _  10 post ref=P3           pending_expired
		transfer V3 _  _  0 void ref=P3            pending_expired
		transfer E4 _  _  0 expire ref=P4          pending_not_expired
		transfer E2 _  _  0 expire ref=P2          pending_already_resolved
		commit   110s
		resolutions P1:expired:E1
		stored   E1 A1 A2 60
		balance  A1 20 10 0 100
		available A1 70
		transfer T4 _  _  10 post ref=P1           pending_expired
		transfer E3 _  _  0 expire ref=P3          created
		transfer V4 _  _  0 void ref=P4            created
		commit   1000s
		available A1 90
		balance  A1 0 10 0 100
		balance  A2 0 0 0 10
		resolutions P3:expired:E3 P4:voided:V4
	`},
	{"reversals", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		account  A3 CNY debits<=credits
		transfer T1 A1 A2 80                       created
		transfer T2 A1 A3 10                       created
		transfer P1 A1 A2 5 pending                created
		commit
		transfer R1 _  _  30 reversal ref=T1 user=U1   created
		commit
		resolutions T1:reversed:R1
		stored   R1 A2 A1 30
		balance  A1 5 90 0 130
		balance  A2 0 30 5 80
		transfer R2 _  _  10 reversal ref=T1       reversal_already_done
		transfer R3 _  _  30 reversal ref=T1       reversal_already_done
		transfer R4 _  _  81 reversal ref=T1       exceeds_original_amount
		transfer R5 _  _  5 reversal ref=P1        reversal_target_not_posted
		transfer R6 _  _  5 reversal ref=X1        reversal_target_not_found
		transfer R7 _  _  11 reversal ref=T2       exceeds_original_amount
		transfer R8 A1 _  5 reversal ref=T2        reversal_has_different_accounts
		transfer R9 _  A3 5 reversal ref=T2        reversal_has_different_accounts
		transfer R10 A1 A3 0 reversal ref=T2       reversal_has_different_accounts
		transfer R11 _  _  0 reversal ref=T2       amount_zero
		transfer T3 A3 A2 5                        created
		transfer R12 _  _  10 reversal ref=T2      insufficient_funds
		transfer R13 A3 A1 5 reversal ref=T2       created
		transfer R14 _  _  1 reversal ref=T2       reversal_already_done
		commit
		balance  A3 0 10 0 10
		resolutions T2:reversed:R13
		transfer T4 _  _  5 post ref=P1            created
		commit
		transfer R15 _  _  5 reversal ref=P1       reversal_target_not_posted
		transfer R16 _  _  5 reversal ref=T4       created
		transfer R17 _  _  30 reversal ref=R1      created
		commit
		resolutions T4:reversed:R16 R1:reversed:R17
		stored   R16 A2 A1 5
		stored   R17 A1 A2 30
		balance  A1 0 125 0 140
		transfer P2 A1 A2 5 pending timeout=1      created
		transfer P3 A1 A2 5 pending                created
		commit   2000s
		transfer V3 _  _  0 void ref=P3            created
		transfer E2 _  _  0 expire ref=P2          created
		commit   2001s
		transfer R18 _  _  5 reversal ref=V3       reversal_target_not_posted
		transfer R19 _  _  5 reversal ref=E2       reversal_target_not_posted
		transfer R20 _  _  5 reversal ref=P2       reversal_target_not_posted
		commit   2002s
		touched  -
	`},
	{"reversal of a transfer whose accounts were not prefetched", `
		account  A1 CNY
		account  A2 CNY
		transfer T1 A1 A2 10                       created
		commit
		unload   A1
		transfer R1 _  _  5 reversal ref=T1        credit_account_not_found
		transfer P1 A2 A3 5 pending                credit_account_not_found
		commit
		unload   A2
		transfer R2 _  _  5 reversal ref=T1        debit_account_not_found
		commit
	`},
	{"resolving a hold whose accounts were not prefetched", `
		account  A1 CNY
		account  A2 CNY
		transfer P1 A1 A2 10 pending               created
		transfer P2 A1 A2 10 pending               created
		commit
		unload   A2
		transfer T1 _  _  10 post ref=P1           credit_account_not_found
		commit
		unload   A1
		transfer V2 _  _  0 void ref=P2            debit_account_not_found
		commit
	`},
	{"overflow", `
		account  A1 CNY dp=max
		account  A2 CNY cp=max
		account  A3 CNY dpo=max
		account  A4 CNY cpo=max
		account  A5 CNY dp=max-10 dpo=10
		account  A6 CNY cp=max-10 cpo=10
		account  A7 CNY dpo=max-1
		account  A8 CNY cpo=max-1
		account  B1 CNY
		account  B2 CNY
		account  B3 CNY
		transfer T1  A1 B2 1 pending               overflows_debits_pending
		transfer T2  A1 A2 1 pending               overflows_debits_pending
		transfer T3  B1 A2 1 pending               overflows_credits_pending
		transfer T4  A3 B2 1                       overflows_debits_posted
		transfer T5  A3 A4 1                       overflows_debits_posted
		transfer T6  B1 A4 1                       overflows_credits_posted
		transfer T7  A1 B2 1                       overflows_debits
		transfer T8  A3 B2 1 pending               overflows_debits
		transfer T9  A5 B2 1 pending               overflows_debits
		transfer T10 A5 B2 1                       overflows_debits
		transfer T11 A5 A6 1                       overflows_debits
		transfer T12 B1 A2 1                       overflows_credits
		transfer T13 B1 A4 1 pending               overflows_credits
		transfer T14 B1 A6 1                       overflows_credits
		transfer T15 B1 A6 1 pending               overflows_credits
		transfer T16 B1 B2 max pending             created
		transfer T17 B1 B2 1                       overflows_debits
		transfer T18 B3 B2 1 pending               overflows_credits_pending
		transfer V16 _  _  0 void ref=T16          created
		transfer T19 A7 B2 1                       created
		transfer T20 A7 B2 1                       overflows_debits_posted
		transfer T21 B1 A8 1                       created
		transfer T22 B1 A8 1                       overflows_credits_posted
		commit
		balance  A1 max 0 0 0
		balance  A5 max-10 10 0 0
		balance  A7 0 max 0 0
		balance  A8 0 0 0 max
		balance  B1 0 1 0 0
		balance  B2 0 0 0 1
		touched  A7 A8 B1 B2
		created  T16 V16 T19 T21
	`},
	{"limits at the edges of int64", `
		account  C1 CNY debits<=credits limit=max cpo=max
		account  C2 CNY debits<=credits limit=max
		account  C3 CNY credits<=debits limit=max
		account  C4 CNY credits<=debits limit=max dpo=max
		account  B1 CNY
		account  B2 CNY
		account  B3 CNY
		account  B4 CNY
		account  C5 CNY debits<=credits limit=max-5 cpo=3
		account  B5 CNY
		transfer T1 C1 B1 max                      created
		transfer T2 C1 B2 1                        overflows_debits_posted
		transfer T3 C2 B2 max                      created
		transfer T4 C2 B3 1 pending                overflows_debits
		transfer T5 B3 C3 max pending              created
		transfer T6 B4 C3 1                        overflows_credits
		transfer T7 B4 C4 max                      created
		transfer T8 C5 B5 max-1                    insufficient_funds
		transfer T9 C5 B5 max-2                    created
		transfer T10 C5 B5 1 pending               insufficient_funds
		commit
		balance  C1 0 max 0 max
		balance  C2 0 max 0 0
		balance  C3 0 0 max 0
		balance  C4 0 max 0 max
		balance  C5 0 max-2 0 3
		available C1 max
		available C5 0
	`},
	{"limits", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY debits<=credits limit=50 cpo=100
		account  M1 CNY credits<=debits limit=200
		account  B1 CNY
		transfer T1  A1 B1 101                     insufficient_funds
		transfer T2  A1 B1 101 pending             insufficient_funds
		transfer T3  A1 B1 100                     created
		transfer T4  A1 B1 1                       insufficient_funds
		transfer T5  A2 B1 151                     insufficient_funds
		transfer T6  A2 B1 150                     created
		transfer T7  B1 M1 201                     exceeds_limit
		transfer T8  B1 M1 150 pending             created
		transfer T9  B1 M1 51                      exceeds_limit
		transfer T10 B1 M1 50                      created
		transfer T11 M1 B1 30                      created
		transfer T12 B1 M1 31                      exceeds_limit
		transfer T13 B1 M1 30                      created
		transfer T14 A1 M1 1                       insufficient_funds
		transfer T15 B1 A1 50 pending              created
		transfer T16 A1 B1 1                       insufficient_funds
		transfer T17 B1 A1 1000                    created
		transfer T18 A1 B1 1000                    created
		transfer T19 M1 B1 1000                    created
		commit
		balance  A1 0 1100 50 1100
		balance  A2 0 150 0 100
		balance  M1 0 1030 150 80
		available A1 0
		available A2 0
	`},
	{"linked chains", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		account  A3 CNY
		transfer T1 A1 A2 10 linked                created
		transfer T2 A2 A3 10 linked                created
		transfer T3 A3 A1 5                        created
		commit
		balance  A1 0 10 0 105
		balance  A2 0 10 0 10
		balance  A3 0 5 0 10
		created  T1 T2 T3
		transfer T4 A1 A2 50 linked                linked_event_failed
		transfer T5 A1 A2 60 linked                insufficient_funds
		transfer T6 A2 A3 1                        linked_event_failed
		transfer T7 A1 A2 95                       created
		commit
		balance  A1 0 105 0 105
		balance  A2 0 10 0 105
		created  T7
		touched  A1 A2
		transfer T4 A2 A3 1                        created
		transfer T5 A2 A3 1                        created
		transfer T6 A2 A3 1                        created
		commit
		balance  A3 0 5 0 13
	`},
	{"a failed chain rolls back holds and their resolutions", `
		account  A1 CNY debits<=credits cpo=100
		account  A2 CNY
		account  A3 CNY
		transfer P1 A1 A2 20 pending               created
		commit
		transfer T1 _  _  20 post ref=P1 linked    linked_event_failed
		transfer T2 A2 A3 0                        amount_zero
		transfer P2 A1 A2 30 pending linked        linked_event_failed
		transfer T3 _  _  10 post ref=P2 linked    linked_event_failed
		transfer T4 _  _  10 reversal ref=T3 linked   linked_event_failed
		transfer T5 A1 A2 81                       insufficient_funds
		commit
		touched  -
		created  -
		resolutions -
		balance  A1 20 0 0 100
		transfer V1 _  _  0 void ref=P1            created
		transfer T3 _  _  10 post ref=P2           pending_not_found
		transfer P2 A2 A3 30                       created
		commit
		resolutions P1:voided:V1
		balance  A1 0 0 0 100
	`},
	{"a failing first or last member", `
		account  A1 CNY
		account  A2 CNY
		transfer _  A1 A2 1 linked                 id_must_not_be_zero
		transfer T1 A1 A2 1 linked                 linked_event_failed
		transfer T2 A1 A2 1                        linked_event_failed
		transfer T3 A1 A2 1 linked                 linked_event_failed
		transfer T4 A1 A2 1 linked                 linked_event_failed
		transfer T5 A1 A1 1                        accounts_same
		transfer T6 A1 A2 1 linked flags=0x40      flags_invalid
		transfer T7 A1 A2 1                        linked_event_failed
		transfer T8 A1 A2 1                        created
		commit
		created  T8
		balance  A1 0 1 0 0
	`},
	{"a chain open at the end of the batch", `
		account  A1 CNY
		account  A2 CNY
		transfer T1 A1 A2 1                        created
		transfer T2 A1 A2 1 linked                 linked_event_failed
		transfer _  _  _  0 linked                 linked_event_failed
		transfer T3 A1 A2 1 linked                 linked_event_chain_open
		commit
		created  T1
		balance  A1 0 1 0 0
		transfer T4 A1 A2 1 linked                 linked_event_chain_open
		commit
		touched  -
		transfer T5 A1 A2 1 linked                 created
		transfer T6 A1 A2 1                        created
		transfer T2 A1 A2 1 linked                 linked_event_failed
		transfer T3 A1 A2 1 linked                 linked_event_chain_open
		commit
		created  T5 T6
		balance  A1 0 3 0 0
	`},
	{"a chain replayed whole answers exists", `
		account  A1 CNY debits<=credits cpo=10
		account  A2 CNY
		transfer T1 A1 A2 3 linked                 created
		transfer P2 A1 A2 3 pending linked         created
		transfer T3 _  _  2 post ref=P2            created
		commit
		balance  A1 0 5 0 10
		transfer T1 A1 A2 3 linked                 exists
		transfer P2 A1 A2 3 pending linked         exists
		transfer T3 _  _  2 post ref=P2            exists
		commit
		touched  -
		created  -
		resolutions -
		transfer T1 A1 A2 3 linked                 linked_event_failed
		transfer P2 A1 A2 3 pending linked         linked_event_failed
		transfer T3 _  _  3 post ref=P2            exists_with_different_amount
		commit
	`},
	{"a chain that partly exists is refused whole", `
		account  A1 CNY debits<=credits cpo=10
		account  A2 CNY
		transfer T1 A1 A2 3 linked                 created
		transfer T2 A1 A2 1                        created
		commit
		balance  A1 0 4 0 10
		transfer T1 A1 A2 3 linked                 linked_event_failed
		transfer T4 A1 A2 5                        linked_event_chain_partly_exists
		commit
		touched  -
		created  -
		transfer T4 A1 A2 5 linked                 linked_event_failed
		transfer T2 A1 A2 1                        linked_event_chain_partly_exists
		commit
		touched  -
		created  -
		transfer T1 A1 A2 3 linked                 exists
		transfer T2 A1 A2 1                        exists
		commit
		touched  -
		transfer T1 A1 A2 3 linked                 linked_event_failed
		transfer T6 A1 A2 7                        insufficient_funds
		commit
		balance  A1 0 4 0 10
		transfer T4 A1 A2 5 linked                 created
		transfer T7 A1 A2 1                        created
		commit
		created  T4 T7
		balance  A1 0 10 0 10
	`},
	{"chains between plain transfers", `
		account  A1 CNY debits<=credits cpo=10
		account  A2 CNY
		account  A3 CNY
		transfer T1 A1 A2 1                        created
		transfer T2 A1 A2 2 linked                 created
		transfer T3 A2 A3 2                        created
		transfer T4 A3 A2 5                        created
		transfer T5 A1 A3 1 linked                 linked_event_failed
		transfer T6 A1 A3 1 linked                 linked_event_failed
		transfer T7 A1 A3 9                        insufficient_funds
		transfer T8 A3 A1 1 linked                 created
		transfer T9 A1 A3 1                        created
		transfer T10 A1 A3 7                       created
		commit
		created  T1 T2 T3 T4 T8 T9 T10
		balance  A1 0 11 0 11
		balance  A2 0 2 0 8
		balance  A3 0 6 0 10
	`},
	{"a batch whose only chain fails touches nothing", `
		account  A1 CNY debits<=credits cpo=10
		account  A2 CNY
		transfer T1 A2 A1 5 linked                 linked_event_failed
		transfer T2 A1 A2 5 pending linked         linked_event_failed
		transfer T3 A1 A2 11                       insufficient_funds
		commit
		touched  -
		created  -
		balance  A1 0 0 0 10
	`},
	{"a transfer in the currency it states", `
		account  A1 CNY
		account  A2 CNY
		account  A3 USD
		account  A4 USD
		transfer T1 A1 A2 100 currency=CNY            created
		transfer T2 A1 A2 100 currency=USD            currency_mismatch
		transfer T3 A3 A4 100 currency=CNY            currency_mismatch
		transfer T4 A1 A3 100 currency=CNY            currency_mismatch
		transfer P1 A1 A2 50 pending currency=CNY     created
		transfer P2 A3 A4 50 pending                  created
		commit
		transfer T1 A1 A2 100 currency=CNY            exists
		transfer T1 A1 A2 100                         exists
		transfer T1 A1 A2 100 currency=USD            currency_mismatch
		transfer T5 _  _  20 post ref=P1 currency=USD linked    currency_mismatch
		transfer T6 A2 A1 1 currency=CNY                        linked_event_failed
		transfer T7 _  _  0 void ref=P2 currency=USD            created
		transfer R1 _  _  30 reversal ref=T1 currency=JPY       currency_mismatch
		transfer R2 _  _  30 reversal ref=T1 currency=CNY       created
		commit
		balance  A1 50 100 0 30
		balance  A2 0 30 50 100
		balance  A3 0 0 0 0
	`},
}

// unreachable lists the result codes no transfer can get, each with the reason.
var unreachable = map[ledger.Result]string{}

func TestApplyScripts(t *testing.T) {
	for _, sc := range scripts {
		t.Run(sc.name, func(t *testing.T) { runScript(t, sc.script) })
	}
}

// TestEveryResultIsTested fails when a result code is produced by no table row, so a new code
// comes with its test.
func TestEveryResultIsTested(t *testing.T) {
	seen := make(map[ledger.Result]bool)
	for _, sc := range scripts {
		for r := range runScript(t, sc.script) {
			seen[r] = true
		}
	}
	for _, r := range ledger.Results() {
		_, skip := unreachable[r]
		switch {
		case skip && seen[r]:
			t.Errorf("%s is listed as unreachable but a script produced it", r)
		case !skip && !seen[r]:
			t.Errorf("no script produces %s", r)
		}
	}
}

func TestApplyRefusesLongBatch(t *testing.T) {
	s := ledger.NewState(2)
	a1 := &ledger.Account{ID: id("A1"), Currency: "CNY", Kind: ledger.KindCardholderFunds}
	a2 := &ledger.Account{ID: id("A2"), Currency: "CNY", Kind: ledger.KindMerchantClearing}
	s.Accounts[a1.ID], s.Accounts[a2.ID] = a1, a2

	batch := make([]ledger.Transfer, ledger.MaxBatchTransfers+1)
	for i := range batch {
		batch[i] = ledger.Transfer{ID: seqID('T', uint64(i+1)), DebitAccountID: a1.ID, CreditAccountID: a2.ID, Amount: 1}
	}
	out, err := s.Apply(batch, 1)
	if err == nil {
		t.Fatalf("a batch of %d transfers was applied", len(batch))
	}
	if out.Results != nil || out.Created != nil || out.Touched != nil || out.Resolutions != nil {
		t.Errorf("a refused batch returned an outcome: %d results", len(out.Results))
	}
	if len(s.Transfers) != 0 || len(s.Resolutions) != 0 || a1.Balance != (ledger.Balance{}) || a2.Balance != (ledger.Balance{}) {
		t.Errorf("a refused batch changed the state: %d transfers, %+v, %+v", len(s.Transfers), a1.Balance, a2.Balance)
	}

	out, err = s.Apply(batch[:ledger.MaxBatchTransfers], 2)
	if err != nil {
		t.Fatalf("a batch of exactly MaxBatchTransfers: %v", err)
	}
	if len(out.Created) != ledger.MaxBatchTransfers || a1.DebitsPosted != ledger.MaxBatchTransfers {
		t.Errorf("created %d, debits posted %d, want %d", len(out.Created), a1.DebitsPosted, ledger.MaxBatchTransfers)
	}
}

func TestApplyEmptyBatch(t *testing.T) {
	s := ledger.NewState(0)
	out, err := s.Apply(nil, 1)
	if err != nil || len(out.Results) != 0 || len(out.Created) != 0 || len(out.Touched) != 0 {
		t.Fatalf("empty batch: %+v, %v", out, err)
	}
}

// TestApplyAccountsSharedBetweenStates applies batches through States that share an *Account, as
// a store would that keeps hot accounts in a cache and builds a State per batch, and through a
// State built from copies of another State's accounts. Each batch must see every account it
// changes as touched, whatever the Account's bookkeeping says about earlier batches of other States.
//
// This failed against engine.go while State.batch was a per-State counter starting at 0: the
// first batch of a second State had the number of the first State's first batch, touch took the
// shared account for already touched, left it out of Outcome.Touched with a stale `before`, and
// checkBalanced refused the valid batch with ErrInvariant.
func TestApplyAccountsSharedBetweenStates(t *testing.T) {
	hot := &ledger.Account{ID: id("M1"), Currency: "CNY", Kind: ledger.KindOperatorClearing}
	for i := range 3 {
		s := ledger.NewState(2)
		payer := &ledger.Account{ID: id("A1"), Currency: "CNY", Kind: ledger.KindCardholderFunds}
		s.Accounts[payer.ID], s.Accounts[hot.ID] = payer, hot
		tr := ledger.Transfer{ID: seqID('T', uint64(i+1)), DebitAccountID: payer.ID, CreditAccountID: hot.ID, Amount: 5}
		out, err := s.Apply([]ledger.Transfer{tr}, int64(i+1))
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if len(out.Touched) != 2 {
			t.Fatalf("batch %d: touched %d accounts, want 2", i, len(out.Touched))
		}
	}
	if hot.CreditsPosted != 15 {
		t.Errorf("hot account credits posted %d, want 15", hot.CreditsPosted)
	}

	// A State built from copies of the accounts another State used.
	copies := ledger.NewState(2)
	a, m := *hot, *hot
	a.ID = id("A1")
	copies.Accounts[a.ID], copies.Accounts[m.ID] = &a, &m
	out, err := copies.Apply([]ledger.Transfer{{ID: id("T9"), DebitAccountID: a.ID, CreditAccountID: m.ID, Amount: 7}}, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Touched) != 2 || m.CreditsPosted != 22 || a.DebitsPosted != 7 {
		t.Errorf("touched %d accounts, credits posted %d, debits posted %d; want 2, 22, 7", len(out.Touched), m.CreditsPosted, a.DebitsPosted)
	}
}

// runScript runs one script and returns the results it produced.
func runScript(t *testing.T, script string) map[ledger.Result]bool {
	t.Helper()
	r := &runner{
		t:     t,
		s:     ledger.NewState(8),
		model: newModel(nil),
		now:   999 * 1_000_000,
		seen:  make(map[ledger.Result]bool),
	}
	for n, line := range strings.Split(script, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		r.line = n
		r.exec(fields)
	}
	if len(r.batch) != 0 {
		t.Fatalf("%d transfers after the last commit", len(r.batch))
	}
	return r.seen
}

type runner struct {
	t     *testing.T
	s     *ledger.State
	model *model
	line  int
	now   int64
	seen  map[ledger.Result]bool

	batch []ledger.Transfer
	want  []ledger.Result
	lines []int
	out   ledger.Outcome
}

func (r *runner) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("line %d: %s", r.line, fmt.Sprintf(format, args...))
}

func (r *runner) errorf(format string, args ...any) {
	r.t.Helper()
	r.t.Errorf("line %d: %s", r.line, fmt.Sprintf(format, args...))
}

func (r *runner) exec(f []string) {
	r.t.Helper()
	switch f[0] {
	case "account":
		r.account(f[1:])
	case "unload":
		delete(r.s.Accounts, id(f[1]))
		delete(r.model.accounts, id(f[1]))
	case "transfer":
		r.transfer(f[1:])
	case "commit":
		now := r.now + 1_000_000
		if len(f) > 1 {
			now = r.number(f[1])
		}
		r.commit(now)
	case "balance":
		r.wantArgs(f, 6)
		a := r.mustAccount(f[1])
		want := ledger.Balance{
			DebitsPending: r.number(f[2]), DebitsPosted: r.number(f[3]),
			CreditsPending: r.number(f[4]), CreditsPosted: r.number(f[5]),
		}
		if a.Balance != want {
			r.errorf("%s balance %s, want %s", f[1], fmtBalance(a.Balance), fmtBalance(want))
		}
	case "available":
		r.wantArgs(f, 3)
		if got, want := r.mustAccount(f[1]).Available(), r.number(f[2]); got != want {
			r.errorf("%s available %d, want %d", f[1], got, want)
		}
	case "touched":
		var got []string
		for _, a := range r.out.Touched {
			got = append(got, name(a.ID))
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(list(f[1:])))
		if !slices.Equal(got, want) {
			r.errorf("touched %v, want %v", got, want)
		}
	case "created":
		var got []string
		for _, c := range r.out.Created {
			got = append(got, name(c.ID))
		}
		if want := list(f[1:]); !slices.Equal(got, want) {
			r.errorf("created %v, want %v", got, want)
		}
	case "resolutions":
		var got []string
		for _, res := range r.out.Resolutions {
			got = append(got, name(res.Target)+":"+res.Kind.String()+":"+name(res.By))
		}
		if want := list(f[1:]); !slices.Equal(got, want) {
			r.errorf("resolutions %v, want %v", got, want)
		}
	case "stored":
		r.wantArgs(f, 5)
		tr, ok := r.s.Transfers[id(f[1])]
		if !ok {
			r.errorf("transfer %s is not stored", f[1])
			return
		}
		if tr.DebitAccountID != id(f[2]) || tr.CreditAccountID != id(f[3]) || tr.Amount != r.number(f[4]) {
			r.errorf("stored %s %s %s %d, want %v", f[1], name(tr.DebitAccountID), name(tr.CreditAccountID), tr.Amount, f[1:])
		}
	default:
		r.fatalf("unknown command %q", f[0])
	}
}

func (r *runner) wantArgs(f []string, n int) {
	r.t.Helper()
	if len(f) != n {
		r.fatalf("%s takes %d arguments, got %v", f[0], n-1, f[1:])
	}
}

func (r *runner) mustAccount(s string) *ledger.Account {
	r.t.Helper()
	a, ok := r.s.Accounts[id(s)]
	if !ok {
		r.fatalf("no account %s", s)
	}
	return a
}

func (r *runner) account(f []string) {
	r.t.Helper()
	if len(f) < 2 {
		r.fatalf("account needs an id and a currency")
	}
	a := &ledger.Account{ID: id(f[0]), Currency: ledger.Currency(f[1]), Kind: ledger.KindCardholderFunds}
	for _, tok := range f[2:] {
		key, val, _ := strings.Cut(tok, "=")
		switch {
		case tok == "debits<=credits":
			a.Flags |= ledger.DebitsMustNotExceedCredits
			continue
		case tok == "credits<=debits":
			a.Flags |= ledger.CreditsMustNotExceedDebits
			continue
		}
		switch key {
		case "limit":
			a.Limit = r.number(val)
		case "dp":
			a.DebitsPending = r.number(val)
		case "dpo":
			a.DebitsPosted = r.number(val)
		case "cp":
			a.CreditsPending = r.number(val)
		case "cpo":
			a.CreditsPosted = r.number(val)
		default:
			r.fatalf("unknown account field %q", tok)
		}
	}
	if err := a.Validate(); err != nil {
		r.fatalf("%v", err)
	}
	r.s.Accounts[a.ID] = a
	r.model.accounts[a.ID] = modelAccountOf(a)
}

func (r *runner) transfer(f []string) {
	r.t.Helper()
	if len(f) < 5 {
		r.fatalf("transfer needs an id, two accounts, an amount and a result")
	}
	tr := ledger.Transfer{ID: id(f[0]), DebitAccountID: id(f[1]), CreditAccountID: id(f[2]), Amount: r.number(f[3])}
	// A timestamp from the caller is ignored: Apply stamps what it creates with now.
	tr.Timestamp = -1
	for _, tok := range f[4 : len(f)-1] {
		key, val, _ := strings.Cut(tok, "=")
		switch key {
		case "linked":
			tr.Flags |= ledger.Linked
		case "pending":
			tr.Flags |= ledger.Pending
		case "post":
			tr.Flags |= ledger.PostPending
		case "void":
			tr.Flags |= ledger.VoidPending
		case "expire":
			tr.Flags |= ledger.ExpirePending
		case "reversal":
			tr.Flags |= ledger.Reversal
		case "flags":
			v, err := strconv.ParseUint(val, 0, 16)
			if err != nil {
				r.fatalf("flags: %v", err)
			}
			tr.Flags |= ledger.TransferFlags(v)
		case "ref":
			tr.Ref = id(val)
		case "timeout":
			tr.TimeoutSeconds = uint32(r.number(val))
		case "user":
			tr.UserData = id(val)
		case "code":
			tr.Code = ledger.Code(r.number(val))
		case "currency":
			tr.Currency = ledger.Currency(val)
		default:
			r.fatalf("unknown transfer field %q", tok)
		}
	}
	want, err := ledger.ParseResult(f[len(f)-1])
	if err != nil {
		r.fatalf("%v", err)
	}
	r.batch = append(r.batch, tr)
	r.want = append(r.want, want)
	r.lines = append(r.lines, r.line)
}

func (r *runner) commit(now int64) {
	r.t.Helper()
	r.now = now
	before := make(map[ledger.ID]ledger.Balance, len(r.s.Accounts))
	for k, a := range r.s.Accounts {
		before[k] = a.Balance
	}
	batch := slices.Clone(r.batch)
	out, err := r.s.Apply(batch, now)
	if err != nil {
		r.fatalf("apply: %v", err)
	}
	if !slices.Equal(batch, r.batch) {
		r.errorf("Apply changed its input")
	}
	r.out = out
	if len(out.Results) != len(r.batch) {
		r.fatalf("%d results for %d transfers", len(out.Results), len(r.batch))
	}
	var wantCreated []ledger.ID
	for i, got := range out.Results {
		r.seen[got] = true
		if got != r.want[i] {
			r.t.Errorf("line %d: %s: got %s, want %s", r.lines[i], name(r.batch[i].ID), got, r.want[i])
		}
		if got == ledger.Created {
			wantCreated = append(wantCreated, r.batch[i].ID)
		}
	}
	r.checkOutcome(before, wantCreated)

	// The reference model must agree with the script and with the engine.
	ref := r.model.applyBatch(r.batch, now)
	if !slices.Equal(ref.results, out.Results) {
		r.errorf("model results %v, engine %v", ref.results, out.Results)
	}
	if !slices.Equal(ref.created, out.Created) || !slices.Equal(ref.resolutions, out.Resolutions) {
		r.errorf("model created %v resolutions %v, engine %v %v", ref.created, ref.resolutions, out.Created, out.Resolutions)
	}
	for k, a := range r.s.Accounts {
		if m := r.model.accounts[k]; m.balance != a.Balance {
			r.errorf("%s: model balance %s, engine %s", name(k), fmtBalance(m.balance), fmtBalance(a.Balance))
		}
	}
	r.batch, r.want, r.lines = nil, nil, nil
}

// checkOutcome checks what every Outcome must satisfy.
func (r *runner) checkOutcome(before map[ledger.ID]ledger.Balance, wantCreated []ledger.ID) {
	r.t.Helper()
	out := &r.out
	var created []ledger.ID
	refs := 0
	for i := range out.Created {
		c := &out.Created[i]
		created = append(created, c.ID)
		if c.Timestamp != r.now {
			r.errorf("created %s has timestamp %d, want now %d", name(c.ID), c.Timestamp, r.now)
		}
		if s, ok := r.s.Transfers[c.ID]; !ok || *s != *c {
			r.errorf("created %s is not stored as created", name(c.ID))
		}
		if c.Flags&(ledger.PostPending|ledger.VoidPending|ledger.ExpirePending|ledger.Reversal) != 0 {
			refs++
		}
	}
	if !slices.Equal(created, wantCreated) {
		r.errorf("created %v, want the transfers with result created %v", names(created), names(wantCreated))
	}

	if len(out.Resolutions) != refs {
		r.errorf("%d resolutions for %d resolving transfers created", len(out.Resolutions), refs)
	}
	for _, res := range out.Resolutions {
		by, ok := r.s.Transfers[res.By]
		switch {
		case !ok || by.Ref != res.Target:
			r.errorf("resolution %+v: %s does not refer to %s", res, name(res.By), name(res.Target))
		case r.s.Resolutions[res.Target] != res.Kind:
			r.errorf("resolution %+v is not in State.Resolutions", res)
		}
	}

	changed := make(map[ledger.ID]bool)
	for k, a := range r.s.Accounts {
		if a.Balance != before[k] {
			changed[k] = true
		}
	}
	// Touched are the accounts the created transfers name: a balance that came back where it
	// was (a hold placed and released) is touched all the same.
	named := make(map[ledger.ID]bool)
	for i := range out.Created {
		named[out.Created[i].DebitAccountID], named[out.Created[i].CreditAccountID] = true, true
	}
	seen := make(map[ledger.ID]bool)
	for _, a := range out.Touched {
		if seen[a.ID] {
			r.errorf("%s is touched twice", name(a.ID))
		}
		seen[a.ID] = true
		if r.s.Accounts[a.ID] != a {
			r.errorf("touched %s is not the State's account", name(a.ID))
		}
		if !named[a.ID] {
			r.errorf("touched %s is named by no transfer created", name(a.ID))
		}
	}
	for k := range named {
		if !seen[k] {
			r.errorf("%s is named by a transfer created but is not touched", name(k))
		}
	}
	for k := range changed {
		if !seen[k] {
			r.errorf("%s changed but is not touched", name(k))
		}
	}

	// Double entry: in each currency the batch moved debits and credits by the same amounts.
	type delta struct{ pending, posted int64 }
	sums := make(map[ledger.Currency]delta)
	for k, a := range r.s.Accounts {
		b := before[k]
		d := sums[a.Currency]
		d.pending += (a.CreditsPending - b.CreditsPending) - (a.DebitsPending - b.DebitsPending)
		d.posted += (a.CreditsPosted - b.CreditsPosted) - (a.DebitsPosted - b.DebitsPosted)
		sums[a.Currency] = d
	}
	for c, d := range sums {
		if d != (delta{}) {
			r.errorf("%s is out of balance by %+v", c, d)
		}
	}
}

// number parses a sum of terms: N, Ns (seconds, in microseconds) and max.
func (r *runner) number(s string) int64 {
	r.t.Helper()
	var total int64
	sign := int64(1)
	rest := s
	if strings.HasPrefix(rest, "-") {
		sign, rest = -1, rest[1:]
	}
	for {
		end := strings.IndexAny(rest, "+-")
		if end < 0 {
			end = len(rest)
		}
		term := rest[:end]
		var v int64
		switch {
		case term == "max":
			v = math.MaxInt64
		case strings.HasSuffix(term, "s"):
			n, err := strconv.ParseInt(strings.TrimSuffix(term, "s"), 10, 64)
			if err != nil {
				r.fatalf("number %q: %v", s, err)
			}
			v = n * 1_000_000
		default:
			n, err := strconv.ParseInt(term, 10, 64)
			if err != nil {
				r.fatalf("number %q: %v", s, err)
			}
			v = n
		}
		total += sign * v
		if end == len(rest) {
			return total
		}
		sign = 1
		if rest[end] == '-' {
			sign = -1
		}
		rest = rest[end+1:]
	}
}

func list(f []string) []string {
	if len(f) == 1 && f[0] == "-" {
		return nil
	}
	return f
}

// id makes an ID of up to 16 bytes of text; "_" is the zero ID.
func id(s string) ledger.ID {
	var x ledger.ID
	if s == "_" {
		return x
	}
	if len(s) > len(x) {
		panic("id too long: " + s)
	}
	copy(x[:], s)
	return x
}

// seqID makes the ID number n with a one-byte prefix, for generated transfers.
func seqID(prefix byte, n uint64) ledger.ID {
	var x ledger.ID
	x[0] = prefix
	for i := 15; i > 0 && n > 0; i-- {
		x[i] = byte(n)
		n >>= 8
	}
	return x
}

func name(x ledger.ID) string {
	if x.IsZero() {
		return "_"
	}
	if t := bytes.TrimRight(x[:], "\x00"); bytes.IndexFunc(t, func(r rune) bool { return r < ' ' || r > '~' }) < 0 {
		return string(t)
	}
	return x.String()
}

func names(ids []ledger.ID) []string {
	s := make([]string, len(ids))
	for i, x := range ids {
		s[i] = name(x)
	}
	return s
}

func fmtBalance(b ledger.Balance) string {
	return fmt.Sprintf("dp=%d dpo=%d cp=%d cpo=%d", b.DebitsPending, b.DebitsPosted, b.CreditsPending, b.CreditsPosted)
}

// TestAvailableDoesNotWrap checks Available where posted credits plus the limit pass
// math.MaxInt64, which Validate allows (any non-negative limit).
func TestAvailableDoesNotWrap(t *testing.T) {
	a := ledger.Account{ID: id("A1"), Currency: "CNY", Kind: ledger.KindCardholderFunds,
		Flags: ledger.DebitsMustNotExceedCredits, Limit: math.MaxInt64}
	a.CreditsPosted = math.MaxInt64
	if got := a.Available(); got != math.MaxInt64 {
		t.Errorf("available %d, want it to saturate at %d", got, int64(math.MaxInt64))
	}
}

// The refusals that depend on a balance are exactly those a more recent balance could turn into
// created: the store confirms them on fresh balances before it commits them.
func TestResultsThatDependOnBalances(t *testing.T) {
	want := map[ledger.Result]bool{
		ledger.OverflowsDebitsPending: true, ledger.OverflowsCreditsPending: true, ledger.OverflowsDebitsPosted: true,
		ledger.OverflowsCreditsPosted: true, ledger.OverflowsDebits: true, ledger.OverflowsCredits: true,
		ledger.InsufficientFunds: true, ledger.ExceedsLimit: true,
	}
	for _, r := range ledger.Results() {
		if r.DependsOnBalance() != want[r] {
			t.Errorf("%s: DependsOnBalance %v, want %v", r, r.DependsOnBalance(), want[r])
		}
	}
}

// An account with a ceiling refuses what would take either of its sides past it, pending and
// posted alike, by exactly the results an int64 overflow gives, and takes what reaches it exactly.
func TestCeilingBoundsEachSide(t *testing.T) {
	const ceiling = 1_000
	cases := []struct {
		name           string
		before         ledger.Balance
		debitCapped    bool // the ceiling is the debit account's, else the credit account's
		amount         int64
		pending        bool
		want           ledger.Result
		debits, credit int64 // the capped account's debits or credits after, pending and posted
	}{
		{"credit posted up to the ceiling", ledger.Balance{CreditsPosted: 400}, false, 600, false, ledger.Created, 0, 1_000},
		{"credit posted one past", ledger.Balance{CreditsPosted: 400}, false, 601, false, ledger.OverflowsCreditsPosted, 0, 400},
		{"credit pending one past", ledger.Balance{CreditsPending: 1}, false, ceiling, true, ledger.OverflowsCreditsPending, 0, 1},
		{"credit pending and posted together one past", ledger.Balance{CreditsPosted: 500}, false, 501, true, ledger.OverflowsCredits, 0, 500},
		{"credit pending and posted together at it", ledger.Balance{CreditsPosted: 500}, false, 500, true, ledger.Created, 0, 1_000},
		{"amount alone past it", ledger.Balance{}, false, ceiling + 1, false, ledger.OverflowsCreditsPosted, 0, 0},
		{"amount near int64", ledger.Balance{CreditsPosted: 10}, false, math.MaxInt64, false, ledger.OverflowsCreditsPosted, 0, 10},
		{"debit posted up to the ceiling", ledger.Balance{DebitsPosted: 999}, true, 1, false, ledger.Created, 1_000, 0},
		{"debit posted one past", ledger.Balance{DebitsPosted: 1_000}, true, 1, false, ledger.OverflowsDebitsPosted, 1_000, 0},
		{"debit pending one past", ledger.Balance{DebitsPending: 1_000}, true, 1, true, ledger.OverflowsDebitsPending, 1_000, 0},
		{"debit pending and posted together one past", ledger.Balance{DebitsPosted: 700}, true, 301, true, ledger.OverflowsDebits, 700, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ledger.NewState(2)
			dr := &ledger.Account{ID: id("D"), Currency: "CNY", Kind: ledger.KindSuspense}
			cr := &ledger.Account{ID: id("C"), Currency: "CNY", Kind: ledger.KindMerchantClearing}
			capped := cr
			if c.debitCapped {
				capped = dr
			}
			capped.Ceiling, capped.Balance = ceiling, c.before
			if err := capped.Validate(); err != nil {
				t.Fatal(err)
			}
			s.Accounts[dr.ID], s.Accounts[cr.ID] = dr, cr
			tr := ledger.Transfer{ID: seqID('T', 1), DebitAccountID: dr.ID, CreditAccountID: cr.ID, Amount: c.amount}
			if c.pending {
				tr.Flags = ledger.Pending
			}
			out, err := s.Apply([]ledger.Transfer{tr}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if out.Results[0] != c.want {
				t.Fatalf("result %s, want %s", out.Results[0], c.want)
			}
			b := capped.Balance
			if got := b.DebitsPending + b.DebitsPosted; got != c.debits {
				t.Errorf("debits %d, want %d", got, c.debits)
			}
			if got := b.CreditsPending + b.CreditsPosted; got != c.credit {
				t.Errorf("credits %d, want %d", got, c.credit)
			}
		})
	}
	neg := ledger.Account{ID: id("N"), Currency: "CNY", Kind: ledger.KindSuspense, Ceiling: -1}
	if err := neg.Validate(); err == nil {
		t.Error("a negative ceiling was valid")
	}
}
