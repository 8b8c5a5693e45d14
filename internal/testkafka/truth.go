package testkafka

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudwatch/fraudwatch/internal/generator"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// Event is one record of a workload: a valid transaction of UserID, or, with
// UserID empty, bad bytes that belong in the dead-letter topic.
type Event struct {
	Value  []byte
	UserID string
}

// Truth is what the processors must end up with after a workload.
type Truth struct {
	Users  map[string]map[string]float64 // user -> transaction id -> amount
	Alerts map[string]bool               // expected alert ids
	Bad    map[string]bool               // values that must be dead-lettered
	Events int
}

// Workload makes n records: valid transactions of users with bursts, all
// within 80 seconds of event time (nothing is late or evicted whatever the
// order), and a share of bad records, each unique.
func Workload(n int, seed uint64, badShare float64) ([]Event, Truth) {
	gen := generator.New(generator.Config{Users: max(n/5, 1), BurstUsers: max(n/400, 1), BurstShare: 0.02, Seed: seed})
	r := rand.New(rand.NewPCG(seed, 7))
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	tr := Truth{Users: map[string]map[string]float64{}, Alerts: map[string]bool{}, Bad: map[string]bool{}, Events: n}
	windows := map[string]int{}
	cfg := rules.Default()
	events := make([]Event, n)
	for i := range events {
		if r.Float64() < badShare {
			v := badRecord(i, seed)
			tr.Bad[string(v)] = true
			events[i] = Event{Value: v}
			continue
		}
		t := gen.Next(base.Add(time.Duration(r.IntN(80_000)) * time.Millisecond))
		v, _ := t.MarshalJSON()
		events[i] = Event{Value: v, UserID: t.UserID}
		if tr.Users[t.UserID] == nil {
			tr.Users[t.UserID] = map[string]float64{}
		}
		tr.Users[t.UserID][t.TransactionID] = t.Amount
		start := cfg.TumblingStart(t.Timestamp.UnixNano())
		k := fmt.Sprintf("%s|%d", t.UserID, start)
		windows[k]++
		if windows[k] == cfg.Velocity.MaxTxns+1 {
			tr.Alerts[rules.AlertID(t.UserID, rules.RuleVelocity, start, start+int64(cfg.Size))] = true
		}
	}
	return events, tr
}

// badRecord is the i-th bad record: malformed JSON, a missing field or an
// invalid amount, in turn.
func badRecord(i int, seed uint64) []byte {
	switch i % 3 {
	case 0:
		return fmt.Appendf(nil, `{"transaction_id":"bad_%x_%d","user_id":`, seed, i)
	case 1:
		return fmt.Appendf(nil, `{"transaction_id":"bad_%x_%d","amount":1,"currency":"USD","timestamp":"2026-01-01T00:00:00Z"}`, seed, i)
	default:
		return fmt.Appendf(nil, `{"transaction_id":"bad_%x_%d","user_id":"usr_bad","amount":"lots","currency":"USD","timestamp":"2026-01-01T00:00:00Z"}`, seed, i)
	}
}

// Produce writes events at rate per second (0: as fast as possible);
// keyedEvery > 0 keys every keyedEvery-th valid record by user_id with
// franz-go's default (murmur2) partitioner, and checks that keyed records land
// where fraudwatch's hasher says. It retries through broker failures.
func (c *Cluster) Produce(t testing.TB, events []Event, keyedEvery int, partitions int32, rate float64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.DefaultProduceTopic(string(topics.Transactions)),
		kgo.ProducerLinger(2*time.Millisecond), kgo.RecordDeliveryTimeout(5*time.Minute))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	for i, e := range events {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		rec := &kgo.Record{Value: e.Value}
		if keyedEvery > 0 && i%keyedEvery == 0 && e.UserID != "" {
			rec.Key = []byte(e.UserID)
		}
		wg.Add(1)
		cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if r.Key != nil && r.Partition != kafka.Murmur2Partition(r.Key, partitions) {
				errs = append(errs, fmt.Errorf("keyed record for %s on partition %d, murmur2 says %d", r.Key, r.Partition,
					kafka.Murmur2Partition(r.Key, partitions)))
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("produce: %d errors, first: %v", len(errs), errs[0])
	}
}

// Figures are the outcome of a run, compared with its Truth.
type Figures struct {
	Events, Users                     int
	Lost, DoubleCounted, Unknown      int
	AlertsExpected, AlertsSeen        int
	AlertsMissing, AlertsUnexpected   int
	AlertRecordsDuplicate             int
	DLQExpected, DLQSeen, DLQMissing  int
	DLQDuplicate, DLQUnexpected       int
	SumMismatches, MisplacedTableKeys int
}

// Exact reports whether nothing was lost, double-counted or invented.
// Duplicate alert and dead-letter records with equal content are allowed:
// consumers de-duplicate them by alert_id and source position.
func (f Figures) Exact() bool {
	return f.Lost+f.DoubleCounted+f.Unknown+f.AlertsMissing+f.AlertsUnexpected+f.DLQMissing+f.DLQUnexpected+
		f.SumMismatches+f.MisplacedTableKeys == 0
}

