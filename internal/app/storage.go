package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// levelDB builds one LevelDB per table partition under dir. A partition whose
// files are corrupt or incomplete is deleted and reopened empty: goka then
// rebuilds it from the changelog, which holds the same state. Other open
// errors (a lock held by another process, permissions) are returned as they
// are, never "repaired".
func levelDB(dir string, log *slog.Logger) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		path := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
		db, err := leveldb.OpenFile(path, &opt.Options{})
		var missing *lerrors.ErrMissingFiles
		if err != nil && (lerrors.IsCorrupted(err) || errors.As(err, &missing)) {
			log.Warn("local state is corrupt; deleting it and rebuilding the partition from the changelog",
				"path", path, "topic", topic, "partition", partition, "err", err)
			if rerr := os.RemoveAll(path); rerr != nil {
				return nil, fmt.Errorf("app: removing corrupt local state %s: %w", path, rerr)
			}
			db, err = leveldb.OpenFile(path, &opt.Options{})
		}
		if err != nil {
			return nil, fmt.Errorf("app: opening local state %s: %w", path, err)
		}
		return storage.New(db)
	}
}
