package bench

import (
	"math"
	"os"
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

// TestQuietGCFillsHoles: memory the heap gave back to the kernel between
// live objects (the holes a broker of an earlier run leaves) is made resident
// too, so a timed run's heap, which grows into the lowest free pages first,
// finds them resident and does not fault them in page by page.
func TestQuietGCFillsHoles(t *testing.T) {
	const hole, holes = 32 << 10, 2000
	kept := make([][]byte, 0, holes)
	for i := 0; i < 2*holes; i++ {
		b := make([]byte, hole)
		b[0] = 1
		if i%2 == 1 {
			kept = append(kept, b)
		}
	}
	debug.FreeOSMemory() // the holes go back to the kernel
	restore := quietGC(4 * hole * holes)
	defer restore()
	before := minorFaults(t)
	again := make([][]byte, holes)
	for i := range again {
		again[i] = make([]byte, hole)
		for j := 0; j < hole; j += os.Getpagesize() {
			again[i][j] = 1
		}
	}
	faults := minorFaults(t) - before
	t.Logf("%d page faults filling the holes", faults)
	if pages := int64(hole * holes / os.Getpagesize()); faults > pages/10 {
		t.Errorf("%d page faults filling %d holes of %d KiB (%d pages) after quietGC, want at most a tenth", faults, holes, hole>>10, pages)
	}
	runtime.KeepAlive(kept)
	runtime.KeepAlive(again)
}

// minorFaults is this process's minor page faults so far (/proc/self/stat).
func minorFaults(t *testing.T) int64 {
	t.Helper()
	u := procUsage(os.Getpid())
	if u.CPU == 0 && u.MinorFaults == 0 {
		t.Fatal("no /proc/self/stat to count page faults from")
	}
	return u.MinorFaults
}
