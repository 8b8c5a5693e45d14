package codecs

import (
	"testing"
)

func BenchmarkParseTxn(b *testing.B) {
	v := []byte(seed)
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTxn(v, Limits{MaxBytes: DefaultMaxBytes}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStateEncode(b *testing.B) {
	st := sampleState()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendState(buf[:0], &st)
	}
}

func BenchmarkStateDecode(b *testing.B) {
	st := sampleState()
	enc := AppendState(nil, &st)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		var s = st
		if err := DecodeState(enc, &s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRoutedRoundTrip(b *testing.B) {
	r := sampleRouted()
	b.ReportAllocs()
	var out Routed
	for b.Loop() {
		enc := AppendRouted(nil, &r)
		if err := DecodeRouted(enc, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseTxnEncodingJSON is ParseTxn without its scanner: what every
// record cost before it, and still costs for inputs the scanner leaves to
// encoding/json.
func BenchmarkParseTxnEncodingJSON(b *testing.B) {
	v := []byte(seed)
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseTxn(v, Limits{MaxBytes: DefaultMaxBytes}, false); err != nil {
			b.Fatal(err)
		}
	}
}
