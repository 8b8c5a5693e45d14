package rules

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkApply applies a steady stream of one user's events to the user's
// state, as the detector does: one every 5 s (about 36 retained; every
// window is over the velocity rule) or one a minute (as the benchmark's
// regular users; no window raises an alert).
func BenchmarkApply(b *testing.B) {
	for _, mode := range []Mode{Tumbling, Sliding} {
		for _, every := range []time.Duration{5 * time.Second, time.Minute} {
			b.Run(fmt.Sprintf("%s/every-%v", mode, every), func(b *testing.B) { benchmarkApply(b, mode, every) })
		}
	}
}

func benchmarkApply(b *testing.B, mode Mode, every time.Duration) {
	c := Default()
	c.Mode = mode
	var st State
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("txn_%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := Event{ID: ids[i%len(ids)], Time: at(time.Duration(i) * every), Amount: 10, Currency: "USD", Country: "AR"}
		c.Apply(&st, "u", Source{Offset: int64(i)}, e)
		i++
	}
}
