package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// coalescer holds the records of compacted topics (group tables'
// changelogs) for a linger and writes only the last value of each key that
// was emitted in it. A changelog is read for its last value per key only,
// and each value a processor writes holds every earlier one's effect (it is
// the user's whole state), so the records it drops are never read: a burst
// user's events, applied back to back, each rewrote the user's whole state,
// and those states were most of the bytes the processor produced.
//
// A dropped record's promise finishes with the record that replaced it, with
// that record's partition and offset: goka commits the input of the event
// that wrote it only once a state that includes it is acked, as before.
// Records are handed to the client in the order of their keys' first emit in
// the linger, one linger at a time, so the order per key holds; a key
// emitted again after its record was handed on gets a new record.
//
// Records wait in the coalescer, not in the client, so its emit does not
// block when the client's buffer is full. A linger holds at most max keys:
// the emit that fills it hands them on itself, and so waits, as an emit on a
// full client would, while the flush before it is stuck in the client.
type coalescer struct {
	cl     *kgo.Client
	linger time.Duration
	max    int

	mu      sync.Mutex
	pending map[tableKey]*emitted
	order   []*emitted // pending, in the order of their first emit
	closed  bool

	flushing sync.Mutex // held by a flush from taking the records to handing them on
}

type tableKey struct{ topic, key string }

// coalescedKeys is how many keys a linger holds at most: at 100,000 events/s a
// 5 ms linger sees 500.
const coalescedKeys = 4096

func newCoalescer(cl *kgo.Client, linger time.Duration) *coalescer {
	return &coalescer{cl: cl, linger: linger, max: coalescedKeys, pending: make(map[tableKey]*emitted)}
}

// emit takes e's record (of topic and key), or merges it into the pending
// record of its key.
func (c *coalescer) emit(topic, key string, e *emitted) {
	k := tableKey{topic: topic, key: key}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.cl.Produce(context.Background(), &e.rec, finishEmitted) // fails: the client is closed
		return
	}
	if prev, ok := c.pending[k]; ok {
		prev.rec.Value = e.rec.Value
		prev.rec.Headers = e.rec.Headers
		prev.merged = append(prev.merged, e.finish)
		c.mu.Unlock()
		return
	}
	c.pending[k] = e
	c.order = append(c.order, e)
	first, full := len(c.order) == 1, len(c.order) >= c.max
	c.mu.Unlock()
	switch {
	case full:
		c.flush()
	case first:
		time.AfterFunc(c.linger, c.flush)
	}
}

// flush hands the pending records to the client.
func (c *coalescer) flush() {
	c.flushing.Lock()
	defer c.flushing.Unlock()
	c.mu.Lock()
	batch := c.order
	c.order = nil
	clear(c.pending)
	c.mu.Unlock()
	for _, e := range batch {
		c.cl.Produce(context.Background(), &e.rec, finishEmitted)
	}
}

// close hands on what is pending; later records fail.
func (c *coalescer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.flush()
}
