// Package baseline is the yardstick of "fraudwatch bench": the same job as the
// detector (count each user's transactions in tumbling 1-minute windows and
// alert when a window holds more than 5) written the way goka's README and
// examples suggest, with goka's defaults.
//
// Reads "transactions" (JSON, unkeyed) in its own group "bench-baseline",
// re-keys every record by user_id through its loop topic with ctx.Loopback,
// keeps one JSON-encoded State per user in its group table with a per-message
// ctx.Value()/ctx.SetValue(), and emits JSON alerts to "bench-baseline-alerts".
//
// Only what is needed to run at all differs from goka's defaults: the Kafka
// protocol version (goka's default 2.0 is too old for Kafka 4), OffsetOldest
// (the input is produced before the group starts) and the storage path. It
// keeps goka's FNV hasher, JSON codecs, acks=WaitForLocal and 100 ms producer
// flushes, and LevelDB with default options.
package baseline

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// The baseline's group and topics. It reads the detector's input topic.
const (
	Group  goka.Group  = "bench-baseline"
	Alerts goka.Stream = "bench-baseline-alerts"
)

// Input is the topic the baseline reads: the same as the detector's.
const Input = topics.Transactions

// Table is the baseline's group table.
func Table() goka.Table { return goka.GroupTable(Group) }

// Loop is the baseline's re-key topic.
func Loop() goka.Stream { return goka.Stream(string(Group) + "-loop") }

// Topics lists the topics the baseline owns (its input is shared).
func Topics() []string { return []string{string(Alerts), string(Loop()), string(Table())} }

// Txn is a transaction as the baseline decodes it: encoding/json into a struct.
type Txn struct {
	TransactionID string    `json:"transaction_id"`
	UserID        string    `json:"user_id"`
	Amount        float64   `json:"amount"`
	Currency      string    `json:"currency"`
	Merchant      string    `json:"merchant"`
	Country       string    `json:"country"`
	Timestamp     time.Time `json:"timestamp"`
}

// State is one user's windows: window start (Unix seconds) -> count.
type State struct {
	Windows map[int64]int  `json:"windows"`
	Alerted map[int64]bool `json:"alerted"`
}

// Alert is the value of an alert: the transaction that crossed the threshold.
type Alert struct {
	UserID        string    `json:"user_id"`
	WindowStart   time.Time `json:"window_start"`
	Count         int       `json:"count"`
	TransactionID string    `json:"transaction_id"`
}

// MaxTxns is the velocity threshold: alert when a window holds more.
const MaxTxns = 5

// jsonCodec is the codec goka's examples write for a struct.
type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (jsonCodec[T]) Decode(b []byte) (any, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
}

// TableCodec decodes the baseline's table values (a *State).
func TableCodec() goka.Codec { return jsonCodec[State]{} }

// AlertCodec decodes the baseline's alerts (an *Alert).
func AlertCodec() goka.Codec { return jsonCodec[Alert]{} }

// Graph is the baseline's group graph.
func Graph() *goka.GroupGraph {
	return goka.DefineGroup(Group,
		goka.Input(Input, jsonCodec[Txn]{}, func(ctx goka.Context, msg any) {
			t := msg.(*Txn)
			ctx.Loopback(t.UserID, t)
		}),
		goka.Loop(jsonCodec[Txn]{}, count),
		goka.Persist(jsonCodec[State]{}),
		goka.Output(Alerts, jsonCodec[Alert]{}),
	)
}

func count(ctx goka.Context, msg any) {
	t := msg.(*Txn)
	s, _ := ctx.Value().(*State)
	if s == nil {
		s = &State{Windows: map[int64]int{}, Alerted: map[int64]bool{}}
	}
	w := t.Timestamp.Truncate(time.Minute).Unix()
	for start := range s.Windows { // keep the current window and two of grace
		if start < w-180 {
			delete(s.Windows, start)
			delete(s.Alerted, start)
		}
	}
	s.Windows[w]++
	if s.Windows[w] > MaxTxns && !s.Alerted[w] {
		s.Alerted[w] = true
		ctx.Emit(Alerts, t.UserID, &Alert{UserID: t.UserID, WindowStart: time.Unix(w, 0).UTC(), Count: s.Windows[w],
			TransactionID: t.TransactionID})
	}
	ctx.SetValue(s)
}

// config is goka's default config with only what it takes to run here.
func config() *sarama.Config {
	c := goka.DefaultConfig()
	c.Version = sarama.V3_9_0_0
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// NewProcessor builds the baseline processor; its LevelDB lives under dataDir.
func NewProcessor(brokers []string, dataDir string) (*goka.Processor, error) {
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication, tm.Stream.Replication = 1, 1
	p, err := goka.NewProcessor(brokers, Graph(),
		goka.WithStorageBuilder(storage.DefaultBuilder(filepath.Join(dataDir, "baseline"))),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(config())),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(config())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(config())),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(config(), tm)),
	)
	if err != nil {
		return nil, fmt.Errorf("baseline: building processor: %w", err)
	}
	return p, nil
}

// NewView builds a view of the baseline's table; its LevelDB lives under dataDir.
func NewView(brokers []string, dataDir string) (*goka.View, error) {
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication, tm.Stream.Replication = 1, 1
	v, err := goka.NewView(brokers, Table(), jsonCodec[State]{},
		goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(dataDir, "baseline-view"))),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(config())),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(config(), tm)),
	)
	if err != nil {
		return nil, fmt.Errorf("baseline: building view: %w", err)
	}
	return v, nil
}

// Handler answers GET /v1/users/{user_id} from the view, the README way:
// view.Get and encode the value as JSON.
func Handler(v *goka.View) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{user_id}", func(w http.ResponseWriter, r *http.Request) {
		val, err := v.Get(r.PathValue("user_id"))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case err != nil:
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		case val == nil:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "not found"})
		default:
			_ = json.NewEncoder(w).Encode(val)
		}
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !v.Recovered() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	return mux
}
