// Package kafka builds fraudwatch's Kafka clients: fresh sarama configs for
// goka's builders (never goka's global config), Kafka's murmur2 partitioner
// as a goka hasher, commits that never skip an unfinished record, franz-go
// clients for the command-line tools, and log adapters.
package kafka

import (
	"cmp"
	"fmt"
	"hash"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// protocolVersion is the Kafka protocol version fraudwatch speaks through sarama.
// goka's default (2.0) is older than what Kafka 4 still accepts.
func protocolVersion() sarama.KafkaVersion { return sarama.V3_9_0_0 }

// Options are the connection settings shared by every client.
type Options struct {
	Brokers  []string
	ClientID string
	Security Security
}

// Sarama returns a new sarama config for goka's consumers, consumer groups
// and topic managers: OffsetOldest for streams so a partition whose owner
// died before its first commit is read from the start, and goka's
// copartitioning rebalance strategy. Each call returns a new config: goka's
// builders write ClientID into the config they get. Nothing is produced
// through sarama (see ProducerBuilder).
func (o Options) Sarama() *sarama.Config {
	c := goka.DefaultConfig() // a fresh copy, never the global one
	c.Version = protocolVersion()
	c.ClientID = o.ClientID
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{goka.CopartitioningStrategy}
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = time.Second
	// A join waits up to the rebalance timeout for members that died; it must
	// end well within the read timeout or the live members give up on it.
	c.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	c.Net.ReadTimeout = 45 * time.Second
	c.Consumer.Fetch.Default = 1 << 20
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 500 * time.Millisecond
	o.Security.applySarama(c)
	return c
}

// Hasher is the goka hasher for every processor, emitter and view: Kafka's
// default partitioner.
func Hasher() func() hash.Hash32 { return Murmur2 }

// A stream consumer's fetch waits until streamMinBytes are there, or the
// fetch wait at most (DefaultFetchWait unless set). With sarama's defaults
// (1 byte, 500 ms) a fetch returns as soon as anything arrives, so a
// processor keeping up with live traffic fetched its input and the loop topic
// a few records at a time, and every fetch costs the processor and the broker
// a round trip. Waiting adds up to the fetch wait to each of an unkeyed
// event's two hops. Measured with "fraudwatch bench --latency-rate 30000"
// (two runs each, alternated) against sarama's defaults: the processor's CPU
// over the latency run fell by 16% and alert p99 went from 739/375 to
// 433/159 ms. The price is below saturation: at 20,000 events/s p50 rose from
// 2.3-2.9 to 11-12 ms, p99 stayed at 41-60 ms. An idle instance fetches
// 1/wait times a second per broker.
const (
	streamMinBytes = 32 << 10
	// DefaultFetchWait is the stream consumers' default fetch wait.
	DefaultFetchWait = 5 * time.Millisecond
)

// streamFetchBytes is the most a stream consumer fetches of a partition at
// once (table consumers fetch 1 MiB: a restore reads a changelog from its
// start). Live, a fetch holds about streamMinBytes in all; off a backlog
// (a start, the catch-up after a rebalance, "fraudwatch bench"'s throughput
// run) every partition's fetch is full, and sarama holds the responses it
// hands out and fetches ahead of them. With 1 MiB those buffers were about
// a fifth of the processor's peak RSS. Eight alternated pairs of
// "fraudwatch bench --skip-baseline --latency-duration 1s --latency-warmup
// 1s --query-duration 1s" against 1 MiB: peak RSS 248-258 against 301-332
// MiB in every pair, CPU per event 9.65 against 9.8 µs and 172,750 against
// 170,900 events/s (medians); 4 MiB took 557-600 MiB and more CPU in three
// pairs of four. At 1M users ("--users 1000000 --events 2000000
// --skip-baseline --latency-duration 10s --query-duration 5s", one run
// each): 422 against 466 MiB per 1M users.
const streamFetchBytes = 256 << 10

// GroupInstanceIDError checks a static member's group.instance.id as Kafka
// does: at most 249 of the characters a-z, A-Z, 0-9, '.', '_' and '-', and
// not "." or ".." ("": a dynamic member).
func GroupInstanceIDError(id string) error {
	if id == "." || id == ".." {
		return fmt.Errorf("--group-instance-id cannot be %q", id)
	}
	if len(id) > 249 {
		return fmt.Errorf("--group-instance-id must be at most 249 characters, got %d", len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("--group-instance-id may hold only a-z, A-Z, 0-9, '.', '_' and '-', got %q", id)
		}
	}
	return nil
}

// Group is how a processor's consumer group fetches and commits.
type Group struct {
	// FetchWait is how long a fetch waits for streamMinBytes (0:
	// DefaultFetchWait).
	FetchWait time.Duration
	// CommitInterval is how often the finished offsets are committed (0:
	// DefaultCommitInterval).
	CommitInterval time.Duration
	// InstanceID, when not empty, makes the member static
	// (group.instance.id): the group keeps its partitions for it across a
	// restart within the session timeout instead of rebalancing twice, and
	// it does not leave the group when it stops.
	InstanceID string
}

// DefaultCommitInterval is how often a processor commits the offsets of the
// records it finished: sarama's default, a second. A commit is one request to
// the group's coordinator, sent only when an offset moved. A shorter interval
// means a partition's next owner, after a crash or a rebalance, applies less
// of the stream again (as duplicates, which the detector does not count
// twice), and a backlog's end is committed sooner (where "fraudwatch bench"
// stops its throughput clock). Its price is in the alert tail: sarama sends a
// commit on the connection the fetches of the coordinator's partitions use,
// and holds that connection for a fetch's whole round trip, so each commit
// waits for a fetch and the next fetch waits behind it. Every 100 ms against
// every second, five alternated pairs of "fraudwatch bench --skip-baseline
// --events 300000 --latency-rate 62000 --latency-duration 20s
// --latency-warmup 2s --query-duration 1s": alert p99 56.3 / 40.8 / 43.8 /
// 40.7 / 38.1 ms against 53.2 / 38.2 / 30.8 / 35.3 / 27.7, longer in every
// pair. Ten pairs of "--latency-duration 1s --latency-warmup 1s
// --query-duration 1s" (1M events in about 7 s) measured 145,377 events/s
// against 141,735 in the median, the runs committing every second ending on
// a whole second (7 s: 141,587-142,501; 8 s: 124,135-124,497). A processor
// whose records stop commits what it finished at once instead (see
// commitWhenQuiet), so the interval matters under load only.
const DefaultCommitInterval = time.Second

// GroupOptions are a processor's consumer group options: goka's consumer
// group with g's settings, with ordered commits (Ordered: its group and its
// context wrapper, which work only together, one pair per processor).
func (o Options) GroupOptions(g Group) []goka.ProcessorOption {
	ord := new(Ordered)
	return []goka.ProcessorOption{
		goka.WithConsumerGroupBuilder(func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
			cg, err := sarama.NewConsumerGroup(brokers, group, o.groupConfig(clientID, g))
			if err != nil {
				return nil, fmt.Errorf("kafka: joining group %s: %w", group, err)
			}
			return ord.Group(cg), nil
		}),
		goka.WithContextWrapper(ord.Wrap),
	}
}

