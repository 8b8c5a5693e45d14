package bench

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// TestStageLatencies: the stage histograms are read from a real /metrics
// exposition, and the percentiles between two scrapes count only what was
// observed between them, interpolated within the bucket; so are the
// collections, from the Go runtime's collector.
func TestStageLatencies(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: detector.StageLatency, Buckets: []float64{0.001, 0.002, 0.004, 0.008}}, []string{"stage"})
	reg.MustRegister(h, collectors.NewGoCollector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	for range 100 {
		h.WithLabelValues("input").Observe(0.0075) // before the run: not counted
	}
	before, err := scrapeProcessor(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // 50 in (1, 2] ms, 49 in (2, 4] ms, 1 beyond 8 ms
		v := 0.0015
		switch {
		case i == 99:
			v = 0.5
		case i >= 50:
			v = 0.003
		}
		h.WithLabelValues("input").Observe(v)
	}
	h.WithLabelValues("loop").Observe(0.0005)
	runtime.GC()
	runtime.GC()
	after, err := scrapeProcessor(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if gc := after.gc.sub(before.gc); gc.cycles < 2 || gc.pauseSeconds <= 0 {
		t.Errorf("collections between the scrapes %+v, want at least the 2 forced, with pauses", gc)
	}
	got := stageLatencies(before.stages, after.stages)
	in := got["input"]
	if in.Samples != 100 || math.Abs(in.P50-2) > 1e-9 || math.Abs(in.P99-4) > 1e-9 || in.P999 != 8 {
		t.Errorf("input %+v, want 100 samples, p50 2 ms, p99 4 ms, p999 8 ms (the last bound)", in)
	}
	if lp := got["loop"]; lp.Samples != 1 || math.Abs(lp.P50-0.5) > 1e-9 {
		t.Errorf("loop %+v, want 1 sample, p50 0.5 ms (half-way into the first bucket)", lp)
	}
	if _, err := parseProcessor(strings.NewReader("other_metric 1\n")); err == nil {
		t.Error("an exposition without the stage histogram parsed")
	}
}

// gcSummary is the go_gc_duration_seconds summary of an exposition.
func gcSummary(count int, sum float64) string {
	return fmt.Sprintf("# TYPE %[1]s summary\n%[1]s{quantile=\"0.5\"} 0\n%[1]s_sum %[3]v\n%[1]s_count %[2]d\n", metricGCDuration, count, sum)
}

// TestStateCounters: the local state counters are read by their names in
// app, summed over compaction kinds, and differenced between two scrapes;
// the collections too, which must be there.
func TestStateCounters(t *testing.T) {
	exposition := func(cached, stored, absent, memtable, level0, seconds float64) string {
		return fmt.Sprintf(`# TYPE %[1]s histogram
%[1]s_bucket{stage="input",le="+Inf"} 0
%[1]s_sum{stage="input"} 0
%[1]s_count{stage="input"} 0
# TYPE %[2]s counter
%[2]s{result="cached"} %[5]v
%[2]s{result="stored"} %[6]v
%[2]s{result="absent"} %[7]v
# TYPE %[3]s counter
%[3]s{kind="memtable"} %[8]v
%[3]s{kind="level0"} %[9]v
# TYPE %[4]s counter
%[4]s %[10]v
`, detector.StageLatency, app.MetricStateReads, app.MetricCompactions, app.MetricCompactionSeconds,
			cached, stored, absent, memtable, level0, seconds)
	}
	before, err := parseProcessor(strings.NewReader(exposition(100, 10, 5, 2, 1, 0.5) + gcSummary(7, 0.002)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseProcessor(strings.NewReader(exposition(850, 160, 5, 4, 2, 0.75) + gcSummary(12, 0.0035)))
	if err != nil {
		t.Fatal(err)
	}
	d := after.state.sub(before.state)
	want := stateCounters{cached: 750, stored: 150, absent: 0, compactions: 3, compactionSeconds: 0.25}
	if d != want {
		t.Errorf("difference %+v, want %+v", d, want)
	}
	if gc := after.gc.sub(before.gc); gc.cycles != 5 || math.Abs(gc.pauseSeconds-0.0015) > 1e-12 {
		t.Errorf("collections %+v, want 5 taking 1.5 ms", gc)
	}
	if _, err := parseProcessor(strings.NewReader(exposition(1, 0, 0, 0, 0, 0))); err == nil {
		t.Error("an exposition without the collections parsed")
	}
	if s := d.storedShare(); math.Abs(s-1.0/6) > 1e-9 {
		t.Errorf("stored share %v, want 1/6", s)
	}
	if s := (stateCounters{}).storedShare(); s != 0 {
		t.Errorf("stored share of no reads %v, want 0", s)
	}
	// A processor without local state (no counters) reads as zeros.
	stagesOnly := fmt.Sprintf("# TYPE %[1]s histogram\n%[1]s_bucket{stage=\"input\",le=\"+Inf\"} 0\n%[1]s_sum{stage=\"input\"} 0\n%[1]s_count{stage=\"input\"} 0\n", detector.StageLatency)
	none, err := parseProcessor(strings.NewReader(stagesOnly + gcSummary(0, 0)))
	if err != nil || none.state != (stateCounters{}) {
		t.Errorf("without the counters: %+v, %v", none.state, err)
	}
}
