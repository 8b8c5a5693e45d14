// Package broker runs the embedded Kafka-protocol broker of "fraudwatch dev"
// and the tests: an in-process kfake cluster, persisted under a data dir so
// that a restart keeps every topic, record and committed offset. Outside
// clients (kcat, any Kafka producer) connect to it over TCP.
package broker

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config says where the broker listens and keeps its data.
type Config struct {
	// Listen is host:port; port 0 picks free ports.
	Listen string
	// DataDir persists topics and offsets; empty keeps everything in memory.
	DataDir string
	// Nodes is the number of brokers (default 1).
	Nodes int
}

// memSegmentBytes is the segment size of a broker without a data dir: its
// segments are in-memory files, each one growing slice, and a slice that
// outgrows its capacity is copied whole into one twice as large. At kfake's
// default of 100 MiB that copy held the broker's one request loop for up to
// 168 ms (a runtime trace of "fraudwatch bench", whose embedded broker has
// no data dir): no client got an answer meanwhile, and the processor idled.
// At 8 MiB a copy is of a few MiB at most. A broker with a data dir appends
// to files and keeps kfake's default.
const memSegmentBytes = 8 << 20

// Broker is a running embedded cluster.
type Broker struct{ c *kfake.Cluster }

// Start starts the cluster.
func Start(cfg Config) (*Broker, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen port %q: %w", portStr, err)
	}
	nodes := max(cfg.Nodes, 1)
	ports := make([]int, nodes)
	for i := range ports {
		if port != 0 {
			ports[i] = port + i
		}
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(nodes),
		kfake.Ports(ports...),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(addr)
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
		kfake.ClusterID("fraudwatch-dev"),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	} else {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(memSegmentBytes)}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: starting embedded Kafka on %s: %w", cfg.Listen, err)
	}
	return &Broker{c: c}, nil
}

// Addrs are the bootstrap addresses.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Cluster exposes the kfake cluster to tests (fault injection).
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the cluster and flushes its data dir.
func (b *Broker) Close() { b.c.Close() }
