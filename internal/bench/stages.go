package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// histogram is one stage's cumulative buckets, as scraped.
type histogram struct {
	bounds []float64 // upper bounds, seconds, ascending (without +Inf)
	counts []uint64  // cumulative counts per bound
	total  uint64
}

// processorMetrics is what the bench reads from fraudwatch's processor's
// /metrics around its latency run.
type processorMetrics struct {
	stages map[string]histogram // detector.StageLatency by stage
	state  stateCounters
	gc     gcCounters
}

// gcCounters are the processor's garbage collections, from the Go runtime's
// go_gc_duration_seconds: how many, and their stop-the-world pauses.
type gcCounters struct {
	cycles, pauseSeconds float64
}

// sub is c minus an earlier scrape b.
func (c gcCounters) sub(b gcCounters) gcCounters {
	return gcCounters{cycles: c.cycles - b.cycles, pauseSeconds: c.pauseSeconds - b.pauseSeconds}
}

// metricGCDuration is the Go runtime collector's summary of collections.
const metricGCDuration = "go_gc_duration_seconds"

// stateCounters are the processor's local state counters (see app's
// storeStats); zero where the exposition has none.
type stateCounters struct {
	cached, stored, absent float64 // state reads by where they were answered
	compactions            float64 // LevelDB compactions, all kinds
	compactionSeconds      float64
}

// sub is c minus an earlier scrape b.
func (c stateCounters) sub(b stateCounters) stateCounters {
	return stateCounters{cached: c.cached - b.cached, stored: c.stored - b.stored, absent: c.absent - b.absent,
		compactions: c.compactions - b.compactions, compactionSeconds: c.compactionSeconds - b.compactionSeconds}
}

// storedShare is the share of state reads LevelDB answered (0 if none).
func (c stateCounters) storedShare() float64 {
	if n := c.cached + c.stored + c.absent; n > 0 {
		return c.stored / n
	}
	return 0
}

// scrapeProcessor reads the processor's /metrics at addr.
func scrapeProcessor(ctx context.Context, addr string) (processorMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return processorMetrics{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return processorMetrics{}, fmt.Errorf("bench: reading the processor's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return processorMetrics{}, fmt.Errorf("bench: reading the processor's metrics: %s", resp.Status)
	}
	return parseProcessor(resp.Body)
}

// parseProcessor reads the detector.StageLatency histograms, the local state
// counters and the collections of a Prometheus text exposition; the
// histograms and the collections must be there.
func parseProcessor(r io.Reader) (processorMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return processorMetrics{}, fmt.Errorf("bench: parsing the processor's metrics: %w", err)
	}
	stages, err := stageHistograms(mfs)
	if err != nil {
		return processorMetrics{}, err
	}
	var st stateCounters
	for _, m := range mfs[app.MetricStateReads].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() != "result" {
				continue
			}
			switch v := m.GetCounter().GetValue(); l.GetValue() {
			case "cached":
				st.cached = v
			case "stored":
				st.stored = v
			case "absent":
				st.absent = v
			}
		}
	}
	for _, m := range mfs[app.MetricCompactions].GetMetric() {
		st.compactions += m.GetCounter().GetValue()
	}
	for _, m := range mfs[app.MetricCompactionSeconds].GetMetric() {
		st.compactionSeconds += m.GetCounter().GetValue()
	}
	if len(mfs[metricGCDuration].GetMetric()) == 0 {
		return processorMetrics{}, fmt.Errorf("bench: the processor's metrics have no %s", metricGCDuration)
	}
	var gc gcCounters
	for _, m := range mfs[metricGCDuration].GetMetric() {
		gc.cycles += float64(m.GetSummary().GetSampleCount())
		gc.pauseSeconds += m.GetSummary().GetSampleSum()
	}
	return processorMetrics{stages: stages, state: st, gc: gc}, nil
}

// stageHistograms are the detector.StageLatency histograms of mfs, by stage.
func stageHistograms(mfs map[string]*dto.MetricFamily) (map[string]histogram, error) {
	mf, ok := mfs[detector.StageLatency]
	if !ok || mf.GetType() != dto.MetricType_HISTOGRAM {
		return nil, fmt.Errorf("bench: the processor's metrics have no histogram %s", detector.StageLatency)
	}
	out := map[string]histogram{}
	for _, m := range mf.GetMetric() {
		stage := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "stage" {
				stage = l.GetValue()
			}
		}
		h := histogram{total: m.GetHistogram().GetSampleCount()}
		for _, b := range m.GetHistogram().GetBucket() {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue
			}
			h.bounds = append(h.bounds, b.GetUpperBound())
			h.counts = append(h.counts, b.GetCumulativeCount())
		}
		out[stage] = h
	}
	return out, nil
}

// stageLatencies are the percentiles (ms) of every stage between two scrapes
// of the same process. A percentile is interpolated within its bucket, as
// Prometheus's histogram_quantile does; one beyond the last bound is that
// bound.
func stageLatencies(before, after map[string]histogram) map[string]Percentiles {
	out := map[string]Percentiles{}
	for stage, a := range after {
		b := before[stage]
		d := histogram{bounds: a.bounds, total: a.total - b.total}
		for i, c := range a.counts {
			if len(b.counts) == len(a.counts) {
				c -= b.counts[i]
			}
			d.counts = append(d.counts, c)
		}
		out[stage] = Percentiles{P50: d.quantile(0.5) * 1e3, P99: d.quantile(0.99) * 1e3, P999: d.quantile(0.999) * 1e3, Samples: int(d.total)}
	}
	return out
}

// quantile of h in seconds (0 if empty).
func (h histogram) quantile(q float64) float64 {
	if h.total == 0 || len(h.bounds) == 0 {
		return 0
	}
	rank := q * float64(h.total)
	i := sort.Search(len(h.counts), func(i int) bool { return float64(h.counts[i]) >= rank })
	if i == len(h.counts) {
		return h.bounds[len(h.bounds)-1]
	}
	lo, below := 0.0, uint64(0)
	if i > 0 {
		lo, below = h.bounds[i-1], h.counts[i-1]
	}
	in := h.counts[i] - below
	if in == 0 {
		return h.bounds[i]
	}
	return lo + (h.bounds[i]-lo)*(rank-float64(below))/float64(in)
}
