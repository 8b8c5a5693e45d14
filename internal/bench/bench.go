// Package bench is "fraudwatch bench": it measures one fraudwatch processor
// against a naive goka processor doing the same job (package baseline), on
// the same broker, in the same run.
//
// The harness keeps the broker (the embedded kfake cluster, unless real
// brokers are given), the producers and the measuring clients in its own
// process, and runs every processor and view service as a child process (the
// CLI re-executes its own binary), so CPU and peak RSS are the child's alone
// (/proc/<pid>/stat and VmHWM). One run goes through these phases, each
// first for fraudwatch and then for the baseline:
//
//  1. throughput: N seed-shaped events (unkeyed JSON, bursts; event times
//     spread over the past so that a user averages one transaction a minute)
//     are produced to "transactions" first; then one processor starts and the clock runs
//     until its group committed every input and loop offset. Events/s and
//     the child's CPU time per event over that span; peak RSS at its end.
//  2. alert latency: the processor restarts on its disk and catches up; then
//     events flow at 50% of the measured throughput for a while, their event
//     times going on at one transaction a minute per user. Latency is
//     from the send of the last transaction an alert names to the alert
//     being read from the alert topic.
//  3. restore: the processor starts on an empty data dir; the time until it
//     is ready (every partition rebuilt from the changelog), and changelog
//     records per second.
//  4. queries: a view service rebuilds the table, then concurrent HTTP
//     clients ask GET /v1/users/{id} of random users for a fixed time.
//
// Topics (fraudwatch's and the baseline's) are created by the run; with real
// brokers the cluster must not hold fraudwatch's topics already.
package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/bench/baseline"
	"github.com/fraudwatch/fraudwatch/internal/broker"
	"github.com/fraudwatch/fraudwatch/internal/generator"
	"github.com/fraudwatch/fraudwatch/internal/topics"
	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// Config configures a run.
type Config struct {
	Brokers    []string // empty: an embedded broker in this process
	Events     int
	Users      int
	Partitions int
	Clients    int
	// LatencyDuration is how long events flow at half the measured rate.
	LatencyDuration time.Duration
	// LatencyWarmup is how long events flow at that rate before the timed
	// LatencyDuration: alerts that name no transaction sent after it are not
	// timed. The processor is restarted for the run, and its first alerts
	// came late: at 12,000 events/s the alerts of the first 150 ms took
	// 100-170 ms, and those few made the p99 of a 10 s run.
	LatencyWarmup time.Duration
	// LatencyRate, when > 0, is the rate of the latency run in events/s
	// instead of half the measured rate.
	LatencyRate float64
	// QueryDuration is how long the query clients run, once back to back
	// (the most requests/s) and once at the query rate.
	QueryDuration time.Duration
	// QueryRate, when > 0, is the rate in requests/s at which query latency
	// is measured instead of half the most requests/s.
	QueryRate float64
	// QueryRates are more fixed rates in requests/s, each run for
	// QueryDuration after the two query runs: the query latency against the
	// load, in Result.QueryLatencyByRateMS.
	QueryRates   []float64
	DataDir      string // children's state; must exist
	SkipBaseline bool
	// Keyed produces every event keyed by its user_id (Kafka's default
	// partitioner), so the detector applies it without the re-key hop.
	Keyed bool
	// StateCacheMB and WriteBufferMB are passed to fraudwatch's processor and
	// view service (0: their defaults).
	StateCacheMB, WriteBufferMB int
	// FetchWait is passed to fraudwatch's processor as --fetch-wait (0: its default).
	FetchWait time.Duration
	// ServeGCPercent is passed to fraudwatch's view service as --gc-percent
	// (0: its default).
	ServeGCPercent int
	// GCHeadroomMB is passed to fraudwatch's processor as --gc-headroom-mb
	// (0 turns it off; the command's flag defaults to the processor's
	// default, app.DefaultGCHeadroomMB).
	GCHeadroomMB int
	// ServeGCHeadroomMB is passed to fraudwatch's view service as
	// --gc-headroom-mb (0 turns it off; the command's flag defaults to the
	// service's default).
	ServeGCHeadroomMB int
	// Repeat is how many times the whole benchmark runs (>= 1), each on a
	// fresh embedded broker and data dir; the result is their medians
	// (Median). More than one needs the embedded broker: every run creates
	// its topics, and a cluster keeps them.
	Repeat int
	// ProducerLinger is how long the harness's producer of transactions waits
	// to fill a batch (0: it sends at once). The CLI's default is
	// DefaultProducerLinger.
	ProducerLinger time.Duration
	// ProfileDir, when set, receives a CPU profile of each side's processor
	// over the throughput, latency and restore runs (<side>-throughput.cpu.pprof,
	// <side>-latency.cpu.pprof, <side>-restore.cpu.pprof, each with its heap
	// at the end next to it; the latency profile includes its catch-up) and
	// of its view service (<side>-serve.cpu.pprof), and of this process (the
	// producing harness and the embedded broker) over each latency run
	// (<side>-latency-harness.cpu.pprof). It is created if missing.
	ProfileDir string
	// TimelineDir, when set, receives every timed latency with the time it
	// started, as CSV (sent_unix_us,latency_us), to find when a tail
	// happened and line it up with a GC or compaction log: each side's
	// alerts (<side>-alerts.csv, from the send of the last transaction an
	// alert names) and queries of the fixed-rate run (<side>-queries.csv,
	// from when each was sent or due), and fraudwatch's processor sampled
	// every 250 ms of its latency run (fraudwatch-processor.csv: see
	// processorTimelineHeader). It is created if missing.
	TimelineDir string
	Seed        uint64
	Spawn       Spawner
	Progress    io.Writer // progress lines; children's stderr
}

