package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
