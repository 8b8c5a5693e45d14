package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/fraudwatch/fraudwatch/internal/broker"
	"github.com/fraudwatch/fraudwatch/internal/generator"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// TopicsConfig configures "topics create".
type TopicsConfig struct {
	Brokers           []string
	Partitions        int
	Replication       int
	MinInsyncReplicas int
	Security          kafka.Security
}

// Validate reports every problem at once.
func (c TopicsConfig) Validate() error {
	errs := kafkaErrors(c.Brokers, c.Security)
	if c.Partitions < 1 || c.Partitions > 10000 {
		errs = append(errs, fmt.Errorf("--partitions must be in 1..10000, got %d", c.Partitions))
	}
	if c.Replication < 1 || c.Replication > 32767 {
		errs = append(errs, fmt.Errorf("--replication must be >= 1, got %d", c.Replication))
	}
	if c.MinInsyncReplicas < 0 || c.MinInsyncReplicas > c.Replication {
		errs = append(errs, fmt.Errorf("--min-insync-replicas must be in 0..replication, got %d", c.MinInsyncReplicas))
	}
	return errors.Join(errs...)
}

// CreateTopics creates every topic; existing ones are reported and kept.
func CreateTopics(ctx context.Context, c TopicsConfig, out io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kafka.Options{Brokers: c.Brokers, ClientID: "fraudwatch-topics", Security: c.Security}.FranzOpts()...)
	if err != nil {
		return fmt.Errorf("app: kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	created, err := topics.Create(ctx, kadm.NewClient(cl), topics.Spec{Partitions: int32(c.Partitions),
		Replication: int16(c.Replication), MinInsyncReplicas: c.MinInsyncReplicas})
	err = explainTimeout(ctx, err, c.Brokers)
	names := make([]string, 0, len(created))
	for n := range created {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		state := "exists"
		if created[n] {
			state = "created"
		}
		fmt.Fprintf(out, "%-28s %s\n", n, state)
	}
	return err
}

// ProduceConfig configures "produce".
type ProduceConfig struct {
	Brokers []string
	File    string // path, or "-" for stdin; "" means generate
	Key     string // none | user_id
	// generator mode
	Rate       float64 // events per second; 0 = as fast as possible
	Users      int
	Count      int
	BurstUsers int
	Seed       uint64
	Security   kafka.Security
}

// Validate reports every problem at once.
func (c ProduceConfig) Validate() error {
	errs := kafkaErrors(c.Brokers, c.Security)
	if c.Key != "none" && c.Key != "user_id" {
		errs = append(errs, fmt.Errorf("--key must be none or user_id, got %q", c.Key))
	}
	if c.File == "" {
		if c.Count < 1 {
			errs = append(errs, fmt.Errorf("--count must be >= 1 in generator mode (or give --file), got %d", c.Count))
		}
		if c.Users < 1 {
			errs = append(errs, fmt.Errorf("--users must be >= 1, got %d", c.Users))
		}
		if c.Rate < 0 || c.BurstUsers < 0 {
			errs = append(errs, errors.New("--rate and --burst-users must be >= 0"))
		}
	}
	return errors.Join(errs...)
}

