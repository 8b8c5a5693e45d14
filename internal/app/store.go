package app

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
	"github.com/twmb/franz-go/pkg/kgo"
)

// offsetKey is where goka's LevelDB storage keeps the table's changelog
// offset; store uses the same key and format, so either opens the other's files.
const offsetKey = "__offset"

// Write-back limits, once a store is recovered. The store holds up to
// holdKeys dirty entries, and once flushKeys are dirty at most three quarters
// of its cache in dirty bytes (holdBytes): a user active again while its
// entry is dirty costs no LevelDB write of its own. Beyond that, the oldest
// dirty entries, at least flushKeys of them, go to LevelDB as one batch,
// written in the background while processing goes on (a trickle: each batch
// is about as large as the ones a store without the hold writes, so no
// write-back is a burst). Entries dirty for maxDirtyAge are written back at
// the next ticks of flushEvery, paced (see agedPace), and an idle store
// writes everything back at once, so it reaches LevelDB within about
// maxDirtyAge. A writer that gets maxDirtyKeys ahead of LevelDB, or a whole
// cache of dirty bytes, waits (backpressure).
//
// Measured with "fraudwatch bench --skip-baseline --events 1000000
// --latency-duration 20s" in three alternated pairs against writing back
// every flushKeys dirty keys: 110,375-142,162 against 110,372-124,207
// events/s, 11.27-13.65 against 13.60-14.25 CPU-µs per event; at one fixed
// rate (--latency-rate 55000) the alert tail was no longer (README,
// Performance).
//
// The hold was 8*flushKeys keys, half the cache and 2 s before. At 100k
// users a partition's 25,000 users take most of its share of the default
// cache and come back every one to two seconds, so half the cache bound the
// dirty entries, and a user was written back about as often as he paid.
// Holding three quarters for up to 10 s, seven alternated pairs of "bench
// --skip-baseline --events 300000 --latency-rate R --latency-duration 20s
// --latency-warmup 2s --query-duration 1s" (R 66,000 and 70,000) took 4
// LevelDB compactions (0.24-0.40 s) over the latency run against 14-15
// (0.95-1.33 s), live CPU per event 14.57 against 15.83 µs and alert p99
// 39.4 against 67.6 ms (medians; p99 lower in five pairs). Four pairs of the
// throughput run of 1M events ("--latency-duration 1s --latency-warmup 1s
// --query-duration 1s"): 12.01-13.30 against 12.71-13.77 µs per event, lower
// in all four. At 1M users (three pairs) the peak RSS was no higher.
// The memory is the cache's either way; a crash leaves up to 10 s of the
// changelog to replay on the same disk instead of 2 s.
const (
	flushKeys    = 2048
	holdKeys     = 32 * flushKeys
	maxDirtyKeys = holdKeys + 4*flushKeys
	flushEvery   = 200 * time.Millisecond
	maxDirtyAge  = 10 * time.Second
)

// holdBytes is how many dirty bytes the store holds once flushKeys entries
// are dirty: three quarters of its cache.
func (s *store) holdBytes() int { return s.cacheBytes - s.cacheBytes/4 }

// dirtyAgeTicks is how many ticks of flushEvery make maxDirtyAge.
const dirtyAgeTicks = int(maxDirtyAge / flushEvery)

// entryOverhead approximates the memory of one cached entry beyond its key
// and value bytes: its entry and index slot in the cache, and the room taken
// beyond the value (see cache). 300,000 keys of 11 bytes measured 87 bytes of
// heap per entry beyond them with 50-byte values, 101 with 150-byte values;
// the rest of 112 covers part of the garbage the cache's chunks may hold (up
// to a quarter of them, see cache).
const entryOverhead = 112

// entryBytes is what e counts against the cache's size.
func entryBytes(e *ent) int { return int(e.klen+e.vlen) + entryOverhead }

