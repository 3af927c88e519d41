// Package clearing turns card events into ledger transfers: funds mirrored onto cards, cleared
// purchases and their refunds, medical contributions, and (as transit clearing grows) fares. It
// is pure: the adapter looks up cards, parties and earlier events and hands them in.
package clearing

import "github.com/joinincard/engine/ledger"

// Transfer codes: what a transfer is, stored with it and shown on statements.
const (
	CodeFundsLoaded       ledger.Code = 1  // the linked bank account's funds mirrored onto the card
	CodeTransitFare       ledger.Code = 10 // a travel day's fares charged to the card
	CodeTransitAdjustment ledger.Code = 11 // a late tap's re-pricing of its travel day
	CodeAuthorization     ledger.Code = 20 // a purchase authorization's hold
	CodePurchase          ledger.Code = 21 // a cleared or captured purchase
	CodeAuthorizationVoid ledger.Code = 22 // a released authorization
	CodeRefund            ledger.Code = 23 // money back against a purchase
	CodeMerchantFee       ledger.Code = 30 // the merchant discount and network fee
	// CodeMerchantFeeAdjustment is a fee plan version re-pricing a purchase made since its first
	// day: the difference between what the new version owes and what the merchant paid, from the
	// merchant to fee income, or back when it owes less.
	CodeMerchantFeeAdjustment ledger.Code = 31
	CodeSettlement            ledger.Code = 40 // a clearing balance moved to its bank at cut-off
	CodeMedicalContribution   ledger.Code = 50 // an employer's contribution to the personal medical account
	CodeMedicalFundPart       ledger.Code = 51 // the pooled fund's part of a medical settlement
	CodeMedicalPersonalPart   ledger.Code = 52 // the personal medical account's part
	CodeMedicalCashPart       ledger.Code = 53 // the card's funds' part (cash)
	CodeMedicalCancel         ledger.Code = 54 // a part given back by a cancellation, the day of the settlement
	CodeMedicalReversal       ledger.Code = 55 // a part given back by a reversal, on a later day
	// CodeMedicalRefund is a part given back by a partial refund of a medical settlement.
	CodeMedicalRefund ledger.Code = 56
	// CodeMedicalStayAdjustment is a part moved by an inpatient stay's final true-up, either way.
	CodeMedicalStayAdjustment ledger.Code = 57
)
