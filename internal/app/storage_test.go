package app

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

func TestCorruptLevelDBIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b := levelDB(dir, 1<<20, 0, log)
	st, err := b("table", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Set("usr_1", []byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	manifests, _ := filepath.Glob(filepath.Join(dir, "table.3", "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no MANIFEST written")
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, bytes.Repeat([]byte{0xde, 0xad}, 512), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err = b("table", 3)
	if err != nil {
		t.Fatalf("corrupt state was not rebuilt: %v", err)
	}
	defer st.Close()
	if v, _ := st.Get("usr_1"); v != nil {
		t.Fatalf("corrupt partition kept data %q", v)
	}
	if !strings.Contains(logs.String(), "local state is corrupt") || !strings.Contains(logs.String(), "table.3") {
		t.Fatalf("no log line saying so: %s", logs.String())
	}
}

func TestLockedLevelDBIsNotDeleted(t *testing.T) {
	dir := t.TempDir()
	b := levelDB(dir, 1<<20, 0, slog.New(slog.DiscardHandler))
	st, err := b("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Set("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := b("table", 0); err == nil {
		t.Fatal("a second open of a locked partition succeeded")
	}
	if v, _ := st.Get("k"); string(v) != "v" {
		t.Fatalf("locked partition lost its data: %q", v)
	}
}

// TestDamagedFilesAreRebuilt damages each kind of LevelDB file of a closed
// partition; every damage must be detected at open and the partition rebuilt.
func TestDamagedFilesAreRebuilt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		compact bool // move the data into a table file first
		glob    string
		damage  func(path string) error
	}{
		{"journal bytes flipped", false, "*.log", flipMiddle},
		{"table bytes flipped", true, "*.ldb", flipMiddle},
		{"table deleted", true, "*.ldb", os.Remove},
		{"manifest truncated", true, "MANIFEST-*", func(p string) error { return os.Truncate(p, 10) }},
		{"manifest deleted", true, "MANIFEST-*", os.Remove},
		{"current names no manifest", false, "CURRENT", func(p string) error { return os.WriteFile(p, []byte("MANIFEST-999999\n"), 0o644) }},
		{"current deleted", true, "CURRENT", os.Remove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs bytes.Buffer
			db, err := leveldb.OpenFile(filepath.Join(dir, "table.0"), &levelDBOptions)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2000 {
				if err := db.Put(fmt.Appendf(nil, "usr_%04d", i), bytes.Repeat([]byte{byte(i)}, 100), nil); err != nil {
					t.Fatal(err)
				}
			}
			if tc.compact {
				if err := db.CompactRange(util.Range{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			b := levelDB(dir, 1<<20, 0, slog.New(slog.NewTextHandler(&logs, nil)))
			files, _ := filepath.Glob(filepath.Join(dir, "table.0", tc.glob))
			if len(files) == 0 {
				t.Fatalf("no %s file to damage", tc.glob)
			}
			for _, f := range files {
				if err := tc.damage(f); err != nil {
					t.Fatal(err)
				}
			}
			st, err := b("table", 0)
			if err != nil {
				t.Fatalf("damaged state was not rebuilt: %v", err)
			}
			defer st.Close()
			if v, _ := st.Get("usr_0001"); v != nil {
				t.Fatalf("damaged partition kept data %q", v)
			}
			if !strings.Contains(logs.String(), "local state is corrupt") {
				t.Fatalf("no log line saying so: %s", logs.String())
			}
		})
	}
}

// flipMiddle inverts 64 bytes in the middle of a file.
func flipMiddle(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) < 256 {
		return fmt.Errorf("%s has only %d bytes", path, len(b))
	}
	for i := len(b) / 2; i < len(b)/2+64; i++ {
		b[i] ^= 0xff
	}
	return os.WriteFile(path, b, 0o644)
}

// The write buffer reaches LevelDB: 3 MiB of values flush table files out of
// a 1 MiB memtable and none out of a 16 MiB one.
func TestWriteBufferSize(t *testing.T) {
	tables := func(writeBuffer int) int {
		dir := t.TempDir()
		st, err := levelDB(dir, 1<<20, writeBuffer, slog.New(slog.DiscardHandler))("table", 0)
		if err != nil {
			t.Fatal(err)
		}
		val := bytes.Repeat([]byte("x"), 1024)
		for i := range 3 << 10 {
			if err := st.Set(fmt.Sprintf("usr_%d", i), val); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		ldb, _ := filepath.Glob(filepath.Join(dir, "table.0", "*.ldb"))
		return len(ldb)
	}
	if small, big := tables(1<<20), tables(16<<20); small == 0 || big != 0 {
		t.Fatalf("table files: %d with a 1 MiB write buffer (want > 0), %d with 16 MiB (want 0)", small, big)
	}
}
