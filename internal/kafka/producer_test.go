package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testCluster is a one-broker in-process cluster with topics of partitions
// partitions, closed when the test ends.
func testCluster(tb testing.TB, partitions int32, topics ...string) *kfake.Cluster {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// readBack reads n records of topics on c from their start, handing each to
// each, and fails the test if they are not there within timeout.
func readBack(t *testing.T, c *kfake.Cluster, n int, timeout time.Duration, each func(*kgo.Record), topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for seen := 0; seen < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read %d of %d records: %v", seen, n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			each(r)
		})
	}
}

// Every record whose promise succeeded is in the topic once, at the offset
// the promise reported, on murmur2(key)'s partition and in emit order per
// key — while the broker rejects every third produce request and drops the
// connection on every seventh.
func TestProducerUnderProduceErrors(t *testing.T) {
	const partitions, keys, n = 4, 50, 10000
	c := testCluster(t, partitions, "out")
	var requests, rejected, dropped atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		switch i := requests.Add(1); {
		case i%7 == 0:
			dropped.Add(1)
			return nil, fmt.Errorf("injected connection drop"), true
		case i%3 == 0:
			rejected.Add(1)
			return notLeader(req.(*kmsg.ProduceRequest)), nil, true
		}
		return nil, nil, false
	})

	p, err := Options{Brokers: c.ListenAddrs(), ClientID: "test"}.ProducerBuilder()(c.ListenAddrs(), "test", Hasher())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		part   int32
		offset int64
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		if i%keys == 0 {
			time.Sleep(5 * time.Millisecond) // many produce requests, several in flight
		}
		wg.Add(1)
		key := "k" + strconv.Itoa(i%keys)
		p.Emit("out", key, []byte(strconv.Itoa(i))).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
			if err == nil {
				results[i] = result{part: msg.Partition, offset: msg.Offset}
			} else {
				results[i] = result{err: err}
			}
			wg.Done()
		})
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if rejected.Load() == 0 || dropped.Load() == 0 {
		t.Fatalf("no faults were injected (%d requests)", requests.Load())
	}

	type at struct {
		part   int32
		offset int64
	}
	seen := map[int]at{}
	last := map[string]int{}
	readBack(t, c, n, 30*time.Second, func(r *kgo.Record) {
		i, _ := strconv.Atoi(string(r.Value))
		if _, dup := seen[i]; dup {
			t.Errorf("record %d written twice", i)
		}
		seen[i] = at{r.Partition, r.Offset}
		if want := Murmur2Partition(r.Key, partitions); r.Partition != want {
			t.Errorf("key %s on partition %d, want %d", r.Key, r.Partition, want)
		}
		if prev, ok := last[string(r.Key)]; ok && prev > i {
			t.Errorf("key %s: record %d after %d", r.Key, i, prev)
		}
		last[string(r.Key)] = i
	}, "out")
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("record %d failed: %v", i, r.err)
		}
		if got := seen[i]; got != (at{r.part, r.offset}) {
			t.Fatalf("record %d acknowledged at %d/%d, found at %d/%d", i, r.part, r.offset, got.part, got.offset)
		}
	}
	t.Logf("%d records exact after %d produce requests, %d rejected, %d dropped", n, requests.Load(), rejected.Load(), dropped.Load())
}

func notLeader(req *kmsg.ProduceRequest) *kmsg.ProduceResponse {
	return produceError(req, kerr.NotLeaderForPartition.Code)
}