func (f Figures) String() string {
	return fmt.Sprintf("events=%d users=%d lost=%d double_counted=%d unknown=%d alerts_expected=%d alerts_seen=%d "+
		"alerts_missing=%d alerts_unexpected=%d alert_records_duplicate=%d dlq_expected=%d dlq_seen=%d dlq_missing=%d "+
		"dlq_duplicate=%d dlq_unexpected=%d",
		f.Events, f.Users, f.Lost, f.DoubleCounted, f.Unknown, f.AlertsExpected, f.AlertsSeen, f.AlertsMissing,
		f.AlertsUnexpected, f.AlertRecordsDuplicate, f.DLQExpected, f.DLQSeen, f.DLQMissing, f.DLQDuplicate, f.DLQUnexpected)
}

// Verify waits until the group caught up (failing early when alive reports a
// dead processor), compares the table, the alerts and the dead letters with
// the truth, logs the figures and fails the test unless they are exact.
func (c *Cluster) Verify(t testing.TB, tr Truth, partitions int32, alive func() error) Figures {
	t.Helper()
	c.WaitCaughtUp(t, 5*time.Minute, alive)
	f := Figures{Events: tr.Events, Users: len(tr.Users), AlertsExpected: len(tr.Alerts), DLQExpected: len(tr.Bad)}
	table := c.Table(t)
	for user, want := range tr.Users {
		st := table[user]
		got := map[string]int{}
		sum := 0.0
		if st != nil {
			for _, e := range st.Events {
				got[e.ID]++
				sum += e.Amount
			}
		}
		wantSum := 0.0
		for id, amt := range want {
			wantSum += amt
			switch got[id] {
			case 0:
				f.Lost++
			case 1:
			default:
				f.DoubleCounted += got[id] - 1
			}
		}
		for id := range got {
			if _, ok := want[id]; !ok {
				f.Unknown++
			}
		}
		if st != nil && math.Abs(sum-wantSum) > 1e-6*math.Max(1, wantSum) {
			f.SumMismatches++
			t.Errorf("user %s: sum %v, want %v", user, sum, wantSum)
		}
	}
	for user := range table {
		if _, ok := tr.Users[user]; !ok {
			f.Unknown++
			t.Errorf("table holds unknown user %q", user)
		}
	}
	for _, r := range c.ReadAll(t, string(topics.DetectorTable())) {
		if p := kafka.Murmur2Partition([]byte(r.Key), partitions); p != r.Partition {
			f.MisplacedTableKeys++
			t.Errorf("table key %s on partition %d, murmur2 says %d", r.Key, r.Partition, p)
		}
	}
	alerts, counts := c.Alerts(t)
	f.AlertsSeen = len(alerts)
	for id, n := range counts {
		f.AlertRecordsDuplicate += n - 1
		if !tr.Alerts[id] {
			f.AlertsUnexpected++
		}
	}
	for id := range tr.Alerts {
		if alerts[id] == nil {
			f.AlertsMissing++
		}
	}
	if len(tr.Bad) > 0 {
		seen := map[string]int{}
		for _, d := range c.DeadLetters(t) {
			seen[string(d.Original)]++
		}
		f.DLQSeen = len(seen)
		for v, n := range seen {
			f.DLQDuplicate += n - 1
			if !tr.Bad[v] {
				f.DLQUnexpected++
			}
		}
		for v := range tr.Bad {
			if seen[v] == 0 {
				f.DLQMissing++
			}
		}
	}
	t.Logf("figures: %s", f)
	if f.Lost > 0 {
		c.locate(t, tr, table)
	}
	if !f.Exact() {
		t.Fatalf("not exact: %s", f)
	}
	return f
}

// locate logs, for up to 20 lost transactions, which topics hold them: it
// tells a lost input from a lost re-key hop from a lost state write.
func (c *Cluster) locate(t testing.TB, tr Truth, table map[string]*rules.State) {
	t.Helper()
	var lost []string
	for user, want := range tr.Users {
		have := map[string]bool{}
		if st := table[user]; st != nil {
			for _, e := range st.Events {
				have[e.ID] = true
			}
		}
		for id := range want {
			if !have[id] && len(lost) < 20 {
				lost = append(lost, id)
			}
		}
	}
	find := func(topic string) map[string]string {
		at := map[string]string{}
		for _, r := range c.ReadAll(t, topic) {
			for _, id := range lost {
				if bytes.Contains(r.Value, []byte(`"`+id+`"`)) {
					at[id] += fmt.Sprintf(" %d/%d", r.Partition, r.Offset)
				}
			}
		}
		return at
	}
	in, loop := find(string(topics.Transactions)), find(string(topics.DetectorLoop()))
	for _, id := range lost {
		t.Logf("lost %s: transactions at [%s] loop at [%s]", id, in[id], loop[id])
	}
}
