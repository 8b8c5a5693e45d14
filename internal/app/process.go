// Package app wires fraudwatch's components into the subcommands: it owns
// their lifecycles (one errgroup per command, cancelled by ctx), builds every
// Kafka client from internal/kafka, and serves the HTTP endpoints.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/telemetry"
	"github.com/fraudwatch/fraudwatch/internal/topics"
	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// ProcessConfig configures one processor instance.
type ProcessConfig struct {
	Brokers  []string
	DataDir  string
	ClientID string
	Rules    rules.Config
	MaxBytes int
	MaxSkew  time.Duration
	HTTPAddr string // "" serves no HTTP
	Security kafka.Security
	// StateCacheMB is the memory for cached user states (0: DefaultStateCacheMB).
	StateCacheMB int
	// RestoreCacheMB is what the cached user states may take while the
	// changelog is replayed, before the processor is ready (0:
	// DefaultRestoreCacheMB; never less than StateCacheMB).
	RestoreCacheMB int
	// WriteBufferMB is LevelDB's write buffer per partition (0: DefaultWriteBufferMB).
	WriteBufferMB int
	// FetchWait is how long the input and loop consumers' fetches wait for
	// 32 KiB of records (0: kafka.DefaultFetchWait).
	FetchWait time.Duration
	// CommitInterval is how often the finished input and loop offsets are
	// committed (0: kafka.DefaultCommitInterval).
	CommitInterval time.Duration
	// ProduceLinger is how long the loop and changelog records wait to be
	// batched (0: kafka.DefaultProduceLinger). Alerts never wait.
	ProduceLinger time.Duration
	// GroupInstanceID makes this instance a static member of the group
	// (Kafka's group.instance.id, KIP-345): "" for a dynamic member.
	GroupInstanceID string
	// GCHeadroomMB, when set, raises the process's GOGC after each
	// collection so that the heap may grow this much beyond the live data
	// before the next one, never below the GOGC the process has (see
	// DefaultGCHeadroomMB). 0: GOGC is left alone. GOGC belongs to the OS
	// process: set it for one processor per process.
	GCHeadroomMB int
}

// DefaultGCPercent is the processor's GOGC. Go's default of 100 lets the heap
// grow to twice the live data between collections; at 1M users a processor
// peaked at 492-517 MiB of RSS per 1M users with it (two runs), at 449-461
// with GOGC=80 in the environment of the whole benchmark, and at 458-476 with
// this default ("fraudwatch bench --users 1000000 --events 2000000"). A
// collection a little more often is the price. GOGC belongs to the whole OS
// process, so the command that runs a processor sets it (--gc-percent), not
// the processor.
const DefaultGCPercent = 80

// DefaultStateCacheMB is the default memory for cached user states. A
// processor holding 844,550 users peaked at 492 MiB of RSS per 1M users with
// 28 MiB, against 513 (two runs) with 32 once the changelog had its own
// producer client, and 604-621 with 64 ("fraudwatch bench --users 1000000
// --events 2000000 --state-cache-mb N").
//
// At 100k users, three quarters of 28 MiB (the dirty entries a store holds,
// see holdBytes) could not hold every active user's state for maxDirtyAge,
// so users were written back about 1.5 times per 10 s instead of once, and
// each partition's memtable filled and was compacted in every latency run.
// 36 MiB with a 6 MiB write buffer holds them, at about the memory 28 MiB
// with 8 took. Four alternated pairs of "fraudwatch bench --skip-baseline
// --events 1000000 --latency-rate R --latency-duration 20s --latency-warmup
// 2s --query-duration 1s" (R 72,000 and 75,000) against 28 and 8: 2
// LevelDB compactions (0.08-0.11 s) over the latency run against 6
// (0.35-0.41 s) in every pair; alert p99 26.8 / 24.8 / 46.2 / 30.9 ms
// against 36.8 / 33.7 / 30.0 / 31.3 (lower in three pairs), p999 32.1 /
// 32.0 / 77.5 / 42.5 against 52.9 / 55.2 / 39.6 / 44.3. At 1M users
// ("--users 1000000 --events 2000000 --skip-baseline --latency-duration
// 10s --query-duration 5s", two alternated pairs): 448 and 470 MiB of peak
// RSS per 1M users against 457 and 453.
const DefaultStateCacheMB = 36

