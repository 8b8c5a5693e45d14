package bench

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestTableRates: each side's latency runs go at its own rate, and the
// table's unit column names both rates, or only fraudwatch's when the
// baseline was skipped.
func TestTableRates(t *testing.T) {
	for _, tc := range []struct {
		baseline   bool
		want, lack []string
	}{
		{baseline: true, want: []string{"ms @ 23,620/s / 10,589", "ms @ 9,778 requests/s / 10,175, 32 clients"}},
		{baseline: false, want: []string{"ms @ 23,620/s", "ms @ 9,778 requests/s, 32 clients"}, lack: []string{"/s / ", "requests/s / "}},
	} {
		r := &Result{ThroughputEPS: 47241, BaselineThroughputEPS: 21178,
			AlertLatencyMS:         Percentiles{P50: 38.9, P99: 200.6, P999: 233.5, Samples: 4367, RateEPS: 23620.3},
			BaselineAlertLatencyMS: Percentiles{P50: 51.5, P99: 303.3, P999: 347.9, Samples: 2028, RateEPS: 10589.1},
			QueryLatencyMS:         Percentiles{P50: 0.18, P99: 3.31, P999: 9.3, Samples: 97777, RateEPS: 9777.7},
			BaselineQueryLatencyMS: Percentiles{P50: 0.17, P99: 3.98, P999: 9.95, Samples: 101752, RateEPS: 10175.2},
			Config:                 RunInfo{Baseline: tc.baseline, Clients: 32, Repeat: 1}}
		r.finish()
		var b bytes.Buffer
		if err := r.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		rows := map[string]string{}
		for _, l := range strings.Split(b.String(), "\n") {
			for _, name := range []string{"alert latency p99", "query latency p99"} {
				if strings.Contains(l, name) {
					rows[name] = l
				}
			}
		}
		got := rows["alert latency p99"] + "\n" + rows["query latency p99"]
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("baseline %v: rows lack %q:\n%s", tc.baseline, w, got)
			}
		}
		for _, l := range tc.lack {
			if strings.Contains(got, l) {
				t.Errorf("baseline %v: rows hold %q:\n%s", tc.baseline, l, got)
			}
		}
	}
}

// TestTableQueryRates: each of --query-rates has a row with both sides'
// p50 / p99 / p999 at that rate.
func TestTableQueryRates(t *testing.T) {
	r := &Result{QueryLatencyByRateMS: []Percentiles{{P50: 0.12, P99: 0.8, P999: 2.5, Samples: 150000, RateEPS: 15000}},
		BaselineQueryLatencyByRateMS: []Percentiles{{P50: 0.2, P99: 1.9, P999: 7, Samples: 150000, RateEPS: 15000}},
		Config:                       RunInfo{Baseline: true, Clients: 32, Repeat: 1}}
	r.finish()
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`query p50 / p99 / p999 @ 15,000/s +0\.12 / 0\.80 / 2\.50 +0\.20 / 1\.90 / 7\.00 .*ms @ 15,000 requests/s \(--query-rates\), 32 clients`)
	if !want.MatchString(b.String()) {
		t.Errorf("no row for the rate 15,000/s matching %s:\n%s", want, b.String())
	}
}