// Produce writes JSON lines (File) or generated transactions to "transactions".
// Progress goes to progress once a second.
func Produce(ctx context.Context, c ProduceConfig, stdin io.Reader, progress io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kafka.Options{Brokers: c.Brokers, ClientID: "fraudwatch-produce", Security: c.Security}.FranzOpts(
		kgo.DefaultProduceTopic(string(topics.Transactions)), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("app: kafka client: %w", err)
	}
	defer cl.Close()
	if err := checkInput(ctx, cl, c.Brokers); err != nil {
		return err
	}
	p := &producer{cl: cl, keyed: c.Key == "user_id"}
	g, gctx := errgroup.WithContext(ctx)
	done := make(chan struct{})
	g.Go(func() error { p.report(gctx, done, progress); return nil })
	g.Go(func() error {
		defer close(done)
		if c.File != "" {
			return p.lines(gctx, c.File, stdin)
		}
		return p.generate(gctx, c)
	})
	err = g.Wait()
	acked, failed := p.acked.Load(), p.failed.Load()
	if open := p.sent.Load() - acked - failed; open > 0 { // interrupted: Close fails them next
		fmt.Fprintf(progress, "produced %d records (%d failed, %d not acknowledged)\n", acked, failed, open)
	} else {
		fmt.Fprintf(progress, "produced %d records (%d failed)\n", acked, failed)
	}
	if err == nil && failed > 0 {
		err = fmt.Errorf("app: %d records failed: %w", failed, p.firstErr())
	}
	return err
}

// checkInput looks up the input topic before anything is produced, within
// adminTimeout: wrong credentials fail here with Kafka's answer (a producer
// would retry them with its records in flight, saying nothing).
func checkInput(ctx context.Context, cl *kgo.Client, brokers []string) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	return explainTimeout(ctx, topics.CheckInput(ctx, kadm.NewClient(cl), strings.Join(brokers, ",")), brokers)
}

type producer struct {
	cl     *kgo.Client
	keyed  bool
	sent   atomic.Int64
	acked  atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	err    error
}

func (p *producer) firstErr() error { p.mu.Lock(); defer p.mu.Unlock(); return p.err }

func (p *producer) send(ctx context.Context, key, value []byte) {
	r := &kgo.Record{Value: value}
	if p.keyed && len(key) > 0 {
		r.Key = key
	}
	p.sent.Add(1)
	p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			p.failed.Add(1)
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
			return
		}
		p.acked.Add(1)
	})
}

func (p *producer) lines(ctx context.Context, file string, stdin io.Reader) error {
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("app: %w", err)
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		value := append([]byte(nil), line...)
		var k struct {
			UserID string `json:"user_id"`
		}
		var key []byte
		if p.keyed && json.Unmarshal(value, &k) == nil && k.UserID != "" {
			key = []byte(k.UserID)
		}
		p.send(ctx, key, value)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("app: reading %s: %w", file, err)
	}
	return p.cl.Flush(ctx)
}

func (p *producer) generate(ctx context.Context, c ProduceConfig) error {
	gen := generator.New(generator.Config{Users: c.Users, BurstUsers: c.BurstUsers, Seed: c.Seed})
	start := time.Now()
	for i := 0; i < c.Count; i++ {
		if c.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / c.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		t := gen.Next(time.Now())
		b, err := t.MarshalJSON()
		if err != nil {
			return err
		}
		p.send(ctx, []byte(t.UserID), b)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return p.cl.Flush(ctx)
}

func (p *producer) report(ctx context.Context, done <-chan struct{}, w io.Writer) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, start := int64(0), time.Now()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			n := p.acked.Load()
			fmt.Fprintf(w, "produced %d (%d/s, %d in flight, %d failed, %s)\n", n, n-last,
				p.sent.Load()-n-p.failed.Load(), p.failed.Load(), time.Since(start).Truncate(time.Second))
			last = n
		}
	}
}

// AlertsConfig configures "alerts".
type AlertsConfig struct {
	Brokers       []string
	FromBeginning bool
	Follow        bool
	Security      kafka.Security
}

