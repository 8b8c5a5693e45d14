package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fraudwatch/fraudwatch/internal/telemetry"
	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/twmb/franz-go/pkg/kgo"
)

// levelDBOptions make every detectable corruption an open error. goleveldb's
// default drops a corrupt journal block and goes on with the blocks after it;
// goka keeps its changelog offset in the same database, so a dropped block
// could lose a state write while a later offset write survives, and the
// partition would then never be replayed. Strict, a corrupt partition fails
// to open and is rebuilt from the changelog instead.
//
// The bloom filter makes a read of a key that is not there (a user's first
// event) cheap: it skips the table files instead of searching each. The block
// cache is small (2 MiB, goleveldb's default is 8) because store caches the
// values themselves: at 1M users the 8 MiB caches of four partitions cost
// 80 MiB of peak RSS and about 20% more CPU per event (more for the GC to
// scan), measured with "fraudwatch bench --users 1000000 --events 2000000".
//
// Table blocks stay at goleveldb's 4 KiB. 16 KiB blocks made a restore's
// writes cheaper (fewer write system calls; BenchmarkReplay about 10% more
// records/s) but every read that misses the caches decodes the whole block:
// BenchmarkStorage at 100k users in random order went from 7.7 to 11.5
// µs per event, and in a latency run's profile LevelDB reads went from 10 to
// 15% of the processor's CPU. Without compression 16 KiB blocks read as fast
// as 4 KiB ones but the table took twice the disk.
//
// Seek-triggered compactions are off. goleveldb compacts a table once reads
// passed over it often enough (one per 16 KiB of the table): every read of a
// user the cache does not hold passes over the newest level-0 table, so
// each table a memtable wrote out was compacted into level 1 soon after,
// and every such compaction rewrote all of level 1 (users are spread over
// the whole key range). Level 0 now waits for its four tables, as for the
// write path alone. Over the throughput run (1M events) and a latency run
// at 66,000 events/s of "fraudwatch bench" (LevelDB's LOG files) the four
// partitions compacted 10 times with seek compactions (8 of them on fewer
// than four level-0 tables, which only a seek starts) and 4 times without.
// Four alternated pairs of "fraudwatch bench --skip-baseline --events
// 300000 --latency-rate 45000 --latency-duration 20s --latency-warmup 2s
// --query-duration 1s": alert p99 30.1 / 37.4 / 43.5 / 32.5 ms against
// 32.2 / 663.6 / 55.3 / 41.0, 17.78-20.20 CPU-µs per event against
// 18.26-23.03, lower in every pair.
// (The option needs goleveldb newer than v1.0.0; that version also reads an
// empty value back from a table as nil, which no state is.)
var levelDBOptions = opt.Options{
	Strict:                 opt.DefaultStrict | opt.StrictJournal | opt.StrictManifest,
	Filter:                 filter.NewBloomFilter(10),
	BlockCacheCapacity:     2 << 20,
	DisableSeeksCompaction: true,
}

// levelDB builds one LevelDB per table partition under dir. A partition whose
// files are corrupt or incomplete is deleted and reopened empty: goka then
// rebuilds it from the changelog, which holds the same state. Opening reads
// every block once to verify its checksum, since a damaged table file is
// otherwise only noticed when a key in it is read. Other open errors (a lock
// held by another process, permissions) are returned as they are, never
// "repaired".
//
// Each partition's store caches up to cacheBytes of values, and up to
// replayBytes while the changelog is replayed (see store).
//
// writeBuffer is LevelDB's memtable size per partition on average (0:
// goleveldb's 4 MiB; see staggeredWriteBuffer). A larger memtable flushes and
// compacts less often: compactions of all partitions at once are the main
// source of the alert latency tail on a small machine, at the cost of up to
// twice writeBuffer of memory per partition.
func levelDB(dir string, cacheBytes, replayBytes, writeBuffer int, stats *storeStats, log *slog.Logger) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		o := levelDBOptions
		o.WriteBuffer = staggeredWriteBuffer(writeBuffer, partition)
		path := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
		s := newStore(nil, cacheBytes, replayBytes)
		db, err := openVerified(path, o, s.warm, log)
		if isCorrupt(err) {
			log.Warn("local state is corrupt; deleting it and rebuilding the partition from the changelog",
				"path", path, "topic", topic, "partition", partition, "err", err)
			if rerr := os.RemoveAll(path); rerr != nil {
				return nil, fmt.Errorf("app: removing corrupt local state %s: %w", path, rerr)
			}
			s = newStore(nil, cacheBytes, replayBytes) // what it warmed came from the damaged files
			db, err = leveldb.OpenFile(path, &o)
		}
		if err != nil {
			return nil, fmt.Errorf("app: opening local state %s: %w", path, err)
		}
		s.db = db
		s.stats = stats
		stats.open(s)
		return s, nil
	}
}

