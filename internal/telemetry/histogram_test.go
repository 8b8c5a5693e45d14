package telemetry

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Histograms exposes what a prometheus.HistogramVec given the same
// observations exposes (name, help, labels, buckets, count, sum), with
// observations from many partitions at once, of values on the bounds, between
// them, below the first and above the last.
func TestHistogramsExposeAsHistogramVec(t *testing.T) {
	buckets := prometheus.ExponentialBuckets(0.00025, 1.5, 26)
	ours := NewHistograms("test_stage_seconds", "Time in a stage.", buckets, "stage")
	theirs := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "test_stage_seconds", Help: "Time in a stage.", Buckets: buckets}, []string{"stage"})
	var values []float64
	for i := range 4096 {
		values = append(values, float64(i)/512) // sums of these are exact in any order
	}
	values = append(values, buckets...)
	values = append(values, -1, 0)
	var wg sync.WaitGroup
	for p := range int32(40) { // more partitions than shards
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, stage := range []string{"input", "loop"} {
				o, h := ours.With(stage), theirs.WithLabelValues(stage)
				for i := int(p); i < len(values); i += 40 {
					o.Observe(p, values[i])
					h.Observe(values[i])
				}
			}
		}()
	}
	wg.Wait()
	got, want := exposition(t, ours), exposition(t, theirs)
	// The sums are added in another order: equal but for rounding.
	gotSums, wantSums := sums(got), sums(want)
	if len(gotSums) != 2 || len(gotSums) != len(wantSums) {
		t.Fatalf("sums %v, want %v", gotSums, wantSums)
	}
	for k, w := range wantSums {
		if g := gotSums[k]; math.Abs(g-w) > 1e-9*math.Abs(w) {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	if got, want := noSums(got), noSums(want); got != want {
		t.Fatalf("exposition differs\n got:\n%s\nwant:\n%s", got, want)
	}
	if !bytes.Contains([]byte(got), []byte(`test_stage_seconds_count{stage="loop"} 4124`)) {
		t.Fatalf("not every observation counted:\n%s", got)
	}
}

// sums are the _sum lines of an exposition, by series.
func sums(text string) map[string]float64 {
	m := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && strings.Contains(k, "_sum") {
			f, _ := strconv.ParseFloat(v, 64)
			m[k] = f
		}
	}
	return m
}

func noSums(text string) string {
	var keep []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.Contains(l, "_sum") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func exposition(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// With is called at set up; creating a series twice returns the first.
func TestHistogramsWithReturnsTheSeries(t *testing.T) {
	h := NewHistograms("x_seconds", "x", []float64{1, 2}, "stage")
	a := h.With("input")
	a.Observe(3, 1.5)
	if b := h.With("input"); b != a {
		t.Fatal("With created a second series for the same labels")
	}
	if got := exposition(t, h); !bytes.Contains([]byte(got), []byte(`x_seconds_bucket{stage="input",le="2"} 1`)) {
		t.Fatalf("exposition:\n%s", got)
	}
}

// BenchmarkHistogramObserve observes from two goroutines at once, as two
// partitions on two cores do: prometheus.Histogram shared against a shard
// each.
func BenchmarkHistogramObserve(b *testing.B) {
	buckets := prometheus.ExponentialBuckets(0.00025, 1.5, 26)
	b.Run("prometheus", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: buckets})
		b.SetParallelism(1)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe(0.004)
			}
		})
	})
	b.Run("sharded", func(b *testing.B) {
		h := NewHistograms("x", "x", buckets).With()
		var next sync.Mutex
		p := int32(0)
		b.SetParallelism(1)
		b.RunParallel(func(pb *testing.PB) {
			next.Lock()
			mine := p
			p++
			next.Unlock()
			for pb.Next() {
				h.Observe(mine, 0.004)
			}
		})
	})
}
