package views

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// tricky strings: HTML, quotes, control bytes, line separators, invalid UTF-8.
var trickyStrings = []string{"", "usr_1", `a"b\c`, "<script>&amp;</script>", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
	"en–dash ünï 日本", "\u2028\u2029", "\xff\xfe bad \xc3", "a\xe2\x80", "😀"}

func randString(rnd *rand.Rand) string {
	if rnd.IntN(3) == 0 {
		return trickyStrings[rnd.IntN(len(trickyStrings))]
	}
	b := make([]byte, rnd.IntN(12))
	for i := range b {
		b[i] = byte(rnd.IntN(256))
	}
	return string(b)
}

func randFloat(rnd *rand.Rand) float64 {
	switch rnd.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return float64(rnd.IntN(100000)) / 100
	case 3:
		return rnd.NormFloat64() * math.Pow(10, float64(rnd.IntN(60)-30))
	case 4:
		return 1e21 * (1 + rnd.Float64())
	}
	return 1e-7 * rnd.Float64()
}

func randTime(rnd *rand.Rand) time.Time {
	t := time.Unix(rnd.Int64N(4e9), rnd.Int64N(1e9)*int64(rnd.IntN(2)))
	if rnd.IntN(4) == 0 {
		return t.In(time.FixedZone("x", (rnd.IntN(48)-24)*1800))
	}
	return t.UTC()
}

func randStrings(rnd *rand.Rand) []string {
	if rnd.IntN(4) == 0 {
		return nil
	}
	ss := make([]string, rnd.IntN(4))
	for i := range ss {
		ss[i] = randString(rnd)
	}
	return ss
}

func randUser(rnd *rand.Rand) *UserJSON {
	u := &UserJSON{UserID: randString(rnd), Risk: Risk{Level: randString(rnd), Score: rnd.IntN(201) - 100, Reasons: randStrings(rnd)},
		Freshness: Freshness{Partition: rnd.Int32(), Offset: rnd.Int64() - rnd.Int64(), Recovered: rnd.IntN(2) == 0}}
	if rnd.IntN(5) > 0 {
		u.Windows = []WindowJSON{}
		for range rnd.IntN(4) {
			w := WindowJSON{Start: randTime(rnd), End: randTime(rnd), NumTxns: rnd.IntN(1000), Total: randFloat(rnd), Countries: randStrings(rnd)}
			if rnd.IntN(4) > 0 {
				m := map[string]float64{}
				for range rnd.IntN(5) {
					m[randString(rnd)] = randFloat(rnd)
				}
				for _, cur := range slices.Sorted(maps.Keys(m)) {
					w.TotalsByCurrency = append(w.TotalsByCurrency, rules.Total{Currency: cur, Amount: m[cur]})
				}
			}
			u.Windows = append(u.Windows, w)
		}
	}
	if rnd.IntN(2) == 0 {
		t := randTime(rnd)
		u.StreamTime = &t
	}
	if rnd.IntN(3) == 0 {
		u.Alerts = []*codecs.AlertRecord{}
		for range rnd.IntN(3) {
			u.Alerts = append(u.Alerts, &codecs.AlertRecord{AlertID: randString(rnd), Rule: "velocity", UserID: u.UserID,
				Window: codecs.Window{Start: randTime(rnd), End: randTime(rnd)}, NumTxns: 6, Total: randFloat(rnd),
				TotalsByCurrency: map[string]float64{"EUR": randFloat(rnd)}, TransactionIDs: randStrings(rnd), DetectedAt: randTime(rnd)})
		}
	}
	return u
}

// TestUserJSONMatchesEncodingJSON: the hand-written encoding is byte for
// byte what encoding/json's Encoder writes, over many random users with
// tricky strings, numbers and times.
func TestUserJSONMatchesEncodingJSON(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		u := randUser(rnd)
		var want bytes.Buffer
		werr := json.NewEncoder(&want).Encode(u)
		got, ok := u.AppendJSON([]byte("prefix"))
		if werr != nil {
			if ok || string(got) != "prefix" {
				t.Fatalf("case %d: encoding/json fails (%v) but AppendJSON gave %q", i, werr, got)
			}
			continue
		}
		if !ok || !bytes.Equal(got[len("prefix"):], want.Bytes()) {
			t.Fatalf("case %d (ok %v):\n got %s\nwant %s", i, ok, got[len("prefix"):], want.Bytes())
		}
	}
}

// Where encoding/json fails, AppendJSON declines.
func TestUserJSONDeclines(t *testing.T) {
	for _, u := range []*UserJSON{
		{Windows: []WindowJSON{{Total: math.NaN()}}},
		{Windows: []WindowJSON{{TotalsByCurrency: CurrencyTotals{{Currency: "EUR", Amount: math.Inf(1)}}}}},
		{StreamTime: new(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))},
	} {
		if b, ok := u.AppendJSON(nil); ok {
			t.Errorf("AppendJSON(%+v) = %s, want a refusal", u, b)
		}
		if err := json.NewEncoder(new(bytes.Buffer)).Encode(u); err == nil {
			t.Errorf("encoding/json encodes %+v", u)
		}
	}
}

func FuzzUserJSON(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s, s, 1.5, int64(0))
	}
	f.Fuzz(func(t *testing.T, id, currency string, total float64, ns int64) {
		st := time.Unix(0, ns).UTC()
		u := &UserJSON{UserID: id, Risk: Risk{Level: "normal", Reasons: []string{id}}, StreamTime: &st,
			Windows: []WindowJSON{{Start: st, End: st, Total: total, TotalsByCurrency: CurrencyTotals{{Currency: currency, Amount: total}}, Countries: []string{currency}}}}
		var want bytes.Buffer
		werr := json.NewEncoder(&want).Encode(u)
		got, ok := u.AppendJSON(nil)
		if (werr == nil) != ok || (ok && !bytes.Equal(got, want.Bytes())) {
			t.Fatalf("got %q (%v), want %q (%v)", got, ok, want.Bytes(), werr)
		}
	})
}

// Window totals read back what they wrote, in currency order, and null
// reads as none.
func TestCurrencyTotalsRoundTrip(t *testing.T) {
	in := CurrencyTotals{{Currency: "ARS", Amount: 15000.5}, {Currency: "USD", Amount: 0.25}, {Currency: "é<", Amount: 1e21}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ARS":15000.5,"USD":0.25,"é\u003c":1e+21}`; string(b) != want { // as encoding/json writes a map
		t.Errorf("encoded %s, want %s", b, want)
	}
	var out CurrencyTotals
	if err := json.Unmarshal([]byte(`{"USD":0.25,"é<":1e21,"ARS":15000.5}`), &out); err != nil || !slices.Equal(out, in) {
		t.Errorf("decoded %v (%v), want %v", out, err, in)
	}
	if err := json.Unmarshal([]byte(`null`), &out); err != nil || out != nil {
		t.Errorf("null decoded as %v (%v)", out, err)
	}
	if b, err := json.Marshal(CurrencyTotals(nil)); err != nil || string(b) != "{}" {
		t.Errorf("no totals encoded as %s (%v), want {}", b, err)
	}
}
