package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fraudwatch/fraudwatch/internal/bench"
	"github.com/fraudwatch/fraudwatch/internal/bench/baseline"
	"github.com/fraudwatch/fraudwatch/internal/testkafka"
	"github.com/fraudwatch/fraudwatch/internal/topics"
	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// envChild makes the test binary run one child of the benchmark.
const envChild = "FRAUDWATCH_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(envChild); v != "" {
		flag.Parse()
		var c bench.ChildConfig
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := bench.RunChild(ctx, c, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		stop()
		if err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func spawner(c bench.ChildConfig) *exec.Cmd {
	b, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+string(b))
	return cmd
}

// testWriter logs the progress lines, and keeps them if lines is set.
type testWriter struct {
	t     *testing.T
	mu    *sync.Mutex
	lines *[]string
}

func (w testWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	w.t.Log(line)
	if w.lines != nil {
		w.mu.Lock()
		*w.lines = append(*w.lines, line)
		w.mu.Unlock()
	}
	return len(p), nil
}

// TestSmoke runs the whole benchmark on a tiny workload and checks that every
// figure is there and sane; it asserts nothing about speed. It runs on the
// embedded broker, or with FRAUDWATCH_TEST_BROKERS on that real cluster as
// "bench --brokers" does, after deleting the topics and groups of both sides.
func TestSmoke(t *testing.T) {
	brokers := testkafka.RealBrokers()
	if brokers != nil {
		testkafka.Clean(t, brokers, []string{string(topics.Detector), string(baseline.Group)},
			append(topics.Names(), baseline.Topics()...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	profiles, timelines := t.TempDir(), filepath.Join(t.TempDir(), "timeline")
	var progress []string
	var mu sync.Mutex
	res, err := bench.Run(ctx, bench.Config{Brokers: brokers, Events: 3000, Users: 300, Partitions: 2, Clients: 4, Repeat: 1,
		LatencyDuration: time.Second, LatencyWarmup: 500 * time.Millisecond, QueryDuration: 500 * time.Millisecond, QueryRates: []float64{100, 300}, DataDir: t.TempDir(), Seed: 1,
		ProducerLinger: bench.DefaultProducerLinger, ProfileDir: profiles, TimelineDir: timelines, Spawn: spawner, Progress: testWriter{t, &mu, &progress}})
	if err != nil {
		t.Fatal(err)
	}
	// Each side's latency run (1.5 s) says every second how many events it
	// sent and how far behind the processor is.
	for _, side := range []string{"fraudwatch", "baseline"} {
		re := regexp.MustCompile(`^bench: ` + side + ` alert latency: [0-9,]+/[0-9,]+ events sent, lag [0-9,]+ records \(input [0-9,]+, loop [0-9,]+\)$`)
		if !slices.ContainsFunc(progress, re.MatchString) {
			t.Errorf("no progress line of %s's latency run matches %v", side, re)
		}
	}
	for name, p := range map[string]bench.Percentiles{"fraudwatch-alerts.csv": res.AlertLatencyMS, "baseline-alerts.csv": res.BaselineAlertLatencyMS,
		"fraudwatch-queries.csv": res.QueryLatencyMS, "baseline-queries.csv": res.BaselineQueryLatencyMS} {
		checkTimeline(t, filepath.Join(timelines, name), p)
	}
	checkProcessorTimeline(t, filepath.Join(timelines, "fraudwatch-processor.csv"), res.AlertLatencyMS.Samples)
	if _, err := os.Stat(filepath.Join(timelines, "baseline-processor.csv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("baseline-processor.csv: %v, want none (the baseline has no metrics)", err)
	}
	for _, side := range []string{"fraudwatch", "baseline"} {
		for _, run := range []string{"throughput", "latency", "latency-harness", "restore", "serve"} {
			name := filepath.Join(profiles, side+"-"+run+".cpu.pprof")
			if fi, err := os.Stat(name); err != nil || fi.Size() == 0 {
				t.Errorf("profile %s: %v", name, err)
			}
		}
	}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"throughput_eps", "baseline_throughput_eps", "restore_rps", "baseline_restore_rps",
		"rss_bytes_per_million_users", "cpu_us_per_event", "latency_cpu_us_per_event", "baseline_latency_cpu_us_per_event", "restore_peak_rss_bytes", "baseline_restore_peak_rss_bytes",
		"query_peak_rss_bytes", "baseline_query_peak_rss_bytes"} {
		if v, ok := doc[k].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v, want a number > 0", k, doc[k])
		}
	}
	for _, k := range []string{"alert_latency_ms", "query_latency_ms", "query_saturated_latency_ms"} {
		p, ok := doc[k].(map[string]any)
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		p50, _ := p["p50"].(float64)
		p99, _ := p["p99"].(float64)
		p999, _ := p["p999"].(float64)
		if !(p50 > 0 && p50 <= p99 && p99 <= p999) {
			t.Errorf("%s = %v, want 0 < p50 <= p99 <= p999", k, p)
		}
	}
	// The query latency is measured at half the most requests/s.
	if got, want := res.QueryLatencyMS.RateEPS, res.QueryRPS/2; !(want > 0) || got != want {
		t.Errorf("query latency measured at %v requests/s, want half of the %v measured", got, res.QueryRPS)
	}
	// Each of --query-rates is measured at its rate, in order, on both sides.
	for side, by := range map[string][]bench.Percentiles{"fraudwatch": res.QueryLatencyByRateMS, "baseline": res.BaselineQueryLatencyByRateMS} {
		if len(by) != 2 {
			t.Errorf("%s: %d query latencies by rate, want 2", side, len(by))
			continue
		}
		for i, want := range []float64{100, 300} {
			if p := by[i]; p.RateEPS != want || p.Samples == 0 || !(p.P50 > 0 && p.P50 <= p.P99 && p.P99 <= p.P999) {
				t.Errorf("%s: query latency at rate %d = %+v, want at %v requests/s, samples > 0 and 0 < p50 <= p99 <= p999", side, i, p, want)
			}
		}
	}
	if by, _ := doc["query_latency_by_rate_ms"].([]any); len(by) != 2 {
		t.Errorf("query_latency_by_rate_ms = %v, want 2 entries", doc["query_latency_by_rate_ms"])
	}
	stages, _ := doc["stage_latency_ms"].(map[string]any)
	for _, st := range []string{detector.StageInput, detector.StageLoop, detector.StageAlertAck} {
		p, _ := stages[st].(map[string]any)
		n, _ := p["samples"].(float64)
		p50, _ := p["p50"].(float64)
		p99, _ := p["p99"].(float64)
		if !(n > 0 && p50 > 0 && p50 <= p99) {
			t.Errorf("stage_latency_ms.%s = %v, want samples > 0 and 0 < p50 <= p99", st, p)
		}
	}
	// The processor's local state over the latency run: 300 users fit its
	// cache, so LevelDB answers few reads, if any.
	// Its collections: the processor serves the Go runtime's metrics.
	for k, max := range map[string]float64{"latency_state_stored_read_share": 1, "latency_leveldb_compactions": 1e6, "latency_leveldb_compaction_seconds": 60,
		"latency_gc_cycles": 1e6, "latency_gc_pause_ms": 60e3} {
		if v, ok := doc[k].(float64); !ok || v < 0 || v > max {
			t.Errorf("%s = %v, want a number in [0, %v]", k, doc[k], max)
		}
	}
	// The lag over the latency run: the last sample, taken as the last event
	// was acked, finds records not yet committed (both sides commit every
	// second under load), and the most sampled is at least the last.
	for _, side := range []string{"", "baseline_"} {
		most, ok1 := doc[side+"latency_max_lag_records"].(float64)
		end, ok2 := doc[side+"latency_end_lag_records"].(float64)
		if !ok1 || !ok2 || end <= 0 || most < end {
			t.Errorf("%slatency_max_lag_records = %v, %slatency_end_lag_records = %v, want numbers with max >= end > 0", side, doc[side+"latency_max_lag_records"], side, doc[side+"latency_end_lag_records"])
		}
	}
	if c, _ := doc["config"].(map[string]any); c["latency_warmup_seconds"] != 0.5 || c["producer_linger_ms"] != 5.0 {
		t.Errorf("config = %v, want latency_warmup_seconds 0.5 and producer_linger_ms 5", c)
	}
	wantBroker := strings.Join(brokers, ",")
	if brokers == nil {
		wantBroker = "embedded (kfake, in the harness process)"
	}
	if got := res.Config.Broker; got != wantBroker {
		t.Errorf("config broker %q, want %q", got, wantBroker)
	}
	m, _ := doc["machine"].(map[string]any)
	if c, _ := m["cores"].(float64); c < 1 {
		t.Errorf("machine = %v, want cores >= 1", m)
	}
	if got, want := res.Ratios["throughput_eps"], res.ThroughputEPS/res.BaselineThroughputEPS; got != want {
		t.Errorf("throughput ratio %v, want %v", got, want)
	}
	if got, want := res.Ratios["restore_rps"], res.RestoreRPS/res.BaselineRestoreRPS; got != want {
		t.Errorf("restore ratio %v, want %v", got, want)
	}
	if res.UsersHeld < 250 || res.UsersHeld > 300+3 {
		t.Errorf("users held %d, want about 300", res.UsersHeld)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"throughput", "alert latency p99", "restore rate", "query latency p99", "saturated query p50 / p99", "peak RSS per 1M users", "restore peak RSS", "stage loop p50 / p99", "CPU per event, live", "lag max / at the end", "machine:"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	t.Logf("\n%s", table.String())
}

func TestConfigValidate(t *testing.T) {
	if err := (bench.Config{}).Validate(); err == nil {
		t.Error("empty config validated")
	}
	err := (bench.Config{LatencyWarmup: -time.Second}).Validate()
	if err == nil || !strings.Contains(err.Error(), "--latency-warmup must be >= 0") {
		t.Errorf("negative warm-up: %v", err)
	}
	for _, d := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		err = (bench.Config{ProducerLinger: d}).Validate()
		if err == nil || !strings.Contains(err.Error(), "--producer-linger must be in 0..1s") {
			t.Errorf("producer linger of %v: %v", d, err)
		}
	}
	err = (bench.Config{QueryRate: -1}).Validate()
	if err == nil || !strings.Contains(err.Error(), "--query-rate must be >= 0") {
		t.Errorf("negative query rate: %v", err)
	}
	err = (bench.Config{QueryRates: []float64{100, -5}}).Validate()
	if err == nil || !strings.Contains(err.Error(), "--query-rates must all be > 0, got -5") {
		t.Errorf("a negative rate of --query-rates: %v", err)
	}
	err = (bench.Config{FetchWait: 100 * time.Microsecond}).Validate()
	if err == nil || !strings.Contains(err.Error(), "--fetch-wait must be between 1ms and 1s") {
		t.Errorf("fetch wait of 100µs: %v", err)
	}
}

// checkProcessorTimeline checks the processor's timeline: its header, a row
// per quarter second of the latency run (1.5 s and its drain), rows in time
// order, and at least as many events through the loop stage as the run had
// alerts (every alert is of a burst user's re-keyed event).
func checkProcessorTimeline(t *testing.T, name string, alerts int) {
	t.Helper()
	lines := readLines(t, name)
	if lines == nil {
		return
	}
	const header = "unix_us,processor_cpu_ms,harness_cpu_ms,harness_sys_ms,harness_faults,harness_gc_cycles,harness_released_mb,input_events,input_p50_ms,input_p99_ms,loop_events,loop_p50_ms,loop_p99_ms," +
		"alert_ack_events,alert_ack_p99_ms,stored_reads,compactions,compaction_ms,gc_cycles,gc_pause_ms"
	if lines[0] != header || len(lines) < 5 {
		t.Errorf("%s: header %q and %d rows, want %s and at least 4", name, lines[0], len(lines)-1, header)
		return
	}
	var prev, loop int64
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) != 20 {
			t.Errorf("%s: row %q has %d fields, want 20", name, l, len(f))
			return
		}
		at, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.ParseInt(f[10], 10, 64)
		if err1 != nil || err2 != nil || at <= prev {
			t.Errorf("%s: row %q after %d", name, l, prev)
			return
		}
		prev, loop = at, loop+n
	}
	if loop < int64(alerts) || alerts == 0 {
		t.Errorf("%s: %d events through the loop stage, for %d alerts", name, loop, alerts)
	}
}

// checkTimeline checks a timeline file: one row per latency of p, in the
// order they started, none below zero and the largest not below p's p999.
func checkTimeline(t *testing.T, name string, p bench.Percentiles) {
	t.Helper()
	lines := readLines(t, name)
	if lines == nil {
		return
	}
	if lines[0] != "sent_unix_us,latency_us" || len(lines)-1 != p.Samples {
		t.Errorf("%s: header %q and %d rows, want sent_unix_us,latency_us and %d", name, lines[0], len(lines)-1, p.Samples)
		return
	}
	var prev, maxLat int64
	for _, l := range lines[1:] {
		var sent, lat int64
		if _, err := fmt.Sscanf(l, "%d,%d", &sent, &lat); err != nil || sent < prev || lat < 0 {
			t.Errorf("%s: row %q after a start at %d (%v)", name, l, prev, err)
			return
		}
		prev, maxLat = sent, max(maxLat, lat)
	}
	if got := float64(maxLat) / 1000; got+0.001 < p.P999 {
		t.Errorf("%s: largest latency %.3f ms, below the figures' p999 %.3f", name, got, p.P999)
	}
}

// readLines reads a timeline file's lines; nil (with an error reported) if
// it cannot be read.
func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Error(err)
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}
