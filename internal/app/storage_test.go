package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	gokastorage "github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCorruptLevelDBIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b := levelDB(dir, 1<<20, 0, 0, nil, log)
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
	b := levelDB(dir, 1<<20, 0, 0, nil, slog.New(slog.DiscardHandler))
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
			b := levelDB(dir, 1<<20, 0, 0, nil, slog.New(slog.NewTextHandler(&logs, nil)))
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
		st, err := levelDB(dir, 1<<20, 0, writeBuffer, nil, slog.New(slog.DiscardHandler))("table", 0)
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

// A processor's write buffer defaults to DefaultWriteBufferMB and a view's
// to DefaultServeWriteBufferMB; a size given is kept.
func TestWriteBufferDefaults(t *testing.T) {
	for _, tc := range []struct{ mb, def, want int }{
		{0, DefaultWriteBufferMB, 6 << 20},
		{0, DefaultServeWriteBufferMB, 4 << 20},
		{2, DefaultWriteBufferMB, 2 << 20},
	} {
		if got := mibOr(tc.mb, tc.def); got != tc.want {
			t.Errorf("mibOr(%d, %d) = %d, want %d", tc.mb, tc.def, got, tc.want)
		}
	}
}

// fakeChangelog is a replayer over records held in memory: offsets 0..n-1,
// key k(i%50), value i, every 7th a tombstone. failAt > 0 fails the read
// after the batch that reaches that offset.
type fakeChangelog struct {
	n, failAt int
	froms     []int64
}

func (f *fakeChangelog) read(ctx context.Context, topic string, partition int32, from int64, started func(start, end int64), apply func([]*kgo.Record) error) error {
	f.froms = append(f.froms, from)
	if started != nil {
		started(max(from, 0), int64(f.n))
	}
	var batch []*kgo.Record
	for i := max(from, 0); i < int64(f.n); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := &kgo.Record{Topic: topic, Partition: partition, Offset: i, Key: []byte(fmt.Sprintf("k%d", i%50)), Value: []byte(strconv.FormatInt(i, 10))}
		if i%7 == 6 {
			r.Value = nil
		}
		batch = append(batch, r)
		if len(batch) == 64 || i == int64(f.n)-1 {
			if err := apply(batch); err != nil {
				return err
			}
			batch = nil
			if f.failAt > 0 && i >= int64(f.failAt) {
				return errors.New("injected fetch error")
			}
		}
	}
	return nil
}

// wantAt is the value of key k(j) after the first upTo records: the last
// write of it, nil if that was a tombstone or there was none.
func wantAt(j, upTo int) []byte {
	last := -1
	for i := j; i < upTo; i += 50 {
		last = i
	}
	if last < 0 || last%7 == 6 {
		return nil
	}
	return []byte(strconv.Itoa(last))
}

// TestReplayedStore: the changelog read ahead of goka leaves the store as
// goka's recovery would (values, tombstones, the offset of the last record),
// a reopened store reads on from after its stored offset, and a read that
// fails part way leaves a consistent prefix for goka to continue from.
func TestReplayedStore(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	check := func(t *testing.T, st gokastorage.Storage, upTo int) {
		t.Helper()
		for j := range 50 {
			v, err := st.Get(fmt.Sprintf("k%d", j))
			if err != nil {
				t.Fatal(err)
			}
			if want := wantAt(j, upTo); !bytes.Equal(v, want) || (v == nil) != (want == nil) {
				t.Fatalf("after %d records k%d = %q, want %q", upTo, j, v, want)
			}
		}
		if off, err := st.GetOffset(-3); err != nil || off != int64(upTo-1) {
			t.Fatalf("offset %d, %v; want %d", off, err, upTo-1)
		}
	}
	dir := t.TempDir()
	f := &fakeChangelog{n: 5000}
	b := replayed(context.Background(), levelDB(dir, 4<<10, 0, 0, nil, log), f.read, nil, log) // small cache: write-backs during the replay
	st, err := b("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	check(t, st, 5000)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	f.n = 6000
	st, err = b("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	check(t, st, 6000)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.froms) != 2 || f.froms[0] != -1 || f.froms[1] != 5000 {
		t.Fatalf("reads started at %v, want [-1 5000]", f.froms)
	}

	t.Run("fails part way", func(t *testing.T) {
		f := &fakeChangelog{n: 5000, failAt: 2000}
		st, err := replayed(context.Background(), levelDB(t.TempDir(), 4<<10, 0, 0, nil, log), f.read, nil, log)("table", 0)
		if err != nil {
			t.Fatalf("a failed read is not fatal (goka reads the rest): %v", err)
		}
		defer st.Close()
		check(t, st, 2048) // the batch that passed 2000 ends at offset 2047
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := replayed(ctx, levelDB(t.TempDir(), 4<<10, 0, 0, nil, log), (&fakeChangelog{n: 10}).read, nil, log)("table", 0); err == nil {
			t.Fatal("no error after the processor's context ended")
		}
	})
}

// Partitions get memtables of different sizes, the given size on average,
// so that their flushes and compactions drift apart.
func TestStaggeredWriteBuffer(t *testing.T) {
	for _, base := range []int{4 << 20, 16 << 20, 0} {
		sizes, sum := map[int]bool{}, 0
		for p := range int32(4) {
			n := staggeredWriteBuffer(base, p)
			sizes[n] = true
			sum += n
			if n != staggeredWriteBuffer(base, p+4) {
				t.Errorf("base %d: partition %d and %d differ", base, p, p+4)
			}
		}
		want := base
		if want == 0 {
			want = 4 << 20 // goleveldb's default
		}
		if len(sizes) != 4 || sum != 4*want {
			t.Errorf("base %d: sizes %v (sum %d), want four apart summing to %d", base, sizes, sum, 4*want)
		}
	}
}
