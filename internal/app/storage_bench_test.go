package app

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// BenchmarkStorage is the detector's per-event storage work: read a user's
// state, decode it, apply one event, encode and write it back, with the
// offset update goka makes per record, on the LevelDB the processor uses.
func BenchmarkStorage(b *testing.B) {
	for _, users := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			st, err := levelDB(b.TempDir(), 1<<20, 0, slog.New(slog.DiscardHandler))("bench-table", 0)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if err := st.MarkRecovered(); err != nil {
				b.Fatal(err)
			}
			keys := make([]string, users)
			for i := range keys {
				keys[i] = fmt.Sprintf("usr_%06d", i)
			}
			cfg := rules.Default()
			var s rules.State
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[i%users]
				v, err := st.Get(k)
				if err != nil {
					b.Fatal(err)
				}
				s = rules.State{}
				if v != nil {
					if err := codecs.DecodeState(v, &s); err != nil {
						b.Fatal(err)
					}
				}
				ev := rules.Event{ID: fmt.Sprint(i), Time: int64(i) * 1e6, Amount: 10, Currency: "USD", Country: "AR"}
				cfg.Apply(&s, k, rules.Source{Offset: int64(i)}, ev)
				buf = codecs.AppendState(buf[:0], &s)
				if err := st.Set(k, buf); err != nil {
					b.Fatal(err)
				}
				if err := st.SetOffset(int64(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
