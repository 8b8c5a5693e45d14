// Command fraudwatch is a Kafka-native, stateful fraud-detection stream
// processor. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/bench"
	"github.com/fraudwatch/fraudwatch/internal/config"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

const usage = `fraudwatch: Kafka-native, stateful fraud detection.

Usage:
  fraudwatch dev [--demo] [--data-dir D] [--kafka-listen ADDR] [--http ADDR]
      embedded Kafka + processor + view service and dashboard on --http (+ synthetic traffic with --demo)
  fraudwatch topics create --brokers B [--partitions 12] [--replication R]
      create transactions, fraud_alerts, transactions_dlq and the group's topics
  fraudwatch process --brokers B --data-dir D [--http ADDR]
      run one processor instance (run many in one group)
  fraudwatch produce --brokers B (--file F | - | --count N [--rate R] [--users U] [--burst-users K] [--seed S]) [--key none|user_id]
      write JSON lines or generated transactions to "transactions"
  fraudwatch alerts --brokers B [--from-beginning] [--follow]
      print alerts as JSON lines
  fraudwatch serve --brokers B --http ADDR (--data-dir D | --memory)
      the view service: the dashboard at /, GET /v1/users/{user_id}, /v1/alerts, /v1/alerts/stream, /v1/partitions
  fraudwatch bench [--events 1000000] [--users 100000] [--brokers B] [--json FILE]
      measure throughput, alert latency, restore, queries and memory against a naive goka baseline

Every flag can also be set in the environment: --data-dir is FRAUDWATCH_DATA_DIR.
Run "fraudwatch COMMAND --help" for a command's flags.
`

// exit codes
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "dev":
		err = runDev(ctx, args, stdout, stderr)
	case "process":
		err = runProcess(ctx, args, stderr)
	case "topics":
		if len(args) == 0 || args[0] != "create" {
			fmt.Fprintln(stderr, `fraudwatch topics: want "fraudwatch topics create --brokers B"`)
			return exitUsage
		}
		err = runTopics(ctx, args[1:], stdout, stderr)
	case "produce":
		err = runProduce(ctx, args, stdin, stderr)
	case "alerts":
		err = runAlerts(ctx, args, stdout, stderr)
	case "serve":
		err = runServe(ctx, args, stderr)
	case "bench":
		err = runBench(ctx, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "fraudwatch: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "fraudwatch %s: %v\n", cmd, err)
		return exitUsage
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitOK
	default:
		fmt.Fprintf(stderr, "fraudwatch %s: %v\n", cmd, err)
		return exitFailure
	}
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// parse parses args, then fills every flag not given on the command line from
// FRAUDWATCH_<FLAG> (dashes become underscores).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := "FRAUDWATCH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fraudwatch "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseRates parses bench's --query-rates: requests/s, comma-separated
// (Config.Validate checks that each is > 0).
func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, p := range splitList(s) {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return nil, fmt.Errorf("--query-rates: %q is not a number of requests/s", p)
		}
		out = append(out, v)
	}
	return out, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func newEnv(log *slog.Logger) app.Env {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return app.Env{Log: log, Registry: reg, Now: time.Now}
}

// securityFlags are the TLS and SASL flags of every command that talks to Kafka.
func securityFlags(fs *flag.FlagSet) *kafka.Security {
	s := new(kafka.Security)
	fs.BoolVar(&s.TLS, "tls", false, "connect to Kafka over TLS")
	fs.StringVar(&s.TLSCAFile, "tls-ca", "", "PEM file of CAs to trust (default: system roots)")
	fs.StringVar(&s.TLSCertFile, "tls-cert", "", "client certificate PEM file (mutual TLS)")
	fs.StringVar(&s.TLSKeyFile, "tls-key", "", "client key PEM file (mutual TLS)")
	fs.BoolVar(&s.TLSInsecureSkipVerify, "tls-insecure-skip-verify", false, "do not verify the brokers' certificates (testing only)")
	fs.StringVar(&s.SASLMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&s.SASLUser, "sasl-username", "", "SASL user")
	fs.StringVar(&s.SASLPassword, "sasl-password", "", "SASL password (prefer FRAUDWATCH_SASL_PASSWORD)")
	return s
}

