package bench

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

// TestQuietGC: a timed run turns the harness's collections off behind a
// memory limit that leaves room beyond the memory it made resident, that
// memory is free and still held (idle, not given back to the kernel), and
// the restore puts back what was set before.
func TestQuietGC(t *testing.T) {
	const resident = 256 << 20
	percent := debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	limit := debug.SetMemoryLimit(-1) // -1 reads it
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	restore := quietGC(resident)
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	quietPercent := debug.SetGCPercent(-1)
	quietLimit := debug.SetMemoryLimit(-1)
	restore()
	afterPercent := debug.SetGCPercent(percent)
	afterLimit := debug.SetMemoryLimit(-1)
	if quietPercent != -1 || quietLimit < int64(before.HeapAlloc)+resident+quietGCHeadroom || quietLimit == math.MaxInt64 {
		t.Fatalf("during a timed run: GC percent %d, memory limit %d; want off (-1) behind a limit of at least %d", quietPercent, quietLimit,
			int64(before.HeapAlloc)+resident+quietGCHeadroom)
	}
	if held := during.HeapIdle - during.HeapReleased; held < resident {
		t.Errorf("free heap held after making %d bytes resident: %d", resident, held)
	}
	if during.HeapAlloc > before.HeapAlloc+resident/4 {
		t.Errorf("heap in use %d after making memory resident, from %d: it was not freed", during.HeapAlloc, before.HeapAlloc)
	}
	if afterPercent != percent || afterLimit != limit {
		t.Fatalf("after it: GC percent %d, memory limit %d; want %d and %d as before", afterPercent, afterLimit, percent, limit)
	}
}
