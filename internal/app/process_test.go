package app

import (
	"context"
	"errors"
	"testing"

	"github.com/lovoo/goka"

	"github.com/fraudwatch/fraudwatch/internal/rules"
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
