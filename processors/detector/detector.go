// Package detector is the goka group that decides whether a user's
// transactions are fraud ("fraudwatch-detector").
//
// Reads "transactions" (JSON, any key) and its own loop topic; writes its
// group table (one rules.State per user_id, codecs.State), "fraud_alerts"
// and "transactions_dlq".
//
// Two steps, one group:
//   - ingest (input "transactions"): validate; bad records go to the
//     dead-letter topic with a reason. A record keyed by its user_id that
//     already sits on that user's partition (Kafka's murmur2 partitioner) is
//     applied at once; any other is re-keyed through the loop topic.
//   - apply (loop, or direct): rules.Config.Apply on the user's state.
//
// Exactly-once effect on state under crashes comes from three things:
//   - every applied record leaves its source (input partition, offset) in the
//     user's state, so a re-delivered record is recognised (Replayed) and
//     only re-persists the state, closing the gap a crash leaves between
//     LevelDB and the changelog;
//   - alerts and late dead letters are produced synchronously, acked before
//     the state that records them is written, so the state never says
//     "alerted" for an alert Kafka does not have;
//   - commits are ordered (internal/kafka.Ordered), so an offset is
//     committed only after every earlier record's writes were acked.
package detector

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// Config is the detector's configuration.
type Config struct {
	Rules rules.Config
	// MaxBytes is the largest accepted record value; larger ones are too_large.
	MaxBytes int
	// MaxSkew is how far ahead of the wall clock an event time may be.
	MaxSkew time.Duration
	// Partitions is the partition count of the copartitioned topics.
	Partitions int32
}

// Sink produces a record and returns once Kafka acknowledged it.
type Sink interface {
	EmitSync(key string, value any) error
}

// Deps are the detector's collaborators.
type Deps struct {
	Alerts      Sink // "fraud_alerts", codecs.Alert
	DeadLetters Sink // "transactions_dlq", codecs.DeadLetter
	Metrics     *Metrics
	Log         *slog.Logger
	Now         func() time.Time
}

// Detector holds the callbacks of the group.
type Detector struct {
	cfg  Config
	deps Deps
	// table is the group table's codec: a burst user's state, decoded and
	// encoded for each of his events, is not decoded again from the slice
	// the store lends back (see codecs.StateCache).
	table *codecs.StateCache
}

// Decoded states kept by the table's codec: states of at least
// cachedStateEvents events (a user paying about once a minute holds three or
// four), up to cachedStates of them (a burst user's holds about 200 events,
// 20-40 KiB decoded).
const (
	cachedStates      = 256
	cachedStateEvents = 32
)

