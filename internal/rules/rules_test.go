package rules

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var base = time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)

func at(d time.Duration) int64 { return base.Add(d).UnixNano() }

func ev(id string, d time.Duration) Event {
	return Event{ID: id, Time: at(d), Amount: 10, Currency: "USD", Country: "AR"}
}

func src(off int64) Source { return Source{Partition: 0, Offset: off} }

type step struct {
	ev      Event
	src     Source
	want    Outcome
	alerts  []Rule
	wantNum int // num_txns of the first alert, when alerts are expected
}

func run(t *testing.T, c Config, steps []step) State {
	t.Helper()
	var st State
	for i, s := range steps {
		got, alerts := c.Apply(&st, "u1", s.src, s.ev)
		if got != s.want {
			t.Fatalf("step %d (%s): outcome %v, want %v", i, s.ev.ID, got, s.want)
		}
		if len(alerts) != len(s.alerts) {
			t.Fatalf("step %d (%s): %d alerts %+v, want rules %v", i, s.ev.ID, len(alerts), alerts, s.alerts)
		}
		for j, a := range alerts {
			if a.Rule != s.alerts[j] {
				t.Fatalf("step %d: alert %d rule %v, want %v", i, j, a.Rule, s.alerts[j])
			}
		}
		if len(alerts) > 0 && s.wantNum != 0 && alerts[0].NumTxns != s.wantNum {
			t.Fatalf("step %d: num_txns %d, want %d", i, alerts[0].NumTxns, s.wantNum)
		}
	}
	return st
}

func burst(n int, from time.Duration, every time.Duration, off int64) []step {
	var s []step
	for i := 0; i < n; i++ {
		s = append(s, step{ev: ev(fmt.Sprintf("t%d", off+int64(i)), from+time.Duration(i)*every), src: src(off + int64(i)), want: Counted})
	}
	return s
}

func TestTumbling(t *testing.T) {
	c := Default()
	tests := []struct {
		name  string
		steps func() []step
	}{
		{"five is not fraud", func() []step { return burst(5, 0, time.Second, 0) }},
		{"sixth fires once", func() []step {
			s := burst(8, 0, time.Second, 0)
			s[5].alerts, s[5].wantNum = []Rule{RuleVelocity}, 6
			return s
		}},
		{"burst split by minute boundary does not fire", func() []step {
			return burst(8, 55*time.Second, time.Second, 0) // 5 in [14:30,14:31), 3 after
		}},
		{"end is exclusive", func() []step {
			s := burst(5, 0, time.Second, 0)
			s = append(s, step{ev: ev("edge", time.Minute), src: src(5), want: Counted})
			return s
		}},
		{"duplicate id counted once", func() []step {
			s := burst(5, 0, time.Second, 0)
			s = append(s, step{ev: ev("t0", 10*time.Second), src: src(5), want: Duplicate})
			return s
		}},
		{"redelivered record is a replay", func() []step {
			s := burst(3, 0, time.Second, 0)
			s = append(s, step{ev: ev("t1", time.Second), src: src(1), want: Replayed})
			return s
		}},
		{"direct and re-keyed sources are independent", func() []step {
			s := burst(3, 0, time.Second, 10)
			s = append(s, step{ev: ev("d1", time.Second), src: Source{Partition: 0, Direct: true, Offset: 1}, want: Counted})
			return s
		}},
		{"late when window end <= stream time - grace", func() []step {
			s := burst(1, 0, 0, 0)
			s = append(s, step{ev: ev("now", 3*time.Minute), src: src(1), want: Counted})
			// window [14:30,14:31) ends 14:31 <= 14:33 - 2m: late.
			s = append(s, step{ev: ev("old", 59*time.Second), src: src(2), want: Late})
			// window [14:31,14:32) ends 14:32 > 14:31: accepted.
			s = append(s, step{ev: ev("ok", time.Minute), src: src(3), want: Counted})
			return s
		}},
		{"out of order within grace fires", func() []step {
			s := burst(5, 2*time.Minute, time.Second, 0) // window 14:32
			s = append(s, burst(5, 0, time.Second, 10)...)
			s = append(s, step{ev: ev("x", 30*time.Second), src: src(20), want: Counted, alerts: []Rule{RuleVelocity}, wantNum: 6})
			return s
		}},
		{"duplicate of evicted window is late, not counted", func() []step {
			s := burst(1, 0, 0, 0)
			s = append(s, step{ev: ev("later", 5*time.Minute), src: src(1), want: Counted})
			s = append(s, step{ev: ev("t0", 0), src: src(2), want: Late})
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, c, tt.steps()) })
	}
}

