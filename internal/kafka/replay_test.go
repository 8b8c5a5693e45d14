package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceTable writes n records to partition 1 of a 2-partition topic "tbl"
// (every 10th a tombstone) and a few to partition 0.
func produceTable(t *testing.T, c *kfake.Cluster, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		r := &kgo.Record{Topic: "tbl", Partition: 1, Key: []byte("k" + strconv.Itoa(i%100)), Value: []byte(strconv.Itoa(i))}
		if i%10 == 9 {
			r.Value = nil
		}
		recs = append(recs, r)
	}
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: "tbl", Partition: 0, Key: []byte("other"), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestReadPartition: every record of the partition from the asked offset to
// the end, in order, with tombstones as nil values; nothing of another
// partition; nothing past the end it had when called.
func TestReadPartition(t *testing.T) {
	const n = 20000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "tbl"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	produceTable(t, c, n)
	o := Options{Brokers: c.ListenAddrs(), ClientID: "test"}
	for _, from := range []int64{-1, 0, 12345, n - 1, n, n + 50} {
		t.Run(strconv.FormatInt(from, 10), func(t *testing.T) {
			next, batches := max(from, 0), 0
			var start, end int64 = -1, -1
			err := o.ReadPartition(context.Background(), "tbl", 1, from, func(s, e int64) { start, end = s, e }, func(recs []*kgo.Record) error {
				batches++
				for _, r := range recs {
					if r.Partition != 1 || r.Offset != next {
						return fmt.Errorf("got %d/%d, want 1/%d", r.Partition, r.Offset, next)
					}
					want := []byte(strconv.FormatInt(r.Offset, 10))
					if r.Offset%10 == 9 {
						want = nil
					}
					if (r.Value == nil) != (want == nil) || string(r.Value) != string(want) {
						return fmt.Errorf("offset %d: value %q, want %q", r.Offset, r.Value, want)
					}
					next++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := max(int64(n), max(from, 0)); next != want {
				t.Fatalf("read up to %d, want %d", next, want)
			}
			if start != max(from, 0) || end != n {
				t.Fatalf("started(%d, %d), want (%d, %d)", start, end, max(from, 0), n)
			}
			if from < n-1 && batches >= n/10 {
				t.Errorf("%d batches for %d records: not batched", batches, n)
			}
		})
	}

	// The end is fixed when ReadPartition starts: records produced while it
	// reads are left for the caller.
	t.Run("end fixed", func(t *testing.T) {
		var got int64
		err := o.ReadPartition(context.Background(), "tbl", 1, -1, nil, func(recs []*kgo.Record) error {
			if got == 0 {
				produceTable(t, c, 1000)
			}
			got += int64(len(recs))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("read %d records, want the %d there at the start", got, n)
		}
	})
}

// TestReadPartitionErrors: apply's error is returned; a cancelled context
// ends the read; an unknown partition is an error; fetch errors the broker
// answers for a while are retried through.
func TestReadPartitionErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "tbl"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	produceTable(t, c, 3000)
	o := Options{Brokers: c.ListenAddrs(), ClientID: "test"}

	boom := errors.New("boom")
	if err := o.ReadPartition(context.Background(), "tbl", 1, -1, nil, func([]*kgo.Record) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("apply's error: got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = o.ReadPartition(ctx, "tbl", 1, -1, nil, func([]*kgo.Record) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) && err != nil {
		t.Errorf("cancelled: got %v", err)
	}
	if err := o.ReadPartition(context.Background(), "tbl", 7, -1, nil, func([]*kgo.Record) error { return nil }); err == nil {
		t.Error("partition 7 of a 2-partition topic: no error")
	}

	var fetches, failed atomic.Int64
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if fetches.Add(1)%2 == 1 {
			failed.Add(1)
			r := req.(*kmsg.FetchRequest)
			resp := r.ResponseKind().(*kmsg.FetchResponse)
			for _, rt := range r.Topics {
				st := kmsg.NewFetchResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewFetchResponseTopicPartition()
					sp.Partition = rp.Partition
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		}
		return nil, nil, false
	})
	var got int
	start := time.Now()
	if err := o.ReadPartition(context.Background(), "tbl", 1, -1, nil, func(recs []*kgo.Record) error { got += len(recs); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != 3000 || failed.Load() == 0 {
		t.Fatalf("read %d of 3000 records through %d failed fetches (%v)", got, failed.Load(), time.Since(start))
	}
}
