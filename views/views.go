// Package views answers "what is this user's risk state right now?" from goka
// Views of the detector's group table ("fraudwatch-detector-table", one
// rules.State per user_id), plus a bounded in-memory log of recent alerts read
// from "fraud_alerts". It serves the versioned HTTP API and the dashboard
// (a static page embedded in the binary that reads that API).
//
// Queries are gated on recovery: until every partition of the view caught up
// with the table, /v1/users answers 503 with Retry-After, never a partial state.
//
// Per partition it tracks the next table offset the view applies (through the
// view's update callback), the table's end offset, restore progress and
// staleness; /v1/partitions and the metrics report them.
package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/telemetry"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// Table is the part of a goka.View the service uses.
type Table interface {
	Get(key string) (any, error)
	Recovered() bool
	Stats(ctx context.Context) *goka.ViewStats
}

// EndOffsets returns the end offset (high-water mark) of every partition of
// the table topic.
type EndOffsets func(ctx context.Context) (map[int32]int64, error)

// Config is what the service answers with.
type Config struct {
	Rules rules.Config
	// Partitions is the partition count of the table.
	Partitions int32
}

// Deps are the service's collaborators. Only Table and Alerts are required.
type Deps struct {
	Table  Table
	Alerts *AlertLog
	// Applied, when the view was built with its Callback, gives the exact
	// offsets applied; without it they come from goka's recovery stats.
	Applied *Applied
	// Replays, when set, shows the changelog read ahead of goka's recovery.
	Replays *telemetry.Replays
	// Ends, when set, gives live end offsets: lag and staleness need them.
	Ends    EndOffsets
	Metrics *Metrics
	Log     *slog.Logger
	Now     func() time.Time
}

// Service holds the view and the recent alerts.
type Service struct {
	cfg     Config
	table   Table
	alerts  *AlertLog
	applied *Applied
	replays *telemetry.Replays
	ends    EndOffsets
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	// refresh state, owned by Run's goroutine
	caughtUp []time.Time // per partition: when the view last held every record of the table
	eta      telemetry.ETA

	progress atomic.Pointer[Progress]
	// lastRecovered is when the table last said it was recovered (Unix ns;
	// 0: never). See recovered.
	lastRecovered atomic.Int64
}

// recoveredGrace is how long the service keeps answering after the table
// stops saying it is recovered. goka's view partitions flip through
// "connecting" for a moment right after recovery and when they reconnect;
// the local state is all there meanwhile, and readiness should not flap.
const recoveredGrace = 2 * time.Second

// recovered reports whether the table is recovered, or was within
// recoveredGrace.
func (s *Service) recovered() bool {
	now := s.now()
	if s.table.Recovered() {
		s.lastRecovered.Store(now.UnixNano())
		return true
	}
	last := s.lastRecovered.Load()
	return last != 0 && now.Sub(time.Unix(0, last)) < recoveredGrace
}

// Progress is the recovery and freshness state of every partition of the view.
type Progress struct {
	Recovered  bool                `json:"recovered"`
	Partitions []PartitionProgress `json:"partitions"`
	// RemainingRecords is the sum of the partitions' Remaining.
	RemainingRecords int64 `json:"remaining_records"`
	// ETASeconds estimates when the restore ends: 0 when done, -1 unknown.
	ETASeconds float64 `json:"eta_seconds"`
	// StalenessSeconds is the largest of the partitions' staleness.
	StalenessSeconds float64   `json:"staleness_seconds"`
	At               time.Time `json:"at"`
}

// PartitionProgress is one partition of the view.
type PartitionProgress struct {
	Partition int32 `json:"partition"`
	// Status is goka's partition state: initializing, connecting,
	// recovering, preparing, running or stopped; recovering also while
	// the changelog is read ahead of goka's recovery.
	Status string `json:"status"`
	// Offset is the next table offset the view reads: every record of the
	// partition before it is applied.
	Offset int64 `json:"offset"`
	// Hwm is the partition's end offset, measured live when possible.
	Hwm int64 `json:"hwm"`
	// Remaining is what the restore still has to replay (0 once recovered).
	Remaining int64 `json:"remaining"`
	// Lag is Hwm - Offset.
	Lag int64 `json:"lag"`
	// StalenessSeconds is the time since the view last held every record
	// the table partition had (since the service started, before that).
	StalenessSeconds float64 `json:"staleness_seconds"`
}