// staggeredWriteBuffer is the memtable size of a partition: writeBuffer (0:
// goleveldb's 4 MiB) times 13/16, 15/16, 17/16 or 19/16 by partition, 1 on
// average. The partitions of a processor take writes at the same rate, so
// with one size their memtables filled, were written out and compacted at
// the same moments, and on a small machine four compactions at once held
// both cores: in a 20 s latency run at 38,000 events/s the windows of 100 ms
// with input-stage latencies above 100 ms were those in which the four
// partitions' compactions (50-180 ms each) ran (their LOG files against the
// detector's stage latency). With sizes apart, their flushes drift apart. Six
// alternated pairs of "fraudwatch bench --skip-baseline --events 300000
// --latency-rate 38000 --latency-duration 20s --latency-warmup 2s
// --query-duration 1s": alert p99 44.3 / 87.2 / 58.5 / 64.3 / 57.7 / 64.0 ms
// against 621.9 / 99.3 / 79.6 / 72.1 / 64.0 / 102.9 with one size, lower in
// every pair; input stage p99 27.6-46.3 against 36.5-388.9 ms. The memory is
// the same on average.
func staggeredWriteBuffer(writeBuffer int, partition int32) int {
	if writeBuffer <= 0 {
		writeBuffer = opt.DefaultWriteBuffer
	}
	return writeBuffer / 16 * (13 + 2*int(partition%4))
}

// processorTable makes every store b builds one of a processor's group
// table, whose Get and Set goka calls on the partition's one goroutine, from
// the processor's callbacks only: Get for ctx.Value, whose codec decodes the
// value at once, and Set for ctx.SetValue, with a value the codec has just
// encoded (codecs.StateCache allocates one for each) that goka hands to the
// changelog's producer too, which only reads it. Such a store
//
//   - keeps the large values (of keptValueBytes or more) Set gives it once
//     the partition is recovered, instead of copies; it never writes into a
//     value it keeps. The next Get of the key returns that same slice, and
//     codecs.StateCache finds the decoded state it keeps for it instead of
//     decoding a burst user's large state again. Smaller values are copied
//     into the cache's chunks, where the garbage collector does not visit
//     them one by one (see cache). Before recovery, and in a view's store,
//     Set is given records of a fetched changelog batch: kept as they are,
//     they would hold on to the whole batch.
//   - hands out its cached bytes without lending them (see store.processor):
//     the value is decoded before the partition's next write, so the Set of
//     the user's next state rewrites them in place if it fits, where a lent
//     value's next state took new bytes and left the old ones garbage for the
//     cache to compact. A view's store is read by its queries while it is
//     written, and lends.
func processorTable(b storage.Builder) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil {
			return nil, err
		}
		s := st.(*store)
		s.mu.Lock()
		s.processor = true
		s.mu.Unlock()
		return s, nil
	}
}

// replayer reads a partition of a changelog from an offset (negative: its
// start) to its end, a fetched batch at a time: kafka.Options.ReadPartition.
type replayer func(ctx context.Context, topic string, partition int32, from int64, started func(start, end int64), apply func([]*kgo.Record) error) error