// store is goka's storage.Storage on LevelDB, built for the detector's load
// of one read and one write per record. goka's own storage makes that two
// synchronous LevelDB writes per record (the value, then the changelog offset
// once Kafka acks it) and a LevelDB read for every value.
//
// store keeps values in memory and writes them back in batches:
//
//   - Set and Delete cache the value as a dirty entry, queued oldest first
//     with the offset goka had reported when it became dirty; SetOffset only
//     records the offset. A write-back writes the oldest dirty entries in one
//     LevelDB batch, which is atomic, with an offset: the latest if it leaves
//     nothing dirty, else the one queued with the oldest entry still dirty.
//     After a crash the stored offset never leads the stored values: goka
//     reports an offset only after the value it belongs to was Set, so every
//     value Set before that offset was reported is in the batch or an
//     earlier one (its key was not dirty since then, or it would be queued
//     before the entry that gives the offset). A restart replays the
//     changelog from the stored offset, which rewrites every value written
//     after it, as goka does after any crash (a crash only loses the buffered
//     writes, never the changelog's).
//   - The batch is written outside the lock, by a background goroutine, so a
//     slow LevelDB write (a memtable that waits for its compaction) does not
//     stop the partition; reads meanwhile find the values in memory.
//   - Written and read values stay cached up to cacheBytes, in a layout the
//     garbage collector does not visit entry by entry (see cache); beyond
//     that, clean entries are dropped in the order of their places in the
//     cache, from where the last eviction stopped. Reads of uncached keys go to
//     LevelDB (bloom-filtered, so a new user's miss is cheap).
//   - Until MarkRecovered, goka replays the changelog, which holds every
//     change of a key, not just its last. Write-back then waits until the
//     replay's cache (replayBytes, which may be larger than cacheBytes) is
//     full, so a key rewritten many times in the replay reaches LevelDB
//     about once (a restore measured 567k changelog records for 99k users:
//     LevelDB was about half of the restore's CPU). What is dirty then is
//     written back after MarkRecovered, in the background, and the cache
//     shrinks to cacheBytes.
//
// A failed flush is kept and returned by every later call, so goka stops the
// partition and it is rebuilt from the changelog.
type store struct {
	db         *leveldb.DB
	cacheBytes int
	// replayBytes (>= cacheBytes) is what the cache may hold until
	// MarkRecovered: a replay that fits writes every key to LevelDB once,
	// in the background once the partition is ready, instead of in
	// write-backs and compactions on the way.
	replayBytes int

	mu       sync.Mutex
	mem      cache
	memBytes int
	dirty    []int32 // mem's entries not yet written, oldest first
	// dirtyOff[i] is the offset reported when dirty[i] became dirty (-1:
	// none yet): a batch that leaves dirty[i] the oldest dirty entry
	// stores it.
	dirtyOff   []int64
	dirtyBytes int // what the dirty entries count against the cache
	// taken counts the entries ever taken from dirty, so taken+len(dirty)
	// counts those ever queued; marks[j] is that count at each of the last
	// 2*dirtyAgeTicks ticks, marks[mark] the oldest: the entries queued
	// before the mark of dirtyAgeTicks ticks ago are about maxDirtyAge old.
	taken  uint64
	marks  [2 * dirtyAgeTicks]uint64
	mark   int
	putOff int64 // the offset last put in a batch (-1: none)
	// last is the entry Get or a write found last (-1: none): goka's Set of
	// a user's new state follows its Get of the old one, and then finds the
	// entry without a second lookup.
	last      int32
	gen       uint64
	offset    int64 // latest offset SetOffset reported; valid if hasOffset
	hasOffset bool
	offDirty  bool  // offset not yet written
	err       error // a failed flush; sticky
	opened    bool
	replaying bool // before MarkRecovered: write back only when the cache is full
	recovered bool // MarkRecovered asks the background writer for all that is dirty
	// processor: a processor's group table (see processorTable). Once
	// recovered, Set keeps a value of keptValueBytes or more as it is given
	// instead of a copy; Get returns a cached value without lending it, so
	// it is valid only until the store's next write, which may rewrite its
	// bytes.
	processor bool
	writing   bool       // a batch is being written, outside mu
	written   *sync.Cond // on mu: signalled when a batch write ends
	kick      chan struct{}
	batch     *leveldb.Batch // reused by every write-back (one is written at a time)

	stop    chan struct{}
	stopped chan struct{}

	reads storeReads
	stats *storeStats // nil: not counted
}

