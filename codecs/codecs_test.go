package codecs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fraudwatch/fraudwatch/internal/rules"
)

const seed = `{"transaction_id": "txn_abc123", "user_id": "usr_456", "amount": 15000.50, "currency": "ARS", "merchant": "MercadoLibre", "country": "AR", "timestamp": "2025-06-15T14:30:00Z"}`

func TestParseTxnSeedShape(t *testing.T) {
	got, err := ParseTxn([]byte(seed), Limits{MaxBytes: DefaultMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	want := Txn{TransactionID: "txn_abc123", UserID: "usr_456", Amount: 15000.50, Currency: "ARS", Merchant: "MercadoLibre",
		Country: "AR", Timestamp: time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

// A flat record's strings share one copy of the value: parsing it allocates
// once (it was 9 times, one per string and the rest for encoding/json's
// arguments). A value over maxSharedBytes (whose fields would keep all of it
// alive) parses to the same fields, and no field aliases the input.
func TestParseTxnAllocatesOnce(t *testing.T) {
	v := []byte(seed)
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseTxn(v, Limits{MaxBytes: DefaultMaxBytes}) }); n != 1 {
		t.Errorf("ParseTxn of the seed record allocated %v times, want 1", n)
	}
	want, err := ParseTxn(v, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	big := []byte(strings.Replace(seed, `{`, `{"note": "`+strings.Repeat("x", maxSharedBytes)+`", `, 1))
	got, err := ParseTxn(big, Limits{})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("a %d-byte record: %+v, %v; want %+v", len(big), got, err, want)
	}
	for i := range big {
		big[i] = 'z' // nothing parsed may alias the input
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the parsed record changed with its input: %+v", got)
	}
}

func TestParseTxnReasons(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Reason // "" means valid
	}{
		{"extra fields ignored", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z","device":{"x":1}}`, ""},
		{"offset timestamp", `{"transaction_id":"a","user_id":"u","amount":0,"currency":"USD","timestamp":"2025-06-15T11:30:00.123-03:00"}`, ""},
		{"merchant and country optional", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ""},
		{"empty", ``, ReasonMalformedJSON},
		{"truncated", `{"transaction_id":"a"`, ReasonMalformedJSON},
		{"array", `[1,2]`, ReasonMalformedJSON},
		{"trailing garbage", seed + `x`, ReasonMalformedJSON},
		{"numeric user id", `{"transaction_id":"a","user_id":456,"amount":1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ReasonMalformedJSON},
		{"missing transaction_id", `{"user_id":"u","amount":1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ReasonMissingField},
		{"empty user_id", `{"transaction_id":"a","user_id":"","amount":1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ReasonMissingField},
		{"null amount", `{"transaction_id":"a","user_id":"u","amount":null,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ReasonMissingField},
		{"missing timestamp", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"USD"}`, ReasonMissingField},
		{"string amount", `{"transaction_id":"a","user_id":"u","amount":"1","currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ReasonInvalidAmount},
		{"negative amount", `{"transaction_id":"a","user_id":"u","amount":-0.01,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ReasonInvalidAmount},
		{"overflow amount", `{"transaction_id":"a","user_id":"u","amount":1e999,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`, ReasonInvalidAmount},
		{"lowercase currency", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"usd","timestamp":"2025-06-15T14:30:00Z"}`, ReasonInvalidCurrency},
		{"missing currency", `{"transaction_id":"a","user_id":"u","amount":1,"timestamp":"2025-06-15T14:30:00Z"}`, ReasonInvalidCurrency},
		{"4-letter currency", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"USDT","timestamp":"2025-06-15T14:30:00Z"}`, ReasonInvalidCurrency},
		{"date only", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"USD","timestamp":"2025-06-15"}`, ReasonInvalidTimestamp},
		{"unix number", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"USD","timestamp":1718461800}`, ReasonInvalidTimestamp},
		{"year 9999", `{"transaction_id":"a","user_id":"u","amount":1,"currency":"USD","timestamp":"9999-06-15T14:30:00Z"}`, ReasonInvalidTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTxn([]byte(tt.in), Limits{MaxBytes: DefaultMaxBytes})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var inv *Invalid
			if !errors.As(err, &inv) || inv.Reason != tt.want || inv.Detail == "" {
				t.Fatalf("got %v, want reason %s", err, tt.want)
			}
		})
	}
}

func TestParseTxnTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100)
	_, err := ParseTxn(big, Limits{MaxBytes: 99})
	var inv *Invalid
	if !errors.As(err, &inv) || inv.Reason != ReasonTooLarge {
		t.Fatalf("got %v", err)
	}
}

func TestTxnRoundTrip(t *testing.T) {
	in := Txn{TransactionID: "t\"1\u00e9\x01", UserID: "u/ü", Amount: 0.1, Currency: "EUR", Merchant: "M<&>", Country: "DE",
		Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)}
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseTxn(b, Limits{})
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %v\n in %+v\nout %+v\n%s", err, in, out, b)
	}
}

func sampleState() rules.State {
	return rules.State{
		Started:    true,
		StreamTime: 1749997800000000000,
		Sources:    []rules.Source{{Partition: 3, Offset: 99}, {Partition: 0, Direct: true, Offset: 1 << 40}},
		Events: []rules.Event{
			{ID: "a", Time: 1749997700000000000, Amount: 1.5, Currency: "USD", Country: "AR"},
			{ID: "b", Time: 1749997800000000000, Amount: math.MaxFloat64, Currency: "ARS"},
		},
		Fired: []rules.Fired{{Rule: rules.RuleVelocity, Start: 1749997740000000000, End: 1749997800000000000}},
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, in := range []rules.State{{}, sampleState()} {
		b, err := State{}.Encode(&in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := State{}.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&in, out) {
			t.Fatalf("round trip\n in %+v\nout %+v", in, out)
		}
	}
}

// States of every size round-trip, with room for one more event; a state of
// the usual size (up to 2 sources and 4 events) decodes in two allocations,
// the state with its sources and events and the one copy of its strings.
func TestStateDecodeRoom(t *testing.T) {
	for nsrc := range 5 {
		for nev := range 8 {
			in := rules.State{Started: true, StreamTime: 1749997800000000000}
			for i := range nsrc {
				in.Sources = append(in.Sources, rules.Source{Partition: int32(i), Direct: i%2 == 0, Offset: int64(100 * i)})
			}
			for i := range nev {
				in.Events = append(in.Events, rules.Event{ID: fmt.Sprint("txn_", i), Time: in.StreamTime - int64(nev-i)*1e9,
					Amount: float64(i), Currency: "USD", Country: "AR"})
			}
			b := AppendState(nil, &in)
			v, err := State{}.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			out := v.(*rules.State)
			if !reflect.DeepEqual(&in, out) {
				t.Fatalf("%d sources, %d events: round trip\n in %+v\nout %+v", nsrc, nev, in, out)
			}
			if nev > 0 && cap(out.Events) <= len(out.Events) {
				t.Errorf("%d sources, %d events: no room for one more event (cap %d)", nsrc, nev, cap(out.Events))
			}
			if nsrc > 2 || nev > 4 {
				continue
			}
			if n := testing.AllocsPerRun(20, func() { _, _ = State{}.Decode(b) }); n != 2 {
				t.Errorf("%d sources, %d events: Decode allocated %v times, want 2", nsrc, nev, n)
			}
		}
	}
}

// Encode allocates exactly the state's encoded size (StateCache's too), for
// states of random shapes and values at the edges of every varint width.
func TestStateSizeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	edge := []int64{0, 1, -1, 63, 64, -64, -65, 1 << 20, -1 << 40, math.MaxInt64, math.MinInt64}
	pick := func() int64 {
		if rng.IntN(2) == 0 {
			return edge[rng.IntN(len(edge))]
		}
		return rng.Int64() >> rng.IntN(64)
	}
	cache := NewStateCache(4, 0)
	for i := range 2000 {
		st := rules.State{Started: i%2 == 0, StreamTime: pick()}
		for range rng.IntN(5) {
			st.Sources = append(st.Sources, rules.Source{Partition: int32(pick()), Direct: rng.IntN(2) == 0, Offset: pick()})
		}
		for range rng.IntN(300) {
			st.Events = append(st.Events, rules.Event{ID: strings.Repeat("i", rng.IntN(200)), Time: pick(), Amount: 1,
				Currency: "USD", Country: strings.Repeat("c", rng.IntN(3))})
		}
		for range rng.IntN(3) {
			st.Fired = append(st.Fired, rules.Fired{Rule: rules.RuleVelocity, Start: pick(), End: pick()})
		}
		b, err := State{}.Encode(&st)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != stateSize(&st) || cap(b) != len(b) {
			t.Fatalf("state %d: encoded %d bytes in a buffer of %d; stateSize says %d", i, len(b), cap(b), stateSize(&st))
		}
		// StateCache encodes large states through a scratch buffer: the
		// same bytes, in a slice of their size.
		cb, err := cache.Encode(&st)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cb, b) || cap(cb) != len(cb) {
			t.Fatalf("state %d: StateCache encoded %d bytes in a buffer of %d, State %d bytes", i, len(cb), cap(cb), len(b))
		}
	}
}

func TestStateRejectsTruncation(t *testing.T) {
	st := sampleState()
	b := AppendState(nil, &st)
	for i := 0; i < len(b); i++ {
		if _, err := (State{}).Decode(b[:i]); err == nil {
			t.Fatalf("truncated at %d decoded without error", i)
		}
	}
	if _, err := (State{}).Decode(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func sampleRouted() Routed {
	return Routed{Partition: 7, Offset: 12345, RecordTime: 42, Key: []byte("usr_456"), HasKey: true,
		Txn: Txn{TransactionID: "txn", UserID: "usr_456", Amount: 10, Currency: "USD", Merchant: "m", Country: "US",
			Timestamp: time.Unix(0, 1749997800000000001).UTC()},
		Original: []byte(seed)}
}

func TestRoutedRoundTrip(t *testing.T) {
	in := sampleRouted()
	b, _ := RoutedCodec{}.Encode(&in)
	out, err := RoutedCodec{}.Decode(b)
	if err != nil || !reflect.DeepEqual(&in, out) {
		t.Fatalf("round trip: %v\n in %+v\nout %+v", err, in, out)
	}
	// Encode sizes its buffer once, however long the fields are.
	long := sampleRouted()
	long.Offset, long.RecordTime, long.Partition = -1<<62, 1<<62, -1<<30
	long.Txn.TransactionID = strings.Repeat("t", 200)
	long.Txn.Merchant = strings.Repeat("m", 70000)
	long.Original = bytes.Repeat([]byte("o"), 1<<16)
	for _, r := range []*Routed{&in, &long} {
		if n := testing.AllocsPerRun(20, func() { _, _ = RoutedCodec{}.Encode(r) }); n != 1 {
			t.Errorf("Encode of %d original bytes allocated %.1f times; want 1", len(r.Original), n)
		}
		if b, _ := (RoutedCodec{}).Encode(r); len(b) > routedSize(r) || cap(b) != routedSize(r) {
			t.Errorf("Encode wrote %d bytes into a buffer of %d; routedSize is %d", len(b), cap(b), routedSize(r))
		}
	}
	// Decode copies the transaction's strings once and keeps the original
	// where it is (in the record's value).
	b, _ = RoutedCodec{}.Encode(&long)
	var got Routed
	const decodes = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range decodes {
		if err := DecodeRouted(b, &got); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	strs := len(long.Txn.TransactionID) + len(long.Txn.UserID) + len(long.Txn.Currency) + len(long.Txn.Merchant) + len(long.Txn.Country)
	if per := (after.TotalAlloc - before.TotalAlloc) / decodes; per > uint64(strs+len(long.Original)/2) {
		t.Errorf("a decode allocated %d bytes; its strings are %d and its original (not to be copied) %d", per, strs, len(long.Original))
	}
	if !reflect.DeepEqual(&long, &got) || &got.Original[0] != &b[len(b)-len(long.Original)] {
		t.Errorf("long round trip differs, or its original was copied")
	}
}

func FuzzParseTxn(f *testing.F) {
	f.Add([]byte(seed))
	f.Add([]byte(`{"amount":-0}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		txn, err := ParseTxn(b, Limits{MaxBytes: DefaultMaxBytes})
		if err != nil {
			var inv *Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("error is not *Invalid: %v", err)
			}
			return
		}
		// valid values round-trip
		enc, err := txn.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseTxn(enc, Limits{})
		if err != nil || !reflect.DeepEqual(txn, again) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, txn, again)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	st := sampleState()
	f.Add(AppendState(nil, &st))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s rules.State
		if DecodeState(b, &s) != nil {
			return
		}
		again := AppendState(nil, &s)
		var s2 rules.State
		if err := DecodeState(again, &s2); err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzDecodeRouted(f *testing.F) {
	r := sampleRouted()
	f.Add(AppendRouted(nil, &r))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Routed
		if DecodeRouted(b, &r) != nil {
			return
		}
		enc := AppendRouted(nil, &r)
		var again Routed
		if err := DecodeRouted(enc, &again); err != nil || !bytes.Equal(AppendRouted(nil, &again), enc) {
			t.Fatalf("re-decode: %v\n%+v\n%+v", err, r, again)
		}
	})
}

// TestStateVersion1DropsLoopSources: a version 1 state recorded input
// positions for re-keyed records; they must not be compared with loop offsets.
func TestStateVersion1DropsLoopSources(t *testing.T) {
	in := sampleState()
	b := AppendState(nil, &in)
	b[0] = 1
	var out rules.State
	if err := DecodeState(b, &out); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Sources = []rules.Source{{Partition: 0, Direct: true, Offset: 1 << 40}}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("version 1 state\n got %+v\nwant %+v", out, want)
	}
	b[0] = 3
	if err := DecodeState(b, &out); err == nil {
		t.Fatal("version 3 accepted")
	}
}

// FuzzParseTxnFastPath checks that the hand-written scanner changes nothing:
// ParseTxn and the encoding/json-only path agree on every input, in value
// and in error.
func FuzzParseTxnFastPath(f *testing.F) {
	for _, s := range []string{seed, `{}`, `{"amount":-0}`, `null`, `{"USER_ID":"a"}`, `{"tranſaction_id":"a"}`, `{"Timestamp":1}`,
		`{"user_id":"a","user_id":"b"}`,
		`{"user_id":"\u0041"}`, `{"amount":1e400}`, `{"amount":01}`, `{"x":[1,{"y":2}]}`, `{"user_id":"a"} x`,
		`{"user_id":"\xff"}`, `{"amount":1.}`, `{"currency":"US\u0044"}`, ` {"a":true,"b":false,"c":null} `,
		strings.Replace(seed, `{`, `{"note": "`+strings.Repeat("x", maxSharedBytes)+`", `, 1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ferr := parseTxn(b, Limits{MaxBytes: DefaultMaxBytes}, true)
		slow, serr := parseTxn(b, Limits{MaxBytes: DefaultMaxBytes}, false)
		if !reflect.DeepEqual(fast, slow) || fmt.Sprint(ferr) != fmt.Sprint(serr) {
			t.Fatalf("input %q:\nfast %+v, %v\nslow %+v, %v", b, fast, ferr, slow, serr)
		}
	})
}

// TestTxnMarshalPlain: ids of printable ASCII are written as they are, the
// same bytes strconv.AppendQuote gives them, and every other string or
// amount takes the checked path: the output is JSON or an error, never
// invalid JSON.
func TestTxnMarshalPlain(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	plain := Txn{TransactionID: "txn_7_12", UserID: "usr_000042", Amount: 12.5, Currency: "USD", Merchant: "Mercado Libre (AR) #1~", Country: "US", Timestamp: at}
	b, err := plain.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"transaction_id":"txn_7_12","user_id":"usr_000042","amount":12.5,"currency":"USD","merchant":"Mercado Libre (AR) #1~","country":"US","timestamp":"2025-01-02T03:04:05.0000006Z"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	for _, s := range []string{"a\"b", `a\b`, "a\x7f", "a\x1fb", "é", "\xff"} {
		if jsonPlain(s) {
			t.Errorf("jsonPlain(%q) = true", s)
		}
		odd := plain
		odd.Merchant = s
		b, err := odd.MarshalJSON()
		if err != nil || !json.Valid(b) {
			t.Errorf("merchant %q: %s, %v", s, b, err)
		}
	}
	nan := plain
	nan.Amount = math.NaN()
	if b, err := nan.MarshalJSON(); err == nil {
		t.Errorf("a NaN amount marshalled to %s", b)
	}
}
