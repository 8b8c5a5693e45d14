package kafka

import (
	"context"
	"slices"
	"sync"

	"github.com/IBM/sarama"
)

// OrderedCommits wraps a sarama.ConsumerGroup so that an offset is committed
// only once every record delivered before it on the same partition is done.
//
// Goka marks a record's offset when that record's own emits are acked, and
// sarama keeps the greatest mark. A record whose emits finish early (or that
// emits nothing) would otherwise commit past an earlier record whose emits are
// still in flight; a crash then loses the earlier record for good. Here a mark
// only advances the committed offset across a contiguous prefix of finished
// records; a record that was delivered but never finished holds it back.
func OrderedCommits(g sarama.ConsumerGroup) sarama.ConsumerGroup {
	return &orderedGroup{ConsumerGroup: g}
}

type orderedGroup struct{ sarama.ConsumerGroup }

func (g *orderedGroup) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &orderedHandler{inner: h})
}

type orderedHandler struct {
	inner sarama.ConsumerGroupHandler
	mu    sync.Mutex
	s     *orderedSession
}

func (h *orderedHandler) session(s sarama.ConsumerGroupSession) *orderedSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.s == nil || h.s.ConsumerGroupSession != s {
		h.s = &orderedSession{ConsumerGroupSession: s, parts: map[topicPartition]*pending{}}
	}
	return h.s
}

func (h *orderedHandler) Setup(s sarama.ConsumerGroupSession) error {
	return h.inner.Setup(h.session(s))
}

func (h *orderedHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	return h.inner.Cleanup(h.session(s))
}

func (h *orderedHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	os := h.session(s)
	p := os.partition(c.Topic(), c.Partition())
	// Buffered like sarama's own channel: with a hand-over per record the
	// forwarder and goka's reader woke each other for every record.
	out := make(chan *sarama.ConsumerMessage, forwardBuffer)
	var wg sync.WaitGroup
	wg.Add(1)
	stop := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(out)
		for {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					return
				}
				// Register before handing over: the record can be marked
				// only after it was delivered. A record still in out when
				// the claim ends stays registered and unfinished, so no
				// commit passes it.
				p.delivered(m.Offset)
				select {
				case out <- m:
				case <-stop:
					return
				}
			case <-stop:
				return
			}
		}
	}()
	err := h.inner.ConsumeClaim(os, &orderedClaim{ConsumerGroupClaim: c, out: out})
	close(stop)
	wg.Wait()
	return err
}

// forwardBuffer is how many delivered records wait for goka's reader.
const forwardBuffer = 256

type orderedClaim struct {
	sarama.ConsumerGroupClaim
	out chan *sarama.ConsumerMessage
}

func (c *orderedClaim) Messages() <-chan *sarama.ConsumerMessage { return c.out }

type topicPartition struct {
	topic     string
	partition int32
}

type orderedSession struct {
	sarama.ConsumerGroupSession
	mu    sync.Mutex
	parts map[topicPartition]*pending
}

func (s *orderedSession) partition(topic string, partition int32) *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := topicPartition{topic, partition}
	p := s.parts[tp]
	if p == nil {
		p = &pending{}
		s.parts[tp] = p
	}
	return p
}

// MarkOffset marks offset-1 as finished and commits the finished prefix.
func (s *orderedSession) MarkOffset(topic string, partition int32, offset int64, metadata string) {
	if next, ok := s.partition(topic, partition).finished(offset - 1); ok {
		s.ConsumerGroupSession.MarkOffset(topic, partition, next, metadata)
	}
}

// MarkMessage marks msg as finished.
func (s *orderedSession) MarkMessage(msg *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(msg.Topic, msg.Partition, msg.Offset+1, metadata)
}

// pending is the queue of delivered, not yet committable offsets of one
// partition. A claim delivers a partition's records in offset order, so the
// queue is sorted and a finished offset is found by binary search (by a scan
// if it is not there, so that an out-of-order delivery would still commit
// in delivery order).
type pending struct {
	mu    sync.Mutex
	queue []int64 // delivered offsets in delivery (ascending) order
	done  []bool  // done[i]: queue[i] finished
	head  int     // queue[:head] is committable and was reported
}

func (p *pending) delivered(off int64) {
	p.mu.Lock()
	p.queue = append(p.queue, off)
	p.done = append(p.done, false)
	p.mu.Unlock()
}

// finished records off as done and returns the next offset to commit when
// the finished prefix grew. An offset that was never delivered, or is
// already behind the prefix, changes nothing.
func (p *pending) finished(off int64) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue[p.head:]
	i, found := slices.BinarySearch(q, off)
	if !found { // not delivered, or (never seen) delivered out of order
		if i = slices.Index(q, off); i < 0 {
			return 0, false
		}
	}
	p.done[p.head+i] = true
	if i != 0 {
		return 0, false // an earlier record is still in flight
	}
	for p.head < len(p.queue) && p.done[p.head] {
		p.head++
	}
	next := p.queue[p.head-1] + 1
	if p.head > 1024 && p.head*2 > len(p.queue) {
		n := copy(p.queue, p.queue[p.head:])
		copy(p.done, p.done[p.head:])
		p.queue, p.done, p.head = p.queue[:n], p.done[:n], 0
	}
	return next, true
}
