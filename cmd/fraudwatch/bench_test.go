package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for fraudwatch when "fraudwatch
// bench" re-executes itself to run its processors ("bench --child ROLE").
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestBenchSmoke runs "fraudwatch bench" on a tiny workload: it must print
// the table and write a JSON document with every figure. Speed is not checked.
func TestBenchSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	file := filepath.Join(t.TempDir(), "bench.json")
	var out, errb bytes.Buffer
	code := run(ctx, []string{"bench", "--events", "2000", "--users", "200", "--partitions", "2", "--clients", "4",
		"--latency-duration", "1s", "--query-duration", "500ms", "--write-buffer-mb", "8", "--repeat", "2", "--json", file}, strings.NewReader(""), &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d:\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "throughput") || !strings.Contains(errb.String(), "bench: ") {
		t.Errorf("want a table on stdout and progress on stderr:\n%s\n%s", out.String(), errb.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"throughput_eps", "baseline_throughput_eps", "restore_rps", "baseline_restore_rps",
		"alert_latency_ms", "query_latency_ms", "rss_bytes_per_million_users", "machine", "ratios"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	// the children were started with the setting (an unknown flag would fail them)
	if cfg, _ := doc["config"].(map[string]any); cfg["write_buffer_mb"] != 8.0 || cfg["repeat"] != 2.0 {
		t.Errorf("config = %v, want write_buffer_mb 8 and repeat 2", cfg)
	}
	// both runs are kept next to their medians
	if runs, _ := doc["runs"].([]any); len(runs) != 2 {
		t.Errorf("runs = %d, want 2", len(runs))
	}
	if !strings.Contains(out.String(), "medians of 2 runs") || !strings.Contains(errb.String(), "run 2 of 2") {
		t.Errorf("want the medians named in the table and the runs in the progress:\n%s", out.String())
	}
}