// New returns a service over deps.Table.
func New(cfg Config, deps Deps) *Service {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	s := &Service{cfg: cfg, table: deps.Table, alerts: deps.Alerts, applied: deps.Applied, replays: deps.Replays, ends: deps.Ends,
		metrics: deps.Metrics, log: deps.Log, now: deps.Now, started: deps.Now(),
		caughtUp: make([]time.Time, max(cfg.Partitions, 0))}
	s.progress.Store(&Progress{ETASeconds: -1, Partitions: []PartitionProgress{}})
	return s
}

// Run refreshes the progress, lag and staleness until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		s.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

var statusNames = map[goka.PartitionStatus]string{
	goka.PartitionStopped: "stopped", goka.PartitionInitializing: "initializing", goka.PartitionConnecting: "connecting",
	goka.PartitionRecovering: "recovering", goka.PartitionPreparing: "preparing", goka.PartitionRunning: "running",
}

func (s *Service) refresh(ctx context.Context) {
	// The end offsets are read first: whatever they count was written before
	// the view's offsets below are read, so "caught up" is never claimed early.
	asked := s.now()
	var ends map[int32]int64
	if s.ends != nil {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		if ends, err = s.ends(ectx); err != nil && ctx.Err() == nil {
			s.log.Debug("view end offsets", "err", err)
		}
		cancel()
	}
	now := s.now()
	p := &Progress{Recovered: s.recovered(), At: now.UTC(), Partitions: []PartitionProgress{}}
	st := s.table.Stats(ctx)
	remaining := map[int32]int64{}
	var lags []telemetry.Lag
	for part := int32(0); part < s.cfg.Partitions; part++ {
		pp := PartitionProgress{Partition: part, Status: "initializing"}
		var ts *goka.TableStats
		if st != nil {
			ts = st.Partitions[part]
		}
		if ts != nil {
			pp.Status = statusNames[ts.Status]
			if ts.Recovery != nil {
				pp.Hwm = ts.Recovery.Hwm
			}
		}
		pp.Offset = s.offset(part, ts)
		if n, ok := telemetry.Remaining(ts); ok {
			pp.Remaining = n
			remaining[part] = n
		}
		if n, next, ok := s.replays.Remaining(part); ok { // read ahead of goka's recovery
			pp.Status, pp.Offset, pp.Remaining = "recovering", next, n
			remaining[part] = n
		}
		end, live := ends[part]
		if live {
			pp.Hwm = max(pp.Hwm, end)
		}
		pp.Lag = max(0, pp.Hwm-pp.Offset)
		if live {
			lags = append(lags, telemetry.Lag{Topic: string(topics.DetectorTable()), Partition: part, Records: pp.Lag})
			if pp.Offset >= end && ts != nil && ts.Status == goka.PartitionRunning {
				s.caughtUp[part] = asked
			}
		}
		since := s.started
		if !s.caughtUp[part].IsZero() {
			since = s.caughtUp[part]
		}
		pp.StalenessSeconds = max(0, now.Sub(since).Seconds())
		p.StalenessSeconds = max(p.StalenessSeconds, pp.StalenessSeconds)
		p.RemainingRecords += pp.Remaining
		p.Partitions = append(p.Partitions, pp)
	}
	p.ETASeconds = s.eta.Observe(now, p.RemainingRecords)
	if p.Recovered {
		p.ETASeconds = 0
	}
	s.metrics.partitions.SetRestore(remaining, p.ETASeconds)
	if s.ends != nil {
		s.metrics.partitions.SetLag(lags)
		s.metrics.staleness.Set(p.StalenessSeconds)
	}
	s.progress.Store(p)
}

// offset is the next offset of partition part the view reads.
func (s *Service) offset(part int32, ts *goka.TableStats) int64 {
	if next, ok := s.applied.Next(part); ok {
		return next
	}
	// Nothing applied in this run: goka's recovery offset is then the first
	// offset it loads (the local storage holds everything before it).
	if ts != nil && ts.Recovery != nil && !ts.Recovery.StartTime.IsZero() {
		return ts.Recovery.Offset
	}
	return 0
}

