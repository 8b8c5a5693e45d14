package bench

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestQuietGC: a timed run turns the harness's collections off behind a
// memory limit, and the restore puts back what was set before.
func TestQuietGC(t *testing.T) {
	percent := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	limit := debug.SetMemoryLimit(-1) // -1 reads it
	restore := quietGC()
	quietPercent := debug.SetGCPercent(-1)
	quietLimit := debug.SetMemoryLimit(-1)
	restore()
	afterPercent := debug.SetGCPercent(percent)
	afterLimit := debug.SetMemoryLimit(-1)
	if quietPercent != -1 || quietLimit <= 0 || quietLimit == math.MaxInt64 {
		t.Fatalf("during a timed run: GC percent %d, memory limit %d; want off (-1) behind a limit", quietPercent, quietLimit)
	}
	if afterPercent != percent || afterLimit != limit {
		t.Fatalf("after it: GC percent %d, memory limit %d; want %d and %d as before", afterPercent, afterLimit, percent, limit)
	}
}
