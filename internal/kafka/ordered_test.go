package kafka

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// markSession is a group session that records the offsets marked in it and
// counts its commits.
type markSession struct {
	sarama.ConsumerGroupSession
	marks   []int64
	commits atomic.Int32
}

func (s *markSession) Commit() { s.commits.Add(1) }

func (s *markSession) MarkOffset(_ string, _ int32, offset int64, _ string) {
	s.marks = append(s.marks, offset)
}

// sessionHandler keeps the session goka would be given.
type sessionHandler struct {
	sarama.ConsumerGroupHandler
	s sarama.ConsumerGroupSession
}

func (h *sessionHandler) Setup(s sarama.ConsumerGroupSession) error { h.s = s; return nil }
func (h *sessionHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// gokaContext lets record embed goka.Context, whose method set has a Context.
type gokaContext = goka.Context

// record is the goka context of one record.
type record struct {
	gokaContext
	topic     goka.Stream
	partition int32
	offset    int64
}

func (r record) Topic() goka.Stream { return r.topic }
func (r record) Partition() int32   { return r.partition }
func (r record) Offset() int64      { return r.offset }

// Records handed to callbacks (Wrap) commit only as a finished prefix, per
// topic and partition, in the session of their generation.
func TestOrderedWrapRegistersDeliveries(t *testing.T) {
	o := new(Ordered)
	o.Wrap(record{topic: "in", offset: 1}) // before any session (goka's tester): nothing to register in
	inner := &sessionHandler{}
	h := &orderedHandler{inner: inner, o: o}
	gen1 := &markSession{}
	if err := h.Setup(gen1); err != nil {
		t.Fatal(err)
	}
	s := inner.s
	for _, off := range []int64{10, 11, 13} {
		if got := o.Wrap(record{topic: "in", partition: 2, offset: off}); got.Offset() != off {
			t.Fatalf("Wrap changed the context: offset %d, want %d", got.Offset(), off)
		}
	}
	o.Wrap(record{topic: "loop", partition: 2, offset: 5})
	s.MarkOffset("in", 2, 12, "") // 11 done; 10 still in flight
	s.MarkOffset("loop", 2, 6, "")
	if !slices.Equal(gen1.marks, []int64{6}) {
		t.Fatalf("commits %v with in/2 offset 10 in flight, want only loop/2's 6", gen1.marks)
	}
	s.MarkOffset("in", 2, 11, "") // 10 done
	s.MarkOffset("in", 2, 14, "") // 13 done
	s.MarkOffset("in", 2, 20, "") // 19 was never handed to a callback
	if want := []int64{6, 12, 14}; !slices.Equal(gen1.marks, want) {
		t.Fatalf("commits %v, want %v", gen1.marks, want)
	}

	// The next generation registers in its own session; the last one's
	// late marks still go to the last one.
	if err := h.Cleanup(gen1); err != nil {
		t.Fatal(err)
	}
	gen2 := &markSession{}
	if err := h.Setup(gen2); err != nil {
		t.Fatal(err)
	}
	if inner.s == s {
		t.Fatal("the new generation got the last one's session")
	}
	o.Wrap(record{topic: "in", partition: 2, offset: 14})
	inner.s.MarkOffset("in", 2, 15, "")
	if !slices.Equal(gen2.marks, []int64{15}) || len(gen1.marks) != 3 {
		t.Fatalf("commits: generation 1 %v, generation 2 %v; want [6 12 14] and [15]", gen1.marks, gen2.marks)
	}
	if err := h.Cleanup(gen2); err != nil {
		t.Fatal(err)
	}
}

// A session commits what it marked once a tick finds no mark since the tick
// before; while marks keep coming it leaves the commits to the interval, and
// a trickle commits at most every quietMinGap.
func TestQuietCommits(t *testing.T) {
	var q quiet
	n, now := uint64(0), time.Unix(1000, 0)
	for i, tt := range []struct {
		marks  uint64 // since the tick before
		commit bool
	}{
		{0, false},                                                                                     // nothing marked: nothing to commit
		{1, false},                                                                                     // marked since the last tick: busy
		{0, true},                                                                                      // quiet for a tick: commit
		{0, false},                                                                                     // nothing new since that commit
		{1, false}, {1, false}, {1, false}, {1, false}, {1, false}, {1, false}, {1, false}, {1, false}, // marks between every tick
		{0, true},
		{0, false},
		{1, false},                                     // a mark 50 ms after that commit (ticks are quietTick, 25 ms, apart)
		{0, false},                                     // quiet, but within quietMinGap of the last commit: 75 ms
		{0, false}, {0, false}, {0, false}, {0, false}, // 100-175 ms
		{0, true}, // quietMinGap after it
	} {
		n += tt.marks
		if got := q.tick(n, now); got != tt.commit {
			t.Fatalf("tick %d (%d new marks): commit %v, want %v", i, tt.marks, got, tt.commit)
		}
		now = now.Add(quietTick)
	}
}

// A session started by the handler commits a finished record on its own
// once its marks stop, and its Cleanup stops that.
func TestOrderedSessionCommitsWhenQuiet(t *testing.T) {
	o := new(Ordered)
	inner := &sessionHandler{}
	h := &orderedHandler{inner: inner, o: o}
	fake := &markSession{}
	if err := h.Setup(fake); err != nil {
		t.Fatal(err)
	}
	o.Wrap(record{topic: "in", offset: 7})
	inner.s.MarkOffset("in", 0, 8, "")
	deadline := time.Now().Add(10 * time.Second)
	for fake.commits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no commit within 10 s of the last mark")
		}
		time.Sleep(time.Millisecond)
	}
	if !slices.Equal(fake.marks, []int64{8}) {
		t.Fatalf("marks %v, want [8]", fake.marks)
	}
	if err := h.Cleanup(fake); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.s.Load().stopped:
	default:
		t.Fatal("Cleanup returned with the quiet committer running")
	}
}

// A processor gets the group and the context wrapper of one Ordered: the
// group alone would never commit.
func TestGroupOptionsPairGroupAndWrapper(t *testing.T) {
	if got := len(Options{ClientID: "x"}.GroupOptions(Group{})); got != 2 {
		t.Fatalf("%d options, want the group builder and the context wrapper", got)
	}
}