func newStore(db *leveldb.DB, cacheBytes, replayBytes int) *store {
	s := &store{db: db, cacheBytes: cacheBytes, replayBytes: max(cacheBytes, replayBytes), mem: newCache(), last: -1, putOff: -1, replaying: true,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	s.written = sync.NewCond(&s.mu)
	return s
}

var _ storage.Storage = (*store)(nil)

// warm caches a value read from LevelDB at open, while the cache has room:
// a restarted processor would otherwise read every user's first state of
// its run from LevelDB's tables (11% of the processor's CPU over a latency
// run of "fraudwatch bench", which restarts it). openVerified reads every
// value anyway. The offset key is not a state. It runs before the store is
// used. (An empty value is left to LevelDB: in the cache a nil value reads
// as absent.)
func (s *store) warm(k, v []byte) {
	if len(v) == 0 || s.memBytes+len(k)+len(v)+entryOverhead > s.cacheBytes || string(k) == offsetKey {
		return
	}
	s.putLocked(string(k), v, false, false)
}

// Open starts the goroutine that writes buffered writes back: when enough
// are dirty, and on a timer for an idle partition.
func (s *store) Open() error {
	s.mu.Lock()
	s.opened = true
	s.mu.Unlock()
	go func() {
		defer close(s.stopped)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			tick := false
			select {
			case <-s.stop:
				return
			case <-s.kick:
			case <-t.C:
				tick = true
			}
			s.mu.Lock()
			aged := 0
			if tick {
				aged = s.tickLocked()
			}
			if !s.writing {
				if n := s.dueCountLocked(aged); n != 0 {
					s.flushLocked(n) // an error is kept in s.err
				}
			}
			s.mu.Unlock()
		}
	}()
	return nil
}

// tickLocked marks the dirty queue at a tick of flushEvery and returns how
// many of its entries are due by age: those about maxDirtyAge old, at most
// agedPace of them unless they are all of the dirty entries (an idle store);
// or -1 when none is dirty but the latest offset is yet to be written.
func (s *store) tickLocked() int {
	older := s.marks[s.mark]                            // 2*dirtyAgeTicks ticks ago
	old := s.marks[(s.mark+dirtyAgeTicks)%len(s.marks)] // dirtyAgeTicks ticks ago
	s.marks[s.mark] = s.taken + uint64(len(s.dirty))
	s.mark = (s.mark + 1) % len(s.marks)
	if len(s.dirty) == 0 && s.offDirty {
		return -1
	}
	if old <= s.taken {
		return 0
	}
	aged := int(old - s.taken)
	if aged < len(s.dirty) {
		aged = min(aged, agedPace(old-older))
	}
	return aged
}

// dueCountLocked is how many of the oldest dirty entries a write-back in the
// background takes now (-1: all, and the latest offset; 0: none): while the
// changelog is replayed, all once the replay's cache is full; all that the
// replay left dirty once it is over (held, it would be written in one burst
// maxDirtyAge later: a view service's whole table during its first queries);
// after that, the trickle beyond the hold (see holdKeys) or the entries due
// by age (paced, see tickLocked), whichever is more.
func (s *store) dueCountLocked(aged int) int {
	if s.replaying {
		if _, due := s.dueLocked(); due {
			return -1
		}
		return 0
	}
	if s.recovered {
		s.recovered = false
		return -1
	}
	if aged < 0 || aged >= len(s.dirty) && aged > 0 {
		return -1
	}
	return max(s.trickleLocked(), aged)
}

