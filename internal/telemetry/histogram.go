package telemetry

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Histograms is a family of Prometheus histograms (one per set of label
// values) for hot paths that goroutines of several partitions observe at
// once. Each series keeps its counts in shards, and an observation from a
// partition goes to that partition's shard, so the partitions of an instance
// do not write the same cache lines. A prometheus.Histogram shared by the
// partitions spent most of its time moving its counters between the cores:
// four observations per event were 3.5% of the processor's CPU.
//
// It is exposed as a classic histogram, as prometheus.HistogramVec would
// expose it: the same name, help, labels and buckets. The count of a series
// is the sum of its buckets, so a scrape during observations is consistent
// (its sum may miss an observation the counts have).
type Histograms struct {
	desc   *prometheus.Desc
	bounds []float64 // upper bounds, ascending, without +Inf

	mu     sync.Mutex
	series []*Histogram
}

// Histogram is one series of Histograms.
type Histogram struct {
	values []string
	bounds []float64
	shards [][]atomic.Uint64 // per shard: a count per bucket, +Inf last, then the sum's float64 bits
}

// histogramShards is the shards of a series: partition p observes into
// shard p % histogramShards.
const histogramShards = 16

// NewHistograms returns a family of histograms named name, with help, the
// bucket upper bounds buckets (ascending; +Inf is implied) and the variable
// labels labels. Register it on a registry as any collector.
func NewHistograms(name, help string, buckets []float64, labels ...string) *Histograms {
	for i := 1; i < len(buckets); i++ {
		if !(buckets[i] > buckets[i-1]) {
			panic(fmt.Sprintf("telemetry: histogram %s: buckets must be in increasing order: %v", name, buckets))
		}
	}
	if n := len(buckets); n > 0 && math.IsInf(buckets[n-1], 1) {
		buckets = buckets[:n-1]
	}
	return &Histograms{desc: prometheus.NewDesc(name, help, labels, nil), bounds: buckets}
}

// With returns the series of the label values, creating it. It takes a
// lock: call it at set up and keep the series, not per observation.
func (h *Histograms) With(values ...string) *Histogram {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.series {
		if slices.Equal(s.values, values) {
			return s
		}
	}
	s := &Histogram{values: values, bounds: h.bounds, shards: make([][]atomic.Uint64, histogramShards)}
	// Each shard's counters are one allocation of whole cache lines (size
	// classes of multiples of 64 bytes are aligned to 64 bytes).
	n := (len(h.bounds) + 2 + 7) / 8 * 8
	for i := range s.shards {
		s.shards[i] = make([]atomic.Uint64, n)
	}
	h.series = append(h.series, s)
	return s
}

// Observe adds v, observed by partition (any int32 >= 0; others share shard 0).
func (s *Histogram) Observe(partition int32, v float64) {
	c := s.shards[max(0, partition)%histogramShards]
	c[s.bucket(v)].Add(1)
	sum := &c[len(s.bounds)+1]
	for {
		old := sum.Load()
		if sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// bucket is the index of the first bound v is at most (len(bounds): +Inf),
// as Prometheus counts it.
func (s *Histogram) bucket(v float64) int {
	if len(s.bounds) < 35 {
		for i, b := range s.bounds {
			if v <= b {
				return i
			}
		}
		return len(s.bounds)
	}
	return sort.SearchFloat64s(s.bounds, v)
}

// Describe implements prometheus.Collector.
func (h *Histograms) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *Histograms) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	series := h.series
	h.mu.Unlock()
	for _, s := range series {
		counts := make([]uint64, len(h.bounds)+1)
		var sum float64
		for _, c := range s.shards {
			for i := range counts {
				counts[i] += c[i].Load()
			}
			sum += math.Float64frombits(c[len(h.bounds)+1].Load())
		}
		cumulative := make(map[float64]uint64, len(h.bounds))
		var n uint64
		for i, b := range h.bounds {
			n += counts[i]
			cumulative[b] = n
		}
		n += counts[len(h.bounds)]
		ch <- prometheus.MustNewConstHistogram(h.desc, n, sum, cumulative, s.values...)
	}
}