// DefaultProducerLinger is the producer linger of the transactions the
// harness sends: Kafka's Java producer's default since 4.0 (KIP-1030) and
// librdkafka's. With none, at 36,000 events/s the harness's produce requests
// and the embedded broker's answers to them took so much of the shared cores
// that alert latency p50 was 1.1 s; with it, 63 ms (one run each, "bench
// --skip-baseline --events 300000 --latency-rate 36000 --latency-duration 15s").
// The latency figures include it: they start when a transaction is handed to
// the producer.
const DefaultProducerLinger = 5 * time.Millisecond

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Events < 1 {
		errs = append(errs, fmt.Errorf("--events must be >= 1, got %d", c.Events))
	}
	if c.Users < 1 {
		errs = append(errs, fmt.Errorf("--users must be >= 1, got %d", c.Users))
	}
	if c.Partitions < 1 || c.Partitions > 1000 {
		errs = append(errs, fmt.Errorf("--partitions must be in 1..1000, got %d", c.Partitions))
	}
	if c.Clients < 1 {
		errs = append(errs, fmt.Errorf("--clients must be >= 1, got %d", c.Clients))
	}
	if c.LatencyDuration <= 0 || c.QueryDuration <= 0 {
		errs = append(errs, errors.New("--latency-duration and --query-duration must be > 0"))
	}
	if c.ProducerLinger < 0 || c.ProducerLinger > time.Second {
		errs = append(errs, fmt.Errorf("--producer-linger must be in 0..1s, got %v", c.ProducerLinger))
	}
	if c.LatencyWarmup < 0 {
		errs = append(errs, fmt.Errorf("--latency-warmup must be >= 0, got %v", c.LatencyWarmup))
	}
	if err := app.FetchWaitError(c.FetchWait); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct {
		flag string
		v    int
	}{{"--state-cache-mb", c.StateCacheMB}, {"--write-buffer-mb", c.WriteBufferMB}, {"--gc-headroom-mb", c.GCHeadroomMB},
		{"--serve-gc-percent", c.ServeGCPercent}, {"--serve-gc-headroom-mb", c.ServeGCHeadroomMB}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must be >= 0, got %d", f.flag, f.v))
		}
	}
	if c.LatencyRate < 0 {
		errs = append(errs, fmt.Errorf("--latency-rate must be >= 0, got %v", c.LatencyRate))
	}
	if c.QueryRate < 0 {
		errs = append(errs, fmt.Errorf("--query-rate must be >= 0, got %v", c.QueryRate))
	}
	for _, q := range c.QueryRates {
		if !(q > 0) {
			errs = append(errs, fmt.Errorf("--query-rates must all be > 0, got %v", q))
		}
	}
	if c.Repeat < 1 {
		errs = append(errs, fmt.Errorf("--repeat must be >= 1, got %d", c.Repeat))
	}
	if c.Repeat > 1 && len(c.Brokers) > 0 {
		errs = append(errs, errors.New("--repeat needs the embedded broker: every run creates its topics, and a cluster keeps them"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("bench: no data dir"))
	}
	if c.Spawn == nil {
		errs = append(errs, errors.New("bench: no way to start child processes"))
	}
	return errors.Join(errs...)
}

// side is fraudwatch or the baseline: its roles and topics.
type side struct {
	name      string
	process   Role
	serve     Role
	group     string
	loop      string
	table     string
	alerts    string
	alertTxns func(b []byte) []string // the transaction ids an alert names
}

func fraudwatchSide() side {
	return side{name: "fraudwatch", process: RoleProcess, serve: RoleServe, group: string(topics.Detector),
		loop: string(topics.DetectorLoop()), table: string(topics.DetectorTable()), alerts: string(topics.Alerts),
		alertTxns: func(b []byte) []string {
			v, err := codecs.Alert{}.Decode(b)
			if err != nil {
				return nil
			}
			return v.(*codecs.AlertRecord).TransactionIDs
		}}
}

func baselineSide() side {
	return side{name: "baseline", process: RoleBaseline, serve: RoleBaselineServe, group: string(baseline.Group),
		loop: string(baseline.Loop()), table: string(baseline.Table()), alerts: string(baseline.Alerts),
		alertTxns: func(b []byte) []string {
			v, err := baseline.AlertCodec().Decode(b)
			if err != nil {
				return nil
			}
			return []string{v.(*baseline.Alert).TransactionID}
		}}
}

// figures are one side's measurements.
type figures struct {
	eps, cpuPerEvent, tpSeconds float64
	peakRSS                     int64
	latency                     Percentiles
	stages                      map[string]Percentiles // fraudwatch's processor stages over the latency run
	state                       stateCounters          // fraudwatch's processor's local state over the latency run
	gc                          gcCounters             // fraudwatch's processor's collections over the latency run
	latencyCPU                  float64                // CPU-µs per event of the timed latency run
	maxLag, endLag              int64                  // records not committed over the timed latency run: most sampled, and as its last event was sent
	restoreSeconds, restoreRPS  float64
	restoreRecords              int64
	restorePeakRSS              int64         // of the restoring process, until ready
	queryPeakRSS                int64         // of the view service, start to the end of its queries
	query                       Percentiles   // at the query rate (QueryRate or half of queryRPS)
	querySaturated              Percentiles   // clients back to back
	queryRPS                    float64       // clients back to back
	queryByRate                 []Percentiles // at each of QueryRates
}

type run struct {
	cfg     Config
	brokers []string
	cl      *kgo.Client
	adm     *kadm.Client
	users   []string // every user id the events name
	bytes   int64
	started time.Time
	load    float64 // load average at the start
	// clock is the event time of the latest event produced: every latency
	// run goes on from it (see nextEventTime).
	clock time.Time
}

// Run runs the benchmark cfg.Repeat times and returns its figures (the
// medians of the runs, each kept in Runs, when more than one).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Repeat == 1 {
		return runOnce(ctx, cfg)
	}
	var runs []*Result
	for i := 1; i <= cfg.Repeat; i++ {
		c := cfg
		c.Repeat = 1
		c.DataDir = filepath.Join(cfg.DataDir, fmt.Sprintf("run-%d", i))
		if cfg.ProfileDir != "" {
			c.ProfileDir = filepath.Join(cfg.ProfileDir, fmt.Sprintf("run-%d", i))
		}
		if cfg.TimelineDir != "" {
			c.TimelineDir = filepath.Join(cfg.TimelineDir, fmt.Sprintf("run-%d", i))
		}
		fmt.Fprintf(cfg.Progress, "bench: run %d of %d\n", i, cfg.Repeat)
		res, err := runOnce(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("bench: run %d of %d: %w", i, cfg.Repeat, err)
		}
		runs = append(runs, res)
	}
	return Median(runs), nil
}