// DefaultRestoreCacheMB is the default memory for cached user states while a
// processor replays the changelog. With the 28 MiB of the state cache a
// restore of 1,783,875 changelog records (about 200k users) spent 44% of its
// CPU writing values back to LevelDB and compacting them, because the cache
// filled up on the way: 497,685 records/s. A replay that fits in this budget
// writes each user to LevelDB once, after the partition is ready, and the
// cache then shrinks to --state-cache-mb. Measured with "fraudwatch bench"
// (restore run; 1M users: --users 1000000 --events 2000000): 64 MiB gave
// 724,775 records/s on about 1.6M records and, at 1M users, a restore peak
// RSS of 357 MiB (362,423 records/s); 128 MiB gave 810,463-812,202 records/s
// but a 1M-user restore peak of 466 MiB, more than the running processor's
// 374.
const DefaultRestoreCacheMB = 64

// DefaultWriteBufferMB is a processor's LevelDB write buffer per partition
// by default, 1.5 times goleveldb's own (4 MiB). At high rates the alert tail is
// the partitions' memtable flushes and table compactions (20-70 ms each,
// every 2-3 s per partition at 70,000 events/s; seven of the nine quarter
// seconds of a latency run whose slowest alert took over 45 ms held one, by
// their LOG files); a memtable twice as large flushes and compacts half as
// often. Five alternated pairs of "fraudwatch bench
// --skip-baseline --events 300000 --latency-rate 70000 --latency-duration
// 10s --latency-warmup 2s --query-duration 1s": alert p99 48.9 / 46.9 / 60.4
// / 47.8 / 164.0 ms against 82.0 / 70.6 / 117.2 / 64.0 / 43.5 with 4 MiB
// (16 MiB: 52.6 / 37.0 / 41.1 / 34.0 / 28.9 against 49.8 / 76.3 / 52.9 /
// 56.2 / 49.1). The price is memory: at 1M users ("fraudwatch bench --users
// 1000000 --events 2000000 --skip-baseline") 468 MiB of peak RSS per 1M
// users against 443 with 4 MiB, and 524 with 16. It was 8 MiB until a
// larger state cache (see DefaultStateCacheMB) cut a latency run's
// compactions from 6 to 2: 6 MiB gives back the memory the cache took.
const DefaultWriteBufferMB = 6

// DefaultServeWriteBufferMB is the view service's LevelDB write buffer per
// partition by default (goleveldb's own): a view has no alert tail to
// shorten, and at 1M users 8 MiB raised its peak RSS from 562 to 679 MiB.
const DefaultServeWriteBufferMB = 4

// mibOr is mb MiB in bytes, or def MiB if mb is 0 (a flag left at 0).
func mibOr(mb, def int) int { return cmp.Or(mb, def) << 20 }

// memoryErrors checks --state-cache-mb and --write-buffer-mb.
func memoryErrors(stateCacheMB, writeBufferMB int) []error {
	var errs []error
	if stateCacheMB < 0 {
		errs = append(errs, fmt.Errorf("--state-cache-mb must be >= 0, got %d", stateCacheMB))
	}
	if writeBufferMB < 0 {
		errs = append(errs, fmt.Errorf("--write-buffer-mb must be >= 0, got %d", writeBufferMB))
	}
	return errs
}

// FetchWaitError checks --fetch-wait: 0 (the default) or 1ms to 1s.
func FetchWaitError(d time.Duration) error { return waitError("--fetch-wait", d) }

// waitError checks a duration flag that is 0 (its default) or 1ms to 1s.
func waitError(flag string, d time.Duration) error {
	if d != 0 && (d < time.Millisecond || d > time.Second) {
		return fmt.Errorf("%s must be between 1ms and 1s, got %v", flag, d)
	}
	return nil
}

// CommitIntervalError checks --commit-interval: 0 (the default) or 10ms to 1m.
func CommitIntervalError(d time.Duration) error {
	if d != 0 && (d < 10*time.Millisecond || d > time.Minute) {
		return fmt.Errorf("--commit-interval must be between 10ms and 1m, got %v", d)
	}
	return nil
}

// DefaultServeStateCacheMB is the default memory for the view service's
// cached user states. A view holds every partition and answers reads only,
// and its memory is not the processor's budget: a view of 844,550 users
// answered 39,673-39,843 requests/s with 256 MiB against 24,956 with 28
// ("fraudwatch bench --users 1000000 --events 2000000"). The cache fills only
// as far as the table has users.
const DefaultServeStateCacheMB = 256

// partitionChannelSize is how many records wait for a partition's callbacks
// (goka's default is 10): the input and loop readers of a partition fill
// one channel, and with 10 they stopped and were woken again every few
// records.
const partitionChannelSize = 256

// stateCacheBytes is one partition's share of mb MiB (0: def MiB).
func stateCacheBytes(mb, def int, partitions int32) int {
	return mibOr(mb, def) / int(max(partitions, 1))
}

