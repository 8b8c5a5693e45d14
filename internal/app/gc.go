package app

import (
	"context"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultServeGCHeadroomMB is the view service's default --gc-headroom-mb.
//
// A view service allocates a few KiB for every query (net/http's request and
// response, the decoded state, the JSON answer) and holds little live data
// at 100k users (about 70 MB). With Go's GOGC of 100 it collected about once
// a second, and a collection on two shared cores was the query tail: in
// alternated runs of "fraudwatch bench --skip-baseline --events 300000
// --query-rate 25000 --query-duration 5s", p99 at 25,000 requests/s was
// 3.59-34.35 ms at GOGC 100 and 1.09-2.93 ms at GOGC 400. A headroom of 256
// MiB gives the heap that room when the live data is small (GOGC about 365
// at 70 MB) and leaves GOGC at its base once the live data outgrows it (at
// 1M users), so the memory it costs is bounded by the headroom.
const DefaultServeGCHeadroomMB = 256

// DefaultGCHeadroomMB is the processor's default --gc-headroom-mb.
//
// A processor allocates about 35 objects per event (goka's message and
// promise, the decoded and encoded state, the loop record) and, at 100k
// users, holds 60-160 MB of live data, most of it records in flight: fetched
// batches, the loop's backlog, the producers' buffers. At GOGC 80 it
// collected six to seven times a second in the throughput run. GOGC 200 took
// 15.4-17.1 CPU-µs/event against 19.1-20.0 at 80 (two alternated pairs of
// "fraudwatch bench --skip-baseline --latency-duration 1s --latency-warmup
// 1s --query-duration 1s"), but it lets the heap grow to three times the
// live data, which at 1M users is past the memory budget. With a headroom of
// 160 MiB, three pairs of the same command against --gc-headroom-mb 0:
// 17.4 / 22.6 / 20.3 against 23.2 / 23.9 / 22.9 µs, 90,491 / 71,270 / 83,026
// against 71,064-71,142 events/s, restores of 1.44-1.56M against 1.03-1.33M
// records/s, for 351-365 MiB of peak RSS against 295-318. GOGC stays at its
// base once the live data passes 200 MB (160 MiB is 80% of it), about 1M
// users: there one run each ("--users 1000000 --events 2000000") peaked at
// 393 MiB against 381 (466 and 451 MiB per 1M users), within the budget.
const DefaultGCHeadroomMB = 160

// maxHeadroomGCPercent bounds the GOGC the headroom sets: a process with
// almost no live data (just started) would otherwise get a GOGC of many
// thousands. The heap goal stays below live + headroom either way.
const maxHeadroomGCPercent = 1000

// gcHeadroomEvery is how often the live heap is looked at; GOGC changes only
// after a collection, when the live heap is known.
const gcHeadroomEvery = 100 * time.Millisecond

// headroomGCPercent is the GOGC that lets a heap of live bytes grow by
// headroom bytes before the next collection, never below base (the GOGC the
// process was given) nor above maxHeadroomGCPercent (unless base is above it).
func headroomGCPercent(live, headroom uint64, base int) int {
	p := maxHeadroomGCPercent
	if live > 0 && headroom/live < maxHeadroomGCPercent/100 {
		p = int(headroom * 100 / live)
	}
	return max(p, base)
}

// gcHeadroomError checks a --gc-headroom-mb (0: off).
func gcHeadroomError(mb int) error {
	if mb < 0 {
		return fmt.Errorf("--gc-headroom-mb must be >= 0, got %d", mb)
	}
	return nil
}

// keepGCHeadroomMB is keepGCHeadroom with a headroom of mb MiB (0: it returns
// at once), for an errgroup of a command's parts.
func keepGCHeadroomMB(ctx context.Context, mb int) error {
	keepGCHeadroom(ctx, uint64(mb)<<20, gcHeadroomEvery)
	return nil
}

// keepGCHeadroom raises the process's GOGC after each collection so that
// the heap may grow by headroom bytes beyond the live data before the next
// one (see DefaultServeGCHeadroomMB), until ctx ends; then it sets GOGC back
// to what it was. GOGC as the process found it (GOGC from the environment,
// or --gc-percent) is the floor; with GOGC=off it does nothing. GOGC belongs
// to the OS process: one keepGCHeadroom per process.
func keepGCHeadroom(ctx context.Context, headroom uint64, every time.Duration) {
	samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(samples[:1])
	if headroom == 0 || samples[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	base := int(samples[0].Value.Uint64()) // GOGC=off reads as -1
	if base <= 0 {
		return
	}
	defer debug.SetGCPercent(base)
	set, cycles := base, uint64(0)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples[1:])
		if samples[2].Value.Uint64() == cycles {
			continue // no collection since the last look: the live heap is the same
		}
		cycles = samples[2].Value.Uint64()
		// Setting GOGC is cheap (no stop of the world), but a change of a few
		// percent is not worth one.
		if p := headroomGCPercent(samples[1].Value.Uint64(), headroom, base); p*20 < set*19 || p*20 > set*21 {
			debug.SetGCPercent(p)
			set = p
		}
	}
}
