// Package testkafka gives integration tests a Kafka: an in-process kfake
// cluster by default, or the real cluster named by FRAUDWATCH_TEST_BROKERS
// (each test then uses its own topics by deleting fraudwatch's topics first).
// It also reads back what fraudwatch wrote: the detector's table, alerts and
// dead letters, and whether the group has caught up.
package testkafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/broker"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// EnvBrokers names a real cluster to test against.
const EnvBrokers = "FRAUDWATCH_TEST_BROKERS"

// Cluster is a Kafka for one test.
type Cluster struct {
	Brokers []string
	Broker  *broker.Broker // nil on a real cluster
	adm     *kadm.Client
	cl      *kgo.Client
}

// Real reports whether tests run against a real cluster.
func Real() bool { return os.Getenv(EnvBrokers) != "" }

// RealBrokers returns the real cluster's bootstrap servers, nil without one.
func RealBrokers() []string {
	if !Real() {
		return nil
	}
	return strings.Split(os.Getenv(EnvBrokers), ",")
}

// Start returns a cluster with fraudwatch's topics freshly created.
func Start(t *testing.T, partitions int32) *Cluster {
	t.Helper()
	c := &Cluster{}
	replication := int16(1)
	if Real() {
		c.Brokers = RealBrokers()
		if len(c.Brokers) >= 3 {
			replication = 3
		}
	} else {
		b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Nodes: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		c.Broker = b
		c.Brokers = b.Addrs()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.cl, c.adm = cl, kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if Real() {
		c.reset(t, ctx)
	}
	spec := topics.Spec{Partitions: partitions, Replication: replication}
	if replication >= 3 {
		// as in production: a write survives the loss of any one broker
		spec.MinInsyncReplicas = 2
	}
	if _, err := topics.Create(ctx, c.adm, spec); err != nil {
		t.Fatal(err)
	}
	// A real cluster creates topics asynchronously: wait until every
	// partition of every topic has a leader.
	Eventually(t, time.Minute, func() error {
		td, err := c.adm.ListTopics(ctx, topics.Names()...)
		if err != nil {
			return err
		}
		for _, n := range topics.Names() {
			d, ok := td[n]
			if !ok || d.Err != nil || int32(len(d.Partitions)) != partitions {
				return fmt.Errorf("topic %s not ready", n)
			}
			for _, p := range d.Partitions {
				if p.Leader < 0 || p.Err != nil {
					return fmt.Errorf("topic %s partition %d has no leader", n, p.Partition)
				}
			}
		}
		return nil
	})
	return c
}

// reset deletes fraudwatch's topics and group on a shared real cluster.
func (c *Cluster) reset(t *testing.T, ctx context.Context) {
	t.Helper()
	deleteAll(t, ctx, c.adm, []string{string(topics.Detector)}, topics.Names())
}

// Clean deletes groups and topics (those that exist) on the real cluster at
// brokers and waits until the topics are gone: for a test that creates its
// topics itself, as "fraudwatch bench --brokers" does.
func Clean(t *testing.T, brokers, groups, names []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deleteAll(t, ctx, kadm.NewClient(cl), groups, names)
}

func deleteAll(t *testing.T, ctx context.Context, adm *kadm.Client, groups, names []string) {
	t.Helper()
	if _, err := adm.DeleteGroups(ctx, groups...); err != nil {
		t.Logf("delete groups: %v", err)
	}
	if _, err := adm.DeleteTopics(ctx, names...); err != nil {
		t.Fatal(err)
	}
	Eventually(t, time.Minute, func() error {
		td, err := adm.ListTopics(ctx, names...)
		if err != nil {
			return err
		}
		for _, n := range names {
			if td.Has(n) {
				return errors.New(n + " still exists")
			}
		}
		return nil
	})
}

// Client is a franz-go client on the cluster.
func (c *Cluster) Client() *kgo.Client { return c.cl }

// Admin is an admin client on the cluster.
func (c *Cluster) Admin() *kadm.Client { return c.adm }

// Eventually polls fn until it returns nil or the deadline passes.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for wait := 10 * time.Millisecond; ; wait = min(wait*2, 500*time.Millisecond) {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(wait)
	}
}

// CaughtUp returns nil once the detector group committed every record of its
// input and loop topics.
func (c *Cluster) CaughtUp(ctx context.Context) error {
	lag, err := c.lag(ctx)
	if err != nil {
		return err
	}
	if lag > 0 {
		return errors.New("group lag " + itoa(lag))
	}
	return nil
}

// lag is the number of records of the input and loop topics the detector
// group has not committed.
func (c *Cluster) lag(ctx context.Context) (int64, error) {
	ends, err := c.adm.ListEndOffsets(ctx, string(topics.Transactions), string(topics.DetectorLoop()))
	if err != nil {
		return -1, err
	}
	committed, err := c.adm.FetchOffsets(ctx, string(topics.Detector))
	if err != nil {
		return -1, err
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		got := int64(0)
		if r, ok := committed.Lookup(o.Topic, o.Partition); ok {
			got = r.At
		}
		if got < o.Offset {
			lag += o.Offset - got
		}
	})
	return lag, nil
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// Record is one record read back.
type Record struct {
	Partition int32
	Offset    int64
	Key       string
	Value     []byte
}