// replayProgressEvery: how often a long replay logs how far it got.
const replayProgressEvery = 10 * time.Second

// replayed wraps a levelDB builder: before goka gets a partition's store, the
// changelog from the store's offset to its end is applied to it, a fetched
// batch at a time (store.applyChangelog). goka's recovery then starts after the last
// record applied and finds little or nothing left. It applies exactly what
// goka's recovery would, so a replay that fails or stops early only costs
// time: it is logged and goka reads the rest. A restore measured in
// "fraudwatch bench" spent most of its CPU passing sarama's records one by
// one through goka's recovery loop.
//
// progress (may be nil) shows each replay's position, for the restore
// figures of /metrics and /v1/partitions.
func replayed(ctx context.Context, b storage.Builder, read replayer, progress *telemetry.Replays, log *slog.Logger) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil {
			return nil, err
		}
		s := st.(*store)
		from, err := s.replayFrom()
		if err != nil {
			return nil, errors.Join(err, s.Close())
		}
		defer progress.Done(partition)
		start, logged, n := time.Now(), time.Now(), 0
		err = read(ctx, topic, partition, from, func(next, end int64) {
			progress.Start(partition, next, end)
		}, func(recs []*kgo.Record) error {
			if err := s.applyChangelog(recs); err != nil {
				return err
			}
			n += len(recs)
			last := recs[len(recs)-1].Offset
			progress.Advance(partition, last+1)
			if time.Since(logged) >= replayProgressEvery {
				logged = time.Now()
				log.Info("replaying the changelog", "topic", topic, "partition", partition,
					"records", n, "offset", last, "since", time.Since(start).Round(time.Second))
			}
			return nil
		})
		switch {
		case ctx.Err() != nil:
			return nil, errors.Join(ctx.Err(), s.Close())
		case s.failed() != nil:
			return nil, errors.Join(s.failed(), s.Close())
		case err != nil:
			log.Warn("reading the changelog ahead of goka failed; goka's recovery reads the rest",
				"topic", topic, "partition", partition, "records", n, "err", err)
		default:
			log.Debug("changelog replayed", "topic", topic, "partition", partition, "records", n, "took", time.Since(start))
		}
		return s, nil
	}
}

// errNoManifest: the directory holds a database whose manifest is gone.
var errNoManifest = errors.New("app: local state has data files but no readable manifest")

func isCorrupt(err error) bool {
	var missing *lerrors.ErrMissingFiles
	return err != nil && (lerrors.IsCorrupted(err) || errors.As(err, &missing) || errors.Is(err, errNoManifest))
}

// openVerified opens path and reads it through once, handing every key and
// value to visit (both valid only during the call). goleveldb creates a
// new, empty database where CURRENT or the manifest it names is missing; when
// the directory already holds a database, that is damage, not a first start.
func openVerified(path string, o opt.Options, visit func(k, v []byte), log *slog.Logger) (*leveldb.DB, error) {
	existing := holdsDatabase(path)
	o.ErrorIfMissing = existing
	db, err := leveldb.OpenFile(path, &o)
	if existing && errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %v", errNoManifest, err)
	}
	if err != nil {
		return nil, err
	}
	start := time.Now()
	it := db.NewIterator(nil, &opt.ReadOptions{Strict: opt.StrictBlockChecksum | opt.StrictReader})
	n := 0
	for it.Next() {
		n++
		visit(it.Key(), it.Value())
	}
	it.Release()
	if err := it.Error(); err != nil {
		db.Close()
		return nil, err
	}
	if n > 0 {
		log.Debug("verified local state", "path", path, "keys", n, "took", time.Since(start))
	}
	return db, nil
}

// holdsDatabase reports whether dir has any of LevelDB's database files.
func holdsDatabase(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		n := e.Name()
		if n == "CURRENT" || strings.HasPrefix(n, "MANIFEST-") || strings.HasSuffix(n, ".ldb") || strings.HasSuffix(n, ".log") {
			return true
		}
	}
	return false
}
