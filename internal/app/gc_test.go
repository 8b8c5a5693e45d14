package app

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestHeadroomGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		base, want     int
	}{
		{70 * mib, 256 * mib, 100, 365},   // a view service at 100k users
		{400 * mib, 256 * mib, 100, 100},  // at 1M users: the base
		{400 * mib, 256 * mib, 80, 80},    // a lower base stays
		{256 * mib, 256 * mib, 100, 100},  // headroom = live is GOGC 100
		{1 * mib, 256 * mib, 100, 1000},   // just started: bounded
		{0, 256 * mib, 100, 1000},         // no collection yet
		{70 * mib, 256 * mib, 2000, 2000}, // a base above the bound stays
		{128 * mib, 512 * mib, 100, 400},
		{110 * mib, 160 * mib, 80, 145}, // a processor at 100k users
		{220 * mib, 160 * mib, 80, 80},  // at 1M users: the base
	} {
		if got := headroomGCPercent(c.live, c.headroom, c.base); got != c.want {
			t.Errorf("headroomGCPercent(%d MiB, %d MiB, %d) = %d, want %d", c.live/mib, c.headroom/mib, c.base, got, c.want)
		}
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// keepGCHeadroom sets GOGC from the live heap after a collection, and sets
// the process's GOGC back when it ends.
func TestKeepGCHeadroom(t *testing.T) {
	old := debug.SetGCPercent(150)
	defer debug.SetGCPercent(old)
	// Live data of about 64 MiB, so that GOGC lands inside its bounds.
	keep := make([][]byte, 64)
	for i := range keep {
		keep[i] = make([]byte, 1<<20)
	}
	const headroom = 512 << 20
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		keepGCHeadroom(ctx, headroom, time.Millisecond)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		want := headroomGCPercent(liveHeap(), headroom, 150)
		got := gogc()
		if want > 150 && got*20 >= want*19 && got*20 <= want*21 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d with a live heap of %d MiB, want about %d", got, liveHeap()>>20, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	runtime.KeepAlive(keep)
	cancel()
	<-done
	if got := gogc(); got != 150 {
		t.Errorf("GOGC after the end is %d, want 150 back", got)
	}
}

// With GOGC=off (or no headroom) GOGC is left alone.
func TestKeepGCHeadroomOff(t *testing.T) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	keepGCHeadroom(ctx, 256<<20, time.Millisecond) // returns at once
	if ctx.Err() != nil {
		t.Errorf("keepGCHeadroom ran until its context ended with GOGC=off")
	}
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC is %d, want off", got)
	}
}
