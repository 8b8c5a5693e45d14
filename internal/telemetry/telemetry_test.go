package telemetry

import (
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRemaining(t *testing.T) {
	started := time.Unix(1, 0)
	for name, tc := range map[string]struct {
		ts    *goka.TableStats
		want  int64
		known bool
	}{
		"no stats":     {nil, 0, false},
		"initializing": {&goka.TableStats{Status: goka.PartitionInitializing, Recovery: &goka.RecoveryStats{}}, 0, false},
		"connecting, end not asked yet": {&goka.TableStats{Status: goka.PartitionConnecting,
			Recovery: &goka.RecoveryStats{}}, 0, false},
		// Offset is the next offset to load until a record was loaded.
		"nothing loaded yet": {&goka.TableStats{Status: goka.PartitionRecovering, Input: &goka.InputStats{},
			Recovery: &goka.RecoveryStats{StartTime: started, Offset: 10, Hwm: 100}}, 90, true},
		// Then it is the last offset loaded.
		"loading": {&goka.TableStats{Status: goka.PartitionRecovering, Input: &goka.InputStats{Count: 5, LastOffset: 14},
			Recovery: &goka.RecoveryStats{StartTime: started, Offset: 14, Hwm: 100}}, 85, true},
		"last record loaded": {&goka.TableStats{Status: goka.PartitionRecovering, Input: &goka.InputStats{Count: 90, LastOffset: 99},
			Recovery: &goka.RecoveryStats{StartTime: started, Offset: 99, Hwm: 100}}, 0, true},
		"preparing": {&goka.TableStats{Status: goka.PartitionPreparing, Recovery: &goka.RecoveryStats{Offset: 99, Hwm: 100}}, 0, true},
		"running":   {&goka.TableStats{Status: goka.PartitionRunning, Recovery: &goka.RecoveryStats{}}, 0, true},
	} {
		t.Run(name, func(t *testing.T) {
			got, known := Remaining(tc.ts)
			if got != tc.want || known != tc.known {
				t.Fatalf("Remaining = %d, %v; want %d, %v", got, known, tc.want, tc.known)
			}
		})
	}
}

func TestETA(t *testing.T) {
	var e ETA
	t0 := time.Unix(1000, 0)
	steps := []struct {
		after     time.Duration
		remaining int64
		want      float64
	}{
		{0, 1000, -1},               // no rate yet
		{time.Second, 900, 9},       // 100/s
		{2 * time.Second, 800, 8},   // still 100/s
		{3 * time.Second, 1800, 18}, // a partition was assigned: rate kept
		{4 * time.Second, 0, 0},
	}
	for i, s := range steps {
		if got := e.Observe(t0.Add(s.after), s.remaining); got != s.want {
			t.Fatalf("step %d: ETA %v, want %v", i, got, s.want)
		}
	}
}

func TestPartitionsDropsSeriesOfPartitionsNoLongerOwned(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := NewPartitions(reg)
	p.SetLag([]Lag{{"transactions", 0, 5}, {"transactions", 1, 0}})
	p.SetRestore(map[int32]int64{0: 3, 1: 0}, 12)
	p.SetLag([]Lag{{"transactions", 1, 2}})
	p.SetRestore(map[int32]int64{1: 0}, 0)
	want := `
# HELP fraudwatch_consumer_lag Records of a partition not yet consumed: end offset minus the consumer's position (process: the group's committed offset; serve: the view's next offset). Only partitions this instance owns.
# TYPE fraudwatch_consumer_lag gauge
fraudwatch_consumer_lag{partition="1",topic="transactions"} 2
# HELP fraudwatch_restore_remaining_records Changelog records a table partition still has to restore before it is ready; 0 once recovered.
# TYPE fraudwatch_restore_remaining_records gauge
fraudwatch_restore_remaining_records{partition="1"} 0
# HELP fraudwatch_restore_eta_seconds Estimated seconds until every partition is restored, from the recent restore rate; 0 when restored, -1 when unknown.
# TYPE fraudwatch_restore_eta_seconds gauge
fraudwatch_restore_eta_seconds 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestReplays(t *testing.T) {
	var nilReplays *Replays
	nilReplays.Start(0, 1, 2) // a nil *Replays ignores everything
	if _, _, ok := nilReplays.Remaining(0); ok {
		t.Fatal("nil Replays reports a replay")
	}
	var r Replays
	if _, _, ok := r.Remaining(3); ok {
		t.Fatal("a replay before Start")
	}
	r.Start(3, 10, 110)
	r.Advance(3, 60)
	r.Advance(4, 99) // not started: ignored
	if n, next, ok := r.Remaining(3); !ok || n != 50 || next != 60 {
		t.Fatalf("Remaining(3) = %d, %d, %v; want 50, 60, true", n, next, ok)
	}
	if _, _, ok := r.Remaining(4); ok {
		t.Fatal("Advance without Start made a replay")
	}
	r.Done(3)
	if _, _, ok := r.Remaining(3); ok {
		t.Fatal("a replay after Done")
	}
}
