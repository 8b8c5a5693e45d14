package views

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/lovoo/goka/storage"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

func encodedState(t *testing.T, n int) []byte {
	t.Helper()
	st := &rules.State{}
	c := rules.Default()
	for i := 0; i < n; i++ {
		c.Apply(st, "u", rules.Source{Offset: int64(i)}, rules.Event{ID: fmt.Sprint(i), Time: t0.UnixNano(), Amount: 1, Currency: "EUR", Country: "DE"})
	}
	b, err := codecs.State{}.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLocalLifecycle: a partition is initializing until goka's view builds
// its storage, recovering until it is marked recovered, running after, and
// stopped once closed; reads follow the storage and fail once it is closed.
func TestLocalLifecycle(t *testing.T) {
	l := NewLocal(2, codecs.State{})
	if l.Recovered() {
		t.Fatal("recovered before any partition was built")
	}
	if _, err := l.Get("usr_1"); !errors.Is(err, ErrPartitionClosed) {
		t.Fatalf("read before the build: %v, want ErrPartitionClosed", err)
	}
	if ps := l.Partition(0); ps != (PartitionState{Status: StatusInitializing}) {
		t.Fatalf("unbuilt partition %+v", ps)
	}
	build := l.Builder(storage.MemoryBuilder())
	if _, err := build("table", 2); err == nil {
		t.Fatal("built a partition outside the table")
	}
	var parts [2]storage.Storage
	for p := range parts {
		st, err := build("table", int32(p))
		if err != nil {
			t.Fatal(err)
		}
		parts[p] = st
	}
	if ps := l.Partition(1); ps != (PartitionState{Status: StatusRecovering}) {
		t.Fatalf("built partition %+v", ps)
	}
	p := kafka.Murmur2Partition([]byte("usr_1"), 2)
	if err := errors.Join(parts[p].Set("usr_1", encodedState(t, 3)), parts[p].SetOffset(41)); err != nil {
		t.Fatal(err)
	}
	v, err := l.Get("usr_1")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := v.(*rules.State); st == nil || len(st.Events) != 3 {
		t.Fatalf("read %#v, want the state of 3 transactions", v)
	}
	if v, err := l.Get("usr_none"); v != nil || err != nil {
		t.Fatalf("unknown user: %v, %v", v, err)
	}
	if ps := l.Partition(p); ps.Next != 42 {
		t.Fatalf("partition %+v, want next offset 42", ps)
	}
	if err := parts[p].MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if l.Recovered() || l.Partition(p).Status != StatusRunning {
		t.Fatal("recovered with one partition still recovering, or the recovered one not running")
	}
	if err := parts[1-p].MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if !l.Recovered() {
		t.Fatal("not recovered with every partition running")
	}
	if err := parts[p].Close(); err != nil {
		t.Fatal(err)
	}
	if l.Recovered() {
		t.Fatal("recovered with a partition closed")
	}
	if ps := l.Partition(p); ps != (PartitionState{Status: StatusStopped, Next: 42}) {
		t.Fatalf("closed partition %+v, want stopped at 42", ps)
	}
	if _, err := l.Get("usr_1"); !errors.Is(err, ErrPartitionClosed) {
		t.Fatalf("read after the close: %v, want ErrPartitionClosed", err)
	}
}

// TestLocalCloseDuringReads: the view closes its partitions while queries
// read them (as goka's View does when it fails on its own); every read
// returns the state or ErrPartitionClosed, never a closed storage's answer,
// and under -race the two are synchronized.
func TestLocalCloseDuringReads(t *testing.T) {
	l := NewLocal(4, codecs.State{})
	build := l.Builder(func(string, int32) (storage.Storage, error) { return &closedChecked{Storage: storage.NewMemory()}, nil })
	val := encodedState(t, 1)
	users := make([]string, 64)
	var parts []storage.Storage
	for p := int32(0); p < 4; p++ {
		st, err := build("table", p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, st)
	}
	for i := range users {
		users[i] = fmt.Sprintf("usr_%d", i)
		if err := parts[kafka.Murmur2Partition([]byte(users[i]), 4)].Set(users[i], val); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range parts {
		if err := st.MarkRecovered(); err != nil {
			t.Fatal(err)
		}
	}
	var wg, reading sync.WaitGroup
	errs := make(chan error, 8)
	closedSeen := make([]int, 8)
	for r := 0; r < 8; r++ {
		wg.Add(1)
		reading.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; closedSeen[r] < len(users); i++ {
				if i == len(users) {
					reading.Done() // every user read once while open
				}
				v, err := l.Get(users[i%len(users)])
				switch {
				case errors.Is(err, ErrPartitionClosed):
					closedSeen[r]++
				case err != nil:
					errs <- err
					return
				case v == nil:
					errs <- fmt.Errorf("%s read as absent", users[i%len(users)])
					return
				}
				_ = l.Partition(int32(i % 4))
				_ = l.Recovered()
			}
		}()
	}
	reading.Wait()
	for _, st := range parts {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// closedChecked fails a read after its close, as LevelDB does. Its close
// yields for a while once it is closed, so that a read let through after it
// would be seen.
type closedChecked struct {
	storage.Storage
	mu     sync.Mutex
	closed bool
}

func (c *closedChecked) Get(key string) ([]byte, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errors.New("read of a closed storage")
	}
	return c.Storage.Get(key)
}

func (c *closedChecked) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	for range 1000 {
		runtime.Gosched()
	}
	return c.Storage.Close()
}
