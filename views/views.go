// Package views answers "what is this user's risk state right now?" from goka
// Views of the detector's group table ("fraudwatch-detector-table", one
// rules.State per user_id), plus a bounded in-memory log of recent alerts read
// from "fraud_alerts". It serves the versioned HTTP API.
//
// Queries are gated on recovery: until every partition of the view caught up
// with the table, /v1/users answers 503 with Retry-After, never a partial state.
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

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// Table is the part of a goka.View the service uses.
type Table interface {
	Get(key string) (any, error)
	Recovered() bool
	Stats(ctx context.Context) *goka.ViewStats
}

// Service holds the view and the recent alerts.
type Service struct {
	table      Table
	rules      rules.Config
	partitions int32
	alerts     *AlertLog
	log        *slog.Logger
	now        func() time.Time

	progress atomic.Pointer[Progress]
}

// Progress is the recovery state of every partition of the view.
type Progress struct {
	Recovered  bool                `json:"recovered"`
	Partitions []PartitionProgress `json:"partitions"`
	At         time.Time           `json:"at"`
}

// PartitionProgress is one partition's recovery.
type PartitionProgress struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	Hwm       int64 `json:"hwm"`
	Remaining int64 `json:"remaining"`
}

// New returns a service over table.
func New(table Table, r rules.Config, partitions int32, alerts *AlertLog, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{table: table, rules: r, partitions: partitions, alerts: alerts, log: log, now: now}
	s.progress.Store(&Progress{})
	return s
}

// Run refreshes the recovery progress until ctx is cancelled.
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
	p := &Progress{Recovered: s.table.Recovered(), At: s.now().UTC()}
	if st := s.table.Stats(ctx); st != nil {
		for part := int32(0); part < s.partitions; part++ {
			ts := st.Partitions[part]
			pp := PartitionProgress{Partition: part}
			if ts != nil && ts.Recovery != nil {
				pp.Offset, pp.Hwm = ts.Recovery.Offset, ts.Recovery.Hwm
				// Offset is the last offset applied, Hwm the next to be written.
				pp.Remaining = max(0, pp.Hwm-pp.Offset-1)
			}
			p.Partitions = append(p.Partitions, pp)
		}
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
