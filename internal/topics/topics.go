// Package topics declares every Kafka topic and group fraudwatch uses, each
// once and typed, and creates or checks them.
//
//	transactions      input, JSON transactions, key: none or user_id
//	fraud_alerts      output, JSON alerts, key: user_id
//	transactions_dlq  output, JSON dead letters
//	fraudwatch-detector-loop   re-keyed transactions (codecs.Routed), key: user_id
//	fraudwatch-detector-table  per-user state (codecs.State), compacted changelog
package topics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// The topics and the detector's group.
const (
	Transactions goka.Stream = "transactions"
	Alerts       goka.Stream = "fraud_alerts"
	DLQ          goka.Stream = "transactions_dlq"
	Detector     goka.Group  = "fraudwatch-detector"
)

// DetectorTable is the detector's group table (its changelog topic).
func DetectorTable() goka.Table { return goka.GroupTable(Detector) }

// DetectorLoop is the detector's re-key topic.
func DetectorLoop() goka.Stream { return goka.Stream(string(Detector) + "-loop") }

// Spec describes how to create the topics.
type Spec struct {
	Partitions  int32
	Replication int16
	// MinInsyncReplicas is set on every topic when > 0.
	MinInsyncReplicas int
}

type topic struct {
	name    string
	configs map[string]*string
}

func str(s string) *string { return &s }

// all lists every topic with its configuration. All share one partition count:
// goka requires the group's inputs, loop and table to be copartitioned, and the
// outputs follow for simplicity of operations.
func all() []topic {
	return []topic{
		{name: string(Transactions)},
		{name: string(Alerts)},
		{name: string(DLQ)},
		{name: string(DetectorLoop()), configs: map[string]*string{"retention.ms": str("604800000")}},
		{name: string(DetectorTable()), configs: map[string]*string{"cleanup.policy": str("compact")}},
	}
}

// Names returns every topic name.
func Names() []string {
	var ns []string
	for _, t := range all() {
		ns = append(ns, t.name)
	}
	return ns
}

// Created reports per topic whether Create made it (false: it existed).
type Created map[string]bool

// Create creates every topic; one that already exists counts as success.
func Create(ctx context.Context, adm *kadm.Client, s Spec) (Created, error) {
	out := Created{}
	var errs []error
	for _, t := range all() {
		cfg := map[string]*string{}
		for k, v := range t.configs {
			cfg[k] = v
		}
		if s.MinInsyncReplicas > 0 {
			cfg["min.insync.replicas"] = str(fmt.Sprint(s.MinInsyncReplicas))
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, s.Replication, cfg, t.name)
		switch {
		case err == nil && resp.Err == nil:
			out[t.name] = true
		case errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(resp.Err, kerr.TopicAlreadyExists):
			out[t.name] = false
		case err != nil:
			errs = append(errs, fmt.Errorf("topics: creating %q: %w", t.name, err))
		default:
			errs = append(errs, fmt.Errorf("topics: creating %q: %w (%s)", t.name, resp.Err, resp.ErrMessage))
		}
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	names := Names()
	return out, awaitVisible(ctx, func(ctx context.Context) (kadm.TopicDetails, error) { return adm.ListTopics(ctx, names...) }, names)
}

// How long and how often Create polls the metadata for the topics it made.
const (
	visibleWait = 30 * time.Second
	visiblePoll = 100 * time.Millisecond
)

// awaitVisible polls list until every topic of names is listed with every
// partition led. Kafka answers CreateTopics once its controller holds the
// topics, and a broker's metadata can lag behind it: a processor started
// right after the topics were created on a fresh Kafka 4.4 found the table
// topic missing and stopped.
func awaitVisible(ctx context.Context, list func(context.Context) (kadm.TopicDetails, error), names []string) error {
	ctx, cancel := context.WithTimeout(ctx, visibleWait)
	defer cancel()
	for {
		md, err := list(ctx)
		if err == nil {
			var pending []string
			for _, n := range names {
				if !visible(md[n]) {
					pending = append(pending, n)
				}
			}
			if len(pending) == 0 {
				return nil
			}
			err = fmt.Errorf("not yet in the brokers' metadata with a leader for every partition: %s", strings.Join(pending, ", "))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics: created, but %w (%w)", err, ctx.Err())
		case <-time.After(visiblePoll):
		}
	}
}

// visible: the topic is listed, and every partition has a leader.
func visible(d kadm.TopicDetail) bool {
	if d.Err != nil || len(d.Partitions) == 0 {
		return false
	}
	for _, p := range d.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// ErrMissing is returned by Check and CheckInput when topics do not exist.
var ErrMissing = errors.New("topics: missing")

// CheckInput verifies that the input topic exists, for a producer of
// transactions, before it sends: a Kafka producer retries rejected
// credentials with its records in flight and never says why, and reports a
// missing topic only as each record's failure, after its retries.
func CheckInput(ctx context.Context, adm *kadm.Client, brokers string) error {
	_, err := describe(ctx, adm, brokers, string(Transactions))
	return err
}

// Check verifies that every topic exists and that the detector's
// copartitioned topics (input, loop, table) share one partition count, and
// returns that count. Its errors name each missing topic and say what to run.
func Check(ctx context.Context, adm *kadm.Client, brokers string) (int32, error) {
	md, err := describe(ctx, adm, brokers, Names()...)
	if err != nil {
		return 0, err
	}
	counts := map[int32][]string{}
	for _, n := range []string{string(Transactions), string(DetectorLoop()), string(DetectorTable())} {
		c := int32(len(md[n].Partitions))
		counts[c] = append(counts[c], n)
	}
	if len(counts) != 1 {
		var parts []string
		for c, ns := range counts {
			sort.Strings(ns)
			parts = append(parts, fmt.Sprintf("%d partitions: %s", c, strings.Join(ns, ", ")))
		}
		sort.Strings(parts)
		return 0, fmt.Errorf("topics: %s, %s and %s must have the same partition count, found %s", Transactions, DetectorLoop(), DetectorTable(), strings.Join(parts, "; "))
	}
	for c := range counts {
		return c, nil
	}
	return 0, nil
}

// describe lists names, which must all exist; the error names every missing
// one and says what to run.
func describe(ctx context.Context, adm *kadm.Client, brokers string, names ...string) (kadm.TopicDetails, error) {
	md, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topics: listing topics on %s: %w", brokers, err)
	}
	var missing []string
	for _, n := range names {
		d, ok := md[n]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, fmt.Sprintf("topic %q does not exist", n))
			continue
		}
		if d.Err != nil {
			return nil, fmt.Errorf("topics: describing %q: %w", n, d.Err)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s; run \"fraudwatch topics create --brokers %s\"", ErrMissing, strings.Join(missing, "; "), brokers)
	}
	return md, nil
}
