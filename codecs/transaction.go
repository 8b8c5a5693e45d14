package codecs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Reason says why a transaction was not counted. Its string is the "reason"
// field of the dead letter.
type Reason string

// The dead-letter reasons.
const (
	ReasonMalformedJSON    Reason = "malformed_json"
	ReasonMissingField     Reason = "missing_field"
	ReasonInvalidAmount    Reason = "invalid_amount"
	ReasonInvalidCurrency  Reason = "invalid_currency"
	ReasonInvalidTimestamp Reason = "invalid_timestamp"
	ReasonTooLarge         Reason = "too_large"
	ReasonLate             Reason = "late"
	ReasonFuture           Reason = "future"
)

// Reasons lists every dead-letter reason.
var Reasons = []Reason{ReasonMalformedJSON, ReasonMissingField, ReasonInvalidAmount, ReasonInvalidCurrency,
	ReasonInvalidTimestamp, ReasonTooLarge, ReasonLate, ReasonFuture}

// Invalid is the error of a record that cannot be counted.
type Invalid struct {
	Reason Reason
	Detail string // human text: what was wrong
}

func (e *Invalid) Error() string { return "codecs: " + string(e.Reason) + ": " + e.Detail }

func invalid(r Reason, format string, args ...any) *Invalid {
	return &Invalid{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Txn is one payment transaction as producers write it to "transactions".
type Txn struct {
	TransactionID string    `json:"transaction_id"`
	UserID        string    `json:"user_id"`
	Amount        float64   `json:"amount"`
	Currency      string    `json:"currency"`
	Merchant      string    `json:"merchant"`
	Country       string    `json:"country"`
	Timestamp     time.Time `json:"timestamp"`
}

// MarshalJSON writes the producer's shape, with the timestamp in UTC RFC 3339.
func (t Txn) MarshalJSON() ([]byte, error) {
	// Strings of printable ASCII but quotes and backslashes (every id a
	// producer or the generator makes) are written as they are, and the
	// result is JSON without checking it.
	plain := jsonPlain(t.TransactionID) && jsonPlain(t.UserID) && jsonPlain(t.Currency) &&
		jsonPlain(t.Merchant) && jsonPlain(t.Country) && !math.IsNaN(t.Amount) && !math.IsInf(t.Amount, 0)
	str := strconv.AppendQuote
	if plain {
		str = appendPlain
	}
	b := make([]byte, 0, 192)
	b = append(b, `{"transaction_id":`...)
	b = str(b, t.TransactionID)
	b = append(b, `,"user_id":`...)
	b = str(b, t.UserID)
	b = append(b, `,"amount":`...)
	b = strconv.AppendFloat(b, t.Amount, 'f', -1, 64)
	b = append(b, `,"currency":`...)
	b = str(b, t.Currency)
	b = append(b, `,"merchant":`...)
	b = str(b, t.Merchant)
	b = append(b, `,"country":`...)
	b = str(b, t.Country)
	b = append(b, `,"timestamp":"`...)
	b = t.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	if !plain && (!utf8.Valid(b) || !json.Valid(b)) {
		// strconv.AppendQuote escapes to Go syntax; fall back for odd strings.
		type plain Txn
		p := plain(t)
		p.Timestamp = t.Timestamp.UTC()
		return json.Marshal(p)
	}
	return b, nil
}

// jsonPlain reports whether s is printable ASCII without quotes or
// backslashes: a JSON string between quotes as it is.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendPlain appends s, which jsonPlain accepts, quoted.
func appendPlain(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Limits bound what ParseTxn accepts.
type Limits struct {
	MaxBytes int // records larger than this are too_large; 0 means no limit
}

// DefaultMaxBytes is the default largest accepted record value (64 KiB).
const DefaultMaxBytes = 64 << 10

// earliest and latest event times representable as int64 Unix nanoseconds.
var (
	minTime = time.Unix(0, math.MinInt64).Add(time.Second)
	maxTime = time.Unix(0, math.MaxInt64).Add(-time.Second)
)

type rawTxn struct {
	TransactionID json.RawMessage `json:"transaction_id"`
	UserID        json.RawMessage `json:"user_id"`
	Amount        json.RawMessage `json:"amount"`
	Currency      json.RawMessage `json:"currency"`
	Merchant      json.RawMessage `json:"merchant"`
	Country       json.RawMessage `json:"country"`
	Timestamp     json.RawMessage `json:"timestamp"`

	// flat, when scanFlat read the value, is all of it as one string, and
	// start[i] is where field i's value (in the order above) begins in it.
	flat  string
	start [7]int
}

// Indices of rawTxn's fields (see rawTxn.start).
const (
	fieldTransactionID = iota
	fieldUserID
	fieldAmount
	fieldCurrency
	fieldMerchant
	fieldCountry
	fieldTimestamp
)

// maxSharedBytes is the largest value whose string fields share one copy of
// it: a field of a larger one would keep all of it alive.
const maxSharedBytes = 1024

// ParseTxn decodes and validates one record value. A non-nil error is always
// an *Invalid naming the first problem in this order: too_large,
// malformed_json, missing_field, invalid_amount, invalid_currency,
// invalid_timestamp. Unknown fields are ignored.
func ParseTxn(b []byte, lim Limits) (Txn, error) { return parseTxn(b, lim, true) }

// parseTxn is ParseTxn; fast=false always decodes with encoding/json (tests
// compare the two).
func parseTxn(b []byte, lim Limits, fast bool) (Txn, error) {
	var t Txn
	if lim.MaxBytes > 0 && len(b) > lim.MaxBytes {
		return t, invalid(ReasonTooLarge, "value is %d bytes, more than the limit of %d", len(b), lim.MaxBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return t, invalid(ReasonMalformedJSON, "value is empty")
	}
	var r rawTxn
	str := func(idx int, dst *string) error {
		if fast {
			return r.stringField(idx, dst)
		}
		return unmarshalString(r.fieldRaw(idx), dst)
	}
	num := func(raw json.RawMessage, dst *float64) error {
		if fast {
			return jsonFloat(raw, dst)
		}
		return unmarshalFloat(raw, dst)
	}
	if fast && scanFlat(b, &r) {
		if len(b) <= maxSharedBytes {
			r.flat = string(b)
		}
	} else {
		var err error
		if r, err = unmarshalRaw(b); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field == "" {
				return t, invalid(ReasonMalformedJSON, "value is a JSON %s, not an object", te.Value)
			}
			return t, invalid(ReasonMalformedJSON, "%v", err)
		}
	}
	var err error
	strField := func(name string, idx int, dst *string) {
		if raw := r.fieldRaw(idx); err == nil && !isNull(raw) && str(idx, dst) != nil {
			err = invalid(ReasonMalformedJSON, "%s must be a JSON string, got %s", name, clip(raw))
		}
	}
	strField("transaction_id", fieldTransactionID, &t.TransactionID)
	strField("user_id", fieldUserID, &t.UserID)
	strField("merchant", fieldMerchant, &t.Merchant)
	strField("country", fieldCountry, &t.Country)
	if err != nil {
		return Txn{}, err
	}
	var missing []string
	if t.TransactionID == "" {
		missing = append(missing, "transaction_id")
	}
	if t.UserID == "" {
		missing = append(missing, "user_id")
	}
	if isNull(r.Amount) {
		missing = append(missing, "amount")
	}
	if isNull(r.Timestamp) {
		missing = append(missing, "timestamp")
	}
	if len(missing) > 0 {
		return Txn{}, invalid(ReasonMissingField, "missing or empty: %s", joinComma(missing))
	}
	if c := r.Amount[0]; c != '-' && (c < '0' || c > '9') {
		return Txn{}, invalid(ReasonInvalidAmount, "amount must be a JSON number, got %s", clip(r.Amount))
	}
	if uerr := num(r.Amount, &t.Amount); uerr != nil {
		return Txn{}, invalid(ReasonInvalidAmount, "amount %s is not a finite number", clip(r.Amount))
	}
	if t.Amount < 0 || math.IsNaN(t.Amount) || math.IsInf(t.Amount, 0) {
		return Txn{}, invalid(ReasonInvalidAmount, "amount must be >= 0, got %s", clip(r.Amount))
	}
	if isNull(r.Currency) || str(fieldCurrency, &t.Currency) != nil || !isCurrency(t.Currency) {
		return Txn{}, invalid(ReasonInvalidCurrency, "currency must be 3 uppercase letters (ISO 4217), got %s", clipOr(r.Currency, "nothing"))
	}
	var ts string
	if str(fieldTimestamp, &ts) != nil {
		return Txn{}, invalid(ReasonInvalidTimestamp, "timestamp must be an RFC 3339 string, got %s", clip(r.Timestamp))
	}
	tm, perr := time.Parse(time.RFC3339Nano, ts)
	if perr != nil {
		return Txn{}, invalid(ReasonInvalidTimestamp, "timestamp %q is not RFC 3339 (like 2025-06-15T14:30:00Z)", clipStr(ts))
	}
	if tm.Before(minTime) || tm.After(maxTime) {
		return Txn{}, invalid(ReasonInvalidTimestamp, "timestamp %q is out of the supported range (years 1678-2262)", clipStr(ts))
	}
	t.Timestamp = tm.UTC()
	return t, nil
}

// unmarshalRaw, unmarshalString and unmarshalFloat decode through
// encoding/json into values of their own, so that what parseTxn decodes into
// stays on its stack (encoding/json's argument escapes).
func unmarshalRaw(b []byte) (rawTxn, error) {
	r := new(rawTxn)
	err := json.Unmarshal(b, r)
	return *r, err
}

func unmarshalString(raw json.RawMessage, dst *string) error {
	v := new(string)
	err := json.Unmarshal(raw, v)
	*dst = *v
	return err
}

func unmarshalFloat(raw json.RawMessage, dst *float64) error {
	v := new(float64)
	err := json.Unmarshal(raw, v)
	*dst = *v
	return err
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func clip(raw json.RawMessage) string { return clipStr(string(raw)) }

func clipOr(raw json.RawMessage, empty string) string {
	if len(raw) == 0 {
		return empty
	}
	return clip(raw)
}

func clipStr(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

func joinComma(xs []string) string {
	var b bytes.Buffer
	for i, x := range xs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x)
	}
	return b.String()
}

// Transaction is the goka.Codec of the "transactions" topic. Decode validates
// with the default limits; the detector itself reads raw bytes so that bad
// records reach the dead-letter topic instead of stopping the processor.
type Transaction struct{}

// Encode encodes a Txn or *Txn as JSON.
func (Transaction) Encode(v any) ([]byte, error) {
	switch t := v.(type) {
	case Txn:
		return t.MarshalJSON()
	case *Txn:
		return t.MarshalJSON()
	}
	return nil, fmt.Errorf("codecs: Transaction cannot encode %T", v)
}

// Decode parses and validates a transaction.
func (Transaction) Decode(b []byte) (any, error) {
	t, err := ParseTxn(b, Limits{MaxBytes: DefaultMaxBytes})
	if err != nil {
		return nil, err
	}
	return t, nil
}
