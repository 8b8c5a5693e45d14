package rules

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkApply applies a steady stream of one user's events (one every 5 s,
// so about 36 are retained) to the user's state, as the detector does.
func BenchmarkApply(b *testing.B) {
	for _, mode := range []Mode{Tumbling, Sliding} {
		b.Run(mode.String(), func(b *testing.B) {
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
				e := Event{ID: ids[i%len(ids)], Time: at(time.Duration(i) * 5 * time.Second), Amount: 10, Currency: "USD", Country: "AR"}
				c.Apply(&st, "u", Source{Offset: int64(i)}, e)
				i++
			}
		})
	}
}