// runOnce runs the benchmark once on a valid cfg.
func runOnce(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: profile dir: %w", err)
		}
	}
	if cfg.TimelineDir != "" {
		if err := os.MkdirAll(cfg.TimelineDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: timeline dir: %w", err)
		}
	}
	// progress lines and the children's stderr share the writer
	cfg.Progress = &lockedWriter{w: cfg.Progress}
	r := &run{cfg: cfg, brokers: cfg.Brokers, started: time.Now(), load: loadAvg()}
	brokerInfo := strings.Join(cfg.Brokers, ",")
	if len(r.brokers) == 0 {
		b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0"})
		if err != nil {
			return nil, err
		}
		defer b.Close()
		r.brokers = b.Addrs()
		brokerInfo = "embedded (kfake, in the harness process)"
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ClientID("fraudwatch-bench"),
		kgo.DefaultProduceTopic(string(topics.Transactions)), kgo.ProducerLinger(r.cfg.ProducerLinger), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, fmt.Errorf("bench: kafka client: %w", err)
	}
	defer cl.Close()
	r.cl, r.adm = cl, kadm.NewClient(cl)
	if err := r.createTopics(ctx); err != nil {
		return nil, err
	}
	if err := r.preProduce(ctx); err != nil {
		return nil, err
	}
	sides := []side{fraudwatchSide()}
	if !cfg.SkipBaseline {
		sides = append(sides, baselineSide())
	}
	figs := make([]figures, len(sides))
	for i, s := range sides {
		if err := r.throughput(ctx, s, &figs[i]); err != nil {
			return nil, err
		}
	}
	for i, s := range sides {
		if err := r.latency(ctx, s, &figs[i]); err != nil {
			return nil, err
		}
	}
	for i, s := range sides {
		if err := r.restore(ctx, s, &figs[i]); err != nil {
			return nil, err
		}
	}
	for i, s := range sides {
		if err := r.query(ctx, s, &figs[i]); err != nil {
			return nil, err
		}
	}
	res := r.result(figs, brokerInfo)
	return res, nil
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "bench: "+format+"\n", args...)
}

func (r *run) dir(s side, what string) string { return filepath.Join(r.cfg.DataDir, s.name+"-"+what) }

func (r *run) burstUsers() int { return max(1, r.cfg.Users/1000) }

func (r *run) createTopics(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ends, err := r.adm.ListEndOffsets(ctx, string(topics.Transactions))
	if err == nil {
		var n int64
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				n += o.Offset
			}
		})
		if n > 0 {
			return fmt.Errorf("bench: topic %q already holds %d records; run the benchmark on a cluster without fraudwatch's topics (or without --brokers)",
				topics.Transactions, n)
		}
	}
	if _, err := topics.Create(ctx, r.adm, topics.Spec{Partitions: int32(r.cfg.Partitions), Replication: 1}); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	for _, t := range baseline.Topics() {
		var cfg map[string]*string
		if t == string(baseline.Table()) {
			compact := "compact"
			cfg = map[string]*string{"cleanup.policy": &compact}
		}
		if _, err := r.adm.CreateTopic(ctx, int32(r.cfg.Partitions), 1, cfg, t); err != nil {
			return fmt.Errorf("bench: creating %q: %w", t, err)
		}
	}
	return nil
}

// record is an event's Kafka record: unkeyed, or keyed by user with cfg.Keyed.
func (r *run) record(user string, v []byte) *kgo.Record {
	if r.cfg.Keyed {
		return &kgo.Record{Key: []byte(user), Value: v}
	}
	return &kgo.Record{Value: v}
}

// preProduce writes cfg.Events generated events, unkeyed (or keyed by
// user_id with cfg.Keyed), as fast as the broker takes them.
func (r *run) preProduce(ctx context.Context) error {
	gen := generator.New(generator.Config{Users: r.cfg.Users, BurstUsers: r.burstUsers(), Seed: r.cfg.Seed})
	seen := map[string]struct{}{}
	var acked, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	stop := r.ticker(func() string {
		n := acked.Load()
		return fmt.Sprintf("producing %s/%s events (%s/s)", commas(n), commas(int64(r.cfg.Events)),
			commas(int64(float64(n)/time.Since(start).Seconds())))
	})
	defer stop()
	// Event times are spread so that a user makes one transaction a minute
	// on average (at most a day back): normal users stay under the velocity
	// threshold and alerts come from the bursts, as in the seed data. They
	// end latencyHeadroom ago, so that the latency runs go on at the same
	// pace per user (nextEventTime).
	span := min(time.Duration(float64(r.cfg.Events)/float64(r.cfg.Users)*float64(time.Minute)), 24*time.Hour)
	end := time.Now().Add(-latencyHeadroom)
	base := end.Add(-span)
	r.clock = end
	for i := 0; i < r.cfg.Events; i++ {
		t := gen.Next(base.Add(time.Duration(float64(span) * float64(i) / float64(r.cfg.Events))))
		if _, ok := seen[t.UserID]; !ok {
			seen[t.UserID] = struct{}{}
			r.users = append(r.users, t.UserID)
		}
		v, err := t.MarshalJSON()
		if err != nil {
			return err
		}
		r.bytes += int64(len(v))
		r.cl.Produce(ctx, r.record(t.UserID, v), func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			acked.Add(1)
		})
	}
	if err := r.cl.Flush(ctx); err != nil {
		return err
	}
	if failed.Load() > 0 {
		return fmt.Errorf("bench: %d events failed to produce: %v", failed.Load(), firstErr.Load())
	}
	r.progress("produced %s events for %s users in %v", commas(int64(r.cfg.Events)), commas(int64(len(r.users))),
		time.Since(start).Round(time.Millisecond))
	return nil
}

// latencyHeadroom is how far behind the wall clock the pre-produced events
// end: the event time the latency runs have to go on at one transaction per
// user a minute. At 100,000 users that is 6M events.
const latencyHeadroom = time.Hour

// nextEventTime returns the event time of the next event of a latency run:
// it goes on from r.clock by a minute per user and event, so that a user keeps
// making one transaction a minute on average, as in the pre-produced events,
// but never past now. With event times of now instead, 100,000 users at
// 41,572 events/s each made 25 a minute: every user crossed the velocity
// rule (92,479 alerts in the timed 20 s, of which 7,621 from the bursts) and
// held a state of up to three minutes of events, which is not the seed's
// traffic ("fraudwatch bench --skip-baseline": alert p99 10,850 ms, 41.4
// CPU-µs per event; with these event times, at 33,236 events/s, 6,415 alerts
// of which 6,136 from the bursts, p99 124 ms, 28.2 µs).
// Event times are never behind a user's stream time, so nothing is late.
func (r *run) nextEventTime(now time.Time) time.Time {
	r.clock = r.clock.Add(time.Minute / time.Duration(r.cfg.Users))
	if r.clock.After(now) {
		r.clock = now
	}
	return r.clock
}

