package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	gokastorage "github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// BenchmarkStorage is the detector's per-event storage work: read a user's
// state, decode it, apply one event, encode and write it back, with the
// offset update goka makes per record, in a processor's store.
// Users come in a random order, as their events do: with 100k users most
// states are not in the 1 MiB cache and are read from LevelDB's tables.
func BenchmarkStorage(b *testing.B) {
	for _, users := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			st := openRecovered(b, 1<<20)
			keys := make([]string, users)
			for i := range keys {
				keys[i] = fmt.Sprintf("usr_%06d", i)
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			order := make([]int, 1<<20)
			for i := range order {
				order[i] = rnd.IntN(users)
			}
			cfg := rules.Default()
			var s rules.State
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[order[i%len(order)]]
				v, err := st.Get(k)
				if err != nil {
					b.Fatal(err)
				}
				s = rules.State{}
				if v != nil {
					if err := codecs.DecodeState(v, &s); err != nil {
						b.Fatal(err)
					}
				}
				ev := rules.Event{ID: fmt.Sprint(i), Time: int64(i) * 1e6, Amount: 10, Currency: "USD", Country: "AR"}
				cfg.Apply(&s, k, rules.Source{Offset: int64(i)}, ev)
				// A new slice for every state, as goka's SetValue encodes it:
				// the store may keep it.
				buf, err := codecs.State{}.Encode(&s)
				if err != nil {
					b.Fatal(err)
				}
				if err := st.Set(k, buf); err != nil {
					b.Fatal(err)
				}
				if err := st.SetOffset(int64(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkReplay is a restore's storage work: a partition's changelog, in
// the order the detector wrote it, applied to an empty store with the
// processor's default per-partition caches (the state cache, and the
// replay's with restore=64MiB), until written to LevelDB and closed. It
// reports changelog records per second. perUser=1 is a compacted changelog
// (one state per user); perUser=9 is about what the default "fraudwatch
// bench" run leaves (many states per user, far more users than the state
// cache holds; with the replay's cache they fit).
func BenchmarkReplay(b *testing.B) {
	const records = 450000
	for _, restoreMB := range []int{0, DefaultRestoreCacheMB} {
		for _, perUser := range []int{1, 9} {
			b.Run(fmt.Sprintf("restore=%dMiB/perUser=%d", restoreMB, perUser), func(b *testing.B) {
				benchReplay(b, records/perUser, records, restoreMB)
			})
		}
	}
}

func benchReplay(b *testing.B, users, records, restoreMB int) {
	cfg := rules.Default()
	states := make([]rules.State, users)
	recs := make([]*kgo.Record, records)
	for i := range recs {
		u := i % users
		k := fmt.Sprintf("usr_%07d", u)
		// one event per user per minute, as the bench's generator spreads them
		ev := rules.Event{ID: fmt.Sprintf("txn_%09d", i), Time: int64(i) * int64(time.Minute) / int64(users),
			Amount: 10, Currency: "USD", Country: "AR"}
		cfg.Apply(&states[u], k, rules.Source{Offset: int64(i)}, ev)
		recs[i] = &kgo.Record{Key: []byte(k), Value: codecs.AppendState(nil, &states[u]), Offset: int64(i)}
	}
	cache := stateCacheBytes(0, DefaultStateCacheMB, 4)
	replay := 0
	if restoreMB > 0 {
		replay = stateCacheBytes(restoreMB, DefaultRestoreCacheMB, 4)
	}
	var disk int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		st, err := levelDB(dir, cache, replay, 0, nil, slog.New(slog.DiscardHandler))("bench-table", 0)
		if err != nil {
			b.Fatal(err)
		}
		s := st.(*store)
		for i := 0; i < len(recs); i += 5000 {
			if err := s.applyChangelog(recs[i:min(i+5000, len(recs))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := errors.Join(s.MarkRecovered(), s.Close()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		disk = dirBytes(b, dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(disk)/float64(users), "disk-B/user")
}

// dirBytes is the size of the files under dir.
func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkStoreGetSet is the store's own part of an event whose user is
// cached: goka's Get of the state, then its Set of the new one, among 25,000
// cached users (a partition's share of the bench's 100k).
func BenchmarkStoreGetSet(b *testing.B) {
	st := openRecovered(b, 64<<20)
	keys := make([]string, 25000)
	val := make([]byte, 120)
	for i := range keys {
		keys[i] = fmt.Sprintf("usr_%07d", i)
		if err := st.Set(keys[i], val); err != nil {
			b.Fatal(err)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	order := make([]int, 1<<16)
	for i := range order {
		order[i] = rnd.IntN(len(keys))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[order[i%len(order)]]
		v, err := st.Get(k)
		if err != nil || v == nil {
			b.Fatal(k, err)
		}
		if err := st.Set(k, v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// openRecovered opens a processor's store (processorTable) with cacheBytes of
// cache in a temporary dir, past its recovery, closed when b ends.
func openRecovered(b *testing.B, cacheBytes int) gokastorage.Storage {
	b.Helper()
	st, err := processorTable(levelDB(b.TempDir(), cacheBytes, 0, 0, nil, slog.New(slog.DiscardHandler)))("bench-table", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.MarkRecovered(); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkStoreGC is a full collection of the heap of a process whose
// store caches users (11-byte keys, 150-byte values): the marking every
// collection of a view service or processor does for its cache.
func BenchmarkStoreGC(b *testing.B) {
	for _, users := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			st := openRecovered(b, 1<<30)
			val := make([]byte, 150)
			for i := range users {
				if err := st.Set(fmt.Sprintf("usr_%07d", i), val); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(st)
		})
	}
}
