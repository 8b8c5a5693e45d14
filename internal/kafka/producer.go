package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// deliveryTimeout bounds how long a record may wait for the cluster before
// its promise fails and the processor stops (and is restarted): long enough
// to ride out a broker bounce and a leader election, short enough that a
// topic that went away is reported.
const deliveryTimeout = 2 * time.Minute

// closeTimeout bounds how long Close waits for buffered records.
const closeTimeout = 60 * time.Second

// ProducerBuilder builds goka producers on franz-go's client: idempotent,
// acks=all, ordered per partition, records partitioned by Kafka's murmur2.
//
// sarama's idempotent producer is not used for anything fraudwatch writes.
// After one record fails for good, it bumps the producer epoch and restarts
// every partition's sequence at 0, yet a record already numbered under the
// old epoch is sent again with its old sequence inside a batch stamped with
// the new epoch. When that (epoch, sequence) pair matches a newer batch, the
// broker answers as for a duplicate and sarama reports success for a record
// no broker kept: the input offset is then committed and the event is lost.
// franz-go keeps a batch's epoch and sequence together across retries and
// resets sequences only when nothing is in flight.
func (o Options) ProducerBuilder() goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		if err := checkHasher(hasher); err != nil {
			return nil, err
		}
		po := o
		po.Brokers, po.ClientID = brokers, clientID
		return NewProducer(po)
	}
}

// NewProducer returns a goka producer on a new franz-go client.
func NewProducer(o Options) (goka.Producer, error) {
	cl, err := kgo.NewClient(o.FranzOpts(
		kgo.RecordPartitioner(murmur2Partitioner{}),
		// No linger: alerts are produced synchronously, and each would wait
		// for it (a 5 ms linger took alert p99 from 0.2 to 5 s in the bench);
		// records batch up anyway while earlier requests are in flight.
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()),
		kgo.RecordDeliveryTimeout(deliveryTimeout),
		// A produce error names a partition whose leader moved: look it up
		// again at once rather than after franz-go's default 5 s.
		kgo.MetadataMinAge(500*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer: %w", err)
	}
	return &producer{cl: cl}, nil
}

// checkHasher refuses a hasher other than Murmur2: goka routes a key's table
// and loop records by the hasher, the producer by Kafka's murmur2.
func checkHasher(hasher func() hash.Hash32) error {
	for _, key := range []string{"", "a", "usr_1", "user-42", "0123456789abcdef0123456789abcdef"} {
		h, m := hasher(), Murmur2()
		h.Write([]byte(key))
		m.Write([]byte(key))
		if h.Sum32() != m.Sum32() {
			return errors.New("kafka: the producer partitions by Kafka's murmur2, and goka was given another hasher")
		}
	}
	return nil
}

type producer struct {
	cl *kgo.Client
}

func (p *producer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

// EmitWithHeaders produces one record. The promise is finished from
// franz-go's callback with the record's partition and offset, which goka
// stores as the table's offset for changelog writes.
func (p *producer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	r := &kgo.Record{Topic: topic, Value: value}
	if key != "" {
		r.Key = []byte(key)
	}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	p.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
		if err != nil {
			finish(nil, fmt.Errorf("kafka: producing to %s: %w", r.Topic, err))
			return
		}
		finish(&sarama.ProducerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}, nil)
	})
	return promise
}

// Close waits for buffered records (up to closeTimeout), then closes the
// client; records still buffered then fail their promises.
func (p *producer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("kafka: flushing the producer: %w", err)
	}
	return nil
}

// murmur2Partitioner is Kafka's default partitioner for keyed records;
// records without a key are spread round-robin.
type murmur2Partitioner struct{}

func (murmur2Partitioner) ForTopic(string) kgo.TopicPartitioner { return &murmur2TopicPartitioner{} }

type murmur2TopicPartitioner struct{ next atomic.Uint32 }

func (*murmur2TopicPartitioner) RequiresConsistency(r *kgo.Record) bool { return r.Key != nil }

func (p *murmur2TopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Key == nil {
		return int(p.next.Add(1) % uint32(n))
	}
	return int(Murmur2Partition(r.Key, int32(n)))
}