// produceError answers req with code for each of its partitions.
func produceError(req *kmsg.ProduceRequest, code int16) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// Close delivers what was emitted before it; a record emitted after Close
// fails its promise instead of panicking.
func TestProducerEmitAfterClose(t *testing.T) {
	c := testCluster(t, 1, "out")
	p, err := NewProducer(Options{Brokers: c.ListenAddrs(), ClientID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	before := make(chan error, 1)
	p.Emit("out", "k", []byte("v")).Then(func(err error) { before <- err })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-before:
		if err != nil {
			t.Fatalf("emit before close: %v", err)
		}
	default:
		t.Fatal("Close returned before the record emitted earlier was delivered")
	}
	done := make(chan error, 1)
	p.Emit("out", "k", []byte("v")).Then(func(err error) { done <- err })
	if err := <-done; err == nil || !strings.Contains(err.Error(), "out") {
		t.Fatalf("emit after close: %v", err)
	}
}

// Every key length reaches the topic as it was given, on murmur2(key)'s
// partition: keys that fit in the record's own buffer and longer ones, and
// the key of each record is its own (the buffers are not shared), with the
// offset its promise reported.
func TestProducerKeys(t *testing.T) {
	const partitions = 4
	c := testCluster(t, partitions, "out")
	p, err := NewProducer(Options{Brokers: c.ListenAddrs(), ClientID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, n := range []int{1, 7, 47, 48, 49, 300} {
		for i := range 5 {
			keys[strings.Repeat(strconv.Itoa(i), n)] = true
		}
	}
	type pos struct {
		part   int32
		offset int64
	}
	got := make(chan error, len(keys))
	want := make(map[string]pos, len(keys))
	var mu sync.Mutex
	for k := range keys {
		p.Emit("out", k, []byte("value of "+k)).ThenWithMessage(func(m *sarama.ProducerMessage, err error) {
			if err == nil {
				mu.Lock()
				want[k] = pos{m.Partition, m.Offset}
				mu.Unlock()
			}
			got <- err
		})
	}
	for range keys {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	readBack(t, c, len(keys), 20*time.Second, func(r *kgo.Record) {
		k := string(r.Key)
		if w, ok := want[k]; !ok || string(r.Value) != "value of "+k || w != (pos{r.Partition, r.Offset}) {
			t.Errorf("record key %.20q… (%d bytes) value %.30q at %d/%d; emitted: %v at %+v", k, len(k), r.Value, r.Partition, r.Offset, ok, w)
		}
		if p := Murmur2Partition(r.Key, partitions); p != r.Partition {
			t.Errorf("key %.20q… (%d bytes) on partition %d, murmur2 says %d", k, len(k), r.Partition, p)
		}
	}, "out")
}

// goka's default hasher (FNV-1a) would route keys elsewhere than the
// producer: the builder refuses it.
func TestProducerRefusesOtherHasher(t *testing.T) {
	_, err := Options{}.ProducerBuilder()([]string{"127.0.0.1:1"}, "x", goka.DefaultHasher())
	if err == nil || !strings.Contains(err.Error(), "murmur2") {
		t.Fatalf("err = %v", err)
	}
}

// Records of the topics given as uncompressed are stored without
// compression, every other topic's snappy-compressed; both keep their
// per-key order.
func TestProducerCompressionPerTopic(t *testing.T) {
	c := testCluster(t, 2, "table", "loop")
	p, err := Options{Brokers: c.ListenAddrs(), ClientID: "test"}.ProducerBuilder("table")(c.ListenAddrs(), "test", Hasher())
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	value := []byte(strings.Repeat("compressible ", 20))
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		for _, topic := range []string{"table", "loop"} {
			wg.Add(1)
			p.EmitWithHeaders(topic, "k"+strconv.Itoa(i%5), append(strconv.AppendInt(nil, int64(i), 10), value...), nil).Then(func(err error) {
				errs <- err
				wg.Done()
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint8{"table": 0, "loop": 2} // kgo.RecordAttrs: 0 none, 2 snappy
	last := map[string]int{}                        // topic/key -> last value seen
	readBack(t, c, 2*n, 10*time.Second, func(r *kgo.Record) {
		if got := r.Attrs.CompressionType(); got != want[r.Topic] {
			t.Errorf("%s: compression type %d, want %d", r.Topic, got, want[r.Topic])
		}
		i, _ := strconv.Atoi(strings.TrimSuffix(string(r.Value), string(value)))
		k := r.Topic + "/" + string(r.Key)
		if prev, ok := last[k]; ok && i <= prev {
			t.Errorf("%s: value %d after %d", k, i, prev)
		}
		last[k] = i
	}, "table", "loop")
}

// TestStreamProducerLingers: a processor's own producer holds its records
// for the linger and sends what accumulated in one request per client, and
// its promises finish only once they are acked.
func TestStreamProducerLingers(t *testing.T) {
	c := testCluster(t, 1, "table", "loop")
	var requests atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		requests.Add(1)
		return nil, nil, false
	})
	const linger = 500 * time.Millisecond
	p, err := Options{Brokers: c.ListenAddrs(), ClientID: "test"}.StreamProducerBuilder(linger, "table")(c.ListenAddrs(), "test", Hasher())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	start := time.Now()
	var firstAck atomic.Int64
	for i := range n {
		for _, topic := range []string{"table", "loop"} {
			wg.Add(1)
			p.EmitWithHeaders(topic, "k", []byte(strconv.Itoa(i)), nil).Then(func(err error) {
				firstAck.CompareAndSwap(0, int64(time.Since(start)))
				errs <- err
				wg.Done()
			})
		}
		time.Sleep(2 * time.Millisecond) // spaced: without a linger, each would go on its own
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := time.Duration(firstAck.Load()); got < linger*4/5 {
		t.Errorf("first record acked after %v, before the %v linger", got, linger)
	}
	// one request per client (table and loop), and a few more if a linger
	// ended while records were still coming
	if got := requests.Load(); got > 4 {
		t.Errorf("%d produce requests for %d records each of two topics, want at most 4", got, n)
	}
}

// TestStreamProducerCoalescesTables: of the records a table key gets within
// one linger only the last is written, and the promises of the others finish
// with it (its offset); other topics keep every record; a key emitted after
// its record was handed on gets a new one; Close writes what is pending.
func TestStreamProducerCoalescesTables(t *testing.T) {
	c := testCluster(t, 2, "table", "loop")
	p, err := Options{Brokers: c.ListenAddrs(), ClientID: "test"}.StreamProducerBuilder(200*time.Millisecond, "table")(c.ListenAddrs(), "test", Hasher())
	if err != nil {
		t.Fatal(err)
	}
	type acked struct {
		part   int32
		offset int64
	}
	var mu sync.Mutex
	acks := map[string]acked{} // topic/key/value -> where it was acked
	var wg sync.WaitGroup
	emit := func(topic, key, value string) {
		wg.Add(1)
		p.Emit(topic, key, []byte(value)).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("%s/%s/%s: %v", topic, key, value, err)
				return
			}
			mu.Lock()
			acks[topic+"/"+key+"/"+value] = acked{msg.Partition, msg.Offset}
			mu.Unlock()
		})
	}
	for _, v := range []string{"1", "2", "3"} {
		emit("table", "a", v)
		emit("loop", "a", v)
	}
	emit("table", "b", "1")
	wg.Wait()
	if a1, a3 := acks["table/a/1"], acks["table/a/3"]; a1 != a3 || acks["table/a/2"] != a3 {
		t.Errorf("table/a: acks %v, %v, %v; want one record's", a1, acks["table/a/2"], a3)
	}
	if acks["loop/a/1"] == acks["loop/a/3"] {
		t.Errorf("loop/a: two records acked at %v", acks["loop/a/1"])
	}
	emit("table", "a", "4") // after a's record was written: a record of its own
	wg.Wait()
	emit("table", "c", "1")
	if err := p.Close(); err != nil { // before c's linger ends
		t.Fatal(err)
	}
	wg.Wait()

	var table []string
	readBack(t, c, 4+3, 10*time.Second, func(r *kgo.Record) {
		if r.Topic == "table" {
			table = append(table, string(r.Key)+"/"+string(r.Value))
			if got, want := (acked{r.Partition, r.Offset}), acks["table/"+string(r.Key)+"/"+string(r.Value)]; got != want {
				t.Errorf("table %s/%s at %v, its promise said %v", r.Key, r.Value, got, want)
			}
		}
	}, "table", "loop")
	adm := kadm.NewClient(newTestClient(t, c))
	ends, err := adm.ListEndOffsets(context.Background(), "table")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	slices.Sort(table)
	if want := []string{"a/3", "a/4", "b/1", "c/1"}; n != 4 || !slices.Equal(table, want) {
		t.Errorf("table holds %d records %v, want %v", n, table, want)
	}
}

// When the broker refuses a table's record for good, the promises of every
// record it replaced fail too.
func TestStreamProducerCoalescedFailure(t *testing.T) {
	c := testCluster(t, 1, "table")
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return produceError(req.(*kmsg.ProduceRequest), kerr.InvalidRecord.Code), nil, true
	})
	p, err := Options{Brokers: c.ListenAddrs(), ClientID: "test"}.StreamProducerBuilder(50*time.Millisecond, "table")(c.ListenAddrs(), "test", Hasher())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	errs := make(chan error, 3)
	for _, v := range []string{"1", "2", "3"} {
		p.Emit("table", "a", []byte(v)).Then(func(err error) { errs <- err })
	}
	for range 3 {
		select {
		case err := <-errs:
			if err == nil || !strings.Contains(err.Error(), "table") {
				t.Errorf("promise finished with %v, want the produce error", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a promise never finished")
		}
	}
}

func newTestClient(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// A table's emits wait once the coalescer holds its most keys and the client
// cannot take them (its buffer is full while the broker does not answer), as
// emits on a full client do, and go on once it can.
func TestCoalescerBackpressure(t *testing.T) {
	c := testCluster(t, 1, "table")
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.MaxBufferedRecords(1),
		kgo.RecordPartitioner(murmur2Partitioner{}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := &producer{cl: cl, plain: cl, plainTopics: map[string]bool{"table": true}, tables: newCoalescer(cl, time.Millisecond)}
	p.tables.max = 8
	const n = 40
	var wg sync.WaitGroup
	var failed atomic.Int64
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := range n {
			wg.Add(1)
			p.Emit("table", "k"+strconv.Itoa(i), []byte("v")).Then(func(err error) {
				if err != nil {
					failed.Add(1)
				}
				wg.Done()
			})
		}
	}()
	select {
	case <-emitted:
		t.Fatalf("%d emits of distinct keys returned while the broker held the client's one record", n)
	case <-time.After(300 * time.Millisecond):
	}
	unblock()
	select {
	case <-emitted:
	case <-time.After(30 * time.Second):
		t.Fatal("the emits did not go on once the broker answered")
	}
	p.tables.flush()
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d records failed", f, n)
	}
}
