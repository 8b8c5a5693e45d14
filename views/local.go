package views

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/fraudwatch/fraudwatch/internal/kafka"
)

// Partition statuses of a Local table.
const (
	StatusInitializing = "initializing" // its storage is not built yet
	StatusRecovering   = "recovering"   // built; the changelog is being read to its end
	StatusRunning      = "running"      // recovered: it holds the table up to the end it read
	StatusStopped      = "stopped"      // closed
)

// PartitionState is what a table knows of one of its partitions.
type PartitionState struct {
	Status string
	// Next is the next table offset the partition applies: its storage
	// holds every record before it.
	Next int64
}

// Local reads the table from the storage goka's view keeps of it: the view
// builds every partition's storage through Builder, and the service reads
// states, offsets and recovery from Local, never through goka's View. goka's
// View closes its partitions and drops its slice of them as its Run returns,
// unsynchronized with View.Get, Recovered and Stats: a view that failed on its
// own would race with the queries still being answered, and index a nil slice.
// Local instead closes a partition under a lock that every read holds, so a
// read either completes before the close or gets an error.
type Local struct {
	codec goka.Codec
	parts []localPart
}

type localPart struct {
	status atomic.Int32 // a local* status
	mu     sync.RWMutex // held for reading by every read of st, for writing by its close
	st     storage.Storage
	next   int64 // on mu: the next offset when st was closed
}

const (
	localInitializing int32 = iota
	localRecovering
	localRunning
	localStopped
)

var localStatus = [...]string{StatusInitializing, StatusRecovering, StatusRunning, StatusStopped}

// NewLocal returns a table of partitions partitions whose values codec decodes.
func NewLocal(partitions int32, codec goka.Codec) *Local {
	return &Local{codec: codec, parts: make([]localPart, max(partitions, 0))}
}

// ErrPartitionClosed is returned by a read of a partition whose storage was
// closed (the view stopped), or not built yet.
var ErrPartitionClosed = errors.New("views: the table partition is not open")

// Builder wraps b: every storage it builds is the one Local reads.
func (l *Local) Builder(b storage.Builder) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		if partition < 0 || int(partition) >= len(l.parts) {
			return nil, fmt.Errorf("views: table partition %d of %s is outside its %d partitions", partition, topic, len(l.parts))
		}
		st, err := b(topic, partition)
		if err != nil {
			return nil, err
		}
		p := &l.parts[partition]
		p.mu.Lock()
		p.st = st
		p.status.Store(localRecovering)
		p.mu.Unlock()
		return &tracked{Storage: st, part: p}, nil
	}
}

// tracked is a partition's storage as goka's view uses it: it tells Local
// when the partition is recovered and when it closes.
type tracked struct {
	storage.Storage
	part *localPart
}

func (t *tracked) MarkRecovered() error {
	if err := t.Storage.MarkRecovered(); err != nil {
		return err
	}
	t.part.status.CompareAndSwap(localRecovering, localRunning)
	return nil
}

func (t *tracked) Close() error {
	t.part.mu.Lock()
	t.part.status.Store(localStopped)
	if t.part.st == t.Storage {
		t.part.next = nextOffset(t.Storage)
		t.part.st = nil
	}
	t.part.mu.Unlock()
	return t.Storage.Close()
}

// Get returns the decoded value of key (nil if the table has none).
func (l *Local) Get(key string) (any, error) {
	if len(l.parts) == 0 {
		return nil, ErrPartitionClosed
	}
	p := &l.parts[kafka.Murmur2Partition([]byte(key), int32(len(l.parts)))]
	p.mu.RLock()
	if p.st == nil {
		p.mu.RUnlock()
		return nil, ErrPartitionClosed
	}
	data, err := p.st.Get(key)
	p.mu.RUnlock()
	if err != nil || data == nil {
		return nil, err
	}
	return l.codec.Decode(data)
}

// Recovered reports whether every partition is recovered and open.
func (l *Local) Recovered() bool {
	for i := range l.parts {
		if l.parts[i].status.Load() != localRunning {
			return false
		}
	}
	return len(l.parts) > 0
}

// Partition returns partition p's status and next offset (0 before its
// storage is built; where it stopped once closed).
func (l *Local) Partition(p int32) PartitionState {
	if p < 0 || int(p) >= len(l.parts) {
		return PartitionState{Status: StatusInitializing}
	}
	lp := &l.parts[p]
	lp.mu.RLock()
	defer lp.mu.RUnlock()
	ps := PartitionState{Status: localStatus[lp.status.Load()], Next: lp.next}
	if lp.st != nil {
		ps.Next = nextOffset(lp.st)
	}
	return ps
}

// nextOffset is the offset after the last record st applied (goka stores
// that record's offset), 0 if it holds none.
func nextOffset(st storage.Storage) int64 {
	if off, err := st.GetOffset(-1); err == nil && off >= 0 {
		return off + 1
	}
	return 0
}
