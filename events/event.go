package events

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
)

// SchemaV1 is the envelope's "schema" value for this version. Since unknown fields are refused,
// any new field, even an optional one, needs a new schema version.
const SchemaV1 = "joinin.card-event.v1"

// Type names what happened to the card, and so which Data the event carries.
type Type string

const (
	TypeFundsLoaded         Type = "funds.loaded"
	TypePurchaseCleared     Type = "purchase.cleared"
	TypePurchaseRefunded    Type = "purchase.refunded"
	TypeTransitTap          Type = "transit.tap"
	TypeCardRegistered      Type = "card.registered"
	TypeCardStatusChanged   Type = "card.status_changed"
	TypeCardPermitRenewed   Type = "card.permit_renewed"
	TypeMedicalContribution Type = "medical.contribution"
)

// Types lists every type of this schema version, in the order of the documentation.
func Types() []Type {
	return []Type{
		TypeFundsLoaded, TypePurchaseCleared, TypePurchaseRefunded, TypeTransitTap,
		TypeCardRegistered, TypeCardStatusChanged, TypeCardPermitRenewed, TypeMedicalContribution,
	}
}

// Event is one decoded card event.
type Event struct {
	ID         uuid.UUID // event_id: the idempotency key, never the nil UUID
	Type       Type
	OccurredAt time.Time // always UTC once decoded; the offset the producer wrote is not kept
	CardToken  string    // the Kafka key
	// Data is the type's payload: *FundsLoaded, *PurchaseCleared, *PurchaseRefunded, *TransitTap,
	// *CardRegistered, *CardStatusChanged, *CardPermitRenewed or *MedicalContribution, matching Type.
	Data Data
	// Hash is the SHA-256 of the canonical encoding (what Encode writes). Decode sets it; Encode
	// ignores it. The same event_id with another Hash is a conflict, never applied.
	Hash [32]byte
}

// Data is the payload of one event type. Only this package's payload types implement it.
type Data interface {
	// Type is the event type whose payload this is.
	Type() Type
	isData()
}

// Money is an amount in minor units of its currency (fen for CNY). Events carry only positive
// amounts: direction comes from the event type, never from a sign.
type Money struct {
	Minor    int64
	Currency ledger.Currency
}

// String formats m for people, e.g. "1,234.56 CNY".
func (m Money) String() string {
	return ledger.FormatAmount(m.Minor, m.Currency) + " " + string(m.Currency)
}

// Date is a calendar day without a time zone, written YYYY-MM-DD.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// Period is a calendar month, written YYYY-MM.
type Period struct {
	Year  int
	Month time.Month
}

func (p Period) String() string { return fmt.Sprintf("%04d-%02d", p.Year, int(p.Month)) }

// Direction is a transit tap's direction.
type Direction string

const (
	DirectionIn     Direction = "in"     // entering: the journey starts
	DirectionOut    Direction = "out"    // leaving: the journey ends
	DirectionSingle Direction = "single" // a flat fare with no tap-out, as on most buses
)

// Mode is the transit mode of a tap.
type Mode string

const (
	ModeMetro Mode = "metro"
	ModeBus   Mode = "bus"
)

// CardStatus is the state of a card. Only an active card pays.
type CardStatus string

const (
	StatusActive  CardStatus = "active"
	StatusBlocked CardStatus = "blocked"
	StatusClosed  CardStatus = "closed"
)

// FundsLoaded: the issuer bank mirrored funds from the cardholder's linked bank account onto the card.
type FundsLoaded struct {
	Amount        Money
	BankReference string // the issuer bank's reference for the transfer
}

// PurchaseCleared is a merchant's clearing record for a completed purchase.
type PurchaseCleared struct {
	MerchantID      string
	Amount          Money
	MCC             string    // merchant category code, 4 digits
	AuthorizationID uuid.UUID // optional: the zero UUID means absent
}

// PurchaseRefunded gives money back against a cleared purchase.
type PurchaseRefunded struct {
	MerchantID      string
	OriginalEventID uuid.UUID // event_id of the purchase.cleared event refunded
	Amount          Money
}

