package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/telemetry"
	"github.com/fraudwatch/fraudwatch/internal/topics"
	"github.com/fraudwatch/fraudwatch/views"
)

// ServeConfig configures the view service.
type ServeConfig struct {
	Brokers  []string
	DataDir  string // LevelDB for the view; "" with Memory
	Memory   bool   // keep the view in memory (a restart replays the table)
	HTTPAddr string
	ClientID string
	Rules    rules.Config
	// AuthToken, when set, is required as "Authorization: Bearer <token>" on /v1/*.
	AuthToken string
	Security  kafka.Security
	// StateCacheMB is the memory for cached user states (0: DefaultServeStateCacheMB).
	StateCacheMB int
	// WriteBufferMB is LevelDB's write buffer per partition (0: DefaultServeWriteBufferMB).
	WriteBufferMB int
	// GCHeadroomMB, when set, raises the process's GOGC after each
	// collection so that the heap may grow this much beyond the live data
	// before the next one (never below the GOGC the process had; see
	// DefaultServeGCHeadroomMB). 0: GOGC is left alone. GOGC belongs to the
	// OS process: set it for one Serve per process.
	GCHeadroomMB int
}

// Validate reports every problem at once.
func (c ServeConfig) Validate() error {
	errs := kafkaErrors(c.Brokers, c.Security)
	if c.DataDir == "" && !c.Memory {
		errs = append(errs, errors.New("no data dir: set --data-dir (or --memory)"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("no HTTP address: set --http"))
	}
	errs = append(errs, memoryErrors(c.StateCacheMB, c.WriteBufferMB)...)
	if err := gcHeadroomError(c.GCHeadroomMB); err != nil {
		errs = append(errs, err)
	}
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Serve runs the view of the detector table, the recent-alerts consumer and
// the HTTP API until ctx is cancelled.
func Serve(ctx context.Context, c ServeConfig, env Env) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.ClientID == "" {
		c.ClientID = "fraudwatch-serve"
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	opts := kafka.Options{Brokers: c.Brokers, ClientID: c.ClientID, Security: c.Security}
	n, err := checkTopics(ctx, opts)
	if err != nil {
		return err
	}
	replays := new(telemetry.Replays)
	reg := env.registerer()
	sb := storage.MemoryBuilder()
	if !c.Memory {
		var stats *storeStats
		if reg != nil {
			stats = newStoreStats()
			reg.MustRegister(stats)
		}
		sb = replayed(ctx, levelDB(filepath.Join(c.DataDir, "view"), stateCacheBytes(c.StateCacheMB, DefaultServeStateCacheMB, n), 0, mibOr(c.WriteBufferMB, DefaultServeWriteBufferMB), stats, env.Log),
			opts.ReadPartition, replays, env.Log)
	}
	// Queries read the storage goka's view keeps, through local (see
	// views.Local): goka's own View.Get races with the view's close.
	local := views.NewLocal(n, codecs.State{})
	view, err := goka.NewView(c.Brokers, topics.DetectorTable(), codecs.State{},
		goka.WithViewHasher(kafka.Hasher()),
		goka.WithViewStorageBuilder(local.Builder(sb)),
		goka.WithViewConsumerSaramaBuilder(opts.ConsumerBuilder()),
		goka.WithViewTopicManagerBuilder(opts.TopicManagerBuilder()),
		goka.WithViewLogger(kafka.GokaLogger{L: env.Log}),
		goka.WithViewClientID(c.ClientID),
		goka.WithViewAutoReconnect(),
	)
	if err != nil {
		return fmt.Errorf("app: view of %s: %w", topics.DetectorTable(), err)
	}
	cl, err := kgo.NewClient(opts.FranzOpts()...)
	if err != nil {
		return fmt.Errorf("app: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	alerts := views.NewAlertLog(10000, 50)
	svc := views.New(views.Config{Rules: c.Rules, Partitions: n}, views.Deps{Table: local, Alerts: alerts,
		Replays: replays, Ends: tableEnds(adm), Metrics: views.NewMetrics(reg), Log: env.Log, Now: env.now()})

	// The view is stopped only once the service has stopped, so that no
	// query finds a closed partition at an orderly shutdown: its context is
	// not ctx's child.
	vctx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	var viewErr error
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		if err := view.Run(vctx); err != nil {
			viewErr = fmt.Errorf("app: view: %w", err)
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-viewDone:
			return viewErr
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error { return svc.Run(gctx) })
	g.Go(func() error { return keepGCHeadroomMB(gctx, c.GCHeadroomMB) })
	g.Go(func() error { return followAlerts(gctx, opts, alerts) })
	g.Go(func() error { return serveHTTP(gctx, c.HTTPAddr, serveHandler(svc, c.AuthToken, env), env.Log) })
	err = g.Wait()
	stopView()
	<-viewDone
	if err == nil { // the first error wins, as in the group
		err = viewErr
	}
	return err
}

func serveHandler(svc *views.Service, token string, env Env) http.Handler {
	mux := http.NewServeMux()
	api := svc.Handler(token)
	mux.Handle("GET /v1/alerts/stream", api) // long-lived: no timeout
	// A user query is bounded work (memory, or one local LevelDB read); the
	// timeout handler's goroutine and buffered copy per request took 0.42 of
	// the 2.56 CPU-seconds of the query handler in a "fraudwatch bench" profile.
	mux.Handle("GET /v1/users/{user_id}", api)
	mux.Handle("/v1/", http.TimeoutHandler(api, 10*time.Second, `{"error":"request timed out"}`))
	mux.Handle("/", views.Dashboard())
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		p := svc.Progress()
		code := http.StatusOK
		if !p.Recovered {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = jsonEncode(w, p)
	})
	if env.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(env.Registry, promhttp.HandlerOpts{}))
	}
	return limitBody(mux)
}

// tableEnds reads the end offsets of the detector table.
func tableEnds(adm *kadm.Client) views.EndOffsets {
	return func(ctx context.Context) (map[int32]int64, error) {
		lo, err := adm.ListEndOffsets(ctx, string(topics.DetectorTable()))
		if err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		var first error
		lo.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				first = cmp.Or(first, o.Err)
				return
			}
			out[o.Partition] = o.Offset
		})
		return out, first
	}
}

// followAlerts keeps the most recent alerts of every partition in log.
func followAlerts(ctx context.Context, opts kafka.Options, log *views.AlertLog) error {
	cl, err := kgo.NewClient(opts.FranzOpts(kgo.ConsumeTopics(string(topics.Alerts)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-1000)))...)
	if err != nil {
		return fmt.Errorf("app: kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, err := codecs.Alert{}.Decode(r.Value)
			if err == nil {
				log.Add(v.(*codecs.AlertRecord))
			}
		})
	}
}

func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
		if len(r.URL.RawQuery) > 4096 || len(r.URL.Path) > 4096 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestURITooLong)
			fmt.Fprintln(w, `{"error":"request URI too long"}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func jsonEncode(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }
