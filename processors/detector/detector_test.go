package detector

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

var now = time.Date(2025, 6, 15, 14, 40, 0, 0, time.UTC)

type harness struct {
	tt     *tester.Tester
	alerts *tester.QueueTracker
	dlq    *tester.QueueTracker
	reg    *prometheus.Registry // the detector's metrics
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	tt := tester.New(t)
	// The tester's emitter producer waits for every processor to catch up,
	// which deadlocks when called from inside a callback: use the plain one.
	sink := func(topic goka.Stream, c goka.Codec) *goka.Emitter {
		tt.RegisterEmitter(topic, c)
		e, err := goka.NewEmitter(nil, topic, c, goka.WithEmitterProducerBuilder(tt.ProducerBuilder()),
			goka.WithEmitterTopicManagerBuilder(tt.TopicManagerBuilder()))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	alerts, dlq := sink(topics.Alerts, codecs.Alert{}), sink(topics.DLQ, codecs.DeadLetter{})
	cfg := Config{Rules: rules.Default(), MaxBytes: codecs.DefaultMaxBytes, MaxSkew: 5 * time.Minute, Partitions: 1}
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	d, err := New(cfg, Deps{Alerts: alerts, DeadLetters: dlq, Metrics: NewMetrics(reg), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := d.NewProcessor(nil, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	return &harness{tt: tt, alerts: tt.NewQueueTracker(string(topics.Alerts)), dlq: tt.NewQueueTracker(string(topics.DLQ)), reg: reg}
}

func txnJSON(id, user string, at time.Time) []byte {
	b, _ := codecs.Txn{TransactionID: id, UserID: user, Amount: 15000.5, Currency: "ARS", Merchant: "MercadoLibre",
		Country: "AR", Timestamp: at}.MarshalJSON()
	return b
}

func (h *harness) state(t *testing.T, user string) *rules.State {
	t.Helper()
	v := h.tt.TableValue(topics.DetectorTable(), user)
	if v == nil {
		return nil
	}
	return v.(*rules.State)
}

func (h *harness) nextAlert(t *testing.T) (string, *codecs.AlertRecord) {
	t.Helper()
	k, v, ok := h.alerts.Next()
	if !ok {
		return "", nil
	}
	return k, v.(*codecs.AlertRecord)
}

func TestBurstRaisesOneAlert(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			h := newHarness(t, nil)
			start := time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)
			for i := 0; i < 8; i++ {
				key := ""
				if keyed {
					key = "usr_456"
				}
				h.tt.Consume(string(topics.Transactions), key, txnJSON(fmt.Sprintf("txn_%d", i), "usr_456", start.Add(time.Duration(i)*time.Second)))
			}
			st := h.state(t, "usr_456")
			if st == nil || len(st.Events) != 8 {
				t.Fatalf("state: %+v", st)
			}
			if len(st.Sources) != 1 || st.Sources[0].Direct != keyed {
				t.Fatalf("sources: %+v (keyed %v)", st.Sources, keyed)
			}
			key, a := h.nextAlert(t)
			if a == nil || key != "usr_456" || a.Rule != "velocity" || a.NumTxns != 6 || a.Threshold != 5 ||
				!a.Window.Start.Equal(start) || !a.Window.End.Equal(start.Add(time.Minute)) || len(a.TransactionIDs) != 6 {
				t.Fatalf("alert %q %+v", key, a)
			}
			if a.AlertID != rules.AlertID("usr_456", rules.RuleVelocity, start.UnixNano(), start.Add(time.Minute).UnixNano()) {
				t.Fatalf("alert id %s", a.AlertID)
			}
			if _, more := h.nextAlert(t); more != nil {
				t.Fatalf("second alert %+v", more)
			}
		})
	}
}