// Progress returns the latest per-partition progress, with the live
// recovered flag (the per-partition figures are refreshed every 250 ms).
func (s *Service) Progress() *Progress {
	p := *s.progress.Load()
	p.Recovered = s.recovered()
	return &p
}

// Applied tracks, per partition, the next table offset the view will apply.
// Its Callback is the view's update callback (goka.WithViewCallback).
type Applied struct {
	next []atomic.Int64 // offset+1 of the last record applied; 0: none yet
}

// NewApplied tracks a table of partitions partitions.
func NewApplied(partitions int32) *Applied {
	return &Applied{next: make([]atomic.Int64, max(partitions, 0))}
}

// Callback applies a table record as goka does by default and records its offset.
func (a *Applied) Callback(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	if err := goka.DefaultUpdate(ctx, st, key, value); err != nil {
		return err
	}
	if p := ctx.Partition(); p >= 0 && int(p) < len(a.next) {
		a.next[p].Store(ctx.Offset() + 1)
	}
	return nil
}

// Next returns the next offset of partition p to apply, if a record of it
// was applied since the view started.
func (a *Applied) Next(p int32) (int64, bool) {
	if a == nil || p < 0 || int(p) >= len(a.next) {
		return 0, false
	}
	n := a.next[p].Load()
	return n, n > 0
}

// ErrNotRecovered is returned while the view catches up.
var ErrNotRecovered = errors.New("views: the view is still recovering")

// ErrUnknownUser is returned for a user the table does not hold.
var ErrUnknownUser = errors.New("views: unknown user")

// User returns a user's state, or ErrNotRecovered/ErrUnknownUser.
func (s *Service) User(id string) (*rules.State, error) {
	if !s.recovered() {
		return nil, ErrNotRecovered
	}
	v, err := s.table.Get(id)
	if err != nil {
		return nil, fmt.Errorf("views: reading %s for %q: %w", topics.DetectorTable(), id, err)
	}
	st, _ := v.(*rules.State)
	if st == nil {
		return nil, ErrUnknownUser
	}
	return st, nil
}

// AlertLog keeps the most recent alerts, overall and per user, and fans new
// ones out to subscribers (the SSE stream).
type AlertLog struct {
	mu      sync.Mutex
	max     int
	perUser int
	all     []*codecs.AlertRecord // oldest first
	byUser  map[string][]*codecs.AlertRecord
	seen    map[string]bool // alert ids held, to drop re-emitted alerts
	subs    map[chan *codecs.AlertRecord]struct{}
}

// NewAlertLog keeps max alerts overall and perUser per user.
func NewAlertLog(max, perUser int) *AlertLog {
	return &AlertLog{max: max, perUser: perUser, byUser: map[string][]*codecs.AlertRecord{},
		seen: map[string]bool{}, subs: map[chan *codecs.AlertRecord]struct{}{}}
}

// Add records an alert; a re-emitted alert (same id) is ignored.
func (l *AlertLog) Add(a *codecs.AlertRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[a.AlertID] {
		return
	}
	l.seen[a.AlertID] = true
	l.all = append(l.all, a)
	if len(l.all) > l.max {
		old := l.all[0]
		l.all = l.all[1:]
		delete(l.seen, old.AlertID)
	}
	u := append(l.byUser[a.UserID], a)
	if len(u) > l.perUser {
		u = u[1:]
	}
	l.byUser[a.UserID] = u
	for ch := range l.subs {
		select {
		case ch <- a:
		default: // a slow subscriber misses alerts rather than blocking the log
		}
	}
}

// Recent returns up to limit alerts, newest first, of one user when user != "".
func (l *AlertLog) Recent(user string, limit int) []*codecs.AlertRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	src := l.all
	if user != "" {
		src = l.byUser[user]
	}
	out := make([]*codecs.AlertRecord, 0, min(limit, len(src)))
	for i := len(src) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, src[i])
	}
	return out
}

// Subscribe returns a channel of new alerts and a function to unsubscribe.
func (l *AlertLog) Subscribe() (<-chan *codecs.AlertRecord, func()) {
	ch := make(chan *codecs.AlertRecord, 64)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}