// ticker prints line() every second until the returned stop is called.
func (r *run) ticker(line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.progress("%s", line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// lag is how many records of the input and loop topics s's group has not committed.
func (r *run) lag(ctx context.Context, s side) (input, loop int64, err error) {
	ends, err := r.adm.ListEndOffsets(ctx, string(topics.Transactions), s.loop)
	if err != nil {
		return 0, 0, err
	}
	committed, err := r.adm.FetchOffsets(ctx, s.group)
	if err != nil {
		return 0, 0, err
	}
	ends.Each(func(o kadm.ListedOffset) {
		got := int64(0)
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok {
			got = max(c.At, 0)
		}
		if d := o.Offset - got; d > 0 {
			if o.Topic == s.loop {
				loop += d
			} else {
				input += d
			}
		}
	})
	return input, loop, nil
}

// child is the configuration of a child of role in dir.
func (r *run) child(role Role, dir string) ChildConfig {
	return ChildConfig{Role: role, Brokers: r.brokers, DataDir: dir, StateCacheMB: r.cfg.StateCacheMB, WriteBufferMB: r.cfg.WriteBufferMB,
		FetchWait: r.cfg.FetchWait, GCPercent: r.cfg.ServeGCPercent, GCHeadroomMB: r.cfg.ServeGCHeadroomMB, ProcessGCHeadroomMB: r.cfg.GCHeadroomMB}
}

// caughtUp polls until s's group committed everything, while c lives,
// saying every second how far it is (total: the records to commit, for a
// rate; 0: the lags only).
func (r *run) caughtUp(ctx context.Context, s side, c *child, what string, total int64) error {
	start := time.Now()
	var in, loop atomic.Int64
	in.Store(total)
	stop := r.ticker(func() string {
		if total == 0 {
			return fmt.Sprintf("%s %s: input lag %s, loop lag %s", s.name, what, commas(in.Load()), commas(loop.Load()))
		}
		done := total - in.Load()
		return fmt.Sprintf("%s %s: %s/%s input records committed (%s/s), loop lag %s", s.name, what, commas(done), commas(total),
			commas(int64(float64(done)/time.Since(start).Seconds())), commas(loop.Load()))
	})
	defer stop()
	for {
		if err := c.alive(); err != nil {
			return err
		}
		i, l, err := r.lag(ctx, s)
		if err == nil {
			in.Store(i)
			loop.Store(l)
			if i == 0 && l == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *run) throughput(ctx context.Context, s side, f *figures) error {
	r.progress("%s throughput: starting one processor on %s pre-produced events", s.name, commas(int64(r.cfg.Events)))
	cc := r.child(s.process, r.dir(s, "process"))
	if r.cfg.ProfileDir != "" {
		cc.CPUProfile = filepath.Join(r.cfg.ProfileDir, s.name+"-throughput.cpu.pprof")
	}
	harness0 := procUsage(os.Getpid())
	gcs0, _ := harnessHeap()
	c, err := start(r.cfg.Spawn, cc, r.cfg.Progress)
	if err != nil {
		return err
	}
	defer c.stop()
	if err := r.caughtUp(ctx, s, c, "throughput", int64(r.cfg.Events)); err != nil {
		return err
	}
	elapsed := time.Since(c.started)
	u := c.usage()
	harness := procUsage(os.Getpid())
	gcs, _ := harnessHeap()
	f.tpSeconds = seconds(elapsed)
	f.eps = float64(r.cfg.Events) / elapsed.Seconds()
	f.cpuPerEvent = float64(u.CPU.Microseconds()) / float64(r.cfg.Events)
	f.peakRSS = u.PeakRSS
	r.progress("%s throughput: %s events/s, %.1f CPU-µs/event, peak RSS %d MiB; the harness (its embedded broker, if any, and lag polls) used %.2f cores, %d page faults and %d collections meanwhile",
		s.name, commas(int64(f.eps)), f.cpuPerEvent, f.peakRSS>>20, (harness.CPU-harness0.CPU).Seconds()/elapsed.Seconds(), harness.MinorFaults-harness0.MinorFaults, gcs-gcs0)
	return nil
}

// latency runs events at half of s's throughput and times the alerts.
func (r *run) latency(ctx context.Context, s side, f *figures) error {
	cc := r.child(s.process, r.dir(s, "process"))
	if r.cfg.ProfileDir != "" {
		cc.CPUProfile = filepath.Join(r.cfg.ProfileDir, s.name+"-latency.cpu.pprof")
	}
	stages := s.process == RoleProcess // fraudwatch's processor times its stages
	if stages {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		cc.HTTPAddr = addr
	}
	c, err := start(r.cfg.Spawn, cc, r.cfg.Progress)
	if err != nil {
		return err
	}
	defer c.stop()
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	in, _, err := r.lag(ctx, s)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := r.caughtUp(ctx, s, c, "catching up before the latency run", in); err != nil {
		return err
	}
	rate := f.eps / 2
	if r.cfg.LatencyRate > 0 {
		rate = r.cfg.LatencyRate
	}
	r.progress("%s alert latency: %s events/s for %v after a warm-up of %v", s.name, commas(int64(rate)), r.cfg.LatencyDuration, r.cfg.LatencyWarmup)
	f.latency.RateEPS = rate
	if r.cfg.ProfileDir != "" { // the harness's side: generating, producing, the embedded broker
		stop, err := startCPUProfile(filepath.Join(r.cfg.ProfileDir, s.name+"-latency-harness.cpu.pprof"))
		if err != nil {
			return err
		}
		defer stop()
	}

	// Read alerts from the current end.
	ends, err := r.adm.ListEndOffsets(ctx, s.alerts)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	offs := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { offs[o.Partition] = kgo.NewOffset().At(o.Offset) })
	ac, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ClientID("fraudwatch-bench-alerts"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.alerts: offs}), kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		return fmt.Errorf("bench: kafka client: %w", err)
	}
	defer ac.Close()

	var mu sync.Mutex
	sent := map[string]time.Time{} // burst users' transactions -> send time
	next := map[int32]int64{}      // alert partition -> next offset to read
	ends.Each(func(o kadm.ListedOffset) { next[o.Partition] = o.Offset })
	var lat []time.Duration
	var latSent []time.Time // lat[i]'s transaction was sent at latSent[i]
	cctx, cancel := context.WithCancel(ctx)
	consumed := make(chan struct{})
	// stopConsumer ends the alert consumer and waits for it.
	stopConsumer := func() {
		cancel()
		<-consumed
	}
	go func() {
		defer close(consumed)
		for cctx.Err() == nil {
			fs := ac.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				ids := s.alertTxns(rec.Value)
				mu.Lock()
				next[rec.Partition] = rec.Offset + 1
				var last time.Time
				for _, id := range ids {
					if t, ok := sent[id]; ok && t.After(last) {
						last = t
					}
				}
				if !last.IsZero() {
					lat = append(lat, now.Sub(last))
					latSent = append(latSent, last)
				}
				mu.Unlock()
			})
		}
	}()

	// An alert fires once per user and window: many burst users give every
	// burst a fresh one, so that most bursts raise an alert to time.
	gen := generator.New(generator.Config{Users: r.cfg.Users, BurstUsers: 1_000_000, Seed: r.cfg.Seed + uint64(len(s.name))*7919})
	warm := int(rate * r.cfg.LatencyWarmup.Seconds())
	n := warm + int(rate*r.cfg.LatencyDuration.Seconds())
	resident := min(int64(n)*harnessBytesPerEvent, machine().MemoryBytes/4)
	r.progress("%s alert latency: making %d MiB of the harness's memory resident", s.name, resident>>20)
	defer quietGC(resident)()
	var produced atomic.Int64
	var lags lagSamples
	stopTicker := sync.OnceFunc(r.ticker(func() string {
		line := fmt.Sprintf("%s alert latency: %s/%s events sent", s.name, commas(produced.Load()), commas(int64(n)))
		in, loop, err := r.lag(ctx, s)
		if err != nil {
			return line + ", lag unknown: " + err.Error()
		}
		lags.add(in, loop)
		return line + fmt.Sprintf(", lag %s records (input %s, loop %s)", commas(in+loop), commas(in), commas(loop))
	}))
	defer stopTicker()
	begin := time.Now()
	var perr atomic.Value
	// The stage histograms as the timed run starts (read aside, so the
	// rate is kept); the run's figures are the difference to the end.
	var before processorMetrics
	var beforeErr error
	scraped := make(chan struct{})
	if !stages {
		close(scraped)
	}
	var cpu0 time.Duration
	var sampling *sampler // the processor's timeline, if one is written
	defer func() {
		if sampling != nil {
			_, _ = sampling.stop()
		}
	}()
	for i := 0; i < n; i++ {
		if i == warm { // the timed run starts
			cpu0 = c.usage().CPU
			lags.start()
			if stages {
				go func() {
					defer close(scraped)
					before, beforeErr = scrapeProcessor(ctx, cc.HTTPAddr)
				}()
				if r.cfg.TimelineDir != "" {
					sampling = startSampler(ctx, c, cc.HTTPAddr)
				}
			}
		}
		if d := time.Until(begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			select {
			case <-ctx.Done():
				stopConsumer()
				return ctx.Err()
			case <-time.After(d):
			}
		}
		now := time.Now()
		t := gen.Next(r.nextEventTime(now))
		v, _ := t.MarshalJSON()
		if i >= warm && strings.HasPrefix(t.UserID, "usr_burst_") {
			mu.Lock()
			sent[t.TransactionID] = now
			mu.Unlock()
		}
		r.cl.Produce(ctx, r.record(t.UserID, v), func(_ *kgo.Record, err error) {
			if err != nil {
				perr.CompareAndSwap(nil, err)
			}
		})
		produced.Add(1)
	}
	if err := r.cl.Flush(ctx); err != nil {
		stopConsumer()
		return err
	}
	if err, _ := perr.Load().(error); err != nil {
		stopConsumer()
		return fmt.Errorf("bench: producing: %w", err)
	}
	stopTicker()
	// How far behind the processor was as the last event went out: a run
	// whose rate is more than the shared cores sustain live falls behind and
	// stays behind, and its alert latency is then the backlog's age.
	in, loop, err := r.lag(ctx, s)
	if err != nil {
		stopConsumer()
		return fmt.Errorf("bench: %w", err)
	}
	lags.add(in, loop)
	f.endLag = in + loop
	var topicLag int64
	f.maxLag, topicLag = lags.most()
	if behind := float64(topicLag) / rate; behind >= lagWarnSeconds {
		r.progress("%s alert latency: the processor fell behind: %s records of one topic not committed, %.1f s of input at %s events/s (it commits every second at most)",
			s.name, commas(topicLag), behind, commas(int64(rate)))
	}
	err = r.caughtUp(ctx, s, c, "draining the latency run", 0)
	// every alert of the run is in the topic once the group caught up; read to its end.
	if err == nil {
		err = r.drain(ctx, s.alerts, &mu, next)
	}
	stopConsumer()
	<-scraped
	if err != nil {
		return err
	}
	if sampling != nil {
		samples, err := sampling.stop()
		sampling = nil
		if err == nil {
			err = r.writeProcessorTimeline(s.name+"-processor.csv", samples)
		}
		if err != nil {
			return err
		}
	}
	f.latencyCPU = float64((c.usage().CPU - cpu0).Microseconds()) / float64(max(n-warm, 1))
	if stages {
		after, err := scrapeProcessor(ctx, cc.HTTPAddr)
		if err = errors.Join(beforeErr, err); err != nil {
			return err
		}
		f.stages = stageLatencies(before.stages, after.stages)
		f.state = after.state.sub(before.state)
		f.gc = after.gc.sub(before.gc)
		r.progress("%s local state: %.1f%% of state reads from LevelDB, %.0f compactions (%.2f s); %.0f collections (%.1f ms stopped)", s.name,
			100*f.state.storedShare(), f.state.compactions, f.state.compactionSeconds, f.gc.cycles, 1000*f.gc.pauseSeconds)
		for _, st := range []string{detector.StageInput, detector.StageLoop, detector.StageAlertAck} {
			p := f.stages[st]
			r.progress("%s stage %s: p50 %.1f ms, p99 %.1f ms over %d", s.name, st, p.P50, p.P99, p.Samples)
		}
	}
	mu.Lock() // the reader has stopped: lat and latSent are final
	f.latency = percentiles(lat)
	mu.Unlock()
	if err := r.writeTimeline(s.name+"-alerts.csv", latSent, lat); err != nil {
		return err
	}
	f.latency.RateEPS = rate
	r.progress("%s alert latency: p50 %.1f ms, p99 %.1f ms, p999 %.1f ms over %d alerts; %.1f CPU-µs/event", s.name,
		f.latency.P50, f.latency.P99, f.latency.P999, f.latency.Samples, f.latencyCPU)
	return nil
}