// stage returns the count and sum of a stage of StageLatency.
func (h *harness) stage(t *testing.T, name string) (uint64, float64) {
	t.Helper()
	m := h.metric(t, StageLatency, "stage", name)
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// events is the count of fraudwatch_events_total{result=result}.
func (h *harness) events(t *testing.T, result string) float64 {
	t.Helper()
	return h.metric(t, "fraudwatch_events_total", "result", result).GetCounter().GetValue()
}

// metric is the first metric of family name whose label has value.
func (h *harness) metric(t *testing.T, name, label, value string) *dto.Metric {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return nil
}

// TestStageLatency: the input stage is the record time to ingest, one per
// record; an alert's ack is timed once per alert; a record without a time
// (the tester's loop records have none) is not observed.
func TestStageLatency(t *testing.T) {
	h := newHarness(t, nil)
	start := time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)
	for i := 0; i < 7; i++ {
		h.tt.Consume(string(topics.Transactions), "", txnJSON(fmt.Sprintf("txn_%d", i), "usr_456", start.Add(time.Duration(i)*time.Second)),
			tester.WithTime(now.Add(-time.Duration(i+1)*10*time.Millisecond)))
	}
	if _, a := h.nextAlert(t); a == nil {
		t.Fatal("no alert")
	}
	if n, sum := h.stage(t, StageInput); n != 7 || math.Abs(sum-0.28) > 1e-9 {
		t.Errorf("input stage: %d observations, sum %v s; want 7 and 0.28 s (10+20+...+70 ms)", n, sum)
	}
	if n, _ := h.stage(t, StageAlertAck); n != 1 {
		t.Errorf("alert_ack stage: %d observations, want 1 (one alert)", n)
	}
	if n, _ := h.stage(t, StageLoop); n != 0 {
		t.Errorf("loop stage: %d observations of records without a time", n)
	}
}

func TestDuplicateTransactionCountedOnce(t *testing.T) {
	h := newHarness(t, nil)
	at := time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		h.tt.Consume(string(topics.Transactions), "", txnJSON("txn_same", "u", at))
	}
	if st := h.state(t, "u"); len(st.Events) != 1 {
		t.Fatalf("events: %+v", st.Events)
	}
	if _, _, ok := h.dlq.Next(); ok {
		t.Fatal("duplicate was dead-lettered")
	}
	if c, d := h.events(t, "counted"), h.events(t, "duplicate"); c != 1 || d != 2 {
		t.Errorf("fraudwatch_events_total: counted %v, duplicate %v; want 1 and 2", c, d)
	}
}

func TestDeadLetterReasons(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBytes = 1024 })
	ok := func(id string, at time.Time) []byte { return txnJSON(id, "u", at) }
	t0 := time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)
	cases := []struct {
		value  []byte
		reason codecs.Reason
	}{
		{[]byte(`{"transaction_id": "x"`), codecs.ReasonMalformedJSON},
		{nil, codecs.ReasonMalformedJSON},
		{[]byte(`{"user_id":"u","amount":1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`), codecs.ReasonMissingField},
		{[]byte(`{"transaction_id":"a","user_id":"u","amount":-1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`), codecs.ReasonInvalidAmount},
		{[]byte(`{"transaction_id":"a","user_id":"u","amount":1,"currency":"usd","timestamp":"2025-06-15T14:30:00Z"}`), codecs.ReasonInvalidCurrency},
		{[]byte(`{"transaction_id":"a","user_id":"u","amount":1,"currency":"USD","timestamp":"15/06/2025"}`), codecs.ReasonInvalidTimestamp},
		{append([]byte(`{"transaction_id":"a","pad":"`), append(make([]byte, 2000), '"', '}')...), codecs.ReasonTooLarge},
		{ok("future", now.Add(6*time.Minute)), codecs.ReasonFuture},
	}
	for i, c := range cases {
		h.tt.Consume(string(topics.Transactions), fmt.Sprintf("k%d", i), c.value)
	}
	// late: stream time at t0+5m, then an event in the window that closed.
	h.tt.Consume(string(topics.Transactions), "", ok("recent", t0.Add(5*time.Minute)))
	h.tt.Consume(string(topics.Transactions), "", ok("old", t0))
	cases = append(cases, struct {
		value  []byte
		reason codecs.Reason
	}{ok("old", t0), codecs.ReasonLate})

	for i, c := range cases {
		_, v, got := h.dlq.Next()
		if !got {
			t.Fatalf("case %d: no dead letter", i)
		}
		d := v.(*codecs.DeadLetterRecord)
		if d.Reason != c.reason || d.Error == "" || d.Source.Topic != "transactions" || string(d.Original) != string(c.value) {
			t.Fatalf("case %d: got %+v, want reason %s", i, d, c.reason)
		}
		if c.reason != codecs.ReasonLate && (d.Key == nil || *d.Key != fmt.Sprintf("k%d", i)) {
			t.Fatalf("case %d: key %v", i, d.Key)
		}
		if c.reason == codecs.ReasonLate && d.Key != nil {
			t.Fatalf("late unkeyed record has key %q", *d.Key)
		}
		b, _ := json.Marshal(d)
		var generic map[string]any
		_ = json.Unmarshal(b, &generic)
		for _, f := range []string{"reason", "error", "source", "key", "original", "at"} {
			if _, ok := generic[f]; !ok {
				t.Fatalf("dead letter lacks %q: %s", f, b)
			}
		}
	}
	if _, _, more := h.dlq.Next(); more {
		t.Fatal("unexpected extra dead letter")
	}
	if st := h.state(t, "u"); st == nil || len(st.Events) != 1 {
		t.Fatalf("state: %+v", st)
	}
}