// groupConfig is the sarama config of a stream consumer group.
func (o Options) groupConfig(clientID string, g Group) *sarama.Config {
	c := o.Sarama()
	c.ClientID = clientID
	c.Consumer.Group.InstanceId = g.InstanceID
	c.Consumer.Fetch.Min = streamMinBytes
	c.Consumer.Fetch.Default = streamFetchBytes
	c.Consumer.MaxWaitTime = cmp.Or(g.FetchWait, DefaultFetchWait)
	c.Consumer.Offsets.AutoCommit.Interval = cmp.Or(g.CommitInterval, DefaultCommitInterval)
	return c
}

// tableMaxWait is how long a broker holds a table consumer's fetch that
// found nothing new. goka closes a table's partition consumer once it caught
// up, and the close waits for the fetch in flight: with sarama's 500 ms a
// recovery was ready about 500 ms after its last record (measured in
// "fraudwatch bench": 651 ms from start to ready for 3,620 records).
const tableMaxWait = 50 * time.Millisecond

// ConsumerBuilder builds goka's table consumers (recovery, and the view's
// updates).
func (o Options) ConsumerBuilder() goka.SaramaConsumerBuilder {
	return func(brokers []string, clientID string) (sarama.Consumer, error) {
		c := o.Sarama()
		c.ClientID = clientID
		c.Consumer.MaxWaitTime = tableMaxWait
		return sarama.NewConsumer(brokers, c)
	}
}

// TopicManagerBuilder builds goka topic managers that never create topics:
// fraudwatch creates its topics up front ("fraudwatch topics create").
func (o Options) TopicManagerBuilder() goka.TopicManagerBuilder {
	return func(brokers []string) (goka.TopicManager, error) {
		c := o.Sarama()
		c.ClientID = o.ClientID + "-topics"
		tm := goka.NewTopicManagerConfig()
		tm.NoCreate = true
		return goka.NewTopicManager(brokers, c, tm)
	}
}
