// Package telemetry holds the partition metrics that "process" and "serve"
// share: consumer lag per partition, and restore progress (records a table
// partition still has to replay from its changelog, with a rate-based ETA).
//
// It owns no Kafka client and no ticker: the callers measure on their own
// schedule and hand the figures in. Metrics go to an injected registry.
package telemetry

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
)

// Lag is one partition's consumer lag: records at or after the consumer's
// position, up to the partition's end offset.
type Lag struct {
	Topic     string
	Partition int32
	Records   int64
}

// Partitions are the per-partition gauges.
type Partitions struct {
	lag       *prometheus.GaugeVec
	remaining *prometheus.GaugeVec
	eta       prometheus.Gauge

	mu      sync.Mutex
	lagSet  map[[2]string]bool
	restSet map[string]bool
}

// NewPartitions registers the partition metrics on reg (nil: not registered).
func NewPartitions(reg prometheus.Registerer) *Partitions {
	p := &Partitions{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraudwatch_consumer_lag",
			Help: "Records of a partition not yet consumed: end offset minus the consumer's position (process: the group's committed offset; serve: the view's next offset). Only partitions this instance owns.",
		}, []string{"topic", "partition"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraudwatch_restore_remaining_records",
			Help: "Changelog records a table partition still has to restore before it is ready; 0 once recovered.",
		}, []string{"partition"}),
		eta: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraudwatch_restore_eta_seconds",
			Help: "Estimated seconds until every partition is restored, from the recent restore rate; 0 when restored, -1 when unknown.",
		}),
		lagSet:  map[[2]string]bool{},
		restSet: map[string]bool{},
	}
	p.eta.Set(-1)
	if reg != nil {
		reg.MustRegister(p.lag, p.remaining, p.eta)
	}
	return p
}

// SetLag replaces the lag series: partitions not listed are removed (this
// instance no longer owns them).
func (p *Partitions) SetLag(lags []Lag) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := map[[2]string]bool{}
	for _, l := range lags {
		k := [2]string{l.Topic, strconv.Itoa(int(l.Partition))}
		now[k] = true
		p.lag.WithLabelValues(k[0], k[1]).Set(float64(l.Records))
	}
	for k := range p.lagSet {
		if !now[k] {
			p.lag.DeleteLabelValues(k[0], k[1])
		}
	}
	p.lagSet = now
}

// SetRestore replaces the restore series with remaining (partition ->
// records) and the ETA (seconds, -1 unknown).
func (p *Partitions) SetRestore(remaining map[int32]int64, eta float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := map[string]bool{}
	for part, n := range remaining {
		k := strconv.Itoa(int(part))
		now[k] = true
		p.remaining.WithLabelValues(k).Set(float64(n))
	}
	for k := range p.restSet {
		if !now[k] {
			p.remaining.DeleteLabelValues(k)
		}
	}
	p.restSet = now
	p.eta.Set(eta)
}

// Remaining is how many changelog records a table partition still has to
// restore according to goka's stats, and whether that is known yet (it is
// not before goka asked Kafka for the partition's end offset).
//
// goka's RecoveryStats.Offset is first the next offset to load, then, once a
// record was loaded, the last offset loaded; Hwm is the end offset when the
// recovery started. A partition past recovery has nothing remaining.
func Remaining(ts *goka.TableStats) (int64, bool) {
	if ts == nil || ts.Recovery == nil {
		return 0, false
	}
	r := ts.Recovery
	switch ts.Status {
	case goka.PartitionPreparing, goka.PartitionRunning:
		return 0, true
	case goka.PartitionConnecting, goka.PartitionRecovering:
		if r.StartTime.IsZero() {
			return 0, false
		}
		next := r.Offset
		if ts.Input != nil && ts.Input.Count > 0 && ts.Input.LastOffset == r.Offset {
			next = r.Offset + 1
		}
		return max(0, r.Hwm-next), true
	default:
		return 0, false
	}
}

// ETA estimates when a restore ends from how fast the remaining records
// shrink (an exponentially weighted rate over the observations).
type ETA struct {
	prev   int64
	prevAt time.Time
	rate   float64 // records per second
}

// Observe records the total remaining at now and returns the estimated
// seconds until it reaches zero: 0 when nothing remains, -1 while no
// progress was seen yet. Growth (newly assigned partitions) restarts the
// measurement without forgetting the rate.
func (e *ETA) Observe(now time.Time, remaining int64) float64 {
	defer func() { e.prev, e.prevAt = remaining, now }()
	if remaining <= 0 {
		return 0
	}
	if dt := now.Sub(e.prevAt).Seconds(); !e.prevAt.IsZero() && dt > 0 && remaining <= e.prev {
		inst := float64(e.prev-remaining) / dt
		if e.rate == 0 {
			e.rate = inst
		} else {
			e.rate = 0.7*e.rate + 0.3*inst
		}
	}
	if e.rate <= 0 || math.IsNaN(e.rate) {
		return -1
	}
	return float64(remaining) / e.rate
}

// Replays is the progress of the changelog replays that run before goka's
// own recovery of a table partition (fraudwatch reads the changelog ahead of
// goka in large batches; goka's stats see nothing of it). The zero value is
// ready to use; a nil *Replays reports nothing.
type Replays struct {
	mu    sync.Mutex
	parts map[int32]replayPos
}

type replayPos struct{ next, end int64 }

// Start records that partition's replay reads from next up to end.
func (r *Replays) Start(partition int32, next, end int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parts == nil {
		r.parts = map[int32]replayPos{}
	}
	r.parts[partition] = replayPos{next, end}
}

// Advance records that every record before next is applied.
func (r *Replays) Advance(partition int32, next int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.parts[partition]; ok {
		p.next = next
		r.parts[partition] = p
	}
}

// Done forgets partition's replay: goka's recovery takes over.
func (r *Replays) Done(partition int32) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.parts, partition)
}

// Remaining is what partition's running replay still has to read, and the
// next offset it reads; ok is false when no replay of it runs.
func (r *Replays) Remaining(partition int32) (remaining, next int64, ok bool) {
	if r == nil {
		return 0, 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.parts[partition]
	return max(0, p.end-p.next), p.next, ok
}