// Validate reports every problem at once.
func (c ProcessConfig) Validate() error {
	errs := kafkaErrors(c.Brokers, c.Security)
	if c.DataDir == "" {
		errs = append(errs, errors.New("no data dir: set --data-dir or FRAUDWATCH_DATA_DIR"))
	}
	if c.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("--max-bytes must be > 0, got %d", c.MaxBytes))
	}
	if c.MaxSkew < 0 {
		errs = append(errs, fmt.Errorf("--max-skew must be >= 0, got %v", c.MaxSkew))
	}
	errs = append(errs, memoryErrors(c.StateCacheMB, c.WriteBufferMB)...)
	if c.RestoreCacheMB < 0 {
		errs = append(errs, fmt.Errorf("--restore-cache-mb must be >= 0, got %d", c.RestoreCacheMB))
	}
	if err := gcHeadroomError(c.GCHeadroomMB); err != nil {
		errs = append(errs, err)
	}
	if err := FetchWaitError(c.FetchWait); err != nil {
		errs = append(errs, err)
	}
	if err := waitError("--produce-linger", c.ProduceLinger); err != nil {
		errs = append(errs, err)
	}
	if err := CommitIntervalError(c.CommitInterval); err != nil {
		errs = append(errs, err)
	}
	if err := kafka.GroupInstanceIDError(c.GroupInstanceID); err != nil {
		errs = append(errs, err)
	}
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Env is what every command is given.
type Env struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	// Labels are added to every metric the command registers ("dev" runs
	// process and serve on one registry and tells them apart by component).
	Labels prometheus.Labels
	Now    func() time.Time
}

// registerer is where the command registers its metrics (nil: nowhere).
func (e Env) registerer() prometheus.Registerer {
	if e.Registry == nil {
		return nil
	}
	if len(e.Labels) > 0 {
		return prometheus.WrapRegistererWith(e.Labels, e.Registry)
	}
	return e.Registry
}

func (e Env) now() func() time.Time {
	if e.Now == nil {
		return time.Now
	}
	return e.Now
}

// Processor is one running detector instance.
type Processor struct {
	cfg   ProcessConfig
	env   Env
	ready atomic.Bool
	cur   atomic.Pointer[goka.Processor] // the one supervise runs now
	// replays: the table partitions whose changelog is read ahead of goka
	replays telemetry.Replays

	// wrapBuild, when set (tests), wraps the function that builds processors.
	wrapBuild func(build func() (*goka.Processor, error)) func() (*goka.Processor, error)
}

// NewProcessor validates cfg.
func NewProcessor(cfg ProcessConfig, env Env) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "fraudwatch"
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	return &Processor{cfg: cfg, env: env}, nil
}

// Ready reports whether the processor recovered its partitions and runs.
func (p *Processor) Ready() bool { return p.ready.Load() }