// lagSamples keeps the most records not committed over the timed part of a
// latency run: of both topics together, and of either one.
type lagSamples struct {
	mu              sync.Mutex
	timed           bool
	total, oneTopic int64
}

// start starts the timed part: samples before it are not kept.
func (l *lagSamples) start() {
	l.mu.Lock()
	l.timed = true
	l.mu.Unlock()
}

// add keeps a sample of the input and loop topics' lags.
func (l *lagSamples) add(input, loop int64) {
	l.mu.Lock()
	if l.timed {
		l.total = max(l.total, input+loop)
		l.oneTopic = max(l.oneTopic, input, loop)
	}
	l.mu.Unlock()
}

// most returns the most records not committed of both topics together and
// of either one.
func (l *lagSamples) most() (total, oneTopic int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.oneTopic
}

// lagWarnSeconds is the lag of the input or the loop topic, in seconds of
// input at the run's rate, from which the latency run says the processor fell
// behind. The baseline commits every second, fraudwatch's processor every
// second at most (more often when its partitions run out of records for a
// moment: see commitWhenQuiet in internal/kafka), so up to a second's records
// uncommitted on each topic is a lag of commits, not of processing.
const lagWarnSeconds = 1.5

// quietGC stops the harness's own garbage collection until the returned
// function is called, unless its heap grows by quietGCHeadroom beyond
// resident bytes, which it first makes resident (see makeResident): a timed
// run measures the processor or view service, and the harness (the embedded
// broker, the producer, the alert reader, the query clients) is its
// apparatus. The embedded broker holds every record of the run, hundreds of
// MB of objects, and a runtime trace of a latency run at 62,000 events/s
// showed a collection of the harness running its two mark workers on both
// cores for 140 ms: the broker answered nothing meanwhile, the processor sat
// idle, and the alerts sent then took 200-256 ms. Both sides' timed runs are
// treated alike.
func quietGC(resident int64) (restore func()) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	limit := debug.SetMemoryLimit(int64(m.HeapAlloc) + resident + quietGCHeadroom)
	percent := debug.SetGCPercent(-1)
	makeResident(resident)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}

