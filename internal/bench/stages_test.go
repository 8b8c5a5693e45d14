package bench

import (
	"context"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// TestStageLatencies: the stage histograms are read from a real /metrics
// exposition, and the percentiles between two scrapes count only what was
// observed between them, interpolated within the bucket.
func TestStageLatencies(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: detector.StageLatency, Buckets: []float64{0.001, 0.002, 0.004, 0.008}}, []string{"stage"})
	reg.MustRegister(h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	for range 100 {
		h.WithLabelValues("input").Observe(0.0075) // before the run: not counted
	}
	before, err := scrapeStages(context.Background(), addr)
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
	after, err := scrapeStages(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	got := stageLatencies(before, after)
	in := got["input"]
	if in.Samples != 100 || math.Abs(in.P50-2) > 1e-9 || math.Abs(in.P99-4) > 1e-9 || in.P999 != 8 {
		t.Errorf("input %+v, want 100 samples, p50 2 ms, p99 4 ms, p999 8 ms (the last bound)", in)
	}
	if lp := got["loop"]; lp.Samples != 1 || math.Abs(lp.P50-0.5) > 1e-9 {
		t.Errorf("loop %+v, want 1 sample, p50 0.5 ms (half-way into the first bucket)", lp)
	}
	if _, err := parseStages(strings.NewReader("other_metric 1\n")); err == nil {
		t.Error("an exposition without the stage histogram parsed")
	}
}