// New returns a detector; it validates cfg.
func New(cfg Config, deps Deps) (*Detector, error) {
	if err := cfg.Rules.Validate(); err != nil {
		return nil, err
	}
	if cfg.Partitions < 1 {
		return nil, fmt.Errorf("detector: partitions must be >= 1, got %d", cfg.Partitions)
	}
	if deps.Alerts == nil || deps.DeadLetters == nil {
		return nil, fmt.Errorf("detector: alert and dead-letter sinks are required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	return &Detector{cfg: cfg, deps: deps, table: codecs.NewStateCache(cachedStates, cachedStateEvents)}, nil
}

// Graph is the group graph.
func (d *Detector) Graph() *goka.GroupGraph {
	return goka.DefineGroup(topics.Detector,
		goka.Input(topics.Transactions, new(codec.Bytes), d.ingest),
		goka.Loop(codecs.RoutedCodec{}, d.apply),
		goka.Persist(d.table),
		goka.Output(topics.DLQ, codecs.DeadLetter{}),
	)
}

// NewProcessor builds the goka processor; opts carry the Kafka builders,
// storage, logger (or goka.WithTester in tests).
func (d *Detector) NewProcessor(brokers []string, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	base := []goka.ProcessorOption{
		goka.WithHasher(kafka.Hasher()),
		goka.WithNilHandling(goka.NilProcess), // empty values are dead-lettered, not skipped
	}
	p, err := goka.NewProcessor(brokers, d.Graph(), append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("detector: building processor: %w", err)
	}
	return p, nil
}

func (d *Detector) ingest(ctx goka.Context, msg any) {
	now := d.deps.Now()
	stage(d.deps.Metrics.inputStage, ctx.Partition(), now, ctx.Timestamp())
	raw, _ := msg.([]byte)
	key := ctx.Key()
	txn, err := codecs.ParseTxn(raw, codecs.Limits{MaxBytes: d.cfg.MaxBytes})
	if err != nil {
		inv := err.(*codecs.Invalid)
		d.deadLetterAsync(ctx, inv.Reason, inv.Detail, raw)
		return
	}
	if txn.Timestamp.After(now.Add(d.cfg.MaxSkew)) {
		d.deadLetterAsync(ctx, codecs.ReasonFuture, fmt.Sprintf("timestamp %s is more than %v ahead of the clock (%s)",
			txn.Timestamp.Format(time.RFC3339Nano), d.cfg.MaxSkew, now.UTC().Format(time.RFC3339)), raw)
		return
	}
	r := &codecs.Routed{
		Partition: ctx.Partition(),
		Offset:    ctx.Offset(),
		Key:       []byte(key),
		HasKey:    key != "",
		Txn:       txn,
		Original:  raw,
	}
	if ts := ctx.Timestamp(); !ts.IsZero() {
		r.RecordTime = ts.UnixNano()
	}
	if key == txn.UserID && kafka.Murmur2Partition([]byte(key), d.cfg.Partitions) == ctx.Partition() {
		d.applyRouted(ctx, r, true, now)
		return
	}
	ctx.Loopback(txn.UserID, r)
}

func (d *Detector) apply(ctx goka.Context, msg any) {
	now := d.deps.Now()
	stage(d.deps.Metrics.loopStage, ctx.Partition(), now, ctx.Timestamp())
	d.applyRouted(ctx, msg.(*codecs.Routed), false, now)
}

// applyRouted applies r to its user's state; now is when its callback began
// (the clock is read once per callback).
func (d *Detector) applyRouted(ctx goka.Context, r *codecs.Routed, direct bool, now time.Time) {
	st, _ := ctx.Value().(*rules.State)
	if st == nil {
		st = new(rules.State)
	}
	src := rules.Source{Partition: ctx.Partition(), Direct: direct, Offset: ctx.Offset()}
	ev := rules.Event{ID: r.Txn.TransactionID, Time: r.Txn.Timestamp.UnixNano(), Amount: r.Txn.Amount,
		Currency: r.Txn.Currency, Country: r.Txn.Country}
	out, alerts := d.cfg.Rules.Apply(st, r.Txn.UserID, src, ev)
	switch out {
	case rules.Replayed:
		// Applied before, but the crash that caused the re-delivery may have
		// left the write only in LevelDB: write the state to the changelog again.
		d.deps.Metrics.event(out)
		ctx.SetValue(st)
	case rules.Duplicate:
		// The first copy may be applied only in LevelDB (its changelog write
		// failed): as for a replay, write the state to the changelog again.
		d.deps.Metrics.event(out)
		ctx.SetValue(st)
	case rules.Late:
		win := time.Unix(0, d.cfg.Rules.TumblingStart(ev.Time)).UTC()
		detail := fmt.Sprintf("event time %s is too late: window [%s, %s) closed; stream time of user %q is %s, grace %v",
			r.Txn.Timestamp.Format(time.RFC3339Nano), win.Format(time.RFC3339), win.Add(d.cfg.Rules.Size).Format(time.RFC3339),
			r.Txn.UserID, time.Unix(0, st.StreamTime).UTC().Format(time.RFC3339Nano), d.cfg.Rules.Grace)
		if d.cfg.Rules.Mode == rules.Sliding {
			detail = fmt.Sprintf("event time %s is more than the grace %v behind stream time %s of user %q",
				r.Txn.Timestamp.Format(time.RFC3339Nano), d.cfg.Rules.Grace, time.Unix(0, st.StreamTime).UTC().Format(time.RFC3339Nano), r.Txn.UserID)
		}
		rec := d.deadLetter(codecs.ReasonLate, detail, r.Key, r.HasKey, r.Partition, r.Offset, r.Original)
		if err := d.deps.DeadLetters.EmitSync(string(r.Key), rec); err != nil {
			fail(ctx, fmt.Errorf("detector: producing dead letter to %s: %w", topics.DLQ, err))
			return
		}
		d.deps.Metrics.deadLetter(codecs.ReasonLate)
	case rules.Counted:
		for _, a := range alerts {
			sent := d.deps.Now()
			if err := d.deps.Alerts.EmitSync(a.UserID, codecs.NewAlertRecord(a, now)); err != nil {
				fail(ctx, fmt.Errorf("detector: producing alert to %s: %w", topics.Alerts, err))
				return
			}
			stage(d.deps.Metrics.alertStage, ctx.Partition(), d.deps.Now(), sent)
			d.deps.Metrics.alert(a.Rule)
		}
		ctx.SetValue(st)
		d.deps.Metrics.event(out)
		if r.RecordTime != 0 {
			d.deps.Metrics.observeLatency(ctx.Partition(), now, r.RecordTime, ev.Time)
		}
	}
}

// fail stops the processing of a record whose synchronous write failed. The
// record must then never be committed, and its state must not be written (it
// would say "alerted" for an alert Kafka does not have). goka's Fail panics
// only while the processor runs; when it is already stopping (another
// partition failed), Fail returns and the callback would go on and commit.
// So the commit is held back with an error first, and the caller returns.
func fail(ctx goka.Context, err error) {
	ctx.DeferCommit()(err)
	ctx.Fail(err)
}

func (d *Detector) deadLetter(reason codecs.Reason, detail string, key []byte, hasKey bool, partition int32, offset int64, raw []byte) *codecs.DeadLetterRecord {
	rec := &codecs.DeadLetterRecord{
		Reason:   reason,
		Error:    detail,
		Source:   codecs.Position{Topic: string(topics.Transactions), Partition: partition, Offset: offset},
		Original: raw,
		At:       d.deps.Now().UTC(),
	}
	if rec.Original == nil {
		rec.Original = []byte{}
	}
	if hasKey {
		k := string(key)
		rec.Key = &k
	}
	return rec
}

// deadLetterAsync dead-letters a record of the input topic through goka: its
// offset is committed only after the dead letter is acked.
func (d *Detector) deadLetterAsync(ctx goka.Context, reason codecs.Reason, detail string, raw []byte) {
	key := ctx.Key()
	rec := d.deadLetter(reason, detail, []byte(key), key != "", ctx.Partition(), ctx.Offset(), raw)
	ctx.Emit(topics.DLQ, key, rec)
	d.deps.Metrics.deadLetter(reason)
}