// processFlags are the flags of every command that runs a processor.
type processFlags struct {
	rulesFile, mode, logLevel, httpAddr string
	size, grace, maxSkew                time.Duration
	maxTxns, maxBytes, stateCacheMB     int
	writeBufferMB                       int
}

func (p *processFlags) register(fs *flag.FlagSet, httpDefault string, stateCacheMB, writeBufferMB int) {
	fs.StringVar(&p.rulesFile, "rules", "", "YAML rules file (see README); flags below override it")
	fs.StringVar(&p.mode, "window-mode", "tumbling", "tumbling or sliding")
	fs.DurationVar(&p.size, "window-size", time.Minute, "window length")
	fs.DurationVar(&p.grace, "grace", 2*time.Minute, "how late an event may be after its window closes")
	fs.IntVar(&p.maxTxns, "velocity-max-txns", 5, "velocity rule: alert when a window holds more than this")
	fs.IntVar(&p.maxBytes, "max-bytes", codecs.DefaultMaxBytes, "largest accepted record value in bytes")
	fs.DurationVar(&p.maxSkew, "max-skew", 5*time.Minute, "how far ahead of the clock an event time may be")
	fs.StringVar(&p.httpAddr, "http", httpDefault, "HTTP address for /healthz, /readyz, /metrics (empty: off)")
	fs.StringVar(&p.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&p.stateCacheMB, "state-cache-mb", stateCacheMB, "memory for cached user states, in MiB, shared by the partitions (LevelDB holds the rest)")
	fs.IntVar(&p.writeBufferMB, "write-buffer-mb", writeBufferMB, "LevelDB write buffer per partition, in MiB: larger compacts less often (shorter alert latency tail) and uses up to twice as much memory")
}

// tuning are --gc-percent, --gc-headroom-mb, --fetch-wait, --commit-interval, --produce-linger and --restore-cache-mb of the
// commands that run a processor. GOGC is the OS process's, so the command
// sets it (debug.SetGCPercent) once the flags are valid, for the process's life.
type tuning struct {
	gcPercent, gcHeadroomMB, restoreCacheMB  *int
	fetchWait, commitInterval, produceLinger *time.Duration
}

func tuningFlags(fs *flag.FlagSet) tuning {
	return tuning{
		gcPercent:      fs.Int("gc-percent", app.DefaultGCPercent, "Go's GC percent (GOGC) of this process, 0 for the default: lower holds less memory and collects more often; the floor of --gc-headroom-mb"),
		gcHeadroomMB:   fs.Int("gc-headroom-mb", app.DefaultGCHeadroomMB, "memory in MiB the heap may grow by beyond its live data between collections: GOGC is raised to allow it while the live data is small (never below --gc-percent), so collections come less often; 0: off"),
		fetchWait:      fs.Duration("fetch-wait", kafka.DefaultFetchWait, "how long an input or loop fetch waits for 32 KiB of records (1ms-1s): longer costs latency per hop and saves CPU under load"),
		commitInterval: fs.Duration("commit-interval", kafka.DefaultCommitInterval, "how often the offsets of finished input and loop records are committed (10ms-1m): a partition's next owner applies again what came after the last commit; shorter costs alert latency (each commit waits for a fetch and delays the next)"),
		produceLinger:  fs.Duration("produce-linger", kafka.DefaultProduceLinger, "how long the processor's loop and changelog records wait to be sent in one request (1ms-1s; alerts never wait): longer costs latency on the loop hop and saves CPU under load"),
		restoreCacheMB: fs.Int("restore-cache-mb", app.DefaultRestoreCacheMB, "memory for cached user states while the changelog is replayed, in MiB (at least --state-cache-mb): a restore that fits writes each user to LevelDB once, after the processor is ready"),
	}
}

// apply sets the processor's settings in pc.
func (t tuning) apply(pc *app.ProcessConfig) {
	pc.FetchWait, pc.CommitInterval, pc.ProduceLinger, pc.RestoreCacheMB, pc.GCHeadroomMB = *t.fetchWait, *t.commitInterval, *t.produceLinger, *t.restoreCacheMB, *t.gcHeadroomMB
}