// agedPace is how many aged entries one tick writes back at most, when
// queued entries were queued over the maxDirtyAge in which the entries now
// coming of age were (those entries among them): twice their average per
// tick, and at least minAgedPace. The entries a processor's users dirty at
// its start (or after a rebalance) come of age together: written back as
// they aged, a partition's whole table went to LevelDB within a second or
// two, 10 s after the start (at 100k users and 80,000 events/s, up to
// 25,000 entries a partition), a burst of LevelDB writes and memtable
// flushes on two shared cores. Paced, they go over about maxDirtyAge/2,
// and some stay dirty for up to one and a half maxDirtyAge (a restart
// replays that much more of the changelog). A steady load comes of age at
// the pace it came, which the limit does not bind, and an idle store still
// writes everything back at once (tickLocked, dueCountLocked).
//
// Three alternated pairs of "fraudwatch bench --skip-baseline --events
// 1000000 --latency-rate 80000 --latency-duration 20s --latency-warmup 2s
// --query-duration 1s" against no pace: 1 / 1 / 2 LevelDB compactions over
// the latency run against 2 in every pair; alert p99 35.0 / 33.8 / 25.1 ms
// against 29.8 / 39.4 / 74.8 (the last with slow seconds 3, 9 and 11 s
// in). The first version took the average over the maxDirtyAge after the
// entries coming of age, which for a start's users held only the few
// queued after them, so they went at minAgedPace, over about 20 s; three
// pairs of it: 1 compaction against 2, alert p99 48.5 / 31.0 / 33.9
// against 40.5 / 36.4 / 48.5 ms.
func agedPace(queued uint64) int {
	return max(minAgedPace, int(2*queued/uint64(dirtyAgeTicks)))
}

// minAgedPace is the fewest aged entries a tick may write back.
const minAgedPace = flushKeys / 8

// Close writes what is buffered and closes LevelDB.
func (s *store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Lock()
	opened := s.opened
	err := s.flushLocked(-1)
	s.mu.Unlock()
	if opened {
		<-s.stopped
	}
	s.stats.close(s, s.counts())
	return errors.Join(err, s.db.Close())
}

func (s *store) Has(key string) (bool, error) {
	v, err := s.Get(key)
	return v != nil, err
}

func (s *store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return nil, s.err
	}
	if i := s.findLocked(key); i >= 0 {
		s.last = i
		s.mem.ent(i).flags |= entRef
		var v []byte
		if s.processor {
			v = s.mem.value(i) // read before the next write
		} else {
			v = s.mem.lend(i) // never written again: it may be read after the lock is released
		}
		s.mu.Unlock()
		s.reads.cached.Add(1)
		return v, nil
	}
	gen := s.gen
	s.mu.Unlock()
	v, err := s.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		s.reads.absent.Add(1)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("app: reading %q from local state: %w", key, err)
	}
	s.reads.stored.Add(1)
	s.mu.Lock()
	if s.gen == gen { // no write since the read: v is still the newest value
		s.putLocked(key, v, false, false) // a copy: v is the caller's
	}
	s.mu.Unlock()
	return v, nil
}

// Set caches a copy of value; a processor's store once recovered caches
// a large value itself (see processorTable).
func (s *store) Set(key string, value []byte) error {
	if value == nil {
		value = []byte{} // a nil value reads as absent
	}
	return s.write(key, value, true)
}

func (s *store) Delete(key string) error {
	return s.write(key, nil, false)
}

// keptValueBytes is the size from which a processor's store keeps the values
// Set gives it (see processorTable).
const keptValueBytes = 512

