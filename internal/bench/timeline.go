package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// sampleEvery is how often a latency run's processor is sampled for its
// timeline (<side>-processor.csv).
const sampleEvery = 250 * time.Millisecond

// sample is the processor's metrics and the CPU of it and of this process
// (the harness: producer, alert reader, embedded broker) at one moment.
type sample struct {
	at                 time.Time
	processor, harness usage
	harnessGCs         uint64 // the harness's own collections so far
	harnessReleased    uint64 // bytes of the harness's heap given back to the kernel
	metrics            processorMetrics
}

// sampler reads a latency run's processor every sampleEvery until stopped,
// to put what the processor did next to the alerts' timeline: a stall of the
// alerts shows as a stage's p99, as CPU the processor or the harness did or
// did not get, or as a compaction or collection in the same quarter second.
type sampler struct {
	quit    chan struct{}
	done    chan struct{}
	samples []sample
	err     error
}

// startSampler samples the processor c, whose metrics are at addr, from now
// until stop, which takes a last sample.
func startSampler(ctx context.Context, c *child, addr string) *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		self := os.Getpid()
		for last := false; ; {
			m, err := scrapeProcessor(ctx, addr)
			if err != nil {
				s.err = err
				return
			}
			sm := sample{at: time.Now(), processor: c.usage(), harness: procUsage(self), metrics: m}
			sm.harnessGCs, sm.harnessReleased = harnessHeap()
			s.samples = append(s.samples, sm)
			if last {
				return
			}
			select {
			case <-s.quit:
				last = true
			case <-t.C:
			}
		}
	}()
	return s
}

// stop takes a last sample and returns the samples, or why sampling failed.
func (s *sampler) stop() ([]sample, error) {
	close(s.quit)
	<-s.done
	return s.samples, s.err
}

// processorTimelineHeader is the header of <side>-processor.csv. Per
// interval between two samples, ending at unix_us: the CPU (ms) of the
// processor and of the harness; the harness's system CPU, page faults (a heap
// growing into fresh pages has the kernel zero them), collections (it
// stops its own in a timed run unless its heap outgrows what was made
// resident by 4 GiB: see quietGC) and the MiB of its heap given back to the
// kernel at the interval's end; each stage's events and p50/p99 (ms,
// interpolated within the histogram's buckets); state reads LevelDB
// answered; LevelDB compactions and their time (ms); and the processor's
// collections and their stop-the-world pauses (ms).
const processorTimelineHeader = "unix_us,processor_cpu_ms,harness_cpu_ms,harness_sys_ms,harness_faults,harness_gc_cycles,harness_released_mb," +
	"input_events,input_p50_ms,input_p99_ms,loop_events,loop_p50_ms,loop_p99_ms,alert_ack_events,alert_ack_p99_ms," +
	"stored_reads,compactions,compaction_ms,gc_cycles,gc_pause_ms"

// harnessHeap is how many collections this process finished, and how many
// bytes of its heap it has given back to the kernel (which a heap growing
// into them faults in again).
func harnessHeap() (gcs, released uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		gcs = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		released = s[1].Value.Uint64()
	}
	return gcs, released
}

// writeProcessorTimeline writes samples to name in the timeline dir (none:
// nothing), one row per interval between two samples.
func (r *run) writeProcessorTimeline(name string, samples []sample) error {
	if r.cfg.TimelineDir == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString(processorTimelineHeader + "\n")
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		st := stageLatencies(prev.metrics.stages, cur.metrics.stages)
		in, loop, ack := st[detector.StageInput], st[detector.StageLoop], st[detector.StageAlertAck]
		state := cur.metrics.state.sub(prev.metrics.state)
		gc := cur.metrics.gc.sub(prev.metrics.gc)
		fmt.Fprintf(&b, "%d,%d,%d,%d,%d,%d,%d,%d,%.2f,%.2f,%d,%.2f,%.2f,%d,%.2f,%.0f,%.0f,%.1f,%.0f,%.2f\n",
			cur.at.UnixMicro(), (cur.processor.CPU - prev.processor.CPU).Milliseconds(), (cur.harness.CPU - prev.harness.CPU).Milliseconds(),
			(cur.harness.System - prev.harness.System).Milliseconds(), cur.harness.MinorFaults-prev.harness.MinorFaults, cur.harnessGCs-prev.harnessGCs, cur.harnessReleased>>20,
			in.Samples, in.P50, in.P99, loop.Samples, loop.P50, loop.P99, ack.Samples, ack.P99,
			state.stored, state.compactions, 1000*state.compactionSeconds, gc.cycles, 1000*gc.pauseSeconds)
	}
	if err := os.WriteFile(filepath.Join(r.cfg.TimelineDir, name), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("bench: timeline: %w", err)
	}
	return nil
}
