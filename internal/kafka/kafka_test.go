package kafka

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Vectors from Apache Kafka's UtilsTest.testMurmur2.
func TestMurmur2Vectors(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range cases {
		if got := int32(murmur2Sum([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// Goka's partition choice (|int32(Sum32())| % n), Murmur2Partition and
// franz-go's default partitioner must agree for every key.
func TestPartitionersAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 5000; i++ {
		key := []byte(fmt.Sprintf("usr_%d_%x", i, r.Uint64()))
		n := int32(1 + r.IntN(64))
		h := Murmur2()
		h.Write(key)
		goka := int32(h.Sum32())
		if goka < 0 {
			goka = -goka
		}
		gokaPart := goka % n
		kgoPart := int32(kgo.StickyKeyPartitioner(nil).ForTopic("t").Partition(&kgo.Record{Key: key}, int(n)))
		if mine := Murmur2Partition(key, n); mine != gokaPart || mine != kgoPart {
			t.Fatalf("key %s, %d partitions: ours %d, goka %d, franz-go %d", key, n, mine, gokaPart, kgoPart)
		}
	}
}

func TestOrderedCommitsWaitForEarlierRecords(t *testing.T) {
	p := &pending{}
	for _, o := range []int64{10, 11, 13, 14} { // 12 was compacted away: offsets need not be contiguous
		p.delivered(o)
	}
	steps := []struct {
		finished int64
		next     int64
		ok       bool
	}{
		{11, 0, false}, // 10 still in flight
		{14, 0, false},
		{12, 0, false}, // never delivered
		{11, 0, false}, // finished twice
		{10, 12, true}, // 10 and 11 done: commit up to 11
		{10, 0, false}, // behind the committed prefix
		{13, 15, true}, // 13 and 14 done
		{15, 0, false},
	}
	for i, s := range steps {
		next, ok := p.finished(s.finished)
		if ok != s.ok || (ok && next != s.next) {
			t.Fatalf("step %d: finished(%d) = %d, %v; want %d, %v", i, s.finished, next, ok, s.next, s.ok)
		}
	}
}

// Records finished out of order over many compactions of the queue commit
// exactly the finished prefix, every time it grows.
func TestOrderedCommitsOutOfOrder(t *testing.T) {
	p := &pending{}
	rng := rand.New(rand.NewPCG(1, 2))
	var offs []int64
	for o := int64(0); len(offs) < 20000; o += 1 + rng.Int64N(3) {
		offs = append(offs, o)
	}
	isDone := map[int64]bool{}
	committed, ci := int64(0), 0                      // offs[ci] is the first offset not committed
	for start := 0; start < len(offs); start += 500 { // deliver a batch, finish it shuffled
		batch := offs[start:min(start+500, len(offs))]
		for _, o := range batch {
			p.delivered(o)
		}
		order := slices.Clone(batch)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, o := range order {
			isDone[o] = true
			want := committed // the first unfinished delivered offset bounds the commit
			for ci < len(offs) && isDone[offs[ci]] {
				want = offs[ci] + 1
				ci++
			}
			next, ok := p.finished(o)
			if ok != (want != committed) || ok && next != want {
				t.Fatalf("finished(%d) = %d, %v; want %d (committed %d)", o, next, ok, want, committed)
			}
			committed = want
		}
	}
	if last := offs[len(offs)-1] + 1; committed != last {
		t.Fatalf("committed %d at the end, want %d", committed, last)
	}
	if len(p.queue) > 1024+500 {
		t.Fatalf("queue kept %d offsets after all finished", len(p.queue))
	}
}

// An offset delivered out of order (sarama never does) still commits in
// delivery order.
func TestOrderedCommitsDeliveryOrder(t *testing.T) {
	p := &pending{}
	for _, o := range []int64{5, 3, 7} {
		p.delivered(o)
	}
	if _, ok := p.finished(3); ok {
		t.Fatal("3 committed while 5, delivered before it, is in flight")
	}
	if next, ok := p.finished(5); !ok || next != 4 {
		t.Fatalf("finished(5) = %d, %v; want 4 (up to 3, the last of the finished prefix), true", next, ok)
	}
	if next, ok := p.finished(7); !ok || next != 8 {
		t.Fatalf("finished(7) = %d, %v; want 8, true", next, ok)
	}
}

func TestSaramaConfigIsFreshAndSafe(t *testing.T) {
	o := Options{Brokers: []string{"b"}, ClientID: "x"}
	a, b := o.Sarama(), o.Sarama()
	if a == b {
		t.Fatal("configs are shared")
	}
	a.ClientID = "changed"
	if b.ClientID != "x" || goka.DefaultConfig().ClientID == "changed" {
		t.Fatal("config mutation leaked")
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	if b.Consumer.Offsets.Initial != sarama.OffsetOldest {
		t.Fatalf("unsafe default: initial offset %d", b.Consumer.Offsets.Initial)
	}
	if !b.Version.IsAtLeast(protocolVersion()) {
		t.Fatalf("version %v", b.Version)
	}
}

// Stream consumer groups wait for 32 KiB or the fetch wait (5 ms unless
// set) and fetch at most 256 KiB of a partition; table consumers keep
// answering at once and fetch 1 MiB.
func TestGroupFetchWait(t *testing.T) {
	o := Options{ClientID: "x"}
	for _, tt := range []struct {
		wait, want time.Duration
	}{{0, DefaultFetchWait}, {time.Millisecond, time.Millisecond}, {200 * time.Millisecond, 200 * time.Millisecond}} {
		c := o.groupConfig("g", Group{FetchWait: tt.wait})
		if c.Consumer.MaxWaitTime != tt.want || c.Consumer.Fetch.Min != streamMinBytes || c.Consumer.Fetch.Default != 256<<10 || c.ClientID != "g" {
			t.Errorf("wait %v: max wait %v, min bytes %d, fetch bytes %d, client id %q; want %v, %d, %d, g", tt.wait,
				c.Consumer.MaxWaitTime, c.Consumer.Fetch.Min, c.Consumer.Fetch.Default, c.ClientID, tt.want, streamMinBytes, 256<<10)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("wait %v: %v", tt.wait, err)
		}
	}
	if c := o.Sarama(); c.Consumer.Fetch.Min != 1 || c.Consumer.Fetch.Default != 1<<20 {
		t.Errorf("table consumers' min bytes %d, fetch bytes %d; want sarama's 1 and 1 MiB", c.Consumer.Fetch.Min, c.Consumer.Fetch.Default)
	}
}

// Stream consumer groups commit every second unless set; sarama takes the
// interval as it is.
func TestGroupCommitInterval(t *testing.T) {
	o := Options{ClientID: "x"}
	for _, tt := range []struct {
		every, want time.Duration
	}{{0, DefaultCommitInterval}, {10 * time.Millisecond, 10 * time.Millisecond}, {5 * time.Second, 5 * time.Second}} {
		c := o.groupConfig("g", Group{CommitInterval: tt.every})
		if !c.Consumer.Offsets.AutoCommit.Enable || c.Consumer.Offsets.AutoCommit.Interval != tt.want {
			t.Errorf("interval %v: auto commit %v every %v, want on every %v", tt.every,
				c.Consumer.Offsets.AutoCommit.Enable, c.Consumer.Offsets.AutoCommit.Interval, tt.want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("interval %v: %v", tt.every, err)
		}
	}
	if DefaultCommitInterval != time.Second {
		t.Errorf("default commit interval %v, documented as 1s", DefaultCommitInterval)
	}
}

// A static member's id reaches sarama's config, which accepts it at the
// protocol version set; ids Kafka would refuse are refused up front.
func TestGroupInstanceID(t *testing.T) {
	c := Options{ClientID: "x"}.groupConfig("g", Group{InstanceID: "fraudwatch-a.1_b"})
	if c.Consumer.Group.InstanceId != "fraudwatch-a.1_b" {
		t.Errorf("instance id %q in the config", c.Consumer.Group.InstanceId)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("sarama refuses the static member's config: %v", err)
	}
	for _, ok := range []string{"", "a", "fraudwatch-0", "A.b_c-9", strings.Repeat("x", 249)} {
		if err := GroupInstanceIDError(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{".", "..", "has space", "slash/", "ümlaut", strings.Repeat("x", 250)} {
		if err := GroupInstanceIDError(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