// write caches val (nil: a deletion) under key, dirty: a copy of it, unless
// fromSet and the store keeps such a value.
func (s *store) write(key string, val []byte, fromSet bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.gen++
	s.putLocked(key, val, true, fromSet && s.processor && !s.replaying && len(val) >= keptValueBytes)
	switch must, due := s.dueLocked(); {
	case must || (due && !s.opened):
		return s.flushLocked(s.dueCountLocked(0))
	case due:
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// dueLocked says whether a write-back is due, and whether the writer must
// wait for it (it got too far ahead of LevelDB). While the changelog is
// replayed, one is due once the replay's cache (replayBytes) is full and a
// must at one and a half times its size; after that, one is due beyond the
// hold (holdKeys dirty keys, holdBytes dirty bytes), a must at
// maxDirtyKeys or a whole cache of dirty bytes; the bytes count once
// flushKeys entries are dirty.
func (s *store) dueLocked() (must, due bool) {
	if len(s.dirty) == 0 {
		return false, false
	}
	if s.replaying {
		return s.memBytes > s.replayBytes+s.replayBytes/2, s.memBytes > s.replayBytes
	}
	// The bytes count once flushKeys entries are dirty: a few large values
	// (users holding hundreds of events, a small cache) would otherwise be
	// written back every few records.
	bytesCount := len(s.dirty) >= flushKeys
	return len(s.dirty) >= maxDirtyKeys || bytesCount && s.dirtyBytes >= s.cacheBytes,
		len(s.dirty) > holdKeys || bytesCount && s.dirtyBytes > s.holdBytes()
}

// trickleLocked is how many of the oldest dirty entries to write back so
// that the rest is within the hold (at most holdKeys entries and, once
// flushKeys are dirty, holdBytes): none if it is, else at
// least flushKeys.
func (s *store) trickleLocked() int {
	if len(s.dirty) < flushKeys {
		return 0
	}
	n := max(len(s.dirty)-holdKeys, 0)
	rest := s.dirtyBytes
	for _, i := range s.dirty[:n] {
		rest -= entryBytes(s.mem.ent(i))
	}
	for ; n < len(s.dirty) && rest > s.holdBytes(); n++ {
		rest -= entryBytes(s.mem.ent(s.dirty[n]))
	}
	if n == 0 {
		return 0
	}
	return min(max(n, flushKeys), len(s.dirty))
}

// findLocked returns key's entry, -1 if it is not cached.
func (s *store) findLocked(key string) int32 {
	if s.last >= 0 && string(s.mem.key(s.mem.ent(s.last))) == key {
		return s.last
	}
	return s.mem.find(key)
}

// putLocked caches val under key (nil: deleted), dirty if it is yet to be
// written, and returns the key's entry: a copy of val, or val itself if keep.
func (s *store) putLocked(key string, val []byte, dirty, keep bool) int32 {
	i := s.findLocked(key)
	switch {
	case i < 0 && keep:
		i = s.mem.add(key, nil)
	case i < 0:
		i = s.mem.add(key, val)
	default:
		old := entryBytes(s.mem.ent(i))
		s.memBytes -= old
		if s.mem.ent(i).flags&entDirty != 0 {
			s.dirtyBytes -= old
		}
		if !keep {
			s.mem.set(i, val)
		}
		s.mem.ent(i).flags |= entRef // used again (a new entry is not: see evictLocked)
	}
	if keep {
		s.mem.keep(i, val)
	}
	e := s.mem.ent(i)
	s.memBytes += entryBytes(e)
	s.last = i
	if dirty && e.flags&entDirty == 0 {
		// An entry once dirty stays dirty, in its place, until it is
		// written: only then does it leave s.dirty.
		e.flags |= entDirty
		off := int64(-1)
		if s.hasOffset {
			off = s.offset
		}
		s.dirty = append(s.dirty, i)
		s.dirtyOff = append(s.dirtyOff, off)
	}
	if e.flags&entDirty != 0 {
		s.dirtyBytes += entryBytes(e)
	}
	return i
}

func (s *store) GetOffset(def int64) (int64, error) {
	s.mu.Lock()
	if s.hasOffset {
		defer s.mu.Unlock()
		return s.offset, nil
	}
	s.mu.Unlock()
	v, err := s.db.Get([]byte(offsetKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("app: reading the local table offset: %w", err)
	}
	off, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("app: decoding the local table offset %q: %w", v, err)
	}
	return off, nil
}

func (s *store) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset, s.hasOffset, s.offDirty = offset, true, true
	return s.err
}

// MarkRecovered ends the replay. What it left dirty is written back in the
// background (synchronously if the store was never opened): goka calls
// MarkRecovered before the partition is ready, and writing back a replayed
// partition took 14% of a restore's CPU in "fraudwatch bench".
func (s *store) MarkRecovered() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaying = false
	// What the replay queued is written back now, not by its age: the age
	// marks, and with them the pace of aged write-backs (see agedPace),
	// count only what is queued from here on.
	for i := range s.marks {
		s.marks[i] = s.taken + uint64(len(s.dirty))
	}
	if !s.opened {
		return s.flushLocked(-1)
	}
	s.recovered = true
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return s.err
}

