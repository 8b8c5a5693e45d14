package views

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends u as encoding/json's Encoder writes it (the same bytes,
// newline included; TestUserJSONMatchesEncodingJSON holds it to that), and
// reports false, leaving dst as it was, where encoding/json would fail (a
// NaN or infinite number, a year outside 0-9999).
//
// GET /v1/users/{user_id} is the hot path of the view service: through
// reflection, encoding a user took about half of the handler's CPU in
// "fraudwatch bench". Recent alerts, rare, still go through encoding/json.
func (u *UserJSON) AppendJSON(dst []byte) ([]byte, bool) {
	b := append(dst, `{"user_id":`...)
	b = appendJSONString(b, u.UserID)
	b = append(b, `,"risk":{"level":`...)
	b = appendJSONString(b, u.Risk.Level)
	b = append(b, `,"score":`...)
	b = strconv.AppendInt(b, int64(u.Risk.Score), 10)
	b = append(b, `,"reasons":`...)
	b = appendJSONStrings(b, u.Risk.Reasons)
	b = append(b, `},"windows":`...)
	if u.Windows == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range u.Windows {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = u.Windows[i].appendJSON(b); !ok {
				return dst, false
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"stream_time":`...)
	if u.StreamTime == nil {
		b = append(b, "null"...)
	} else {
		var ok bool
		if b, ok = appendJSONTime(b, *u.StreamTime); !ok {
			return dst, false
		}
	}
	b = append(b, `,"alerts":`...)
	if u.Alerts == nil {
		b = append(b, "null"...)
	} else {
		a, err := json.Marshal(u.Alerts)
		if err != nil {
			return dst, false
		}
		b = append(b, a...)
	}
	b = append(b, `,"freshness":{"partition":`...)
	b = strconv.AppendInt(b, int64(u.Freshness.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, u.Freshness.Offset, 10)
	b = append(b, `,"recovered":`...)
	b = strconv.AppendBool(b, u.Freshness.Recovered)
	return append(b, "}}\n"...), true
}

func (w *WindowJSON) appendJSON(b []byte) ([]byte, bool) {
	var ok bool
	b = append(b, `{"start":`...)
	if b, ok = appendJSONTime(b, w.Start); !ok {
		return b, false
	}
	b = append(b, `,"end":`...)
	if b, ok = appendJSONTime(b, w.End); !ok {
		return b, false
	}
	b = append(b, `,"num_txns":`...)
	b = strconv.AppendInt(b, int64(w.NumTxns), 10)
	b = append(b, `,"total":`...)
	if b, ok = appendJSONFloat(b, w.Total); !ok {
		return b, false
	}
	b = append(b, `,"totals_by_currency":`...)
	if b, ok = w.TotalsByCurrency.appendJSON(b); !ok {
		return b, false
	}
	b = append(b, `,"countries":`...)
	b = appendJSONStrings(b, w.Countries)
	return append(b, '}'), true
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONTime is time.Time's MarshalJSON.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendJSONFloat is encoding/json's float64 encoding.
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-07 as e-7
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding with HTML escaping
// (its default): <, > and & as \u003c, \u003e, \u0026; U+2028 and U+2029
// escaped; invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSON appends t as CurrencyTotals.MarshalJSON encodes it; false if a
// sum is not a JSON number.
func (t CurrencyTotals) appendJSON(b []byte) ([]byte, bool) {
	b = append(b, '{')
	for i, x := range t {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, x.Currency)
		b = append(b, ':')
		var ok bool
		if b, ok = appendJSONFloat(b, x.Amount); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}
