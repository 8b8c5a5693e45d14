package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// levelDB builds one LevelDB per table partition under dir. A partition whose
// files are corrupt or incomplete is deleted and reopened empty: goka then
// rebuilds it from the changelog, which holds the same state. Other open
// errors (a lock held by another process, permissions) are returned as they
// are, never "repaired".
func levelDB(dir string, log *slog.Logger) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		path := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
		db, err := leveldb.OpenFile(path, levelDBOptions())
		var missing *lerrors.ErrMissingFiles
		if err != nil && (lerrors.IsCorrupted(err) || errors.As(err, &missing)) {
			log.Warn("local state is corrupt; deleting it and rebuilding the partition from the changelog",
				"path", path, "topic", topic, "partition", partition, "err", err)
			if rerr := os.RemoveAll(path); rerr != nil {
				return nil, fmt.Errorf("app: removing corrupt local state %s: %w", path, rerr)
			}
			db, err = leveldb.OpenFile(path, levelDBOptions())
		}
		if err != nil {
			return nil, fmt.Errorf("app: opening local state %s: %w", path, err)
		}
		return newStore(db), nil
	}
}

// levelDBOptions: a bloom filter, because a user's first read misses and
// would otherwise look into every level.
func levelDBOptions() *opt.Options {
	return &opt.Options{Filter: filter.NewBloomFilter(10)}
}

// offsetKey is where goka's LevelDB storage keeps the table offset; store
// uses the same key and format, so either can open the other's files.
const offsetKey = "__offset"

// recoveryBatch is how many changelog records store buffers while recovering.
const recoveryBatch = 4096

// store is goka's storage.Storage on LevelDB, written for the detector's
// load of one read and one write per record:
//
//   - while the partition recovers, values are written in batches of
//     recoveryBatch records, each batch together with the changelog offset it
//     reaches, so a crash never leaves an offset ahead of the values;
//   - once recovered, the changelog offset goka reports after each acked
//     write is kept in memory and written in the same batch as the next
//     value (one LevelDB write per record instead of two) and on Close.
//
// The stored offset can thus trail the stored values, never lead them: a
// restart replays the changelog from the stored offset, which rewrites those
// values with what the changelog holds, as goka does after any crash.
type store struct {
	db *leveldb.DB

	mu        sync.Mutex
	recovered bool
	batch     leveldb.Batch // recovery writes not yet flushed
	offset    int64         // latest changelog offset reported; valid if hasOffset
	hasOffset bool
	pending   bool // offset not yet written
}

func newStore(db *leveldb.DB) *store { return &store{db: db} }

func (s *store) Open() error { return nil }

func (s *store) Close() error {
	s.mu.Lock()
	err := s.flushLocked()
	s.mu.Unlock()
	return errors.Join(err, s.db.Close())
}

func (s *store) Has(key string) (bool, error) {
	if err := s.flush(); err != nil {
		return false, err
	}
	return s.db.Has([]byte(key), nil)
}

func (s *store) Get(key string) ([]byte, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	v, err := s.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("app: reading %q from local state: %w", key, err)
	}
	return v, nil
}

func (s *store) Set(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recovered {
		s.batch.Put([]byte(key), value)
		if s.batch.Len() >= recoveryBatch {
			return s.flushLocked()
		}
		return nil
	}
	if !s.pending {
		return s.wrap(s.db.Put([]byte(key), value, nil))
	}
	var b leveldb.Batch
	b.Put([]byte(key), value)
	b.Put([]byte(offsetKey), strconv.AppendInt(nil, s.offset, 10))
	s.pending = false
	return s.wrap(s.db.Write(&b, nil))
}

func (s *store) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recovered {
		s.batch.Delete([]byte(key))
		return nil
	}
	return s.wrap(s.db.Delete([]byte(key), nil))
}

func (s *store) GetOffset(def int64) (int64, error) {
	s.mu.Lock()
	if s.hasOffset {
		defer s.mu.Unlock()
		return s.offset, nil
	}
	s.mu.Unlock()
	v, err := s.db.Get([]byte(offsetKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("app: reading the local table offset: %w", err)
	}
	off, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("app: decoding the local table offset %q: %w", v, err)
	}
	return off, nil
}

func (s *store) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset, s.hasOffset, s.pending = offset, true, true
	return nil
}

func (s *store) MarkRecovered() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	s.recovered = true
	return nil
}

// flush writes buffered recovery writes, with the offset they reach.
func (s *store) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *store) flushLocked() error {
	if s.batch.Len() == 0 && !s.pending {
		return nil
	}
	if s.pending {
		s.batch.Put([]byte(offsetKey), strconv.AppendInt(nil, s.offset, 10))
	}
	err := s.db.Write(&s.batch, nil)
	s.batch.Reset()
	s.pending = false
	return s.wrap(err)
}

func (s *store) wrap(err error) error {
	if err != nil {
		return fmt.Errorf("app: writing local state: %w", err)
	}
	return nil
}

func (s *store) Iterator() (storage.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	return &iterator{s.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})}, nil
}

func (s *store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	if len(limit) > 0 {
		return &iterator{s.db.NewIterator(&util.Range{Start: start, Limit: limit}, nil)}, nil
	}
	return &iterator{s.db.NewIterator(util.BytesPrefix(start), nil)}, nil
}

// iterator skips the offset key, as goka's does.
type iterator struct{ it ldbiter.Iterator }

func (i *iterator) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}
func (i *iterator) Err() error             { return i.it.Error() }
func (i *iterator) Key() []byte            { return i.it.Key() }
func (i *iterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *iterator) Release()               { i.it.Release() }
func (i *iterator) Seek(key []byte) bool   { return i.it.Seek(key) }