// quietGCHeadroom is how much the harness's heap may grow in a timed run
// beyond what was made resident before it collects anyway.
const quietGCHeadroom = 4 << 30

// harnessBytesPerEvent is what the harness's heap grows by per event of a
// latency run without collections: the embedded broker copies each record
// into its log and into every fetch of it, and a produce request's bytes
// are garbage once stored (2.2 KB measured at 68,000 events/s, with room).
const harnessBytesPerEvent = 3 << 10

// makeResident makes n bytes of the harness's heap resident and free, for
// the heap of a timed run without collections to grow into. Without it the
// heap grew into memory the kernel had to fault in and zero a page at a time:
// at 68,000 events/s about 30,000 page faults a second, which took a fifth
// of a core of system time from the two the processor shares, through the
// whole latency run. Made resident first (3,000 MB), the run took about 300
// page faults a second until the heap outgrew it 18 s in, and then 20,000-30,000
// again.
//
// It is made resident a runtime page (8 KiB) at a time, as the run's heap
// grows: the lowest free pages first, wherever they are. From the second run
// of "bench --repeat" on, the heap is full of holes the earlier runs' brokers
// left, hundreds of MB of them given back to the kernel since (766 MB in one
// run), and the chunks of 64 MiB this was first done in skipped them. The
// timed run's heap then grew into those holes: in the processor's timelines
// of a round's second and third runs, 5,000-13,700 page faults in 40 and 62
// of the 81 quarter seconds, a third to two thirds of a core of the
// harness's system time in those, and the alerts' p99 at 113 and 211 ms
// against 26 ms in the first run, which had 8,841 faults in all.
func makeResident(n int64) {
	if n <= 0 {
		return
	}
	const chunk = 8 << 10 // the runtime's page
	page := os.Getpagesize()
	bufs := make([][]byte, 0, n/chunk+1)
	for got := int64(0); got < n; got += chunk {
		b := make([]byte, chunk)
		for i := 0; i < len(b); i += page {
			b[i] = 1 // faulted in now
		}
		bufs = append(bufs, b)
	}
	runtime.GC() // free, and kept: no collection runs to give it back to the kernel
}

// writeTimeline writes latencies lat, each started at sent, to name in the
// timeline dir (none: nothing), in the order they started.
func (r *run) writeTimeline(name string, sent []time.Time, lat []time.Duration) error {
	if r.cfg.TimelineDir == "" {
		return nil
	}
	rows := make([][2]int64, len(lat))
	for i := range rows {
		rows[i] = [2]int64{sent[i].UnixMicro(), lat[i].Microseconds()}
	}
	slices.SortStableFunc(rows, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var b strings.Builder
	b.WriteString("sent_unix_us,latency_us\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "%d,%d\n", row[0], row[1])
	}
	if err := os.WriteFile(filepath.Join(r.cfg.TimelineDir, name), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("bench: timeline: %w", err)
	}
	return nil
}

// drain waits until next (guarded by mu) reached the current end of topic.
func (r *run) drain(ctx context.Context, topic string, mu *sync.Mutex, next map[int32]int64) error {
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		behind := false
		mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			if next[o.Partition] < o.Offset {
				behind = true
			}
		})
		mu.Unlock()
		if !behind {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: alerts of %s not read within a minute", topic)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// restore starts s's processor on an empty disk and times it to ready.
func (r *run) restore(ctx context.Context, s side, f *figures) error {
	records, err := r.count(ctx, s.table)
	if err != nil {
		return err
	}
	dir := r.dir(s, "restore")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.progress("%s restore: rebuilding %s changelog records on an empty data dir", s.name, commas(records))
	cc := r.child(s.process, dir)
	if r.cfg.ProfileDir != "" {
		cc.CPUProfile = filepath.Join(r.cfg.ProfileDir, s.name+"-restore.cpu.pprof")
	}
	c, err := start(r.cfg.Spawn, cc, r.cfg.Progress)
	if err != nil {
		return err
	}
	defer c.stop()
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	d := time.Since(c.started)
	f.restoreSeconds, f.restoreRecords = seconds(d), records
	f.restoreRPS = float64(records) / d.Seconds()
	f.restorePeakRSS = c.usage().PeakRSS
	r.progress("%s restore: ready after %v (%s records/s), peak RSS %d MiB", s.name, d.Round(time.Millisecond), commas(int64(f.restoreRPS)), f.restorePeakRSS>>20)
	return nil
}

// count reads topic to its end and counts its records (a compacted topic
// has fewer records than its end offsets say).
func (r *run) count(ctx context.Context, topic string) (int64, error) {
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, fmt.Errorf("bench: kafka client: %w", err)
	}
	defer cl.Close()
	var n int64
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		fs.EachRecord(func(rec *kgo.Record) {
			n++
			if rec.Offset+1 >= want[rec.Partition] {
				delete(want, rec.Partition)
			}
		})
	}
	return n, nil
}

