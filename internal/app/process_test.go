package app

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/testkafka"
)

// TestSuperviseRetriesBuild: a processor that cannot be built (a broker of
// the metadata is down) is retried, not a reason to exit.
func TestSuperviseRetriesBuild(t *testing.T) {
	p, err := NewProcessor(ProcessConfig{Brokers: []string{"x"}, DataDir: t.TempDir(), MaxBytes: 1, Rules: rules.Default()}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	newProc := func() (*goka.Processor, error) {
		calls++
		if calls == 3 {
			cancel()
		}
		return nil, errors.New("cannot connect to broker 127.0.0.1:19092: connection refused")
	}
	if err := p.supervise(ctx, newProc, 1, nil); err != nil {
		t.Fatalf("supervise gave up: %v", err)
	}
	if calls != 3 {
		t.Fatalf("built %d times, want 3", calls)
	}
}

// TestReadyAfterFailedBuild: when the first build fails, the processor that
// is built next still reports readiness (onReady is for the first ready
// processor, not for the first attempt).
func TestReadyAfterFailedBuild(t *testing.T) {
	c := testkafka.Start(t, 2)
	cfg := ProcessConfig{Brokers: c.Brokers, DataDir: t.TempDir(), ClientID: "test", Rules: rules.Default(),
		MaxBytes: codecs.DefaultMaxBytes, MaxSkew: 5 * time.Minute}
	p, err := NewProcessor(cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	builds := 0
	p.wrapBuild = func(build func() (*goka.Processor, error)) func() (*goka.Processor, error) {
		return func() (*goka.Processor, error) {
			builds++
			if builds == 1 {
				return nil, errors.New("cannot connect to broker: connection refused")
			}
			return build()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("processor stopped: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("never ready after a failed first build")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if builds != 2 {
		t.Fatalf("built %d times, want 2", builds)
	}
}

// TestProcessorKeepsGCHeadroom: a processor with --gc-headroom-mb raises
// GOGC above the process's while it runs, and sets it back when it stops.
func TestProcessorKeepsGCHeadroom(t *testing.T) {
	old := debug.SetGCPercent(80)
	defer debug.SetGCPercent(old)
	c := testkafka.Start(t, 2)
	p, err := NewProcessor(ProcessConfig{Brokers: c.Brokers, DataDir: t.TempDir(), ClientID: "test", Rules: rules.Default(),
		MaxBytes: codecs.DefaultMaxBytes, MaxSkew: 5 * time.Minute, GCHeadroomMB: 512}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, nil) }()
	deadline := time.Now().Add(time.Minute)
	for gogc() <= 80 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is still %d with a headroom of 512 MiB and %d MiB live", gogc(), liveHeap()>>20)
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := gogc(); got != 80 {
		t.Errorf("GOGC after the processor stopped is %d, want 80 back", got)
	}
}

// --commit-interval takes 0 (the default) or 10ms to a minute.
func TestCommitIntervalError(t *testing.T) {
	for _, ok := range []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond, time.Minute} {
		if err := CommitIntervalError(ok); err != nil {
			t.Errorf("%v refused: %v", ok, err)
		}
	}
	for _, bad := range []time.Duration{-time.Second, time.Millisecond, 9 * time.Millisecond, time.Minute + time.Millisecond} {
		if err := CommitIntervalError(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