// gcPercentError checks --gc-percent.
func gcPercentError(p int) error {
	if p < 0 {
		return fmt.Errorf("--gc-percent must be >= 0, got %d", p)
	}
	return nil
}

// setGCPercent sets the process's GOGC to a valid --gc-percent (0:
// app.DefaultGCPercent, as GOGC=0 would collect without pause).
func setGCPercent(p int) {
	if p == 0 {
		p = app.DefaultGCPercent
	}
	debug.SetGCPercent(p)
}

// setServeGC sets a view service's GOGC to a valid --gc-percent; 0 leaves
// it to the runtime (GOGC from the environment, else Go's 100).
func setServeGC(p int) {
	if p > 0 {
		debug.SetGCPercent(p)
	}
}

// parse parses args and returns the logger and the processor config.
func (p *processFlags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) (*slog.Logger, app.ProcessConfig, error) {
	if err := parse(fs, args); err != nil {
		return nil, app.ProcessConfig{}, err
	}
	log, err := newLogger(stderr, p.logLevel)
	if err != nil {
		return nil, app.ProcessConfig{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pc, err := p.config(set)
	return log, pc, err
}

// config builds the processor config: defaults, then the rules file, then the
// flags that were set (on the command line or in the environment).
func (p *processFlags) config(set map[string]bool) (app.ProcessConfig, error) {
	r := rules.Default()
	lim := config.Limits{MaxBytes: codecs.DefaultMaxBytes, MaxSkew: 5 * time.Minute}
	if p.rulesFile != "" {
		if err := config.Load(p.rulesFile, &r, &lim); err != nil {
			return app.ProcessConfig{}, usageError{err}
		}
	}
	if set["window-mode"] {
		m, err := rules.ParseMode(p.mode)
		if err != nil {
			return app.ProcessConfig{}, usageError{err}
		}
		r.Mode = m
	}
	if set["window-size"] {
		r.Size = p.size
	}
	if set["grace"] {
		r.Grace = p.grace
	}
	if set["velocity-max-txns"] {
		r.Velocity.MaxTxns = p.maxTxns
	}
	if set["max-bytes"] {
		lim.MaxBytes = p.maxBytes
	}
	if set["max-skew"] {
		lim.MaxSkew = p.maxSkew
	}
	return app.ProcessConfig{Rules: r, MaxBytes: lim.MaxBytes, MaxSkew: lim.MaxSkew, HTTPAddr: p.httpAddr, StateCacheMB: p.stateCacheMB, WriteBufferMB: p.writeBufferMB}, nil
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", stderr)
	var pf processFlags
	pf.register(fs, "127.0.0.1:8080", app.DefaultStateCacheMB, app.DefaultWriteBufferMB)
	tune := tuningFlags(fs)
	dataDir := fs.String("data-dir", "./fraudwatch-data", "where the embedded Kafka and the processor keep their data")
	listen := fs.String("kafka-listen", "127.0.0.1:9092", "address of the embedded Kafka broker")
	partitions := fs.Int("partitions", 4, "partitions of each topic (first start only)")
	demo := fs.Bool("demo", false, "produce synthetic traffic with fraud bursts")
	rate := fs.Float64("demo-rate", 50, "synthetic events per second with --demo")
	log, pc, err := pf.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	pc.Brokers, pc.DataDir = []string{*listen}, *dataDir // validated here, replaced by Dev
	tune.apply(&pc)
	if err := errors.Join(gcPercentError(*tune.gcPercent), pc.Validate()); err != nil {
		return usageError{err}
	}
	setGCPercent(*tune.gcPercent)
	return app.Dev(ctx, app.DevConfig{KafkaListen: *listen, DataDir: *dataDir, Partitions: *partitions, Demo: *demo,
		DemoRate: *rate, Process: pc}, newEnv(log), func(line string) { fmt.Fprintln(stdout, line) })
}

func runProcess(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("process", stderr)
	var pf processFlags
	pf.register(fs, "", app.DefaultStateCacheMB, app.DefaultWriteBufferMB)
	tune := tuningFlags(fs)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, comma-separated")
	dataDir := fs.String("data-dir", "", "directory for the local state (LevelDB per partition)")
	clientID := fs.String("client-id", "fraudwatch", "Kafka client id")
	instanceID := fs.String("group-instance-id", "", "a stable id of this instance in the group (Kafka's group.instance.id): a restart within the session timeout keeps its partitions without a rebalance; empty: a dynamic member")
	sec := securityFlags(fs)
	log, pc, err := pf.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	pc.Brokers, pc.DataDir, pc.ClientID, pc.Security, pc.GroupInstanceID = splitList(*brokers), *dataDir, *clientID, *sec, *instanceID
	tune.apply(&pc)
	p, err := app.NewProcessor(pc, newEnv(log))
	if err := errors.Join(gcPercentError(*tune.gcPercent), err); err != nil {
		return usageError{err}
	}
	setGCPercent(*tune.gcPercent)
	return p.Run(ctx, nil)
}

func runTopics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("topics create", stderr)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, comma-separated")
	partitions := fs.Int("partitions", 12, "partitions per topic")
	replication := fs.Int("replication", 1, "replication factor")
	minISR := fs.Int("min-insync-replicas", 0, "min.insync.replicas for every topic (0: broker default)")
	sec := securityFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c := app.TopicsConfig{Brokers: splitList(*brokers), Partitions: *partitions, Replication: *replication, MinInsyncReplicas: *minISR,
		Security: *sec}
	if err := c.Validate(); err != nil {
		return usageError{err}
	}
	return app.CreateTopics(ctx, c, stdout)
}

func runProduce(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	fs := newFlagSet("produce", stderr)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, comma-separated")
	file := fs.String("file", "", `JSON lines file to produce ("-": standard input); without it, generate --count events`)
	key := fs.String("key", "none", "record key: none or user_id")
	rate := fs.Float64("rate", 0, "generator: events per second (0: as fast as possible)")
	users := fs.Int("users", 10000, "generator: distinct users")
	count := fs.Int("count", 0, "generator: events to produce")
	burst := fs.Int("burst-users", 10, "generator: users that burst (fraud)")
	seed := fs.Uint64("seed", 1, "generator: random seed")
	sec := securityFlags(fs)
	// "fraudwatch produce -" reads standard input.
	if len(args) > 0 && args[len(args)-1] == "-" {
		args = append(args[:len(args)-1:len(args)-1], "--file", "-")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	c := app.ProduceConfig{Brokers: splitList(*brokers), File: *file, Key: *key, Rate: *rate, Users: *users, Count: *count,
		BurstUsers: *burst, Seed: *seed, Security: *sec}
	if err := c.Validate(); err != nil {
		return usageError{err}
	}
	return app.Produce(ctx, c, stdin, stderr)
}

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("alerts", stderr)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, comma-separated")
	from := fs.Bool("from-beginning", false, "start at the oldest alert (default: only new ones)")
	follow := fs.Bool("follow", false, "keep waiting for new alerts")
	sec := securityFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return app.Alerts(ctx, app.AlertsConfig{Brokers: splitList(*brokers), FromBeginning: *from, Follow: *follow, Security: *sec}, stdout)
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var pf processFlags
	pf.register(fs, "127.0.0.1:8080", app.DefaultServeStateCacheMB, app.DefaultServeWriteBufferMB)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, comma-separated")
	dataDir := fs.String("data-dir", "", "directory for the view's LevelDB (a restart catches up from it)")
	memory := fs.Bool("memory", false, "keep the view in memory instead (a restart replays the table)")
	clientID := fs.String("client-id", "fraudwatch-serve", "Kafka client id")
	token := fs.String("auth-token", "", "require Authorization: Bearer <token> on /v1/* (health and metrics stay open)")
	gcPercent := fs.Int("gc-percent", 0, "Go's GC percent (GOGC) of this process, 0 for GOGC from the environment, else Go's 100: higher collects less often (a shorter query tail at 100k users) and holds more memory; the floor of --gc-headroom-mb")
	gcHeadroom := fs.Int("gc-headroom-mb", app.DefaultServeGCHeadroomMB, "memory in MiB the heap may grow by beyond its live data between collections: GOGC is raised to allow it while the live data is small (never below --gc-percent), so collections, the query tail's cause, come less often; 0: off")
	sec := securityFlags(fs)
	log, pc, err := pf.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := gcPercentError(*gcPercent); err != nil {
		return usageError{err}
	}
	c := app.ServeConfig{Brokers: splitList(*brokers), DataDir: *dataDir, Memory: *memory, HTTPAddr: pc.HTTPAddr,
		ClientID: *clientID, Rules: pc.Rules, AuthToken: *token, Security: *sec, StateCacheMB: pc.StateCacheMB, WriteBufferMB: pc.WriteBufferMB, GCHeadroomMB: *gcHeadroom}
	if err := c.Validate(); err != nil {
		return usageError{err}
	}
	setServeGC(*gcPercent)
	return app.Serve(ctx, c, newEnv(log))
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers of a cluster without fraudwatch's topics (empty: embedded broker)")
	events := fs.Int("events", 1000000, "events for the throughput run")
	users := fs.Int("users", 100000, "distinct users (0.1% of them burst)")
	partitions := fs.Int("partitions", 4, "partitions of every topic")
	clients := fs.Int("clients", 32, "concurrent HTTP clients of the query run")
	latency := fs.Duration("latency-duration", 20*time.Second, "how long events flow at half the measured rate")
	latencyWarmup := fs.Duration("latency-warmup", 2*time.Second, "how long events flow at that rate before the timed latency run (alerts of the warm-up are not timed)")
	keyed := fs.Bool("keyed", false, "produce events keyed by user_id (default: unkeyed, as many producers do)")
	latencyRate := fs.Float64("latency-rate", 0, "events/s of the alert latency run (0: half the measured throughput)")
	query := fs.Duration("query-duration", 10*time.Second, "how long the query clients run, once back to back (the most requests/s) and once at the query rate")
	queryRate := fs.Float64("query-rate", 0, "requests/s at which query latency is measured (0: half the most requests/s)")
	queryRates := fs.String("query-rates", "", "more fixed rates in requests/s, comma-separated, each run for --query-duration after the query runs: query latency against the load")
	jsonFile := fs.String("json", "", "also write the figures as JSON to this file")
	dataDir := fs.String("data-dir", "", "where the processors keep their state (default: a temporary dir, removed after)")
	skipBaseline := fs.Bool("skip-baseline", false, "measure fraudwatch only")
	seed := fs.Uint64("seed", 1, "generator seed")
	stateCacheMB := fs.Int("state-cache-mb", 0, "fraudwatch's --state-cache-mb for its processor and view service (0: its default)")
	writeBufferMB := fs.Int("write-buffer-mb", 0, "fraudwatch's --write-buffer-mb for its processor and view service (0: its default)")
	fetchWait := fs.Duration("fetch-wait", 0, "fraudwatch's --fetch-wait for its processor (0: its default)")
	serveGC := fs.Int("serve-gc-percent", 0, "fraudwatch's --gc-percent for its view service (0: its default)")
	gcHeadroom := fs.Int("gc-headroom-mb", app.DefaultGCHeadroomMB, "fraudwatch's --gc-headroom-mb for its processor (0: off)")
	serveGCHeadroom := fs.Int("serve-gc-headroom-mb", app.DefaultServeGCHeadroomMB, "fraudwatch's --gc-headroom-mb for its view service (0: off)")
	producerLinger := fs.Duration("producer-linger", bench.DefaultProducerLinger, "linger of the harness's producer of transactions, as Kafka's producers default to (0: send at once)")
	repeat := fs.Int("repeat", 1, "run the benchmark this many times (each on a fresh embedded broker) and report the medians")
	profileDir := fs.String("cpuprofile-dir", "", "write CPU and heap profiles of every child (throughput, latency, restore, queries) here (go tool pprof)")
	timelineDir := fs.String("timeline-dir", "", "write every timed alert and fixed-rate query latency with its start time here as CSV (SIDE-alerts.csv, SIDE-queries.csv), and fraudwatch's processor sampled every 250 ms of its latency run (fraudwatch-processor.csv), to see when a tail happened and where")
	childRole := fs.String("child", "", "internal: run one side of the benchmark (process, serve, baseline, baseline-serve)")
	childHTTP := fs.String("child-http", "", "internal: HTTP address of a serve child")
	childProfile := fs.String("child-cpuprofile", "", "internal: CPU profile file of a child")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *childRole != "" {
		role, err := bench.ParseRole(*childRole)
		if err != nil {
			return usageError{err}
		}
		switch role { // as "fraudwatch process" and "fraudwatch serve" run; the baseline keeps Go's defaults
		case bench.RoleProcess:
			setGCPercent(app.DefaultGCPercent)
		case bench.RoleServe:
			setServeGC(*serveGC)
		}
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return bench.RunChild(ctx, bench.ChildConfig{Role: role, Brokers: splitList(*brokers), DataDir: *dataDir,
			HTTPAddr: *childHTTP, CPUProfile: *childProfile, StateCacheMB: *stateCacheMB, WriteBufferMB: *writeBufferMB, FetchWait: *fetchWait, GCHeadroomMB: *serveGCHeadroom, ProcessGCHeadroomMB: *gcHeadroom}, stdout, log)
	}
	rates, err := parseRates(*queryRates)
	if err != nil {
		return usageError{err}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: finding the fraudwatch binary to run the processors: %w", err)
	}
	c := bench.Config{Brokers: splitList(*brokers), Events: *events, Users: *users, Partitions: *partitions, Clients: *clients,
		LatencyDuration: *latency, LatencyWarmup: *latencyWarmup, LatencyRate: *latencyRate, QueryDuration: *query, QueryRate: *queryRate, QueryRates: rates, DataDir: *dataDir, SkipBaseline: *skipBaseline, Keyed: *keyed, Seed: *seed,
		StateCacheMB: *stateCacheMB, WriteBufferMB: *writeBufferMB, FetchWait: *fetchWait, ServeGCPercent: *serveGC, GCHeadroomMB: *gcHeadroom, ServeGCHeadroomMB: *serveGCHeadroom, ProducerLinger: *producerLinger, Repeat: *repeat,
		ProfileDir: *profileDir, TimelineDir: *timelineDir, Spawn: benchSpawner(exe), Progress: stderr}
	if c.DataDir == "" {
		c.DataDir = "-" // validated below, replaced by a temporary dir
	}
	if err := c.Validate(); err != nil {
		return usageError{err}
	}
	if *dataDir == "" {
		dir, err := os.MkdirTemp("", "fraudwatch-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.DataDir = dir
	} else if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	res, err := bench.Run(ctx, c)
	if err != nil {
		return err
	}
	if *jsonFile != "" {
		f, err := os.Create(*jsonFile)
		if err != nil {
			return err
		}
		if err := res.WriteJSON(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return res.WriteTable(stdout)
}

// benchSpawner runs the benchmark's children as "fraudwatch bench --child ROLE".
func benchSpawner(exe string) bench.Spawner {
	return func(c bench.ChildConfig) *exec.Cmd {
		args := []string{"bench", "--child", string(c.Role), "--brokers", strings.Join(c.Brokers, ","), "--data-dir", c.DataDir}
		if c.HTTPAddr != "" {
			args = append(args, "--child-http", c.HTTPAddr)
		}
		if c.CPUProfile != "" {
			args = append(args, "--child-cpuprofile", c.CPUProfile)
		}
		if c.StateCacheMB > 0 {
			args = append(args, "--state-cache-mb", strconv.Itoa(c.StateCacheMB))
		}
		if c.WriteBufferMB > 0 {
			args = append(args, "--write-buffer-mb", strconv.Itoa(c.WriteBufferMB))
		}
		if c.FetchWait > 0 {
			args = append(args, "--fetch-wait", c.FetchWait.String())
		}
		if c.GCPercent > 0 {
			args = append(args, "--serve-gc-percent", strconv.Itoa(c.GCPercent))
		}
		args = append(args, "--serve-gc-headroom-mb", strconv.Itoa(c.GCHeadroomMB), "--gc-headroom-mb", strconv.Itoa(c.ProcessGCHeadroomMB))
		return exec.Command(exe, args...)
	}
}