func TestAmountAndCountries(t *testing.T) {
	c := Default()
	c.Velocity.Enabled = false
	c.Amount = Amount{Enabled: true, Thresholds: map[string]float64{"USD": 100}}
	c.Countries = Countries{Enabled: true, Min: 3}
	mk := func(id string, amt float64, cur, country string, d time.Duration) Event {
		return Event{ID: id, Time: at(d), Amount: amt, Currency: cur, Country: country}
	}
	steps := []step{
		{ev: mk("a", 60, "USD", "AR", 0), src: src(0), want: Counted},
		{ev: mk("b", 40, "USD", "AR", time.Second), src: src(1), want: Counted},    // 100: not above
		{ev: mk("c", 1e6, "ARS", "BR", 2*time.Second), src: src(2), want: Counted}, // no ARS threshold
		{ev: mk("d", 1, "USD", "UY", 3*time.Second), src: src(3), want: Counted, alerts: []Rule{RuleAmount, RuleCountries}},
		{ev: mk("e", 1, "USD", "CL", 4*time.Second), src: src(4), want: Counted},
	}
	st := run(t, c, steps)
	if len(st.Fired) != 2 {
		t.Fatalf("fired %+v", st.Fired)
	}
}

func TestAlertContent(t *testing.T) {
	c := Default()
	var st State
	var got []Alert
	for i := 0; i < 6; i++ {
		e := ev(fmt.Sprintf("t%d", i), time.Duration(i)*time.Second)
		e.Currency = []string{"USD", "ARS"}[i%2]
		_, a := c.Apply(&st, "u1", src(int64(i)), e)
		got = append(got, a...)
	}
	if len(got) != 1 {
		t.Fatalf("alerts: %+v", got)
	}
	a := got[0]
	if a.Start != at(0) || a.End != at(time.Minute) || a.NumTxns != 6 || a.Total != 60 ||
		a.TotalsByCurrency["USD"] != 30 || a.TotalsByCurrency["ARS"] != 30 || a.Threshold != 5 ||
		len(a.TxnIDs) != 6 || a.FirstEventTime != at(0) || a.LastEventTime != at(5*time.Second) {
		t.Fatalf("alert content: %+v", a)
	}
	if a.ID != AlertID("u1", RuleVelocity, a.Start, a.End) || a.ID == AlertID("u2", RuleVelocity, a.Start, a.End) {
		t.Fatalf("alert id not deterministic per user/rule/window")
	}
}

func TestSliding(t *testing.T) {
	c := Default()
	c.Mode = Sliding
	tests := []struct {
		name  string
		steps func() []step
	}{
		{"burst across minute boundary fires", func() []step {
			s := burst(8, 55*time.Second, time.Second, 0)
			s[5].alerts, s[5].wantNum = []Rule{RuleVelocity}, 6
			return s
		}},
		{"one alert per window length", func() []step {
			s := burst(20, 0, 5*time.Second, 0) // 12 per minute
			s[5].alerts = []Rule{RuleVelocity}  // at 25s
			s[17].alerts = []Rule{RuleVelocity} // at 85s, a window length after 25s
			return s
		}},
		{"spread out never fires", func() []step { return burst(30, 0, 12*time.Second, 0) }},
		{"late when t <= stream time - grace", func() []step {
			s := burst(1, 3*time.Minute, 0, 0)
			s = append(s, step{ev: ev("old", time.Minute), src: src(1), want: Late})
			s = append(s, step{ev: ev("ok", time.Minute+time.Second), src: src(2), want: Counted})
			return s
		}},
		{"out of order raises later windows", func() []step {
			s := burst(5, 10*time.Second, time.Second, 0)
			// window (t-1m, t] at t=14s now holds 6
			s = append(s, step{ev: ev("x", 0), src: src(9), want: Counted, alerts: []Rule{RuleVelocity}, wantNum: 6})
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, c, tt.steps()) })
	}
}