// ReadAll reads every record of topic up to its current end.
func (c *Cluster) ReadAll(t testing.TB, topic string) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	var out []Record
	if len(want) == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (missing partitions %v)", topic, ctx.Err(), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, Record{Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: r.Value})
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// Table reads the detector's table from its changelog: the last state per user.
func (c *Cluster) Table(t testing.TB) map[string]*rules.State {
	t.Helper()
	out := map[string]*rules.State{}
	for _, r := range c.ReadAll(t, string(topics.DetectorTable())) {
		if r.Value == nil {
			delete(out, r.Key)
			continue
		}
		st := new(rules.State)
		if err := codecs.DecodeState(r.Value, st); err != nil {
			t.Fatalf("table record %d/%d: %v", r.Partition, r.Offset, err)
		}
		out[r.Key] = st
	}
	return out
}

// Alerts reads every alert; the map counts records per alert_id.
func (c *Cluster) Alerts(t testing.TB) (map[string]*codecs.AlertRecord, map[string]int) {
	t.Helper()
	alerts, n := map[string]*codecs.AlertRecord{}, map[string]int{}
	for _, r := range c.ReadAll(t, string(topics.Alerts)) {
		v, err := codecs.Alert{}.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		a := v.(*codecs.AlertRecord)
		if r.Key != a.UserID {
			t.Fatalf("alert key %q != user_id %q", r.Key, a.UserID)
		}
		alerts[a.AlertID] = a
		n[a.AlertID]++
	}
	return alerts, n
}

// DeadLetters reads every dead letter.
func (c *Cluster) DeadLetters(t testing.TB) []*codecs.DeadLetterRecord {
	t.Helper()
	var out []*codecs.DeadLetterRecord
	for _, r := range c.ReadAll(t, string(topics.DLQ)) {
		v, err := codecs.DeadLetter{}.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v.(*codecs.DeadLetterRecord))
	}
	return out
}

// Diagnose logs the detector group's state, members, assignments and lag:
// what a test needs to see when the group does not catch up.
func (c *Cluster) Diagnose(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	groups, err := c.adm.DescribeGroups(ctx, string(topics.Detector))
	if err != nil {
		t.Logf("diagnose: describe group: %v", err)
		return
	}
	for _, g := range groups {
		t.Logf("diagnose: group %s state=%s protocol=%s members=%d err=%v", g.Group, g.State, g.Protocol, len(g.Members), g.Err)
		for _, m := range g.Members {
			var parts []string
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range a.Topics {
					parts = append(parts, fmt.Sprintf("%s%v", tp.Topic, tp.Partitions))
				}
			}
			t.Logf("diagnose:   member %s client=%s host=%s assigned=%s", m.MemberID, m.ClientID, m.ClientHost, strings.Join(parts, " "))
		}
	}
	lags, err := c.adm.Lag(ctx, string(topics.Detector))
	if err != nil {
		t.Logf("diagnose: lag: %v", err)
		return
	}
	lags.Each(func(l kadm.DescribedGroupLag) {
		for _, tl := range l.Lag.Sorted() {
			if tl.Lag > 0 || tl.Err != nil {
				member := "none"
				if tl.Member != nil {
					member = tl.Member.MemberID
				}
				t.Logf("diagnose:   %s/%d committed=%d end=%d lag=%d member=%s err=%v", tl.Topic, tl.Partition,
					tl.Commit.At, tl.End.Offset, tl.Lag, member, tl.Err)
			}
		}
	})
}

// WaitCaughtUp waits until the detector group committed every record, failing
// at once when alive reports a dead processor and after timeout otherwise.
//
// On the embedded broker it also works around a kfake defect: a member whose
// JoinGroup or SyncGroup reply could not be delivered (its process was killed
// while waiting) stays in the group without a session timer, holding its
// partitions until the next rebalance, which may never come. Real Kafka expires
// it after the session timeout. When the lag has not moved for 30 s, every
// member is removed (LeaveGroup, as an operator would); the live ones rejoin.
func (c *Cluster) WaitCaughtUp(t testing.TB, timeout time.Duration, alive func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last, since := int64(-1), time.Now()
	for {
		if err := alive(); err != nil {
			c.Diagnose(t)
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lag, err := c.lag(ctx)
		cancel()
		if err == nil && lag == 0 {
			return
		}
		if lag != last {
			last, since = lag, time.Now()
		} else if c.Broker != nil && time.Since(since) > 30*time.Second {
			c.removeMembers(t)
			since = time.Now()
		}
		if time.Now().After(deadline) {
			c.Diagnose(t)
			t.Fatalf("the group did not catch up within %v: lag %d, %v", timeout, lag, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// removeMembers removes every member of the detector group (kfake only).
func (c *Cluster) removeMembers(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, err := c.adm.DescribeGroups(ctx, string(topics.Detector))
	if err != nil {
		t.Logf("kfake workaround: describe group: %v", err)
		return
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = string(topics.Detector)
	for _, g := range groups {
		for _, m := range g.Members {
			lm := kmsg.NewLeaveGroupRequestMember()
			lm.MemberID = m.MemberID
			req.Members = append(req.Members, lm)
		}
	}
	t.Logf("kfake workaround: the group made no progress for 30 s; removing its %d members so the live ones rejoin", len(req.Members))
	if len(req.Members) == 0 {
		return
	}
	if _, err := req.RequestWith(ctx, c.cl); err != nil {
		t.Logf("kfake workaround: leave group: %v", err)
	}
}
