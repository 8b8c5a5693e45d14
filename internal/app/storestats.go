package app

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/syndtr/goleveldb/leveldb"
)

// storeReads counts a store's Gets by where they were answered.
type storeReads struct {
	cached atomic.Uint64 // from the cache
	stored atomic.Uint64 // from LevelDB: the key was not cached
	absent atomic.Uint64 // neither holds the key (a user's first event)
}

// storeCounts is what a store did, for the metrics.
type storeCounts struct {
	cached, stored, absent uint64
	cacheBytes             int // what the cache holds now (0 for a closed store)
	// LevelDB's compactions by what started them: a full memtable written
	// out, level 0 holding too many tables, a deeper level too large, a
	// table read past too often.
	memComp, level0Comp, levelComp, seekComp uint64
	compaction                               time.Duration // spent compacting, all kinds
	writeDelay                               time.Duration // writes held back while level 0 was full
}

func (c *storeCounts) add(o storeCounts) {
	c.cached += o.cached
	c.stored += o.stored
	c.absent += o.absent
	c.cacheBytes += o.cacheBytes
	c.memComp += o.memComp
	c.level0Comp += o.level0Comp
	c.levelComp += o.levelComp
	c.seekComp += o.seekComp
	c.compaction += o.compaction
	c.writeDelay += o.writeDelay
}

// counts reads s's counters and its LevelDB's statistics.
func (s *store) counts() storeCounts {
	c := storeCounts{cached: s.reads.cached.Load(), stored: s.reads.stored.Load(), absent: s.reads.absent.Load()}
	s.mu.Lock()
	c.cacheBytes = s.memBytes
	s.mu.Unlock()
	var st leveldb.DBStats
	if s.db != nil && s.db.Stats(&st) == nil {
		c.memComp, c.level0Comp, c.levelComp, c.seekComp = uint64(st.MemComp), uint64(st.Level0Comp), uint64(st.NonLevel0Comp), uint64(st.SeekComp)
		for _, d := range st.LevelDurations {
			c.compaction += d
		}
		c.writeDelay = st.WriteDelayDuration
	}
	return c
}

// storeStats collects the counts of every store one command opens, those
// still open and those closed (a partition moves to another instance, or
// is closed and reopened at a rebalance), as Prometheus metrics:
//
//   - fraudwatch_state_reads_total{result="cached"|"stored"|"absent"}: state
//     reads answered from the state cache, from LevelDB, or by neither (a
//     new user). Many "stored" reads against "cached" say --state-cache-mb
//     is small for the users this instance holds;
//   - fraudwatch_state_cache_bytes: what the state caches hold, counted as
//     --state-cache-mb counts it;
//   - fraudwatch_leveldb_compactions_total{kind="memtable"|"level0"|"level"|"seek"},
//     fraudwatch_leveldb_compaction_seconds_total: LevelDB's background
//     work, which takes CPU from processing on a small machine;
//   - fraudwatch_leveldb_write_delay_seconds_total: time LevelDB held
//     write-backs back because compaction fell behind.
//
// A nil *storeStats counts nothing.
type storeStats struct {
	mu      sync.Mutex
	live    map[*store]struct{}
	retired storeCounts // of the stores closed
}

func newStoreStats() *storeStats { return &storeStats{live: map[*store]struct{}{}} }

// open starts counting s.
func (t *storeStats) open(s *store) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.live[s] = struct{}{}
	t.mu.Unlock()
}

// close keeps the final counts of s, read before its LevelDB closes.
func (t *storeStats) close(s *store, final storeCounts) {
	if t == nil {
		return
	}
	final.cacheBytes = 0
	t.mu.Lock()
	if _, ok := t.live[s]; ok {
		delete(t.live, s)
		t.retired.add(final)
	}
	t.mu.Unlock()
}

// total sums the counts of every store, open or closed. t.mu is held
// throughout: a store in live has its LevelDB open (Close takes the final
// counts and retires it before closing LevelDB, and holds no lock of the
// store while it waits for t.mu), so a store closing meanwhile is counted
// whole, as open or as retired, and no counter reads lower than at the
// scrape before.
func (t *storeStats) total() storeCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.retired
	for s := range t.live {
		c.add(s.counts())
	}
	return c
}

// The names of the local state's metrics (see storeStats).
const (
	MetricStateReads        = "fraudwatch_state_reads_total"
	MetricStateCacheBytes   = "fraudwatch_state_cache_bytes"
	MetricCompactions       = "fraudwatch_leveldb_compactions_total"
	MetricCompactionSeconds = "fraudwatch_leveldb_compaction_seconds_total"
	MetricWriteDelaySeconds = "fraudwatch_leveldb_write_delay_seconds_total"
)

var (
	stateReadsDesc = prometheus.NewDesc(MetricStateReads,
		"State reads by where they were answered: the state cache (cached), LevelDB (stored), neither (absent: a new user).", []string{"result"}, nil)
	stateCacheBytesDesc = prometheus.NewDesc(MetricStateCacheBytes,
		"Bytes the state caches hold, as --state-cache-mb counts them.", nil, nil)
	compactionsDesc = prometheus.NewDesc(MetricCompactions,
		"LevelDB compactions by what started them: memtable (a full memtable written out), level0 (too many level-0 tables), level (a deeper level too large), seek (a table read past too often).", []string{"kind"}, nil)
	compactionSecondsDesc = prometheus.NewDesc(MetricCompactionSeconds,
		"Seconds LevelDB spent compacting, all kinds.", nil, nil)
	writeDelayDesc = prometheus.NewDesc(MetricWriteDelaySeconds,
		"Seconds LevelDB held writes back because compaction fell behind.", nil, nil)
)

// Describe implements prometheus.Collector.
func (t *storeStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{stateReadsDesc, stateCacheBytesDesc, compactionsDesc, compactionSecondsDesc, writeDelayDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (t *storeStats) Collect(ch chan<- prometheus.Metric) {
	c := t.total()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	counter(stateReadsDesc, float64(c.cached), "cached")
	counter(stateReadsDesc, float64(c.stored), "stored")
	counter(stateReadsDesc, float64(c.absent), "absent")
	ch <- prometheus.MustNewConstMetric(stateCacheBytesDesc, prometheus.GaugeValue, float64(c.cacheBytes))
	counter(compactionsDesc, float64(c.memComp), "memtable")
	counter(compactionsDesc, float64(c.level0Comp), "level0")
	counter(compactionsDesc, float64(c.levelComp), "level")
	counter(compactionsDesc, float64(c.seekComp), "seek")
	counter(compactionSecondsDesc, c.compaction.Seconds())
	counter(writeDelayDesc, c.writeDelay.Seconds())
}