// Run checks the topics, then runs the processor until ctx is cancelled.
// onReady is called once when it is ready.
func (p *Processor) Run(ctx context.Context, onReady func()) error {
	opts := kafka.Options{Brokers: p.cfg.Brokers, ClientID: p.cfg.ClientID, Security: p.cfg.Security}
	n, err := checkTopics(ctx, opts)
	if err != nil {
		return err
	}
	hasher := kafka.Hasher()
	alerts, err := goka.NewEmitter(p.cfg.Brokers, topics.Alerts, codecs.Alert{},
		goka.WithEmitterProducerBuilder(opts.ProducerBuilder()), goka.WithEmitterHasher(hasher),
		goka.WithEmitterClientID(p.cfg.ClientID+"-alerts"))
	if err != nil {
		return fmt.Errorf("app: alert producer: %w", err)
	}
	defer alerts.Finish()
	dlq, err := goka.NewEmitter(p.cfg.Brokers, topics.DLQ, codecs.DeadLetter{},
		goka.WithEmitterProducerBuilder(opts.ProducerBuilder()), goka.WithEmitterHasher(hasher),
		goka.WithEmitterClientID(p.cfg.ClientID+"-dlq"))
	if err != nil {
		return fmt.Errorf("app: dead-letter producer: %w", err)
	}
	defer dlq.Finish()

	reg := p.env.registerer()
	d, err := detector.New(detector.Config{Rules: p.cfg.Rules, MaxBytes: p.cfg.MaxBytes, MaxSkew: p.cfg.MaxSkew, Partitions: n},
		detector.Deps{Alerts: alerts, DeadLetters: dlq, Metrics: detector.NewMetrics(reg), Log: p.env.Log, Now: p.env.now()})
	if err != nil {
		return err
	}
	var stats *storeStats
	if reg != nil {
		stats = newStoreStats()
		reg.MustRegister(stats)
	}
	log := p.env.Log
	newProc := func() (*goka.Processor, error) {
		return d.NewProcessor(p.cfg.Brokers, append(opts.GroupOptions(kafka.Group{FetchWait: p.cfg.FetchWait, CommitInterval: p.cfg.CommitInterval, InstanceID: p.cfg.GroupInstanceID}),
			goka.WithClientID(p.cfg.ClientID),
			goka.WithStorageBuilder(replayed(ctx, processorTable(levelDB(filepath.Join(p.cfg.DataDir, "detector"), stateCacheBytes(p.cfg.StateCacheMB, DefaultStateCacheMB, n),
				stateCacheBytes(p.cfg.RestoreCacheMB, DefaultRestoreCacheMB, n), mibOr(p.cfg.WriteBufferMB, DefaultWriteBufferMB), stats, log)),
				opts.ReadPartition, &p.replays, log)),
			goka.WithProducerBuilder(opts.StreamProducerBuilder(cmp.Or(p.cfg.ProduceLinger, kafka.DefaultProduceLinger), string(topics.DetectorTable()))),
			goka.WithConsumerSaramaBuilder(opts.ConsumerBuilder()),
			goka.WithTopicManagerBuilder(opts.TopicManagerBuilder()),
			goka.WithLogger(kafka.GokaLogger{L: log}),
			goka.WithPartitionChannelSize(partitionChannelSize),
		)...)
	}

	if p.wrapBuild != nil {
		newProc = p.wrapBuild(newProc)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.supervise(gctx, newProc, n, onReady) })
	if reg != nil { // nobody would read the figures
		g.Go(func() error { return p.watch(gctx, opts, telemetry.NewPartitions(reg)) })
	}
	if p.cfg.HTTPAddr != "" {
		g.Go(func() error { return serveHTTP(gctx, p.cfg.HTTPAddr, p.Handler(), log) })
	}
	g.Go(func() error { return keepGCHeadroomMB(gctx, p.cfg.GCHeadroomMB) })
	return g.Wait()
}

// supervise runs goka processors until ctx is cancelled. When one stops with
// an error (a group join that timed out, a broker that stayed away longer than
// the producer retries), it is rebuilt after a backoff and resumes from the
// committed offsets: the same path as a crash and restart, which the detector
// is built to survive exactly.
func (p *Processor) supervise(ctx context.Context, newProc func() (*goka.Processor, error), partitions int32, onReady func()) error {
	log := p.env.Log
	var readyOnce sync.Once // onReady: the first time any processor is ready
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		why := "processor stopped; restarting from the committed offsets"
		proc, err := newProc()
		if err != nil {
			// goka's topic manager checks the first broker of the metadata
			// only: while that one is down (a rolling restart), building
			// fails though the cluster serves. Retry as after a stop.
			why = "building the processor failed; retrying"
		} else {
			started := time.Now()
			err = p.runProcessor(ctx, proc, partitions, attempt, func() {
				if onReady != nil {
					readyOnce.Do(onReady)
				}
			})
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, sarama.ErrFencedInstancedId) {
				// Restarting would fence the other one in turn, and so on.
				return fmt.Errorf("app: the group fenced this instance: another one runs with --group-instance-id %q; give every instance its own: %w",
					p.cfg.GroupInstanceID, err)
			}
			if time.Since(started) > 2*time.Minute {
				backoff = time.Second
			}
		}
		log.Warn(why, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// runProcessor runs proc until it stops or ctx is cancelled, marking the
// instance ready (and calling ready) while it has recovered its partitions.
func (p *Processor) runProcessor(ctx context.Context, proc *goka.Processor, partitions int32, attempt int, ready func()) error {
	p.cur.Store(proc)
	runCtx, cancel := context.WithCancel(ctx)
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		if proc.WaitForReadyContext(runCtx) != nil {
			return
		}
		p.ready.Store(true)
		p.env.Log.Info("processor ready", "partitions", partitions, "data_dir", p.cfg.DataDir, "attempt", attempt)
		ready()
	}()
	err := proc.Run(runCtx)
	cancel()
	<-readyDone
	p.ready.Store(false)
	p.cur.Store(nil)
	if err == nil && ctx.Err() == nil {
		err = errors.New("processor stopped without an error")
	}
	return err
}

// watchEvery is how often lag and restore progress are measured.
const watchEvery = time.Second