// query starts s's view service and runs the clients against it.
func (r *run) query(ctx context.Context, s side, f *figures) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	dir := r.dir(s, "serve")
	_ = os.RemoveAll(dir)
	cc := r.child(s.serve, dir)
	cc.HTTPAddr = addr
	if r.cfg.ProfileDir != "" {
		cc.CPUProfile = filepath.Join(r.cfg.ProfileDir, s.name+"-serve.cpu.pprof")
	}
	c, err := start(r.cfg.Spawn, cc, r.cfg.Progress)
	if err != nil {
		return err
	}
	defer c.stop()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: r.cfg.Clients, MaxIdleConns: r.cfg.Clients}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	r.progress("%s queries: waiting for the view service to recover", s.name)
	// The baseline's goka View goes from recovered back to connecting for a
	// moment when its partitions switch to catching up, so readiness must
	// hold for a second before the clients start.
	var readySince time.Time
	for readySince.IsZero() || time.Since(readySince) < time.Second {
		if err := c.alive(); err != nil {
			return err
		}
		ok := false
		resp, err := hc.Get("http://" + addr + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
		switch {
		case !ok:
			readySince = time.Time{}
		case readySince.IsZero():
			readySince = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.progress("%s queries: %d clients for %v, each sending its next request when the last is answered", s.name, r.cfg.Clients, r.cfg.QueryDuration)
	defer quietGC(0)()
	all, _, took, err := r.ask(ctx, s, addr, 0)
	if err != nil {
		return err
	}
	f.querySaturated = percentiles(all)
	f.queryRPS = float64(len(all)) / took.Seconds()
	r.progress("%s queries: p50 %.2f ms, p99 %.2f ms, %s requests/s", s.name, f.querySaturated.P50, f.querySaturated.P99, commas(int64(f.queryRPS)))
	rate := r.cfg.QueryRate
	if rate == 0 {
		rate = f.queryRPS / 2
	}
	r.progress("%s queries: %d clients for %v at %s requests/s", s.name, r.cfg.Clients, r.cfg.QueryDuration, commas(int64(rate)))
	all, sent, _, err := r.ask(ctx, s, addr, rate)
	if err != nil {
		return err
	}
	if err := r.writeTimeline(s.name+"-queries.csv", sent, all); err != nil {
		return err
	}
	f.query = percentiles(all)
	f.query.RateEPS = rate
	r.progress("%s queries at %s requests/s: p50 %.2f ms, p99 %.2f ms, p999 %.2f ms", s.name, commas(int64(rate)), f.query.P50, f.query.P99, f.query.P999)
	for i, rate := range r.cfg.QueryRates {
		r.progress("%s queries: %d clients for %v at %s requests/s (rate %d of %d)", s.name, r.cfg.Clients, r.cfg.QueryDuration, commas(int64(rate)), i+1, len(r.cfg.QueryRates))
		all, _, _, err := r.ask(ctx, s, addr, rate)
		if err != nil {
			return err
		}
		p := percentiles(all)
		p.RateEPS = rate
		f.queryByRate = append(f.queryByRate, p)
		r.progress("%s queries at %s requests/s: p50 %.2f ms, p99 %.2f ms, p999 %.2f ms", s.name, commas(int64(rate)), p.P50, p.P99, p.P999)
	}
	f.queryPeakRSS = c.usage().PeakRSS
	return nil
}

// ask runs the query clients against addr for the query duration and returns
// every request's latency, when each was sent or due (with a rate and a
// timeline dir; else nil), and how long they ran. With rate 0 each client
// sends its next request as soon as the last one is answered (the service's
// most requests/s). With a rate, the clients together send rate requests/s
// on a fixed schedule, client i's k-th request due at i/rate + k·clients/rate.
// A request that could not go when due, because the answer before it came
// late, is timed from when it was due: a stall of the service counts in
// every request queued behind it too (no coordinated omission). One that
// waits for its time is timed from when it is sent, as the sleep's overshoot
// is the harness's, not the service's.
func (r *run) ask(ctx context.Context, s side, addr string, rate float64) ([]time.Duration, []time.Time, time.Duration, error) {
	var wg sync.WaitGroup
	lats := make([][]time.Duration, r.cfg.Clients)
	sents := make([][]time.Time, r.cfg.Clients)
	keepSent := rate > 0 && r.cfg.TimelineDir != "" // only a fixed-rate run's go to a timeline
	var bad atomic.Int64
	var firstBad atomic.Value
	begin := time.Now()
	end := begin.Add(r.cfg.QueryDuration)
	for i := range lats {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)))
			var qc queryConn
			defer qc.close()
			var every time.Duration
			due := begin
			if rate > 0 {
				every = time.Duration(float64(len(lats)) / rate * float64(time.Second))
				due = begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			}
			for due.Before(end) && ctx.Err() == nil {
				u := r.users[rnd.IntN(len(r.users))]
				t0 := time.Now()
				if rate == 0 {
					due = t0
				} else {
					if t0.Before(due) { // ahead of schedule: a sleep's overshoot is the harness's
						time.Sleep(due.Sub(t0))
						t0 = time.Now()
					} else { // behind it, as the last answer came late: the time since it was due counts
						t0 = due
					}
					due = due.Add(every)
				}
				status, body, err := qc.get(addr, "/v1/users/"+u)
				if err != nil {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
				if keepSent {
					sents[i] = append(sents[i], t0)
				}
				if status != http.StatusOK {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("GET /v1/users/%s: %d: %.200s", u, status, body))
				}
			}
		}(i)
	}
	wg.Wait()
	took := time.Since(begin)
	all := slices.Concat(lats...)
	if n := bad.Load(); n > 0 {
		return nil, nil, 0, fmt.Errorf("bench: %s: %d of %d queries failed, first: %v", s.name, n, len(all), firstBad.Load())
	}
	return all, slices.Concat(sents...), took, nil
}

// queryConn is one measuring client's keep-alive HTTP/1.1 connection. It
// writes each request itself and parses the answer with net/http's
// ReadResponse: net/http's Transport hands every request between two
// goroutines per connection, and on this benchmark's shared cores that
// client-side cost was measured in the query latency of both sides.
type queryConn struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte
}