// TransitTap is one tap of the card on a transit operator's device.
type TransitTap struct {
	OperatorID string
	DeviceID   string
	DeviceSeq  uint64    // the device's own sequence number: the same (device, seq) twice is one tap
	TappedAt   time.Time // when the card touched the device, UTC; offline uploads arrive days later
	StationID  string
	Line       string // optional: "" means absent
	Direction  Direction
	Mode       Mode
}

// CardRegistered carries a card's identity elements. Personal numbers are HMAC tokens (see
// Tokenizer) plus masked forms: never the numbers themselves.
type CardRegistered struct {
	PhysicalToken        string // optional
	DigitalToken         string // optional
	HolderName           string
	Nationality          string // ISO 3166-1 alpha-3
	PassportToken        string
	PassportMasked       string
	SocialSecurityToken  string
	SocialSecurityMasked string
	WorkPermitToken      string
	WorkPermitMasked     string
	PermitValidUntil     Date
	InsuranceCity        string
	IssuerBank           string
	BankAccountToken     string
	BankAccountMasked    string
	CardNumberMasked     string // first 6 and last 4 digits, e.g. "622848******1234"
}

// CardStatusChanged moves the card to another status.
type CardStatusChanged struct {
	Status CardStatus
	Reason string
}

// CardPermitRenewed records the new end of the cardholder's work permit.
type CardPermitRenewed struct {
	PermitValidUntil Date
}

// MedicalContribution is an employer's contribution to the cardholder's personal medical account.
type MedicalContribution struct {
	EmployerID string
	Amount     Money
	Period     Period // the month the contribution is for
}

func (*FundsLoaded) Type() Type         { return TypeFundsLoaded }
func (*PurchaseCleared) Type() Type     { return TypePurchaseCleared }
func (*PurchaseRefunded) Type() Type    { return TypePurchaseRefunded }
func (*TransitTap) Type() Type          { return TypeTransitTap }
func (*CardRegistered) Type() Type      { return TypeCardRegistered }
func (*CardStatusChanged) Type() Type   { return TypeCardStatusChanged }
func (*CardPermitRenewed) Type() Type   { return TypeCardPermitRenewed }
func (*MedicalContribution) Type() Type { return TypeMedicalContribution }

func (*FundsLoaded) isData()         {}
func (*PurchaseCleared) isData()     {}
func (*PurchaseRefunded) isData()    {}
func (*TransitTap) isData()          {}
func (*CardRegistered) isData()      {}
func (*CardStatusChanged) isData()   {}
func (*CardPermitRenewed) isData()   {}
func (*MedicalContribution) isData() {}

// envelopeFields and dataFields are the JSON field names of each object, in canonical order. The
// decoder refuses any other field; the documentation's field tables are checked against them.
var envelopeFields = []string{"schema", "event_id", "type", "occurred_at", "card_token", "data"}

var dataFields = map[Type][]string{
	TypeFundsLoaded:      {"amount", "currency", "bank_reference"},
	TypePurchaseCleared:  {"merchant_id", "amount", "currency", "mcc", "authorization_id"},
	TypePurchaseRefunded: {"merchant_id", "original_event_id", "amount", "currency"},
	TypeTransitTap: {"operator_id", "device_id", "device_seq", "tapped_at", "station_id", "line",
		"direction", "mode"},
	TypeCardRegistered: {"physical_token", "digital_token", "holder_name", "nationality",
		"passport_token", "passport_masked", "social_security_token", "social_security_masked",
		"work_permit_token", "work_permit_masked", "permit_valid_until", "insurance_city",
		"issuer_bank", "bank_account_token", "bank_account_masked", "card_number_masked"},
	TypeCardStatusChanged:   {"status", "reason"},
	TypeCardPermitRenewed:   {"permit_valid_until"},
	TypeMedicalContribution: {"employer_id", "amount", "currency", "period"},
}
