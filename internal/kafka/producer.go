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
// Records of the topics named in uncompressed are written without
// compression (see NewProducer).
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
//
// Its records are sent at once (no linger): alerts and late dead letters are
// produced synchronously, and each would wait for a linger.
func (o Options) ProducerBuilder(uncompressed ...string) goka.ProducerBuilder {
	return o.StreamProducerBuilder(0, uncompressed...)
}

// DefaultProduceLinger is how long a processor's own records (loop,
// changelog, dead letters of bad input) wait to be batched by default.
// Nothing waits for them synchronously: a commit waits for their acks, and a
// re-keyed event reaches its apply callback that much later. Without a
// linger a producer sends whatever accumulated while its previous request was
// in flight, and on a fast broker that is a request for every few records.
// Measured with "fraudwatch bench --repeat 2 --events 300000 --skip-baseline
// --latency-rate 20000 --latency-duration 15s" (two such runs each,
// alternated): the processor's CPU per live event fell from 42.8-47.3 to
// 38.9-39.8 µs, alert p99 was 55-107 ms against 62-292, and p50 rose from
// 17.6-29.5 to 21.2-21.6 ms.
const DefaultProduceLinger = 5 * time.Millisecond

// StreamProducerBuilder is ProducerBuilder for a processor's own producer,
// whose records linger up to linger to be batched (0: none). The topics named
// in tables are its group tables' changelogs (compacted): uncompressed, and
// of the records a key gets within one linger only the last is written (see
// coalescer).
func (o Options) StreamProducerBuilder(linger time.Duration, tables ...string) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		if err := checkHasher(hasher); err != nil {
			return nil, err
		}
		po := o
		po.Brokers, po.ClientID = brokers, clientID
		return newProducer(po, linger, tables...)
	}
}

// NewProducer returns a goka producer on new franz-go clients. Records are
// snappy-compressed, except those of the topics named in uncompressed, which
// go through a second client without compression: a group table's changelog
// holds small binary states in small batches, which compress little, and
// every restore reads all of it (decompression was a fifth of a restore's
// CPU in "fraudwatch bench"). Kafka Streams leaves its changelogs
// uncompressed by default too. Each topic's records always go through the
// same client, so their order per partition holds.
func NewProducer(o Options, uncompressed ...string) (goka.Producer, error) {
	return newProducer(o, 0, uncompressed...)
}

// newProducer returns a producer whose records linger up to linger. The
// topics named in uncompressed go through a client that sends at once; with
// a linger they are the processor's tables, and their records wait in a
// coalescer for the linger instead (see coalescer).
func newProducer(o Options, linger time.Duration, uncompressed ...string) (goka.Producer, error) {
	p := &producer{}
	var err error
	if p.cl, err = newProducerClient(o, linger, kgo.SnappyCompression(), kgo.NoCompression()); err != nil {
		return nil, err
	}
	if len(uncompressed) > 0 {
		if p.plain, err = newProducerClient(o, 0, kgo.NoCompression()); err != nil {
			p.cl.Close()
			return nil, err
		}
		p.plainTopics = make(map[string]bool, len(uncompressed))
		for _, t := range uncompressed {
			p.plainTopics[t] = true
		}
		if linger > 0 {
			p.tables = newCoalescer(p.plain, linger)
		}
	}
	return p, nil
}

func newProducerClient(o Options, linger time.Duration, compression ...kgo.CompressionCodec) (*kgo.Client, error) {
	cl, err := kgo.NewClient(o.FranzOpts(
		kgo.RecordPartitioner(murmur2Partitioner{}),
		// Records produced synchronously (alerts) must not linger: each would
		// wait for it (a 5 ms linger took alert p99 from 0.2 to 5 s in the
		// bench). Without one, records batch up while earlier requests are
		// in flight.
		kgo.ProducerLinger(linger),
		kgo.ProducerBatchCompression(compression...),
		kgo.RecordDeliveryTimeout(deliveryTimeout),
		// A produce error names a partition whose leader moved: look it up
		// again at once rather than after franz-go's default 5 s.
		kgo.MetadataMinAge(500*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer: %w", err)
	}
	return cl, nil
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
	cl          *kgo.Client     // snappy
	plain       *kgo.Client     // no compression, for plainTopics; nil if none
	plainTopics map[string]bool // read-only after NewProducer
	tables      *coalescer      // in front of plain, for a stream producer's tables; nil if none
}

func (p *producer) client(topic string) *kgo.Client {
	if p.plainTopics[topic] {
		return p.plain
	}
	return p.cl
}

func (p *producer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

// EmitWithHeaders produces one record. The promise is finished from
// franz-go's callback with the record's partition and offset, which goka
// stores as the table's offset for changelog writes.
func (p *producer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	e := &emitted{Context: context.Background(), finish: finish}
	e.rec = kgo.Record{Topic: topic, Value: value, Context: e}
	if key != "" {
		if len(key) <= len(e.key) {
			e.rec.Key = append(e.key[:0], key...)
		} else {
			e.rec.Key = []byte(key)
		}
	}
	for k, v := range headers {
		e.rec.Headers = append(e.rec.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	if p.tables != nil && p.plainTopics[topic] {
		p.tables.emit(topic, key, e)
		return promise
	}
	p.client(topic).Produce(context.Background(), &e.rec, finishEmitted)
	return promise
}

// emitted is a record in flight with what its promise needs, in one
// allocation: the detector produces two records per event (loop and
// changelog), and a record, its key, a closure and the message handed to
// goka were four allocations each. The record's Context is the emitted itself
// (with no deadline and never done, as context.Background), which is how the
// one callback, finishEmitted, finds it.
type emitted struct {
	context.Context
	rec    kgo.Record
	msg    sarama.ProducerMessage
	finish goka.PromiseFinisher
	merged []goka.PromiseFinisher // of the records this one replaced (see coalescer)
	key    [48]byte               // the key, when it fits
}

func finishEmitted(r *kgo.Record, err error) {
	e := r.Context.(*emitted)
	if err != nil {
		e.done(nil, fmt.Errorf("kafka: producing to %s: %w", r.Topic, err))
		return
	}
	e.msg = sarama.ProducerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
	e.done(&e.msg, nil)
}

// done finishes e's promise and those of the records it replaced.
func (e *emitted) done(msg *sarama.ProducerMessage, err error) {
	e.finish(msg, err)
	for _, f := range e.merged {
		f(msg, err)
	}
}

// Close waits for buffered records (up to closeTimeout), then closes the
// clients; records still buffered then fail their promises.
func (p *producer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var errs []error
	if p.tables != nil {
		p.tables.close()
	}
	for _, cl := range []*kgo.Client{p.cl, p.plain} {
		if cl == nil {
			continue
		}
		if err := cl.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("kafka: flushing the producer: %w", err))
		}
		cl.Close()
	}
	return errors.Join(errs...)
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
