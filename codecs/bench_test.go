package codecs

import (
	"fmt"
	"testing"
	"time"

	"github.com/fraudwatch/fraudwatch/internal/rules"
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

// BenchmarkTxnMarshalJSON writes a generator-shaped transaction, as
// "fraudwatch bench" and "produce" do for every event.
func BenchmarkTxnMarshalJSON(b *testing.B) {
	t := Txn{TransactionID: "txn_1_123456", UserID: "usr_004217", Amount: 1234.56, Currency: "BRL", Merchant: "MercadoLibre", Country: "BR",
		Timestamp: time.Date(2025, 6, 15, 14, 30, 0, 123000000, time.UTC)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.MarshalJSON(); err != nil {
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
		enc, err := RoutedCodec{}.Encode(&r)
		if err != nil {
			b.Fatal(err)
		}
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

// BenchmarkStateCycle is the detector's state work for one event: decode the
// user's state, apply the event (no alert), encode the state, for users
// holding 3 and 10 events (one every 15 s, all retained, none over a rule).
func BenchmarkStateCycle(b *testing.B) {
	c := rules.Default()
	// 3 and 10 events 15 s apart; 200 events 0.8 s apart, as a user of the
	// benchmark's bursts holds (its windows have all alerted).
	for _, shape := range []struct {
		held  int
		every time.Duration
	}{{3, 15 * time.Second}, {10, 15 * time.Second}, {200, 800 * time.Millisecond}} {
		held := shape.held
		b.Run(fmt.Sprintf("events=%d", held), func(b *testing.B) {
			var st rules.State
			t0 := int64(1749997800000000000)
			for i := 0; i < held; i++ {
				c.Apply(&st, "u", rules.Source{Offset: int64(i)}, rules.Event{ID: fmt.Sprint("txn_", i), Time: t0 + int64(i)*int64(shape.every),
					Amount: 12.5, Currency: "USD", Country: "AR"})
			}
			enc, err := State{}.Encode(&st)
			if err != nil {
				b.Fatal(err)
			}
			ev := rules.Event{ID: "txn_next", Time: t0 + int64(held-1)*int64(shape.every) + 1, Amount: 12.5, Currency: "USD", Country: "AR"}
			b.ReportAllocs()
			for b.Loop() {
				v, err := State{}.Decode(enc)
				if err != nil {
					b.Fatal(err)
				}
				s := v.(*rules.State)
				if out, alerts := c.Apply(s, "u", rules.Source{Offset: int64(held)}, ev); out != rules.Counted || len(alerts) > 0 || len(s.Events) != held+1 {
					b.Fatalf("%v, %d alerts", out, len(alerts))
				}
				if _, err := (State{}).Encode(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStateDecodeHeavy decodes the state of a user of the benchmark's
// bursts: 200 events 0.8 s apart.
func BenchmarkStateDecodeHeavy(b *testing.B) {
	c := rules.Default()
	var st rules.State
	t0 := int64(1749997800000000000)
	for i := range 200 {
		c.Apply(&st, "usr_burst_0042", rules.Source{Offset: int64(i)}, rules.Event{ID: fmt.Sprintf("txn_2a_%d", 100000+i),
			Time: t0 + int64(i)*int64(800*time.Millisecond), Amount: 12.5, Currency: "USD", Country: "US"})
	}
	enc := AppendState(nil, &st)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (State{}).Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeavyUserStream is a burst user's stream as the detector sees it:
// each event decodes the slice the last one encoded, applies, and encodes
// (about 200 events held, 0.8 s apart), with State and with StateCache.
func BenchmarkHeavyUserStream(b *testing.B) {
	for _, cd := range []struct {
		name  string
		codec interface {
			Encode(any) ([]byte, error)
			Decode([]byte) (any, error)
		}
	}{{"codec=State", State{}}, {"codec=StateCache", NewStateCache(256, 32)}} {
		b.Run(cd.name, func(b *testing.B) {
			c := rules.Default()
			st := new(rules.State)
			t0 := int64(1749997800000000000)
			i := 0
			next := func(s *rules.State) {
				c.Apply(s, "usr_burst_0042", rules.Source{Offset: int64(i)}, rules.Event{ID: fmt.Sprintf("txn_2a_%d", 100000+i),
					Time: t0 + int64(i)*int64(800*time.Millisecond), Amount: 12.5, Currency: "USD", Country: "US"})
				i++
			}
			for range 300 {
				next(st)
			}
			enc, err := cd.codec.Encode(st)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				v, err := cd.codec.Decode(enc)
				if err != nil {
					b.Fatal(err)
				}
				next(v.(*rules.State))
				if enc, err = cd.codec.Encode(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