// TestReKeyedRecordsOutOfInputOrder: when the loop write of an earlier input
// record fails and a later one succeeds, the earlier record is re-sent after
// the later one. It must be counted, not taken for a re-delivery.
func TestReKeyedRecordsOutOfInputOrder(t *testing.T) {
	h := newHarness(t, nil)
	at := time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)
	routed := func(id string, inputOffset int64) *codecs.Routed {
		var txn codecs.Txn
		if err := json.Unmarshal(txnJSON(id, "u", at), &txn); err != nil {
			t.Fatal(err)
		}
		return &codecs.Routed{Partition: 0, Offset: inputOffset, Txn: txn, Original: txnJSON(id, "u", at)}
	}
	h.tt.Consume(string(topics.DetectorLoop()), "u", routed("later", 11))
	h.tt.Consume(string(topics.DetectorLoop()), "u", routed("earlier", 10))
	h.tt.Consume(string(topics.DetectorLoop()), "u", routed("later", 11)) // the re-sent later one
	st := h.state(t, "u")
	if st == nil || len(st.Events) != 2 {
		t.Fatalf("want both transactions counted once, state %+v", st)
	}
}

// baseContext names goka.Context for embedding: an embedded field called
// Context would hide the interface's Context method.
type baseContext = goka.Context

// stoppingContext is a goka.Context of a processor that is already stopping:
// its Fail returns instead of panicking, as goka's does then. It serves st.
type stoppingContext struct {
	baseContext
	st       *rules.State
	failed   error
	deferred error
	set      bool
}

func (c *stoppingContext) Value() any                          { return c.st }
func (c *stoppingContext) SetValue(any, ...goka.ContextOption) { c.set = true }
func (c *stoppingContext) Partition() int32                    { return 0 }
func (c *stoppingContext) Offset() int64                       { return 1 }
func (c *stoppingContext) Fail(err error)                      { c.failed = err }
func (c *stoppingContext) DeferCommit() func(error) {
	return func(err error) { c.deferred = err }
}

type failingSink struct{}

func (failingSink) EmitSync(string, any) error { return fmt.Errorf("broker gone") }

// TestFailedAlertWhileStopping: when the alert cannot be produced while the
// processor is already stopping, the state must not record the alert and the
// record must not be committed.
func TestFailedAlertWhileStopping(t *testing.T) {
	d, err := New(Config{Rules: rules.Default(), MaxBytes: codecs.DefaultMaxBytes, MaxSkew: time.Minute, Partitions: 1},
		Deps{Alerts: failingSink{}, DeadLetters: failingSink{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 15, 14, 30, 0, 0, time.UTC)
	st := &rules.State{}
	for i := range 5 {
		cfg := rules.Default()
		cfg.Apply(st, "u", rules.Source{Partition: 0, Offset: int64(i) - 10}, rules.Event{ID: fmt.Sprint(i), Time: at.UnixNano(), Amount: 1, Currency: "USD"})
	}
	ctx := &stoppingContext{st: st}
	var txn codecs.Txn
	if err := json.Unmarshal(txnJSON("sixth", "u", at), &txn); err != nil {
		t.Fatal(err)
	}
	d.applyRouted(ctx, &codecs.Routed{Txn: txn}, false, now)
	if ctx.failed == nil || ctx.deferred == nil {
		t.Fatalf("the failure was not reported and the commit not held back: fail=%v deferred=%v", ctx.failed, ctx.deferred)
	}
	if ctx.set {
		t.Fatal("the state was written although its alert was not produced")
	}
}
