package app

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns every sample reg holds by name and labels, as
// `name{label="value"}`.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			out[name] = v
		}
	}
	return out
}

func TestStoreStats(t *testing.T) {
	dir := t.TempDir()
	stats := newStoreStats()
	reg := prometheus.NewRegistry()
	reg.MustRegister(stats)
	open := func(cacheBytes int) *store {
		t.Helper()
		// Memtables of 832 KiB (partition 0's share of 1 MiB): the 2.3 MB
		// written below fill a few.
		st, err := levelDB(dir, cacheBytes, 0, 1<<20, stats, slog.New(slog.DiscardHandler))("table", 0)
		if err != nil {
			t.Fatal(err)
		}
		s := st.(*store)
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkRecovered(); err != nil {
			t.Fatal(err)
		}
		return s
	}

	s := open(16 << 20)
	val := strings.Repeat("v", 100)
	const users = 20000
	for i := range users {
		if err := s.Set(fmt.Sprintf("user-%d", i), []byte(val)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 { // written in batches smaller than the memtable
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 3 {
		if v, err := s.Get(fmt.Sprintf("user-%d", i)); err != nil || string(v) != val {
			t.Fatalf("Get: %q, %v", v, err)
		}
	}
	if v, err := s.Get("nobody"); err != nil || v != nil {
		t.Fatalf("Get of a missing key: %q, %v", v, err)
	}
	got := gathered(t, reg)
	if got[`fraudwatch_state_reads_total{result="cached"}`] != 3 || got[`fraudwatch_state_reads_total{result="absent"}`] != 1 ||
		got[`fraudwatch_state_reads_total{result="stored"}`] != 0 {
		t.Errorf("reads of an open store: %v", got)
	}
	if got["fraudwatch_state_cache_bytes"] < users*100 {
		t.Errorf("fraudwatch_state_cache_bytes = %v with %d values of 100 bytes cached", got["fraudwatch_state_cache_bytes"], users)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The counts of a closed store stay; its cache holds nothing.
	got = gathered(t, reg)
	if got[`fraudwatch_state_reads_total{result="cached"}`] != 3 || got["fraudwatch_state_cache_bytes"] != 0 {
		t.Errorf("after Close: %v", got)
	}
	if got[`fraudwatch_leveldb_compactions_total{kind="memtable"}`] < 1 || got["fraudwatch_leveldb_compaction_seconds_total"] <= 0 {
		t.Errorf("no LevelDB compaction counted: %v", got)
	}

	// Reopened with a cache too small to warm: reads go to LevelDB.
	s = open(1)
	for i := range 2 {
		if v, err := s.Get(fmt.Sprintf("user-%d", users-1-i)); err != nil || string(v) != val {
			t.Fatalf("Get after reopening: %q, %v", v, err)
		}
	}
	got = gathered(t, reg)
	if got[`fraudwatch_state_reads_total{result="stored"}`] != 2 || got[`fraudwatch_state_reads_total{result="cached"}`] != 3 {
		t.Errorf("reads of the reopened store, added to the closed one's: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStoreStatsNil(t *testing.T) {
	var stats *storeStats
	s := newStore(nil, 1<<20, 0)
	stats.open(s) // counts nothing, and does not panic
	stats.close(s, storeCounts{})
}
