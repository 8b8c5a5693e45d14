package bench

import (
	"strings"
	"testing"
)

// TestMedian: every figure, percentile, stage and ratio of a repeated run is
// the median of the runs (mean of the middle two for an even count), the
// targets are judged on the medians, and the runs are kept.
func TestMedian(t *testing.T) {
	mk := func(eps, ratio, p99 float64, users int, rss int64) *Result {
		r := &Result{ThroughputEPS: eps, BaselineThroughputEPS: eps / ratio, UsersHeld: users, PeakRSSBytes: rss,
			RSSBytesPerMillionUsers: float64(rss) * 4,
			AlertLatencyMS:          Percentiles{P50: p99 / 4, P99: p99, P999: p99 * 2, Samples: users, RateEPS: eps / 2},
			StageLatencyMS:          map[string]Percentiles{"loop": {P50: p99 / 10, P99: p99 / 2, Samples: users}},
			QueryLatencyByRateMS:    []Percentiles{{P99: p99 / 100, RateEPS: 1000}, {P99: p99 / 10, RateEPS: 2000}},
			Config:                  RunInfo{Baseline: true, Repeat: 1, WallSeconds: 100}, Notes: []string{"a note"}}
		r.finish()
		return r
	}
	runs := []*Result{mk(100, 3.5, 40, 10, 100<<20), mk(300, 1.5, 900, 30, 50<<20), mk(200, 3.1, 60, 20, 200<<20)}
	m := Median(runs)
	if m.ThroughputEPS != 200 || m.UsersHeld != 20 || m.PeakRSSBytes != 100<<20 {
		t.Errorf("medians: eps %v, users %d, rss %d; want 200, 20, 100 MiB", m.ThroughputEPS, m.UsersHeld, m.PeakRSSBytes)
	}
	if m.AlertLatencyMS.P99 != 60 || m.AlertLatencyMS.P50 != 15 || m.AlertLatencyMS.Samples != 20 || m.AlertLatencyMS.RateEPS != 100 {
		t.Errorf("alert latency %+v", m.AlertLatencyMS)
	}
	if got := m.StageLatencyMS["loop"]; got.P99 != 30 || got.Samples != 20 {
		t.Errorf("loop stage %+v, want p99 30 over 20", got)
	}
	if got := m.QueryLatencyByRateMS; len(got) != 2 || got[0].P99 != 0.6 || got[0].RateEPS != 1000 || got[1].P99 != 6 || got[1].RateEPS != 2000 {
		t.Errorf("query latency by rate %+v, want p99 0.6 at 1,000/s and 6 at 2,000/s", got)
	}
	if m.BaselineQueryLatencyByRateMS != nil {
		t.Errorf("baseline query latency by rate %+v, want none (no run had them)", m.BaselineQueryLatencyByRateMS)
	}
	if got := m.Ratios["throughput_eps"]; got < 3.1-1e-9 || got > 3.1+1e-9 {
		t.Errorf("throughput ratio %v, want the median run ratio 3.1 (not the ratio of medians)", got)
	}
	if !m.Targets["throughput_at_least_3x_baseline"] || m.Targets["alert_latency_p99_under_50ms"] {
		t.Errorf("targets %v, want throughput met (median ratio 3.1) and alert latency not (median p99 60)", m.Targets)
	}
	if m.Config.Repeat != 3 || m.Config.WallSeconds != 300 || len(m.Runs) != 3 || m.Runs[1].ThroughputEPS != 300 {
		t.Errorf("config %+v, %d runs", m.Config, len(m.Runs))
	}
	if n := m.Notes[len(m.Notes)-1]; !strings.Contains(n, "median of 3 runs") || len(runs[0].Notes) != 1 {
		t.Errorf("notes %q; the first run's notes %q", m.Notes, runs[0].Notes)
	}
	even := Median(runs[:2])
	if even.ThroughputEPS != 200 || even.AlertLatencyMS.P99 != 470 {
		t.Errorf("two runs: eps %v, p99 %v; want the means of the two, 200 and 470", even.ThroughputEPS, even.AlertLatencyMS.P99)
	}
}