// watch measures, for the partitions this instance owns, the consumer lag of
// the group's inputs (end offset minus committed offset) and the restore
// progress of its table, until ctx is cancelled.
func (p *Processor) watch(ctx context.Context, opts kafka.Options, m *telemetry.Partitions) error {
	cl, err := kgo.NewClient(opts.FranzOpts()...)
	if err != nil {
		return fmt.Errorf("app: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var eta telemetry.ETA
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		proc := p.cur.Load()
		if proc == nil {
			m.SetLag(nil)
			m.SetRestore(nil, -1)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, watchEvery)
		st := proc.StatsWithContext(sctx)
		remaining, total := map[int32]int64{}, int64(0)
		owned := make([]int32, 0, len(st.Group))
		for part, ps := range st.Group {
			owned = append(owned, part)
			n, ok := telemetry.Remaining(ps.TableStats)
			if r, _, replaying := p.replays.Remaining(part); replaying {
				n, ok = r, true // goka's recovery has not started yet
			}
			if ok {
				remaining[part] = n
				total += n
			}
		}
		e := eta.Observe(time.Now(), total)
		if p.Ready() {
			e = 0
		}
		m.SetRestore(remaining, e)
		lags, err := groupLag(sctx, adm, owned)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.env.Log.Debug("consumer lag", "err", err)
			}
			continue
		}
		m.SetLag(lags)
	}
}

// groupLag is the detector group's lag on the given partitions of its inputs.
func groupLag(ctx context.Context, adm *kadm.Client, partitions []int32) ([]telemetry.Lag, error) {
	if len(partitions) == 0 {
		return nil, nil
	}
	inputs := []string{string(topics.Transactions), string(topics.DetectorLoop())}
	ends, err := adm.ListEndOffsets(ctx, inputs...)
	if err != nil {
		return nil, err
	}
	committed, err := adm.FetchOffsets(ctx, string(topics.Detector))
	if err != nil {
		return nil, err
	}
	var starts kadm.ListedOffsets // read only for partitions nothing was committed on
	var lags []telemetry.Lag
	for _, topic := range inputs {
		for _, part := range partitions {
			end, ok := ends.Lookup(topic, part)
			if !ok || end.Err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %v", topic, part, end.Err)
			}
			pos := int64(-1)
			if c, ok := committed.Lookup(topic, part); ok && c.Err == nil && c.At >= 0 {
				pos = c.At
			} else {
				if starts == nil {
					if starts, err = adm.ListStartOffsets(ctx, inputs...); err != nil {
						return nil, err
					}
				}
				if s, ok := starts.Lookup(topic, part); ok && s.Err == nil {
					pos = s.Offset
				}
			}
			if pos < 0 {
				return nil, fmt.Errorf("no position for %s/%d", topic, part)
			}
			lags = append(lags, telemetry.Lag{Topic: topic, Partition: part, Records: max(0, end.Offset-pos)})
		}
	}
	return lags, nil
}

// Handler serves /healthz, /readyz and /metrics.
func (p *Processor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !p.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"ready":false,"reason":"recovering partitions"}`)
			return
		}
		fmt.Fprintln(w, `{"ready":true}`)
	})
	if p.env.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(p.env.Registry, promhttp.HandlerOpts{}))
	}
	return mux
}

// checkTopics verifies the topics and returns the copartitioned partition count.
func checkTopics(ctx context.Context, opts kafka.Options) (int32, error) {
	cl, err := kgo.NewClient(opts.FranzOpts()...)
	if err != nil {
		return 0, fmt.Errorf("app: kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	n, err := topics.Check(ctx, kadm.NewClient(cl), strings.Join(opts.Brokers, ","))
	return n, explainTimeout(ctx, err, opts.Brokers)
}

// adminTimeout bounds topic checks and creation: wrong brokers or credentials
// make Kafka clients retry forever.
const adminTimeout = 30 * time.Second

func explainTimeout(ctx context.Context, err error, brokers []string) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer from Kafka at %s within %v: check --brokers and the TLS/SASL settings: %w",
			strings.Join(brokers, ","), adminTimeout, err)
	}
	return err
}

// serveHTTP serves h on addr until ctx is cancelled, then shuts down.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("app: http listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("app: http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-errc
	return err
}

// kafkaErrors are the problems of the connection settings every command shares.
func kafkaErrors(brokers []string, sec kafka.Security) []error {
	var errs []error
	if len(brokers) == 0 {
		errs = append(errs, errors.New("no brokers: set --brokers or FRAUDWATCH_BROKERS"))
	}
	if err := sec.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// healthz answers that the process is alive.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintln(w, `{"status":"ok"}`)
}
