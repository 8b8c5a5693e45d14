// Package views answers "what is this user's risk state right now?" from goka
// Views of the detector's group table ("fraudwatch-detector-table", one
// rules.State per user_id), plus a bounded in-memory log of recent alerts read
// from "fraud_alerts". It serves the versioned HTTP API and the dashboard
// (a static page embedded in the binary that reads that API).
//
// Queries are gated on recovery: until every partition of the view caught up
// with the table, /v1/users answers 503 with Retry-After, never a partial state.
//
// Reads go to the view's own storage (Local), never through goka's View.
// Per partition it tracks the next table offset the view applies (the offset
// goka stores with the partition's state), the table's end offset, restore
// progress and staleness; /v1/partitions and the metrics report them.
package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/telemetry"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// Table is the service's view of the table: Local, or a fake in tests.
type Table interface {
	// Get returns the decoded value of key, nil if the table has none.
	Get(key string) (any, error)
	// Recovered reports whether every partition holds the table up to the
	// end it read at its start.
	Recovered() bool
	// Partition returns one partition's status and next offset.
	Partition(p int32) PartitionState
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
	replays *telemetry.Replays
	ends    EndOffsets
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	// refresh state, owned by Run's goroutine
	caughtUp []time.Time     // per partition: when the view last held every record of the table
	lastEnds map[int32]int64 // the end offsets last read
	eta      telemetry.ETA

	progress atomic.Pointer[Progress]
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
	// Status is initializing (its storage is not built yet), recovering
	// (the changelog is read to its end, ahead of goka's recovery or by
	// it), running (recovered) or stopped (the view closed it).
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
	s := &Service{cfg: cfg, table: deps.Table, alerts: deps.Alerts, replays: deps.Replays, ends: deps.Ends,
		metrics: deps.Metrics, log: deps.Log, now: deps.Now, started: deps.Now(),
		caughtUp: make([]time.Time, max(cfg.Partitions, 0)), lastEnds: map[int32]int64{}}
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

func (s *Service) refresh(ctx context.Context) {
	// The end offsets are read first: whatever they count was written before
	// the view's offsets below are read, so "caught up" is never claimed early.
	asked := s.now()
	live := false
	if s.ends != nil {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ends, err := s.ends(ectx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Debug("view end offsets", "err", err)
		case err == nil:
			live = true
		}
		for part, end := range ends {
			s.lastEnds[part] = end
		}
	}
	now := s.now()
	p := &Progress{Recovered: s.table.Recovered(), At: now.UTC(), Partitions: []PartitionProgress{}}
	remaining := map[int32]int64{}
	var lags []telemetry.Lag
	for part := int32(0); part < s.cfg.Partitions; part++ {
		ps := s.table.Partition(part)
		pp := PartitionProgress{Partition: part, Status: ps.Status, Offset: ps.Next}
		end, known := s.lastEnds[part]
		if known {
			pp.Hwm = end
		}
		pp.Hwm = max(pp.Hwm, pp.Offset)
		if ps.Status == StatusRecovering && known {
			pp.Remaining = max(0, end-pp.Offset)
			remaining[part] = pp.Remaining
		}
		if ps.Status == StatusRunning {
			remaining[part] = 0
		}
		if n, next, ok := s.replays.Remaining(part); ok { // read ahead of goka's recovery
			pp.Status, pp.Offset, pp.Remaining = StatusRecovering, next, n
			remaining[part] = n
		}
		pp.Lag = max(0, pp.Hwm-pp.Offset)
		if live {
			lags = append(lags, telemetry.Lag{Topic: string(topics.DetectorTable()), Partition: part, Records: pp.Lag})
			if pp.Offset >= end && pp.Status == StatusRunning {
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

// Progress returns the latest per-partition progress, with the live
// recovered flag (the per-partition figures are refreshed every 250 ms).
func (s *Service) Progress() *Progress {
	p := *s.progress.Load()
	p.Recovered = s.table.Recovered()
	return &p
}

// ErrNotRecovered is returned while the view catches up.
var ErrNotRecovered = errors.New("views: the view is still recovering")

// ErrUnknownUser is returned for a user the table does not hold.
var ErrUnknownUser = errors.New("views: unknown user")

// User returns a user's state, or ErrNotRecovered/ErrUnknownUser.
func (s *Service) User(id string) (*rules.State, error) {
	if !s.table.Recovered() {
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