// Property: whatever the interleaving of replays and producer duplicates, the
// counted set is exactly the distinct transactions, and each window alerts once.
func TestReplayAndDuplicatesAreIdempotent(t *testing.T) {
	c := Default()
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		var st State
		counted := map[string]bool{}
		alerts := map[string]int{}
		n := 5 + r.IntN(40)
		off := int64(0)
		for i := 0; i < n; i++ {
			e := ev(fmt.Sprintf("t%d", i), time.Duration(r.IntN(90))*time.Second)
			deliveries := 1 + r.IntN(3)
			for d := 0; d < deliveries; d++ {
				o := off
				if d > 0 && r.IntN(2) == 0 {
					off++ // producer retry: new offset, same id
					o = off
				}
				out, as := c.Apply(&st, "u", src(o), e)
				if out == Counted {
					if counted[e.ID] {
						t.Fatalf("iter %d: %s counted twice", iter, e.ID)
					}
					counted[e.ID] = true
				}
				for _, a := range as {
					alerts[a.ID]++
				}
			}
			off++
		}
		if len(counted) != n {
			t.Fatalf("iter %d: counted %d of %d", iter, len(counted), n)
		}
		for id, k := range alerts {
			if k != 1 {
				t.Fatalf("iter %d: alert %s raised %d times", iter, id, k)
			}
		}
	}
}

func TestEvictionBoundsState(t *testing.T) {
	c := Default()
	var st State
	for i := 0; i < 10000; i++ {
		c.Apply(&st, "u", src(int64(i)), ev(fmt.Sprintf("t%d", i), time.Duration(i)*time.Second))
	}
	// retained: windows ending after stream time - grace, i.e. at most 4 minutes of events
	if len(st.Events) > 240 || len(st.Fired) > 4 {
		t.Fatalf("state not bounded: %d events, %d fired", len(st.Events), len(st.Fired))
	}
}

func TestWindows(t *testing.T) {
	c := Default()
	var st State
	for i := 0; i < 4; i++ {
		c.Apply(&st, "u", src(int64(i)), ev(fmt.Sprintf("t%d", i), time.Duration(i)*25*time.Second))
	}
	ws := c.Windows(st)
	if len(ws) != 2 || ws[0].NumTxns != 3 || ws[1].NumTxns != 1 || ws[0].Start != at(0) || ws[1].Start != at(time.Minute) {
		t.Fatalf("windows: %+v", ws)
	}
}

func TestValidate(t *testing.T) {
	c := Default()
	c.Size = 0
	c.Grace = -1
	c.Amount = Amount{Enabled: true, Thresholds: map[string]float64{"usd": -1}}
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"window size", "grace", "usd", "finite number > 0"} {
		if !containsStr(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestFloorDivBeforeEpoch(t *testing.T) {
	c := Default()
	tm := time.Date(1969, 12, 31, 23, 59, 30, 0, time.UTC).UnixNano()
	if got := c.TumblingStart(tm); got != time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("start %v", time.Unix(0, got).UTC())
	}
}

// TestMayAlertAgreesWithAggregate: the allocation-free pre-check says "may
// alert" exactly when some rule that has not fired crosses on the window's
// full aggregate, for random windows of random events (few currencies and
// countries, some without a country), random sets of fired rules, both window
// shapes and a low countries threshold.
func TestMayAlertAgreesWithAggregate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	currencies := []string{"USD", "EUR", "ARS"}
	countries := []string{"", "AR", "BR", "US", "DE", "FR", "ES", "IT", "PT", "NL", "BE"}
	c := Default()
	c.Countries.Enabled, c.Countries.Min = true, 3
	c.Amount.Enabled, c.Amount.Default, c.Amount.Thresholds = true, 500, map[string]float64{"ARS": 50000}
	crossed, allFired := 0, 0
	for i := 0; i < 5000; i++ {
		events := make([]Event, rng.IntN(12))
		tm := int64(0)
		for j := range events {
			tm += rng.Int64N(int64(20 * time.Second))
			events[j] = Event{ID: fmt.Sprint(j), Time: tm, Amount: float64(rng.IntN(300)),
				Currency: currencies[rng.IntN(len(currencies))], Country: countries[rng.IntN(len(countries))]}
		}
		start := rng.Int64N(int64(2 * time.Minute))
		end := start + int64(c.Size)
		open := rng.IntN(2) == 0
		cur := currencies[rng.IntN(len(currencies))]
		firedSet := rng.IntN(8) // bit r-1: rule r fired
		if rng.IntN(2) == 0 {
			firedSet = 0
		}
		fired := func(r Rule) bool { return firedSet&(1<<(r-1)) != 0 }
		a := c.aggregate(events, start, end, open, c.MaxAlertTxnIDs)
		want, crossing := false, false
		for _, r := range []Rule{RuleVelocity, RuleAmount, RuleCountries} {
			if _, hit := c.crosses(r, a.count, a.totals.Get(cur), len(a.countries), cur); hit {
				crossing = true
				want = want || !fired(r)
			}
		}
		if want {
			crossed++
		}
		if crossing && !want {
			allFired++
		}
		if got := c.mayAlert(events, start, end, open, cur, fired); got != want {
			t.Fatalf("case %d: mayAlert %v, aggregate says %v (events %+v, window [%d, %d) open %v, currency %s, fired %03b)", i, got, want, events, start, end, open, cur, firedSet)
		}
	}
	if crossed == 0 || crossed == 5000 || allFired == 0 {
		t.Fatalf("%d of 5000 windows may alert, %d cross only rules that fired: the cases do not test every answer", crossed, allFired)
	}
}

