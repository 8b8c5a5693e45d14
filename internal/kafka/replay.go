package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// replayIdle is how long ReadPartition waits for a fetch that brings nothing
// before it stops short of the end it was asked to reach (a log whose last
// offsets hold no records to read). The caller goes on from the last record
// it got, so stopping early is never wrong, only slower.
const replayIdle = 5 * time.Second

// replayFetchBytes bounds one fetch of a replay. Every partition is replayed
// by its own client at the same time, and a fetched batch is held twice over
// (the bytes, and a kgo.Record per record) while it is applied and the next
// one arrives: with 8 MiB fetches a restore of 844,550 users peaked at 455
// MiB of RSS, more than the processor that wrote them (390 MiB); with 1 MiB,
// 268 MiB, and its rate did not fall (420,194 → 456,960 records/s; the
// default bench run: 630,004 → 757,243 records/s, peak 395 → 223 MiB; one
// run each of "fraudwatch bench --skip-baseline" with and without
// "--users 1000000 --events 2000000").
const replayFetchBytes = 1 << 20

// ReadPartition reads topic's partition from offset from (negative: the log
// start) to the end offset it has when ReadPartition is called, and hands
// every fetched batch of records to apply, in offset order. An offset below
// the log start (removed by compaction or retention) reads from the log
// start. It returns after the record before that end, when apply fails, or
// when ctx ends; if fetches bring nothing for replayIdle it returns early,
// without an error.
//
// Before the first record, started (if not nil) learns the offset the read
// starts at and the end it reads to.
//
// It is franz-go's consumer without a group: one fetch brings many records,
// and apply takes them as one slice, where goka's recovery passes sarama's
// records one by one through channels.
func (o Options) ReadPartition(ctx context.Context, topic string, partition int32, from int64,
	started func(start, end int64), apply func([]*kgo.Record) error) error {
	start := kgo.NewOffset().AtStart()
	if from >= 0 {
		start = kgo.NewOffset().At(from)
	}
	cl, err := kgo.NewClient(o.FranzOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: start}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(replayFetchBytes),
		kgo.FetchMaxPartitionBytes(replayFetchBytes),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: reading %s/%d: %w", topic, partition, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	lookup := func(what string, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
		los, err := list(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("kafka: %s offset of %s/%d: %w", what, topic, partition, err)
		}
		lo, ok := los.Lookup(topic, partition)
		switch {
		case !ok:
			return 0, fmt.Errorf("kafka: %s offset of %s/%d: no such partition", what, topic, partition)
		case lo.Err != nil:
			return 0, fmt.Errorf("kafka: %s offset of %s/%d: %w", what, topic, partition, lo.Err)
		}
		return lo.Offset, nil
	}
	end, err := lookup("end", adm.ListEndOffsets)
	if err != nil {
		return err
	}
	logStart, err := lookup("start", adm.ListStartOffsets)
	if err != nil {
		return err
	}
	first := max(from, logStart)
	if started != nil {
		started(first, end)
	}
	if first >= end {
		return nil
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, replayIdle)
		fs := cl.PollFetches(pctx)
		idle := pctx.Err() != nil
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = errors.Join(ferr, fmt.Errorf("kafka: reading %s/%d: %w", t, p, err))
			}
		})
		if ferr != nil {
			return ferr
		}
		recs := fs.Records()
		if len(recs) == 0 {
			if idle {
				return nil
			}
			continue
		}
		if err := apply(recs); err != nil {
			return err
		}
		if recs[len(recs)-1].Offset+1 >= end {
			return nil
		}
	}
}