// flushLocked writes the oldest n dirty entries (n < 0: those dirty when it
// starts, and then the latest offset if none is left), in batches of at most
// writeBackChunk entries, each with the offset that covers it (see
// batchLocked); then it drops clean entries beyond the cache size. It is
// called with s.mu held and returns with it held, but releases it while
// LevelDB writes, so reads and writes go on between the batches; one batch is
// written at a time, in order.
func (s *store) flushLocked(n int) error {
	for s.writing {
		s.written.Wait()
	}
	if s.err != nil {
		return s.err
	}
	if n < 0 || n > len(s.dirty) {
		n = len(s.dirty)
	}
	for pending := n; ; {
		b, k := s.batchLocked(min(pending, writeBackChunk))
		if b == nil {
			break
		}
		pending -= k
		s.writing = true
		s.mu.Unlock()
		err := s.db.Write(b, nil)
		s.mu.Lock()
		s.writing = false
		s.written.Broadcast()
		if err != nil {
			s.err = fmt.Errorf("app: writing local state: %w", err)
			return s.err
		}
		if pending == 0 {
			break
		}
	}
	// While the changelog is replayed, a write-back is due whenever the cache
	// is full: evicting to half of it makes the next batch half a cache
	// large, instead of the few entries that would overfill it again (a
	// 1M-user restore wrote thousands of tiny batches and took 17 s).
	limit := s.cacheBytes
	if s.replaying {
		limit = s.replayBytes / 2
	}
	s.evictLocked(limit)
	return nil
}

// evictLocked drops clean entries until the cache holds at most limit
// bytes, going round the entries in the order of their places, from where
// the last eviction stopped, and passing over once an entry read or written
// since the last round (a clock: its mark is cleared, so it goes next time
// unless it is used again). A new entry starts unmarked, so a user seen
// once goes at the first round that finds it, before any user seen again.
//
// Users are not alike: a processor's regular users come back every few
// seconds, while one-off users (a burst of a fresh user, a user gone quiet)
// are never read again. Without the second chance the round dropped both
// alike once the cache was full, and the regular users' next reads went to
// LevelDB: in a 20 s latency run of "fraudwatch bench" at 62,000 events/s
// (100k regular users and fresh burst users), the cache filled 7 s in and
// the share of state reads LevelDB answered rose from 0 to 10% by the end
// (fraudwatch_state_reads_total, sampled every 250 ms).
func (s *store) evictLocked(limit int) {
	m := &s.mem
	for n := 2 * m.slots; n > 0 && s.memBytes > limit; n-- {
		i := m.hand
		m.hand = (m.hand + 1) % m.slots
		e := m.ent(i)
		if e.flags&entUsed == 0 || e.flags&entDirty != 0 {
			continue
		}
		if e.flags&entRef != 0 {
			e.flags &^= entRef
			continue
		}
		s.memBytes -= entryBytes(e)
		if s.last == i {
			s.last = -1
		}
		m.remove(i) // it is clean, so not in s.dirty
	}
}

// writeBackChunk bounds the entries of one write-back batch. The lock is
// held while a batch is built, and goleveldb grows a large batch's buffer by
// a few thousand records at a time, copying it each time: the 844,550
// entries a view service wrote back in one batch when it became ready held
// the lock for seconds, and its queries fell from 28,696 to 5,493-8,267
// requests/s ("fraudwatch bench --users 1000000 --events 2000000").
const writeBackChunk = 16384

