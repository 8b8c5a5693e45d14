package app

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gokastorage "github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/twmb/franz-go/pkg/kgo"
)

func openStore(t *testing.T, dir string, cacheBytes int) *store {
	t.Helper()
	return openReplaying(t, dir, cacheBytes, 0)
}

// openReplaying opens a store whose cache may hold replayBytes until MarkRecovered.
func openReplaying(t *testing.T, dir string, cacheBytes, replayBytes int) *store {
	t.Helper()
	return openBuilt(t, levelDB(dir, cacheBytes, replayBytes, 0, nil, slog.New(slog.DiscardHandler)))
}

// openTable opens partition 0 of a table in dir with a 1 MiB cache: a
// processor's store (processorTable) or a view's.
func openTable(t *testing.T, dir string, processor bool) *store {
	t.Helper()
	b := levelDB(dir, 1<<20, 0, 0, nil, slog.New(slog.DiscardHandler))
	if processor {
		b = processorTable(b)
	}
	return openBuilt(t, b)
}

// openBuilt opens partition 0 of "table" as b builds it.
func openBuilt(t *testing.T, b gokastorage.Builder) *store {
	t.Helper()
	st, err := b("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*store)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	return s
}

// openLive opens a store whose replay is over, as goka leaves it once the
// partition is recovered.
func openLive(t *testing.T, dir string, cacheBytes int) *store {
	t.Helper()
	s := openStore(t, dir, cacheBytes)
	if err := s.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	return s
}

// cachedEntry is a key's entry in a store's cache.
type cachedEntry struct {
	val   []byte
	dirty bool
}

// cached returns every key s caches; s.mu must be held.
func cached(s *store) map[string]cachedEntry {
	all := map[string]cachedEntry{}
	for i := range s.mem.slots {
		if e := s.mem.ent(i); e.flags&entUsed != 0 {
			all[string(s.mem.key(e))] = cachedEntry{bytes.Clone(s.mem.value(i)), e.flags&entDirty != 0}
		}
	}
	return all
}

// crash stops s like a killed process: LevelDB is closed without writing
// what s buffers.
func crash(t *testing.T, s *store) {
	t.Helper()
	close(s.stop)
	<-s.stopped
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStoreOffsetNeverLeadsValues: after a crash at any point, every value
// written before the stored offset was reported is in LevelDB, so replaying
// the changelog from the stored offset restores everything. It holds while
// the changelog is replayed (write-back when the cache is full) and after.
func TestStoreOffsetNeverLeadsValues(t *testing.T) {
	for _, tc := range []struct {
		name       string
		open       func(*testing.T, string, int) *store
		cacheBytes int
		mustAfter  int // writes after which a batch must have been written
		ns         []int
	}{
		// entries of about 125 bytes: maxDirtyKeys of them take less than
		// the cache, so the writer waits at maxDirtyKeys
		{"live", openLive, 4 << 20, maxDirtyKeys, nil},
		// entries of about 126 bytes: the cache is full after about 520
		{"replay", openStore, 64 << 10, 1000, nil},
		// full after about 33,000 (a write-back due), 50,000 (a must):
		// written back in several batches
		{"replay-chunks", openStore, 4 << 20, 52000, []int{2*writeBackChunk + 5, 60000}},
	} {
		ns := tc.ns
		if ns == nil {
			ns = []int{1, flushKeys - 1, flushKeys, 3*flushKeys + 17, holdKeys + flushKeys + 3, maxDirtyKeys + 1}
		}
		for _, n := range ns {
			t.Run(fmt.Sprintf("%s/%d", tc.name, n), func(t *testing.T) {
				testOffsetNeverLeadsValues(t, tc.open, tc.cacheBytes, tc.mustAfter, n)
			})
		}
	}
}

func testOffsetNeverLeadsValues(t *testing.T, open func(*testing.T, string, int) *store, cacheBytes, mustAfter, n int) {
	dir := t.TempDir()
	s := open(t, dir, cacheBytes)
	for i := range n {
		// goka: the value is Set, then produced to the changelog;
		// the ack reports its offset.
		if err := s.Set(fmt.Sprintf("usr_%05d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if err := s.SetOffset(int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	crash(t, s)
	s = openLive(t, dir, 1<<20)
	defer s.Close()
	off, err := s.GetOffset(-1)
	if err != nil {
		t.Fatal(err)
	}
	// Batches are written in the background; a writer that gets
	// too far ahead writes one itself.
	if n > mustAfter && off < 0 {
		t.Errorf("no offset stored after %d writes", n)
	}
	for i := int64(0); i <= off; i++ {
		v, err := s.Get(fmt.Sprintf("usr_%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		if string(v) != strconv.FormatInt(i, 10) {
			t.Fatalf("offset %d is stored but the value written before it is %q", off, v)
		}
	}
}

// TestStoreReplayWritesBackWhenFull: while goka replays the changelog, keys
// rewritten many times stay in memory and reach LevelDB once the replay ends;
// distinct keys beyond the cache are written back with the memory bounded.
func TestStoreReplayWritesBackWhenFull(t *testing.T) {
	const cacheBytes = 64 << 10
	s := openStore(t, t.TempDir(), cacheBytes)
	defer s.Close()
	inDB := func(key string) bool {
		t.Helper()
		_, err := s.db.Get([]byte(key), nil)
		if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	off := int64(0)
	for round := range 200 {
		for k := range 20 {
			if err := s.Set(fmt.Sprintf("usr_%02d", k), []byte(strconv.Itoa(round))); err != nil {
				t.Fatal(err)
			}
			if err := s.SetOffset(off); err != nil {
				t.Fatal(err)
			}
			off++
		}
	}
	if n := dueAfterAge(s); n != 0 {
		t.Fatalf("the replay's write-back takes %d entries once they are old, before the cache is full", n)
	}
	if inDB("usr_00") || inDB(offsetKey) {
		t.Fatal("the replay wrote back before the cache was full")
	}
	if err := s.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	// written back in the background
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, err := s.db.Get([]byte("usr_07"), nil)
		if err == nil && string(v) == "199" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after MarkRecovered LevelDB holds usr_07 = %q, %v; want 199", v, err)
		}
	}

	// A second replay (a restart) of many distinct keys.
	s2 := openStore(t, t.TempDir(), cacheBytes)
	defer s2.Close()
	if peak, limit := replayDistinct(t, s2, 5000), cacheBytes+cacheBytes/2+200; peak > limit {
		t.Fatalf("the replay held %d bytes, more than %d", peak, limit)
	}
	if _, err := s2.db.Get([]byte("usr_00000"), nil); err != nil {
		t.Fatalf("the replay of 5000 keys never wrote back: %v", err)
	}
}

// dueAfterAge is how many entries the background writer of s takes once
// its timer has ticked past maxDirtyAge: it ticks the age marks itself and
// asks the writer's decision, instead of waiting for the timer to.
func dueAfterAge(s *store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	aged := 0
	for range dirtyAgeTicks + 1 {
		aged = s.tickLocked()
	}
	return s.dueCountLocked(aged)
}

// replayDistinct sets n distinct keys (usr_00000 = "0", ...) as a replay of
// the changelog does, each with its offset, and returns the most memory the
// cache held on the way.
func replayDistinct(t *testing.T, s *store, n int) (peak int) {
	t.Helper()
	for i := range n {
		if err := s.Set(fmt.Sprintf("usr_%05d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if err := s.SetOffset(int64(i)); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		peak = max(peak, s.memBytes)
		s.mu.Unlock()
	}
	return peak
}

// TestStoreReplayBudget: with a replay budget larger than the cache, a
// replay that fits in it writes nothing to LevelDB until MarkRecovered, and
// holds no more than one and a half budgets; after MarkRecovered everything
// is written back with the last offset, the cache shrinks to its own size,
// and every value reads back.
func TestStoreReplayBudget(t *testing.T) {
	const cacheBytes, replayBytes = 16 << 10, 1 << 20
	s := openReplaying(t, t.TempDir(), cacheBytes, replayBytes)
	defer s.Close()
	const keys = 5000 // about 630 KB with the entry overhead
	if peak := replayDistinct(t, s, keys); peak <= cacheBytes || peak > replayBytes {
		t.Fatalf("the replay held %d bytes; want more than the cache (%d) and within the budget (%d)", peak, cacheBytes, replayBytes)
	}
	if n := dueAfterAge(s); n != 0 {
		t.Fatalf("the replay's write-back takes %d entries once they are old, within the budget", n)
	}
	for _, k := range []string{"usr_00000", offsetKey} {
		if _, err := s.db.Get([]byte(k), nil); !errors.Is(err, leveldb.ErrNotFound) {
			t.Fatalf("LevelDB holds %s before the replay ended (%v): the budget did not hold the write-back", k, err)
		}
	}
	if err := s.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, err := s.db.Get([]byte(offsetKey), nil)
		s.mu.Lock()
		used := s.memBytes
		s.mu.Unlock()
		if err == nil && string(v) == strconv.Itoa(keys-1) && used <= cacheBytes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after MarkRecovered: stored offset %q (%v), want %d; cache %d bytes, want <= %d", v, err, keys-1, used, cacheBytes)
		}
	}
	for i := range keys {
		v, err := s.Get(fmt.Sprintf("usr_%05d", i))
		if err != nil || string(v) != strconv.Itoa(i) {
			t.Fatalf("usr_%05d = %q, %v; want %d", i, v, err, i)
		}
	}

	// Beyond the budget the replay writes back, bounded by it.
	s2 := openReplaying(t, t.TempDir(), cacheBytes, 64<<10)
	defer s2.Close()
	if peak, limit := replayDistinct(t, s2, keys), 64<<10+32<<10+200; peak > limit {
		t.Fatalf("the replay held %d bytes, more than %d", peak, limit)
	}
	if _, err := s2.db.Get([]byte("usr_00000"), nil); err != nil {
		t.Fatalf("a replay beyond its budget never wrote back: %v", err)
	}
}

// TestStoreReplayOverwritesInPlace: a replayed record of a cached key
// overwrites the cached value where it fits, without allocating, unless Get
// has returned a value (a caller may hold it); tombstones and empty values
// keep their meaning; the last value of each key is what LevelDB holds
// after the replay.
func TestStoreReplayOverwritesInPlace(t *testing.T) {
	replay := func(s *store) func(key string, val []byte) {
		off := int64(0)
		return func(key string, val []byte) {
			t.Helper()
			if err := s.applyChangelog([]*kgo.Record{{Key: []byte(key), Value: val, Offset: off}}); err != nil {
				t.Fatal(err)
			}
			off++
		}
	}

	lender := openStore(t, t.TempDir(), 1<<20)
	defer lender.Close()
	apply := replay(lender)
	apply("a", []byte("a first, long value"))
	lent, err := lender.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	apply("a", []byte("second"))
	if string(lent) != "a first, long value" {
		t.Fatalf("a value Get returned changed to %q when its key was replayed", lent)
	}

	dir := t.TempDir()
	s := openStore(t, dir, 1<<20)
	apply = replay(s)
	for _, v := range [][]byte{[]byte("a first value"), []byte("4th"), nil, {}, []byte("sixth")} {
		apply("a", v)
		apply("b", v)
	}
	recs := []*kgo.Record{{Key: []byte("b"), Value: []byte("seven"), Offset: 100}}
	if n := testing.AllocsPerRun(100, func() {
		if err := s.applyChangelog(recs); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("replaying a cached key with a value that fits allocated %.1f times per record; want 0", n)
	}
	apply("c", nil)
	apply("d", []byte{})
	if err := s.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "sixth", "b": "seven", "d": ""}
	for _, k := range []string{"a", "b", "c", "d"} {
		v, err := s.Get(k)
		w, ok := want[k]
		if err != nil || (v != nil) != ok || string(v) != w {
			t.Errorf("cached %s = %q (present %v), %v; want %q (present %v)", k, v, v != nil, err, w, ok)
		}
	}
	g := closeIntoGoka(t, s, dir)
	// goleveldb reads an empty value back from its tables as nil, so goka
	// (and store, reopened) find d absent. A state is never empty.
	delete(want, "d")
	for _, k := range []string{"a", "b", "c", "d"} {
		v, err := g.Get(k)
		w, ok := want[k]
		if err != nil || (v != nil) != ok || string(v) != w {
			t.Errorf("LevelDB %s = %q (present %v), %v; want %q (present %v)", k, v, v != nil, err, w, ok)
		}
	}
}

// TestStoreLentValuesStay: a value Get returned is never written again:
// not by a later Set of its key, nor a replayed record, nor the cache's
// compaction, nor another key's value after an eviction. And the store
// keeps a copy of what Set is given, never the caller's buffer.
func TestStoreLentValuesStay(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 1<<20)
	replayed := []byte("set while replaying")
	if err := s.Set("r", replayed); err != nil {
		t.Fatal(err)
	}
	copy(replayed, "SET WHILE REPLAYING") // the caller's buffer, reused
	if err := s.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	live := []byte("set once recovered")
	if err := s.Set("k", live); err != nil {
		t.Fatal(err)
	}
	lent, err := s.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	if &lent[0] == &live[0] {
		t.Fatal("Get returns the slice Set was given")
	}
	copy(live, "SET ONCE RECOVERED")
	// The same length, so it would fit in place.
	if err := s.applyChangelog([]*kgo.Record{{Key: []byte("k"), Value: []byte("replayed, the same"), Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("k", []byte("next value of k...")); err != nil {
		t.Fatal(err)
	}
	if string(lent) != "set once recovered" {
		t.Errorf("the value Get returned changed to %q", lent)
	}
	// Lend every value and rewrite it, so each rewrite goes to new bytes:
	// the cache compacts and evicts. Some of the lent values are kept.
	val := bytes.Repeat([]byte("v"), 200)
	lents := map[string][]byte{}
	for round := range 50 {
		for i := range 500 {
			k := fmt.Sprintf("usr_%03d", i)
			if err := s.Set(k, append(val, byte(round), byte(i))); err != nil {
				t.Fatal(err)
			}
			v, err := s.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			if round%10 == 0 && i%7 == 0 {
				lents[fmt.Sprintf("%s@%d", k, round)] = v
			}
		}
	}
	for k, v := range lents {
		var i, round int
		if _, err := fmt.Sscanf(k, "usr_%03d@%d", &i, &round); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v, append(val, byte(round), byte(i))) {
			t.Fatalf("the value Get returned of %s changed to %q", k, v)
		}
	}
	s.mu.Lock()
	arena, garbage := s.mem.arena, s.mem.garbage
	s.mu.Unlock()
	if garbage*4 >= arena+4*compactMinBytes {
		t.Errorf("the cache's chunks hold %d bytes, %d of them garbage: it did not compact", arena, garbage)
	}
	g := closeIntoGoka(t, s, dir)
	for k, want := range map[string]string{"k": "next value of k...", "r": "set while replaying", "usr_007": string(append(val, 49, 7))} {
		if v, err := g.Get(k); err != nil || string(v) != want {
			t.Errorf("LevelDB %s = %q, %v; want %q", k, v, err, want)
		}
	}
}

// TestStoreKeepsLargeValues: a processor's store (processorTable) keeps a
// large value Set gives it once recovered, and Get returns that same slice
// (codecs.StateCache finds its decoded state by it); it copies small values,
// and every value before recovery. A view's store copies every value. A kept
// value is never written, by a later Set or a replayed record, and reaches
// LevelDB.
func TestStoreKeepsLargeValues(t *testing.T) {
	for _, keeps := range []bool{true, false} {
		t.Run(fmt.Sprintf("keeps=%v", keeps), func(t *testing.T) {
			dir := t.TempDir()
			s := openTable(t, dir, keeps)
			large := func(c byte) []byte { return bytes.Repeat([]byte{c}, keptValueBytes) }
			replayed := large('r')
			if err := s.Set("r", replayed); err != nil {
				t.Fatal(err)
			}
			copy(replayed, "REPLAYED") // the caller's buffer, reused
			if err := s.MarkRecovered(); err != nil {
				t.Fatal(err)
			}
			same := func(k string, v []byte) bool {
				got, err := s.Get(k)
				if err != nil {
					t.Fatal(err)
				}
				return &got[0] == &v[0]
			}
			live, small := large('k'), []byte("small")
			if err := s.Set("k", live); err != nil {
				t.Fatal(err)
			}
			if err := s.Set("s", small); err != nil {
				t.Fatal(err)
			}
			if got := same("k", live); got != keeps {
				t.Errorf("Get returns the large slice Set was given: %v, want %v", got, keeps)
			}
			if same("s", small) || same("r", replayed) {
				t.Error("Get returns a small value, or one Set while replaying, as it was given")
			}
			if err := s.applyChangelog([]*kgo.Record{{Key: []byte("k"), Value: large('x'), Offset: 1}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Set("k", []byte("next")); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(live, large('k')) {
				t.Errorf("the value Set was given changed to %.20q", live)
			}
			g := closeIntoGoka(t, s, dir)
			for k, want := range map[string]string{"k": "next", "s": "small", "r": string(large('r'))} {
				if v, err := g.Get(k); err != nil || string(v) != want {
					t.Errorf("LevelDB %s = %.20q, %v; want %.20q", k, v, err, want)
				}
			}
		})
	}
}

// TestProcessorTableRewritesInPlace: a processor's store (processorTable)
// returns its cached bytes without lending them, so the next state of the
// key is written over them: a user's Get and Set over and over leave the
// cache no garbage. A lending store (a view's) takes new bytes for every Set
// and never writes the old ones again. What Get returned reads right until
// the next write, and every value reaches LevelDB.
func TestProcessorTableRewritesInPlace(t *testing.T) {
	for _, processor := range []bool{true, false} {
		t.Run(fmt.Sprintf("processor=%v", processor), func(t *testing.T) {
			dir := t.TempDir()
			s := openTable(t, dir, processor)
			if err := s.MarkRecovered(); err != nil {
				t.Fatal(err)
			}
			val := func(round, i int) []byte { return fmt.Appendf(nil, "state %04d of usr_%03d, padded to 40", round, i) }
			for i := range 100 {
				if err := s.Set(fmt.Sprintf("usr_%03d", i), val(0, i)); err != nil {
					t.Fatal(err)
				}
			}
			s.mu.Lock()
			garbage0 := s.mem.garbage
			s.mu.Unlock()
			var first []byte // usr_000's value as Get returned it in round 1
			for round := 1; round <= 200; round++ {
				for i := range 100 {
					k := fmt.Sprintf("usr_%03d", i)
					v, err := s.Get(k)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(v, val(round-1, i)) {
						t.Fatalf("round %d: Get(%s) = %q, want %q", round, k, v, val(round-1, i))
					}
					if round == 1 && i == 0 {
						first = v
					}
					if err := s.Set(k, val(round, i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			s.mu.Lock()
			garbage := s.mem.garbage - garbage0
			s.mu.Unlock()
			last := 0 // lent: the first value's bytes were never written again
			if processor {
				last = 200 // in place: they hold the last value
			}
			if want := val(last, 0); !bytes.Equal(first, want) {
				t.Errorf("the bytes Get returned first now read %q, want %q", first, want)
			}
			if processor && garbage != 0 {
				t.Errorf("20,000 rewrites in place left %d bytes of garbage, want 0", garbage)
			}
			g := closeIntoGoka(t, s, dir)
			for _, i := range []int{0, 42, 99} {
				k := fmt.Sprintf("usr_%03d", i)
				if v, err := g.Get(k); err != nil || !bytes.Equal(v, val(200, i)) {
					t.Errorf("LevelDB %s = %q, %v; want %q", k, v, err, val(200, i))
				}
			}
		})
	}
}

// TestStoreClosePersists: a clean close writes everything, and goka's own
// LevelDB storage reads the same values and offset.
func TestStoreClosePersists(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 1<<20)
	for i := range 100 {
		if err := s.Set(fmt.Sprintf("k%d", i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("k7"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get("k7"); v != nil || err != nil {
		t.Fatalf("deleted key read %q, %v", v, err)
	}
	if err := s.SetOffset(99); err != nil {
		t.Fatal(err)
	}
	g := closeIntoGoka(t, s, dir)
	if off, err := g.GetOffset(-1); off != 99 || err != nil {
		t.Fatalf("goka storage reads offset %d, %v; want 99", off, err)
	}
	if v, _ := g.Get("k42"); !bytes.Equal(v, []byte{42}) {
		t.Fatalf("k42 = %v", v)
	}
	if v, _ := g.Get("k7"); v != nil {
		t.Fatalf("deleted k7 = %v", v)
	}
	if n := countKeys(t, g); n != 99 {
		t.Fatalf("iterated %d keys, want 99", n)
	}
}

// closeIntoGoka closes s (partition 0 of "table" under dir) and opens its
// files with goka's own LevelDB storage, closed at the test's end.
func closeIntoGoka(t *testing.T, s *store, dir string) gokastorage.Storage {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := leveldb.OpenFile(filepath.Join(dir, "table.0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gokastorage.New(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// countKeys counts the keys st's iterator yields.
func countKeys(t *testing.T, st gokastorage.Storage) int {
	t.Helper()
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Release()
	n := 0
	for it.Next() {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStoreCacheIsBounded: beyond its size the cache drops entries, and
// reads of dropped keys come from LevelDB.
func TestStoreCacheIsBounded(t *testing.T) {
	const cacheBytes = 16 << 10
	s := openLive(t, t.TempDir(), cacheBytes)
	defer s.Close()
	val := bytes.Repeat([]byte("x"), 100)
	for i := range 5000 {
		if err := s.Set(fmt.Sprintf("usr_%05d", i), append(val, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	used, n := s.memBytes, s.mem.used
	s.mu.Unlock()
	if used > cacheBytes || n == 0 || n >= 5000 {
		t.Fatalf("cache holds %d entries, %d bytes; limit %d bytes", n, used, cacheBytes)
	}
	for i := range 5000 {
		v, err := s.Get(fmt.Sprintf("usr_%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v, append(val, byte(i))) {
			t.Fatalf("usr_%05d = %q", i, v)
		}
	}
	if keys := countKeys(t, s); keys != 5000 {
		t.Fatalf("iterator saw %d keys, want 5000 (and not the offset)", keys)
	}
}

// A Set after a Get of the same key takes the entry the Get found, unless
// a write-back evicted it in between: the value then goes to a new entry,
// cached and written back, never to the evicted one.
func TestStoreSetAfterEvictedGet(t *testing.T) {
	const cacheBytes = 4 << 10
	s := openLive(t, t.TempDir(), cacheBytes)
	defer s.Close()
	val := bytes.Repeat([]byte("x"), 100)
	if err := s.Set("usr_a", val); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		// Other users' writes, then usr_a's Get, then a write-back: the cache
		// evicts clean entries in the order of their places.
		for j := range 100 {
			if err := s.Set(fmt.Sprintf("usr_%d_%d", i, j), val); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := s.Get("usr_a"); err != nil || !bytes.Equal(v, val) {
			t.Fatalf("Get = %q, %v", v, err)
		}
		// The Get marked usr_a as used; an eviction round since would have
		// taken the mark (see evictLocked).
		s.mu.Lock()
		s.mem.ent(s.mem.find("usr_a")).flags &^= entRef
		s.mu.Unlock()
		if err := s.flush(); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		cached := s.mem.find("usr_a") >= 0
		s.mu.Unlock()
		if !cached {
			break
		}
		if i == 1000 {
			t.Fatal("usr_a was never evicted")
		}
	}
	// The last Get found usr_a's entry, which the write-back then evicted.
	if err := s.Set("usr_a", []byte("new")); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	c, ok := cached(s)["usr_a"]
	s.mu.Unlock()
	if !ok || string(c.val) != "new" || !c.dirty {
		t.Fatalf("usr_a's entry after the Set: %+v (cached %v)", c, ok)
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.db.Get([]byte("usr_a"), nil); err != nil || string(v) != "new" {
		t.Fatalf("LevelDB holds %q, %v for usr_a; want new", v, err)
	}
}

// TestStoreWarmsCacheAtOpen: a reopened store holds the values of its
// LevelDB in its cache, up to its size, as they are stored, and not the
// offset; reads give the stored values whether cached or not.
func TestStoreWarmsCacheAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openLive(t, dir, 1<<20)
	val := bytes.Repeat([]byte("v"), 100)
	for i := range 1000 {
		if err := s.Set(fmt.Sprintf("usr_%04d", i), append(val, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetOffset(999); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cacheBytes int
		all        bool
	}{{1 << 20, true}, {16 << 10, false}} {
		s := openLive(t, dir, tc.cacheBytes)
		s.mu.Lock()
		n, used := s.mem.used, s.memBytes
		all := cached(s)
		_, hasOffset := all[offsetKey]
		for k, e := range all {
			if i, err := strconv.Atoi(k[len("usr_"):]); err != nil || !bytes.Equal(e.val, append(val, byte(i))) || e.dirty {
				t.Errorf("cache %d: %s = %q (dirty %v)", tc.cacheBytes, k, e.val, e.dirty)
			}
		}
		s.mu.Unlock()
		switch {
		case hasOffset:
			t.Errorf("cache %d holds the offset key", tc.cacheBytes)
		case tc.all && n != 1000:
			t.Errorf("cache %d holds %d of 1000 values", tc.cacheBytes, n)
		case !tc.all && (n == 0 || n >= 1000 || used > tc.cacheBytes):
			t.Errorf("cache %d holds %d values, %d bytes", tc.cacheBytes, n, used)
		}
		for i := range 1000 {
			if v, err := s.Get(fmt.Sprintf("usr_%04d", i)); err != nil || !bytes.Equal(v, append(val, byte(i))) {
				t.Fatalf("cache %d: usr_%04d = %q, %v", tc.cacheBytes, i, v, err)
			}
		}
		if off, err := s.GetOffset(-1); off != 999 || err != nil {
			t.Errorf("offset %d, %v; want 999", off, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreFailedFlushIsSticky: once a write-back fails, every call fails,
// so goka stops the partition instead of going on with lost writes.
func TestStoreFailedFlushIsSticky(t *testing.T) {
	s := openStore(t, t.TempDir(), 1<<20)
	if err := s.Set("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.db.Close() // a write now fails as a full disk would
	s.mu.Unlock()
	if err := s.flush(); err == nil {
		t.Fatal("flush to a closed LevelDB succeeded")
	}
	if _, err := s.Get("a"); err == nil {
		t.Fatal("Get after a failed flush succeeded")
	}
	if err := s.Set("b", []byte("2")); err == nil {
		t.Fatal("Set after a failed flush succeeded")
	}
	if err := s.Close(); err == nil || !errors.Is(err, leveldb.ErrClosed) {
		t.Fatalf("Close = %v, want the flush error", err)
	}
}

// TestStoreConcurrentReaders: a view's HTTP readers run while its partition
// goroutine writes; a reader never sees a value older than one it saw before.
func TestStoreConcurrentReaders(t *testing.T) {
	s := openLive(t, t.TempDir(), 2<<10) // small: entries are dropped and re-read
	defer s.Close()
	const keys, writes = 50, 20000
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := make([]int, keys)
			for i := 0; !done.Load(); i++ {
				k := (i + r) % keys
				v, err := s.Get(fmt.Sprintf("k%d", k))
				if err != nil {
					errs <- err
					return
				}
				if v == nil {
					continue
				}
				n, _ := strconv.Atoi(string(v))
				if n < seen[k] {
					errs <- fmt.Errorf("k%d went back from %d to %d", k, seen[k], n)
					return
				}
				seen[k] = n
			}
		}()
	}
	for i := range writes {
		if err := s.Set(fmt.Sprintf("k%d", i%keys), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			if err := s.flush(); err != nil { // a flush, and eviction
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestStoreWritesInBackground: while a batch is being written, writes go on
// up to maxDirtyKeys; the writer then waits for the batch (backpressure), and
// writes back itself what is beyond the hold.
func TestStoreWritesInBackground(t *testing.T) {
	s := openLive(t, t.TempDir(), 64<<20) // the keys bind, not the bytes
	defer s.Close()
	s.mu.Lock()
	s.writing = true // a slow LevelDB write in flight
	s.mu.Unlock()
	done := make(chan error)
	go func() {
		for i := range maxDirtyKeys - 1 {
			if err := s.Set(fmt.Sprintf("k%d", i), []byte("v")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writes below maxDirtyKeys waited for the batch in flight")
	}
	go func() { done <- s.Set("last", []byte("v")) }()
	select {
	case <-done:
		t.Fatal("a write at maxDirtyKeys did not wait for the batch in flight")
	case <-time.After(100 * time.Millisecond):
	}
	s.mu.Lock()
	s.writing = false
	s.written.Broadcast()
	s.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	dirty := len(s.dirty)
	s.mu.Unlock()
	if dirty > holdKeys {
		t.Fatalf("%d keys still dirty after the writer's own batch, more than the %d held", dirty, holdKeys)
	}
}

// TestStoreBatchesTheOffsetLast: a write-back batch holds the oldest dirty
// entries asked for, and the offset that covers them: the one reported
// before the oldest entry left dirty became dirty, the latest once none is
// left, none if the oldest left became dirty before any offset, and none
// twice. A key set again while dirty keeps its place and its offset.
func TestStoreBatchesTheOffsetLast(t *testing.T) {
	s := openLive(t, t.TempDir(), 1<<20)
	defer s.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writing { // the background writer may hold a batch
		s.written.Wait()
	}
	set := func(k string, off int64) {
		s.putLocked(k, []byte(fmt.Sprintf("%s@%d", k, off)), true, false) // appends k's entry to s.dirty
		s.offset, s.hasOffset, s.offDirty = off, true, true
	}
	step := func(n int, wantKeys, wantOffset string) {
		t.Helper()
		b, got := s.batchLocked(n)
		var keys []string
		offset := "none"
		if b != nil {
			if err := b.Replay(putRecorder(func(k, v []byte) {
				if string(k) == offsetKey {
					offset = string(v)
				} else {
					keys = append(keys, string(v))
				}
			})); err != nil {
				t.Fatal(err)
			}
		}
		if k := strings.Join(keys, " "); k != wantKeys || offset != wantOffset || got != len(keys) {
			t.Fatalf("batch of %d: %d entries [%s], offset %s; want [%s], offset %s", n, got, k, offset, wantKeys, wantOffset)
		}
	}
	for i := range 5 {
		set(fmt.Sprintf("k%d", i), int64(i))
	}
	step(1, "k0@0", "0")      // k1 became dirty after offset 0
	step(2, "k1@1 k2@2", "2") // k3 after 2
	set("k5", 5)
	step(1, "k3@3", "3")      // k4 after 3
	step(5, "k4@4 k5@5", "5") // none left: the latest
	step(5, "", "none")       // nothing dirty, the latest stored
	set("k6", 6)
	set("k7", 7)
	set("k6", 8) // k6 keeps its place, dirty since offset 5
	step(1, "k6@8", "6")
	s.offDirty = true // offset 8 reported again
	step(1, "k7@7", "8")
	s.offDirty = true
	step(1, "", "none") // 8 is stored
	if s.offDirty {
		t.Fatal("the stored offset is taken for one yet to be written")
	}

	// Entries dirtied before any offset was reported: none is stored
	// until they are written.
	s2 := openLive(t, t.TempDir(), 1<<20)
	defer s2.Close()
	s2.mu.Lock()
	defer s2.mu.Unlock()
	for s2.writing {
		s2.written.Wait()
	}
	s = s2
	s.putLocked("a", []byte("a"), true, false)
	s.putLocked("b", []byte("b"), true, false)
	s.offset, s.hasOffset, s.offDirty = 0, true, true
	step(1, "a", "none")
	step(1, "b", "0")
}

// putRecorder is a leveldb.BatchReplay that hands on each Put.
type putRecorder func(k, v []byte)

func (r putRecorder) Put(k, v []byte) { r(k, v) }
func (r putRecorder) Delete([]byte)   {}

// TestStoreWritesBackInChunks: a write-back of more entries than one batch
// holds (the view's whole cache once it is recovered) writes them all and the
// offset, in several batches, and reads go on while it runs.
func TestStoreWritesBackInChunks(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20)
	n := 2*writeBackChunk + 100
	for i := range n {
		if err := s.Set(fmt.Sprintf("usr_%06d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetOffset(int64(n - 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecovered(); err != nil { // writes back in the background
		t.Fatal(err)
	}
	for i := 0; i < n; i += 97 {
		if v, err := s.Get(fmt.Sprintf("usr_%06d", i)); err != nil || string(v) != strconv.Itoa(i) {
			t.Fatalf("usr_%06d read %q, %v during the write-back", i, v, err)
		}
	}
	g := closeIntoGoka(t, s, dir)
	if off, err := g.GetOffset(-1); off != int64(n-1) || err != nil {
		t.Fatalf("offset %d, %v; want %d", off, err, n-1)
	}
	if got := countKeys(t, g); got != n {
		t.Fatalf("%d keys stored, want %d", got, n)
	}
}

// TestStoreTrickle: once recovered, a store holds up to holdKeys dirty
// entries and holdBytes dirty bytes; beyond that a write-back is due
// and takes the oldest entries, at least flushKeys of them, down to the
// hold. A key set again while dirty is not queued again.
func TestStoreTrickle(t *testing.T) {
	s := openLive(t, t.TempDir(), 64<<20) // the keys bind, not the bytes
	defer s.Close()
	defer holdWriter(s)()
	set := func(from, to, size int) {
		for i := from; i < to; i++ {
			s.putLocked(fmt.Sprintf("usr_%06d", i), make([]byte, size), true, false)
		}
	}
	check := func(wantDue bool, wantN int) {
		t.Helper()
		_, due := s.dueLocked()
		if n := s.trickleLocked(); due != wantDue || n != wantN {
			t.Fatalf("%d dirty, %d bytes: due %v, trickle %d; want %v, %d", len(s.dirty), s.dirtyBytes, due, n, wantDue, wantN)
		}
	}
	set(0, holdKeys, 10)
	check(false, 0)
	set(holdKeys, holdKeys+100, 10)
	check(true, flushKeys)
	set(holdKeys+100, holdKeys+3000, 10)
	check(true, 3000)
	set(0, 5000, 10) // dirty already: they keep their places
	if len(s.dirty) != holdKeys+3000 || s.dirty[0] != s.mem.find("usr_000000") {
		t.Fatalf("%d dirty, oldest %d; want %d, usr_000000's entry", len(s.dirty), s.dirty[0], holdKeys+3000)
	}
	// Large values: the bytes bind. Three quarters of the cache in 6,000
	// entries of 8 KiB.
	s.dirty, s.dirtyOff, s.dirtyBytes = s.dirty[:0], s.dirtyOff[:0], 0
	set(1_000_000, 1_000_000+5900, 8<<10)
	check(false, 0)
	set(1_000_000+5900, 1_000_000+6100, 8<<10)
	if _, due := s.dueLocked(); !due || s.dirtyBytes <= s.holdBytes() {
		t.Fatalf("%d dirty bytes of a %d-byte cache: not due", s.dirtyBytes, s.cacheBytes)
	}
	if n := s.trickleLocked(); n != flushKeys {
		t.Fatalf("trickle %d, want %d", n, flushKeys)
	}
	set(1_000_000+6100, 1_000_000+9000, 8<<10)
	if must, _ := s.dueLocked(); !must {
		t.Fatalf("%d dirty bytes of a %d-byte cache: the writer need not wait", s.dirtyBytes, s.cacheBytes)
	}
	n := s.trickleLocked()
	rest := s.dirtyBytes
	for _, i := range s.dirty[:n] {
		rest -= entryBytes(s.mem.ent(i))
	}
	if hold := s.holdBytes(); rest > hold || rest+entryBytes(s.mem.ent(s.dirty[n-1])) <= hold {
		t.Fatalf("a trickle of %d leaves %d dirty bytes; want the fewest that leave at most %d", n, rest, hold)
	}

	// Fewer than flushKeys: the bytes do not count, so that a few large
	// values are not written back every few records. 200 of 8 KiB, more
	// than the cache.
	s.dirty, s.dirtyOff, s.dirtyBytes = s.dirty[:0], s.dirtyOff[:0], 0
	s.cacheBytes = 1 << 20
	set(2_000_000, 2_000_200, 8<<10)
	if must, due := s.dueLocked(); must || due || s.trickleLocked() != 0 {
		t.Fatalf("%d dirty, %d bytes of a %d-byte cache: must %v, due %v, trickle %d; want none", len(s.dirty), s.dirtyBytes, s.cacheBytes, must, due, s.trickleLocked())
	}
}

// holdWriter takes s's lock and holds off its background writer, so a test
// can drive the writer's decisions itself; the returned func lets both go.
func holdWriter(s *store) (release func()) {
	s.mu.Lock()
	for s.writing {
		s.written.Wait()
	}
	s.writing = true
	return func() {
		s.writing = false
		s.written.Broadcast()
		s.mu.Unlock()
	}
}

// waitReplayTaken waits until the background writer of s has taken what
// MarkRecovered left (its first decision after it writes everything back).
func waitReplayTaken(t *testing.T, s *store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		recovered := s.recovered
		s.mu.Unlock()
		if !recovered {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the end of the replay")
		}
	}
}

// TestStoreWritesBackAgedEntries: an idle store writes back what is dirty,
// and then the latest offset, within about maxDirtyAge.
func TestStoreWritesBackAgedEntries(t *testing.T) {
	s := openLive(t, t.TempDir(), 1<<20)
	defer s.Close()
	// The writer's first tick writes back what the replay left (nothing
	// here); after that only the age takes ten dirty entries.
	waitReplayTaken(t, s)
	for i := range 10 {
		if err := s.Set(fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := s.SetOffset(int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(maxDirtyAge + 10*time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, kerr := s.db.Get([]byte("k9"), nil)
		v, err := s.db.Get([]byte(offsetKey), nil)
		if kerr == nil && err == nil && string(v) == "9" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle store did not write back: k9 %v, offset %q (%v)", kerr, v, err)
		}
	}
	// The offset alone, reported after its value was written back.
	if err := s.SetOffset(10); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, err := s.db.Get([]byte(offsetKey), nil); err == nil && string(v) == "10" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("an idle store did not write back the latest offset: %q (%v)", v, err)
		}
	}
}

// TestStoreTrickleOffsetNeverLeadsValues: hot keys set again and again while
// they are dirty, and cold ones, with the trickle and the age rule running
// in the background; after a crash, every key set at or before the stored
// offset holds that value or a later one, so a replay from the stored
// offset restores everything. The cache is small enough (2 MiB) that the
// dirty bytes pass the hold about a quarter of the way in, so the trickle
// runs; with 8 MiB the hold took every key the test sets, and only the
// write-back that ends the recovery stored an offset, when it came in time.
func TestStoreTrickleOffsetNeverLeadsValues(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dir := t.TempDir()
			s := openLive(t, dir, 2<<20)
			rng := rand.New(rand.NewPCG(seed, 1))
			sets := map[string][]int64{} // the offsets each key was set at, ascending
			n := maxDirtyKeys + 20000 + rng.IntN(20000)
			for i := range n {
				k := fmt.Sprintf("usr_%06d", rng.IntN(100_000))
				if rng.IntN(2) == 0 {
					k = fmt.Sprintf("hot_%03d", rng.IntN(300))
				}
				if err := s.Set(k, []byte(strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
				if err := s.SetOffset(int64(i)); err != nil {
					t.Fatal(err)
				}
				sets[k] = append(sets[k], int64(i))
			}
			s.mu.Lock()
			dirty := len(s.dirty)
			s.mu.Unlock()
			crash(t, s)
			s = openLive(t, dir, 2<<20)
			defer s.Close()
			off, err := s.GetOffset(-1)
			if err != nil {
				t.Fatal(err)
			}
			if off < int64(n/4) {
				t.Fatalf("stored offset %d after %d writes: the trickle did not run", off, n)
			}
			checked := 0
			for k, offs := range sets {
				j, found := slices.BinarySearch(offs, off)
				if !found {
					j--
				}
				if j < 0 {
					continue // first set after the stored offset: the replay sets it
				}
				v, err := s.Get(k)
				if err != nil {
					t.Fatal(err)
				}
				got, err := strconv.ParseInt(string(v), 10, 64)
				if err != nil || got < offs[j] {
					t.Fatalf("offset %d is stored, %s was set at %d, and it holds %q", off, k, offs[j], v)
				}
				checked++
			}
			t.Logf("%d writes, %d dirty at the crash, stored offset %d, %d keys checked", n, dirty, off, checked)
		})
	}
}

// TestStoreWritesBackTheReplayAtOnce: what the replay left dirty is due for
// write-back as soon as it ends, all of it, not held until it ages (a view
// service would write its whole table in one burst during its first queries).
func TestStoreWritesBackTheReplayAtOnce(t *testing.T) {
	s := openStore(t, t.TempDir(), 1<<20)
	defer s.Close()
	replayDistinct(t, s, 100)
	s.mu.Lock()
	for s.writing {
		s.written.Wait()
	}
	s.writing = true // hold off the background writer
	s.mu.Unlock()
	if err := s.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.writing = false; s.written.Broadcast() }()
	if n := s.dueCountLocked(0); n != -1 {
		t.Fatalf("after the replay a write-back takes %d entries, want all (-1)", n)
	}
	if n := s.dueCountLocked(0); n != 0 {
		t.Fatalf("100 entries within the hold: a write-back takes %d, want 0", n)
	}
}

// TestStoreEvictsUnusedFirst: once the cache is full, users read again
// between evictions stay cached, and users never read again (one-off users)
// make room: the regular users' reads never go to LevelDB.
func TestStoreEvictsUnusedFirst(t *testing.T) {
	const hot, perEntry = 20, 8 + 20 + entryOverhead // "usr_hNN"-sized keys, 20-byte values
	s := openLive(t, t.TempDir(), 3*hot*perEntry)
	defer s.Close()
	val := []byte("01234567890123456789")
	for i := range hot {
		if err := s.Set(fmt.Sprintf("usr_h%02d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 * hot { // twenty caches' worth of one-off users
		if err := s.Set(fmt.Sprintf("usr_c%03d", i), val); err != nil {
			t.Fatal(err)
		}
		if i%5 != 4 {
			continue
		}
		for j := range hot {
			if v, err := s.Get(fmt.Sprintf("usr_h%02d", j)); err != nil || !bytes.Equal(v, val) {
				t.Fatalf("usr_h%02d = %q, %v", j, v, err)
			}
		}
		if err := s.flush(); err != nil { // a write-back, and an eviction
			t.Fatal(err)
		}
	}
	if n := s.reads.stored.Load(); n != 0 {
		t.Errorf("%d reads of regular users went to LevelDB; want 0", n)
	}
	s.mu.Lock()
	all := cached(s)
	s.mu.Unlock()
	for j := range hot {
		if _, ok := all[fmt.Sprintf("usr_h%02d", j)]; !ok {
			t.Errorf("usr_h%02d was evicted", j)
		}
	}
	if len(all) >= hot+20*hot/2 {
		t.Errorf("%d entries cached: the one-off users were not evicted", len(all))
	}
}

// TestStoreAgedWriteBackIsPaced: entries dirtied together (a processor's
// users at its start) come of age together, and a tick writes back at most
// twice the entries queued per tick over the last maxDirtyAge (at least
// minAgedPace), so they go over several ticks; every one of them is
// written within maxDirtyAge of coming of age, and a steady load is
// written at the pace it came. The replay before them, written back at its
// end, does not count towards the pace.
func TestStoreAgedWriteBackIsPaced(t *testing.T) {
	s := openStore(t, t.TempDir(), 64<<20) // neither the keys nor the bytes bind
	defer s.Close()
	replayDistinct(t, s, 20_000)
	if err := s.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	waitReplayTaken(t, s)
	defer holdWriter(s)()
	next := 0
	set := func(n int) {
		for range n {
			s.putLocked(fmt.Sprintf("usr_%06d", next), []byte("v"), true, false)
			next++
		}
	}
	const cohort, steady = 20_000, 20
	set(cohort)
	cohortEnd := s.taken + uint64(len(s.dirty))
	tick := func() int {
		aged := s.tickLocked()
		n := s.dueCountLocked(aged)
		if n < 0 {
			t.Fatalf("tick %d: all of %d dirty entries due, %d aged; want a pace", next, len(s.dirty), aged)
		}
		if bound := max(minAgedPace, 2*(cohort+dirtyAgeTicks*steady)/dirtyAgeTicks); n > bound {
			t.Fatalf("%d of %d aged entries written back at one tick; want at most %d", n, aged, bound)
		}
		s.batchLocked(n) // taken as a write-back takes them
		set(steady)
		return n
	}
	for i := range dirtyAgeTicks {
		if n := tick(); n != 0 {
			t.Fatalf("tick %d: %d written back before any entry was of age", i, n)
		}
	}
	ticks := 0
	for ; s.taken < cohortEnd; ticks++ {
		if ticks == dirtyAgeTicks {
			t.Fatalf("%d of the %d entries dirtied together still dirty %d ticks after they came of age", cohortEnd-s.taken, cohort, ticks)
		}
		if n := tick(); n == 0 {
			t.Fatalf("tick %d after coming of age: nothing written back, %d aged", ticks, cohortEnd-s.taken)
		}
	}
	if ticks < 2 {
		t.Fatalf("the %d entries dirtied together went in %d tick(s)", cohort, ticks)
	}
	// Steady: what came at steady a tick goes at that pace.
	for range 2 * dirtyAgeTicks {
		tick()
	}
	if n := tick(); n != steady {
		t.Fatalf("a steady load of %d a tick: %d written back at a tick", steady, n)
	}
}