// Alerts prints alerts as JSON lines. Without Follow it stops at the end of
// the topic as it was when it started.
func Alerts(ctx context.Context, c AlertsConfig, out io.Writer) error {
	if err := errors.Join(kafkaErrors(c.Brokers, c.Security)...); err != nil {
		return err
	}
	start := kgo.NewOffset().AtEnd()
	if c.FromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	opts := kafka.Options{Brokers: c.Brokers, ClientID: "fraudwatch-alerts", Security: c.Security}
	cl, err := kgo.NewClient(opts.FranzOpts(kgo.ConsumeTopics(string(topics.Alerts)), kgo.ConsumeResetOffset(start))...)
	if err != nil {
		return fmt.Errorf("app: kafka client: %w", err)
	}
	defer cl.Close()
	var ends map[int32]int64
	if !c.Follow {
		adm := kadm.NewClient(cl)
		lo, err := adm.ListEndOffsets(ctx, string(topics.Alerts))
		if err != nil {
			return fmt.Errorf("app: reading end offsets of %s: %w", topics.Alerts, err)
		}
		if err := lo.Error(); err != nil {
			return fmt.Errorf("app: topic %q: %w; run \"fraudwatch topics create --brokers %s\"", topics.Alerts, err, strings.Join(c.Brokers, ","))
		}
		ends = map[int32]int64{}
		lo.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && c.FromBeginning {
				ends[o.Partition] = o.Offset
			}
		})
		if len(ends) == 0 {
			return nil
		}
	}
	bw := bufio.NewWriter(out)
	defer bw.Flush()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("app: fetching %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			bw.Write(r.Value)
			bw.WriteByte('\n')
			if ends != nil && r.Offset+1 >= ends[r.Partition] {
				delete(ends, r.Partition)
			}
		})
		if err := bw.Flush(); err != nil {
			return err
		}
		if ends != nil && len(ends) == 0 {
			return nil
		}
	}
}

// DevConfig configures "dev": embedded Kafka, topics, processor, HTTP, demo.
type DevConfig struct {
	KafkaListen string
	DataDir     string
	Partitions  int
	Demo        bool
	DemoRate    float64
	Process     ProcessConfig // Brokers and DataDir are filled by Dev
}

// Dev runs everything in one process. ready is called with the ready line.
func Dev(ctx context.Context, c DevConfig, env Env, ready func(line string)) error {
	if c.DataDir == "" {
		return errors.New("no data dir: set --data-dir")
	}
	b, err := broker.Start(broker.Config{Listen: c.KafkaListen, DataDir: filepath.Join(c.DataDir, "kafka")})
	if err != nil {
		return err
	}
	defer b.Close()
	brokers := b.Addrs()
	if err := CreateTopics(ctx, TopicsConfig{Brokers: brokers, Partitions: c.Partitions, Replication: 1}, io.Discard); err != nil {
		return err
	}
	pc := c.Process
	pc.Brokers = brokers
	pc.DataDir = filepath.Join(c.DataDir, "state")
	httpAddr := pc.HTTPAddr
	pc.HTTPAddr = "" // the view service below serves HTTP for both
	procEnv, serveEnv := env, env
	procEnv.Labels = prometheus.Labels{"component": "process"}
	serveEnv.Labels = prometheus.Labels{"component": "serve"}
	proc, err := NewProcessor(pc, procEnv)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return proc.Run(gctx, func() {
			http := "off"
			if httpAddr != "" {
				http = "http://" + httpAddr
			}
			ready(fmt.Sprintf("fraudwatch dev ready: kafka=%s http=%s data=%s demo=%v", strings.Join(brokers, ","), http, c.DataDir, c.Demo))
		})
	})
	if httpAddr != "" {
		g.Go(func() error {
			return Serve(gctx, ServeConfig{Brokers: brokers, DataDir: filepath.Join(c.DataDir, "serve"), HTTPAddr: httpAddr,
				ClientID: "fraudwatch-dev-serve", Rules: pc.Rules}, serveEnv)
		})
	}
	if c.Demo {
		g.Go(func() error {
			err := Produce(gctx, ProduceConfig{Brokers: brokers, Key: "none", Rate: c.DemoRate, Users: 10000, Count: 1 << 62,
				BurstUsers: 20, Seed: uint64(time.Now().UnixNano())}, nil, io.Discard)
			if gctx.Err() != nil {
				return nil
			}
			return err
		})
	}
	return g.Wait()
}
