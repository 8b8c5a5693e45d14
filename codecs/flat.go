package codecs

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// scanFlat fills r from b when b is a flat JSON object that encoding/json
// would decode into r in exactly the same way: object keys and string values
// without escapes, ASCII keys, no known key twice or in another letter case,
// values that are strings, numbers or literals, nothing after the object.
// It reports false for anything else, and ParseTxn then uses encoding/json,
// so the accepted inputs, the results and the error messages do not change.
// It exists because encoding/json into RawMessages was the largest single
// cost of the detector (27 allocations per seed-shaped record).
func scanFlat(b []byte, r *rawTxn) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	var seen uint8
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end, ok := flatString(b, i)
		if !ok {
			return false
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		start := i
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			end, ok = flatString(b, i)
		case c == '-' || (c >= '0' && c <= '9'):
			end, ok = number(b, i)
		case c == 't':
			end, ok = literal(b, i, "true")
		case c == 'f':
			end, ok = literal(b, i, "false")
		case c == 'n':
			end, ok = literal(b, i, "null")
		default: // objects and arrays: leave them to encoding/json
			return false
		}
		if !ok {
			return false
		}
		dst, idx, fold := r.field(key)
		switch {
		case fold:
			return false
		case dst != nil:
			if seen&(1<<idx) != 0 {
				return false
			}
			seen |= 1 << idx
			*dst = b[start:end:end]
			r.start[idx] = start
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// field returns where the value of key goes and the field's index (see
// rawTxn.start). fold is true for a key that is not ASCII or that matches a
// field only in another letter case: encoding/json matches those too, so
// scanFlat leaves them to it. A key equal to a field's name matches no other
// in another case (the names differ in more than case), so it is returned
// before any other check: the loop over every field for every key was a
// quarter of ParseTxn.
func (r *rawTxn) field(key []byte) (dst *json.RawMessage, idx int, fold bool) {
	switch string(key) {
	case "transaction_id":
		return &r.TransactionID, fieldTransactionID, false
	case "user_id":
		return &r.UserID, fieldUserID, false
	case "amount":
		return &r.Amount, fieldAmount, false
	case "currency":
		return &r.Currency, fieldCurrency, false
	case "merchant":
		return &r.Merchant, fieldMerchant, false
	case "country":
		return &r.Country, fieldCountry, false
	case "timestamp":
		return &r.Timestamp, fieldTimestamp, false
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return nil, 0, true
		}
	}
	for _, name := range [...]string{"transaction_id", "user_id", "amount", "currency", "merchant", "country", "timestamp"} {
		if equalFoldASCII(key, name) {
			return nil, 0, true
		}
	}
	return nil, 0, false
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// flatString returns the index after the string starting at b[i] == '"'; ok
// is false for escapes, control characters and invalid UTF-8.
func flatString(b []byte, i int) (int, bool) {
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, ascii || utf8.Valid(b[i+1:j])
		case c == '\\' || c < 0x20:
			return 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, false
}

// number returns the index after the JSON number starting at b[i].
func number(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// stringField decodes the string value of field idx (see rawTxn.start) of a
// value scanFlat read, as a substring of r.flat when it has one: every string
// field of a record then shares one allocation, where each was one (the five
// strings and the timestamp were 6 of a seed-shaped record's allocations).
func (r *rawTxn) stringField(idx int, dst *string) error {
	raw := r.fieldRaw(idx)
	if n := len(raw); r.flat != "" && n >= 2 && raw[0] == '"' {
		// scanFlat accepted the string: no escapes, so its bytes are its value.
		*dst = r.flat[r.start[idx]+1 : r.start[idx]+n-1]
		return nil
	}
	return jsonString(raw, dst)
}

func (r *rawTxn) fieldRaw(idx int) json.RawMessage {
	switch idx {
	case fieldTransactionID:
		return r.TransactionID
	case fieldUserID:
		return r.UserID
	case fieldAmount:
		return r.Amount
	case fieldCurrency:
		return r.Currency
	case fieldMerchant:
		return r.Merchant
	case fieldCountry:
		return r.Country
	}
	return r.Timestamp
}

// jsonString decodes a JSON string value; plain ones without a copy through
// encoding/json.
func jsonString(raw json.RawMessage, dst *string) error {
	if n := len(raw); n >= 2 && raw[0] == '"' {
		if end, ok := flatString(raw, 0); ok && end == n {
			*dst = string(raw[1 : n-1])
			return nil
		}
	}
	return unmarshalString(raw, dst)
}

// jsonFloat decodes a JSON number the way encoding/json does.
func jsonFloat(raw json.RawMessage, dst *float64) error {
	if end, ok := number(raw, 0); ok && end == len(raw) {
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return err
		}
		*dst = v
		return nil
	}
	return unmarshalFloat(raw, dst)
}