// get asks for path and returns the status and body; a failed connection is
// closed, and the next get dials again.
func (q *queryConn) get(addr, path string) (int, []byte, error) {
	if q.conn == nil {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return 0, nil, err
		}
		q.conn, q.br = c, bufio.NewReaderSize(c, 16<<10)
	}
	q.req = append(append(append(q.req[:0], "GET "...), path...), " HTTP/1.1\r\nHost: fraudwatch\r\n\r\n"...)
	_ = q.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := q.conn.Write(q.req); err != nil {
		q.close()
		return 0, nil, err
	}
	resp, err := http.ReadResponse(q.br, nil)
	if err != nil {
		q.close()
		return 0, nil, err
	}
	buf := bytes.NewBuffer(q.body[:0])
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	q.body = buf.Bytes()
	if err != nil || resp.Close {
		q.close()
	}
	return resp.StatusCode, q.body, err
}

func (q *queryConn) close() {
	if q.conn != nil {
		q.conn.Close()
		q.conn = nil
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// percentiles of ds in milliseconds (nearest rank).
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	ds = slices.Clone(ds) // the caller's order stays: a timeline pairs it with start times
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.999999) - 1
		return millis(ds[min(max(i, 0), len(ds)-1)])
	}
	return Percentiles{P50: at(0.50), P99: at(0.99), P999: at(0.999), Samples: len(ds)}
}

func (r *run) result(figs []figures, brokerInfo string) *Result {
	fw := figs[0]
	var bl figures
	if len(figs) > 1 {
		bl = figs[1]
	}
	users := len(r.users)
	perM := func(rss int64) float64 { return float64(rss) * 1e6 / float64(max(users, 1)) }
	ready := func(f figures) float64 {
		if users >= 1_000_000 {
			return f.restoreSeconds * 1e6 / float64(users)
		}
		if f.restoreRPS == 0 {
			return 0
		}
		return 1e6 / f.restoreRPS
	}
	res := &Result{
		ThroughputEPS: fw.eps, BaselineThroughputEPS: bl.eps,
		CPUMicrosPerEvent: fw.cpuPerEvent, BaselineCPUMicros: bl.cpuPerEvent,
		ThroughputSeconds: fw.tpSeconds, BaselineThroughputSec: bl.tpSeconds,
		AlertLatencyMS: fw.latency, BaselineAlertLatencyMS: bl.latency, StageLatencyMS: fw.stages,
		LatencyCPUMicrosPerEvent: fw.latencyCPU, BaselineLatencyCPUMicros: bl.latencyCPU,
		LatencyStoredReadShare: fw.state.storedShare(), LatencyCompactions: fw.state.compactions, LatencyCompactionSeconds: fw.state.compactionSeconds,
		LatencyGCCycles: fw.gc.cycles, LatencyGCPauseMS: 1000 * fw.gc.pauseSeconds,
		LatencyMaxLagRecords: fw.maxLag, BaselineLatencyMaxLagRecords: bl.maxLag, LatencyEndLagRecords: fw.endLag, BaselineLatencyEndLagRecords: bl.endLag,
		RestoreSeconds: fw.restoreSeconds, RestoreRecords: fw.restoreRecords, RestoreRPS: fw.restoreRPS,
		BaselineRestoreSeconds: bl.restoreSeconds, BaselineRestoreRecords: bl.restoreRecords, BaselineRestoreRPS: bl.restoreRPS,
		RestorePeakRSSBytes: fw.restorePeakRSS, BaselineRestorePeakRSSBytes: bl.restorePeakRSS,
		QueryPeakRSSBytes: fw.queryPeakRSS, BaselineQueryPeakRSSBytes: bl.queryPeakRSS,
		ReadySeconds1MUsers: ready(fw), BaselineReadySeconds1MUsers: ready(bl), ReadySeconds1MUsersEstimated: users < 1_000_000,
		QueryLatencyMS: fw.query, QueryRPS: fw.queryRPS, BaselineQueryLatencyMS: bl.query, BaselineQueryRPS: bl.queryRPS,
		QuerySaturatedLatencyMS: fw.querySaturated, BaselineQuerySaturatedLatencyMS: bl.querySaturated,
		QueryLatencyByRateMS: fw.queryByRate, BaselineQueryLatencyByRateMS: bl.queryByRate,
		PeakRSSBytes: fw.peakRSS, BaselinePeakRSSBytes: bl.peakRSS, UsersHeld: users,
		RSSBytesPerMillionUsers: perM(fw.peakRSS), BaselineRSSBytesPerMillionUsers: perM(bl.peakRSS),
		Config: RunInfo{Broker: brokerInfo, Events: r.cfg.Events, Users: r.cfg.Users, BurstUsers: r.burstUsers(),
			Partitions: r.cfg.Partitions, Clients: r.cfg.Clients, EventBytesAvg: float64(r.bytes) / float64(r.cfg.Events),
			LatencyEvents: int(fw.latency.RateEPS * r.cfg.LatencyDuration.Seconds()), LatencyWarmupSeconds: r.cfg.LatencyWarmup.Seconds(), QuerySeconds: r.cfg.QueryDuration.Seconds(),
			Keyed: r.cfg.Keyed, StateCacheMB: r.cfg.StateCacheMB, WriteBufferMB: r.cfg.WriteBufferMB, FetchWaitMS: float64(r.cfg.FetchWait) / 1e6, ServeGCPercent: r.cfg.ServeGCPercent, GCHeadroomMB: r.cfg.GCHeadroomMB, ServeGCHeadroomMB: r.cfg.ServeGCHeadroomMB, ProducerLingerMS: float64(r.cfg.ProducerLinger) / 1e6, Baseline: !r.cfg.SkipBaseline, Repeat: 1, Started: r.started.UTC().Format(time.RFC3339), WallSeconds: time.Since(r.started).Seconds()},
		Machine: machine(),
	}
	res.Machine.LoadAvgStart, res.Machine.LoadAvgEnd = r.load, loadAvg()
	res.Notes = []string{
		"processors and view services run as child processes; CPU and peak RSS are theirs alone (/proc). The broker, producers and measuring clients share the same cores.",
		"throughput: from the processor's start (all events already produced) until its group committed every input and loop offset (fraudwatch commits as soon as its records stop, the baseline every second).",
		"rss_bytes_per_million_users: the processor's peak RSS after the throughput run, scaled linearly from the users it held to 1M (fixed costs are scaled too, so small runs overstate it).",
	}
	if res.ReadySeconds1MUsersEstimated {
		res.Notes = append(res.Notes, fmt.Sprintf("time_to_ready_1m_users: estimated as 1M changelog records (one per user, compacted) at the measured restore rate; this run held %s users. fraudwatch writes a user rewritten many times in the changelog once, so its rate here overstates a changelog of 1M distinct users: measure that with --users 1000000.", commas(int64(users))))
	}
	res.finish()
	return res
}
