package kafka

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Ordered keeps the commits of one goka processor in delivery order: an
// offset is committed only once every record delivered before it on the same
// partition is done.
//
// Goka marks a record's offset when that record's own emits are acked, and
// sarama keeps the greatest mark. A record whose emits finish early (or that
// emits nothing) would otherwise commit past an earlier record whose emits are
// still in flight; a crash then loses the earlier record for good. Here a mark
// only advances the committed offset across a contiguous prefix of finished
// records; a record that was delivered but never finished holds it back.
//
// A record counts as delivered when goka hands it to its callback: Wrap, the
// processor's context wrapper, registers it there. Goka runs a partition's
// callbacks one at a time in offset order, each topic's records in the order
// the claim delivered them, so every record before a marked one was
// registered before it; a record still waiting in goka's channels has a
// greater offset than any marked one. Registering there instead of between
// sarama's claim and goka's reader saves a goroutine and a channel hand-over
// per record. Both halves are needed: a processor built with Group but not
// Wrap never commits (Options.GroupOptions gives them as a pair).
type Ordered struct {
	s atomic.Pointer[orderedSession] // the session of the current generation; nil before the first
}

// Group wraps a sarama.ConsumerGroup so that its sessions commit in order.
func (o *Ordered) Group(g sarama.ConsumerGroup) sarama.ConsumerGroup {
	return &orderedGroup{ConsumerGroup: g, o: o}
}

// Wrap is the processor's goka.ContextWrapper: it registers ctx's record as
// delivered before goka runs its callback. Outside a group session (goka's
// tester) it does nothing.
func (o *Ordered) Wrap(ctx goka.Context) goka.Context {
	if s := o.s.Load(); s != nil {
		s.partition(string(ctx.Topic()), ctx.Partition()).delivered(ctx.Offset())
	}
	return ctx
}

type orderedGroup struct {
	sarama.ConsumerGroup
	o *Ordered
}

func (g *orderedGroup) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &orderedHandler{inner: h, o: g.o})
}

type orderedHandler struct {
	inner sarama.ConsumerGroupHandler
	o     *Ordered
}

// Setup starts a generation with an ordered session that goka sees in place
// of s, so that its marks go through the session of the generation they
// belong to; records goka runs from now on are registered in it. (sarama
// runs a generation's Setup, claims and Cleanup in turn, and goka's Cleanup
// stopped the last generation's partitions, and their callbacks with them,
// before this Setup.)
func (h *orderedHandler) Setup(s sarama.ConsumerGroupSession) error {
	os := &orderedSession{ConsumerGroupSession: s, parts: map[topicPartition]*pending{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	h.o.s.Store(os)
	t := time.NewTicker(quietTick)
	go func() {
		defer close(os.stopped)
		defer t.Stop()
		os.commitWhenQuiet(t.C)
	}()
	err := h.inner.Setup(os)
	if err != nil { // sarama calls no Cleanup then
		os.stopQuiet()
	}
	return err
}

func (h *orderedHandler) Cleanup(sarama.ConsumerGroupSession) error {
	s := h.o.s.Load()
	s.stopQuiet()
	return h.inner.Cleanup(s)
}

func (h *orderedHandler) ConsumeClaim(_ sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	return h.inner.ConsumeClaim(h.o.s.Load(), c)
}

type topicPartition struct {
	topic     string
	partition int32
}

type orderedSession struct {
	sarama.ConsumerGroupSession
	mu    sync.Mutex
	parts map[topicPartition]*pending

	marks         atomic.Uint64 // marks that moved a partition's committable offset
	stop, stopped chan struct{} // commitWhenQuiet's
	stopOnce      sync.Once
}

// quietTick is how often a session looks whether its marks stopped: once
// none came for a whole tick, what they marked is committed at once, not at
// the next commit interval (see commitWhenQuiet), but not within
// quietMinGap of its last such commit.
const (
	quietTick   = 25 * time.Millisecond
	quietMinGap = 200 * time.Millisecond
)

// commitWhenQuiet commits the session's marked offsets when a tick of tick
// finds that no mark came since the tick before, and some came since its
// last commit, until stop is closed. A processor under load marks records
// all the time and commits at the commit interval only (each commit delays
// a fetch: see DefaultCommitInterval); one that ran out of records commits
// what it finished within one to two ticks: a partition's next owner then
// applies nothing of it again, and the end of a backlog is committed
// within about 50 ms (where "fraudwatch bench" stops its throughput clock).
// A trickle of records, quiet between any two, commits at most every
// quietMinGap.
func (s *orderedSession) commitWhenQuiet(tick <-chan time.Time) {
	var q quiet
	for {
		var now time.Time
		select {
		case <-s.stop:
			return
		case now = <-tick:
		}
		if q.tick(s.marks.Load(), now) {
			s.ConsumerGroupSession.Commit()
		}
	}
}

// quiet is commitWhenQuiet's count of marks at its last tick and at its
// last commit, and the time of that commit.
type quiet struct {
	seen, committed uint64
	last            time.Time
}

// tick takes the count of marks n at a tick at now and reports whether to
// commit: none came since the tick before, some since the last commit, and
// that commit was quietMinGap ago or more.
func (q *quiet) tick(n uint64, now time.Time) bool {
	commit := n == q.seen && n != q.committed && now.Sub(q.last) >= quietMinGap
	if commit {
		q.committed, q.last = n, now
	}
	q.seen = n
	return commit
}

// stopQuiet stops commitWhenQuiet and waits for it.
func (s *orderedSession) stopQuiet() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.stopped
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
		s.marks.Add(1)
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