// Totals added in any order are the sums a map gives, sorted by currency.
func TestTotalsAgreeWithMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	currencies := []string{"ARS", "BRL", "EUR", "USD", "\u00e9", ""}
	for range 1000 {
		var tot Totals
		want := map[string]float64{}
		for range rng.IntN(20) {
			cur, amt := currencies[rng.IntN(len(currencies))], float64(rng.IntN(1000))/4
			tot = tot.add(cur, amt)
			want[cur] += amt
		}
		if !maps.Equal(tot.Map(), want) {
			t.Fatalf("totals %v, want %v", tot, want)
		}
		if !slices.IsSortedFunc(tot, func(a, b Total) int { return strings.Compare(a.Currency, b.Currency) }) {
			t.Fatalf("totals not sorted: %v", tot)
		}
		for _, cur := range currencies {
			if got := tot.Get(cur); got != want[cur] {
				t.Fatalf("Get(%q) = %v, want %v", cur, got, want[cur])
			}
		}
	}
}

// TestEvictKeepsExactlyTheReachableEvents: after every Apply of events that
// arrive out of order (some late, some duplicates), in both modes, the state
// holds exactly the counted events that a future event can still reach, in
// time order: the counted events filtered one by one at the stream time.
func TestEvictKeepsExactlyTheReachableEvents(t *testing.T) {
	for _, mode := range []Mode{Tumbling, Sliding} {
		c := Default()
		c.Mode = mode
		rng := rand.New(rand.NewPCG(13, uint64(mode)))
		var st State
		var counted []Event // every counted event, in time order (equal times in arrival order)
		now := time.Duration(0)
		dropped := 0
		for i := range 20000 {
			now += time.Duration(rng.Int64N(int64(2 * time.Second)))
			t0 := now - time.Duration(rng.Int64N(int64(3*time.Minute))) // up to a minute past the grace
			id := fmt.Sprint("t", i)
			if i > 0 && rng.IntN(20) == 0 {
				id = fmt.Sprint("t", i-1-rng.IntN(min(i, 50)))
			}
			e := ev(id, t0)
			if out, _ := c.Apply(&st, "u", src(int64(i)), e); out == Counted {
				pos := slices.IndexFunc(counted, func(x Event) bool { return x.Time > e.Time })
				if pos < 0 {
					pos = len(counted)
				}
				counted = slices.Insert(counted, pos, e)
			}
			cutoff := st.StreamTime - int64(c.Grace)
			reachable := func(x Event) bool { return c.windowEnd(x.Time) > cutoff }
			if mode == Sliding {
				reachable = func(x Event) bool { return x.Time > cutoff-int64(c.Size) }
			}
			before := len(counted)
			counted = slices.DeleteFunc(counted, func(x Event) bool { return !reachable(x) })
			dropped += before - len(counted)
			if !slices.Equal(st.Events, counted) {
				t.Fatalf("%v, event %d: the state holds %d events, want %d", mode, i, len(st.Events), len(counted))
			}
		}
		if dropped < 10000 {
			t.Fatalf("%v: only %d events were dropped: the case does not test eviction", mode, dropped)
		}
	}
}
