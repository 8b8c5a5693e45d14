package app

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
)

func TestCorruptLevelDBIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b := levelDB(dir, log)
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
	b := levelDB(dir, slog.New(slog.DiscardHandler))
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

// TestStoreOffsets checks that the stored offset never leads the stored
// values, and that goka's own LevelDB storage reads what store wrote.
func TestStoreOffsets(t *testing.T) {
	dir := t.TempDir()
	b := levelDB(dir, slog.New(slog.DiscardHandler))
	st, err := b("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	// recovering: values and offsets buffered together
	for i := 0; i < recoveryBatch+10; i++ {
		if err := st.Set(fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := st.SetOffset(int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(fmt.Sprintf("k%d", recoveryBatch+9)); err != nil || string(v) != "v" {
		t.Fatalf("Get after recovery = %q, %v", v, err)
	}
	// running: the offset reported after an acked write goes with the next value
	if err := st.Set("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffset(5000); err != nil {
		t.Fatal(err)
	}
	if err := st.Set("b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffset(5001); err != nil {
		t.Fatal(err)
	}
	raw := st.(*store).db
	if v, _ := raw.Get([]byte(offsetKey), nil); string(v) != "5000" {
		t.Errorf("stored offset %q before Close, want 5000 (written with the next value)", v)
	}
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.Next() {
		if string(it.Key()) == offsetKey {
			t.Error("iterator returned the offset key")
		}
		n++
	}
	it.Release()
	if n != recoveryBatch+12 {
		t.Errorf("iterated %d keys, want %d", n, recoveryBatch+12)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := leveldb.OpenFile(filepath.Join(dir, "table.0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := storage.New(db)
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	if off, err := gs.GetOffset(-1); err != nil || off != 5001 {
		t.Errorf("goka storage reads offset %d, %v; want 5001", off, err)
	}
}
