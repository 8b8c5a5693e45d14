package kafka

import (
	"github.com/twmb/franz-go/pkg/kgo"
)

// FranzOpts are the franz-go client options for the command-line tools
// (produce, alerts, topics): acks=all and idempotent by default, Kafka's
// default murmur2 partitioner for keyed records.
func (o Options) FranzOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.ClientID(o.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	opts = append(opts, o.Security.franzOpts()...)
	return append(opts, extra...)
}