// batchLocked takes the oldest n dirty entries into a batch, with an
// offset: the latest if that leaves none dirty, else the one queued with the
// oldest entry left dirty (none if it had none, or if the offset is the one
// put last); it returns the batch with the entries taken (nil: nothing to
// write). They stay in mem, now clean (a deleted key as an entry that reads
// as absent), and are dropped only by a later eviction, after the batch is
// written. The offset never goes before the values it covers: every value
// Set before it was reported is in this batch or an earlier one.
//
// The batch is the store's own, reset: a new one grows its buffer by copying
// it over and over, and while a changelog was replayed that was most of the
// write-back's allocations (BenchmarkReplay: 333 → 137 MB allocated, about
// 20% more records/s).
func (s *store) batchLocked(n int) (*leveldb.Batch, int) {
	n = min(n, len(s.dirty))
	off := int64(-1)
	switch {
	case n < len(s.dirty):
		off = s.dirtyOff[n]
	case s.offDirty:
		off = s.offset
	}
	if off >= 0 && off == s.putOff { // stored already
		s.offDirty = s.offset != off
		off = -1
	}
	if n == 0 && off < 0 {
		return nil, 0
	}
	if s.batch == nil {
		s.batch = new(leveldb.Batch)
	}
	b := s.batch
	b.Reset()
	for _, i := range s.dirty[:n] {
		e := s.mem.ent(i)
		s.dirtyBytes -= entryBytes(e)
		if e.flags&entNil != 0 {
			b.Delete(s.mem.key(e))
		} else {
			b.Put(s.mem.key(e), s.mem.value(i)) // copied: the batch holds no reference to the cache
		}
		e.flags &^= entDirty
	}
	// Keys dirtied later are appended after what is left.
	s.dirty, s.dirtyOff = s.dirty[n:], s.dirtyOff[n:]
	s.taken += uint64(n)
	if off >= 0 {
		b.Put([]byte(offsetKey), strconv.AppendInt(nil, off, 10))
		s.putOff = off
		s.offDirty = s.offset != off // a later offset is yet to be written
	}
	return b, n
}

// replayFrom is the first changelog offset a replay reads: the one after
// the stored offset, or -1 (the log start) when none is stored.
func (s *store) replayFrom() (int64, error) {
	stored, err := s.GetOffset(-1)
	if err != nil || stored < 0 {
		return -1, err
	}
	return stored + 1, nil
}

// applyChangelog applies changelog records as goka's recovery does: a
// record's value is Set (a tombstone deletes the key) and its offset becomes
// the stored offset. It runs before goka opens the store.
func (s *store) applyChangelog(recs []*kgo.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if s.err != nil {
			return s.err
		}
		s.gen++
		// Key and value (nil: a tombstone) are copied into the cache, not
		// kept: they share the fetch's buffer.
		s.putLocked(unsafe.String(unsafe.SliceData(r.Key), len(r.Key)), r.Value, true, false)
		s.offset, s.hasOffset, s.offDirty = r.Offset, true, true
		if _, due := s.dueLocked(); due {
			if err := s.flushLocked(-1); err != nil {
				return err
			}
		}
	}
	return nil
}

// failed is the sticky write-back error, if any.
func (s *store) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// flush writes what is buffered; iterators read LevelDB and need it there.
func (s *store) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked(-1)
}

func (s *store) Iterator() (storage.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	return &iterator{s.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})}, nil
}

func (s *store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	if len(limit) > 0 {
		return &iterator{s.db.NewIterator(&util.Range{Start: start, Limit: limit}, nil)}, nil
	}
	return &iterator{s.db.NewIterator(util.BytesPrefix(start), nil)}, nil
}

// iterator skips the offset key, as goka's does.
type iterator struct{ it ldbiter.Iterator }

func (i *iterator) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}
func (i *iterator) Err() error             { return i.it.Error() }
func (i *iterator) Key() []byte            { return i.it.Key() }
func (i *iterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *iterator) Release()               { i.it.Release() }
func (i *iterator) Seek(key []byte) bool   { return i.it.Seek(key) }
