package bench

import (
	"testing"
	"time"
)

// TestEventTimes: a latency run's event times go on from the last event by a
// minute per user and event, so a user keeps making one transaction a minute
// on average, and they never pass the wall clock.
func TestEventTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := &run{cfg: Config{Users: 1000}, clock: t0}
	next := r.nextEventTime
	far := t0.Add(time.Hour)
	for i := 1; i <= 3; i++ {
		if got, want := next(far), t0.Add(time.Duration(i)*60*time.Millisecond); !got.Equal(want) {
			t.Fatalf("event %d at %v, want %v", i, got, want)
		}
	}
	// A second run (the baseline's, after fraudwatch's) goes on where the
	// first stopped: the clock is the run's, not a latency run's.
	if got, want := r.nextEventTime(far), t0.Add(240*time.Millisecond); !got.Equal(want) {
		t.Fatalf("next run's first event at %v, want %v", got, want)
	}
	// Never past now, and never backwards.
	now := t0.Add(250 * time.Millisecond)
	if got := next(now); !got.Equal(now) {
		t.Fatalf("event at %v, want the wall clock %v", got, now)
	}
	if got, want := next(far), now.Add(60*time.Millisecond); !got.Equal(want) {
		t.Fatalf("event at %v, want %v", got, want)
	}
}

// percentiles leaves its input in the order the caller keeps it in: a
// timeline pairs each latency with its start time by position.
func TestPercentilesKeepOrder(t *testing.T) {
	ds := []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}
	p := percentiles(ds)
	if p.P50 != 2 || p.P999 != 3 || p.Samples != 3 {
		t.Errorf("percentiles = %+v, want p50 2 ms, p999 3 ms, 3 samples", p)
	}
	if ds[0] != 3*time.Millisecond || ds[1] != time.Millisecond || ds[2] != 2*time.Millisecond {
		t.Errorf("input reordered to %v", ds)
	}
}
