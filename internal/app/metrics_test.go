package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/testkafka"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

// scrape returns the samples of /metrics whose name starts with prefix,
// keyed by "name{labels}" as Prometheus prints them.
func scrape(t *testing.T, addr, prefix string) (map[string]float64, error) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// TestProcessAndServeMetrics: after a workload, the process reports zero lag
// on every input partition it owns and a finished restore; serve reports
// the same for its view, a small staleness, and freshness offsets at the
// table's end.
func TestProcessAndServeMetrics(t *testing.T) {
	const partitions = 3
	c := testkafka.Start(t, partitions)
	procAddr, serveAddr := freeAddr(t), freeAddr(t)
	procReg, serveReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	cfg := processConfig(c.Brokers, t.TempDir())
	cfg.HTTPAddr = procAddr
	p, err := app.NewProcessor(cfg, app.Env{Log: slog.New(slog.DiscardHandler), Registry: procReg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	procDone, serveDone := make(chan error, 1), make(chan error, 1)
	go func() { procDone <- p.Run(ctx, nil) }()
	go func() {
		serveDone <- app.Serve(ctx, app.ServeConfig{Brokers: c.Brokers, Memory: true, HTTPAddr: serveAddr, Rules: rules.Default()},
			app.Env{Log: slog.New(slog.DiscardHandler), Registry: serveReg})
	}()
	defer func() {
		cancel()
		for name, ch := range map[string]chan error{"process": procDone, "serve": serveDone} {
			if err := <-ch; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}()

	events, _ := testkafka.Workload(scale(1_000, 3_000), 11, 0)
	c.Produce(t, events, 2, partitions, 0)
	testkafka.Eventually(t, 2*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.CaughtUp(ctx)
	})

	table := string(topics.DetectorTable())
	testkafka.Eventually(t, time.Minute, func() error {
		m, err := scrape(t, procAddr, "fraudwatch_")
		if err != nil {
			return err
		}
		for part := 0; part < partitions; part++ {
			for _, topic := range []string{string(topics.Transactions), string(topics.DetectorLoop())} {
				k := fmt.Sprintf(`fraudwatch_consumer_lag{partition="%d",topic="%s"}`, part, topic)
				if v, ok := m[k]; !ok || v != 0 {
					return fmt.Errorf("process: %s = %v (present %v)", k, v, ok)
				}
			}
			k := fmt.Sprintf(`fraudwatch_restore_remaining_records{partition="%d"}`, part)
			if v, ok := m[k]; !ok || v != 0 {
				return fmt.Errorf("process: %s = %v (present %v)", k, v, ok)
			}
		}
		if v := m["fraudwatch_restore_eta_seconds"]; v != 0 {
			return fmt.Errorf("process: eta %v", v)
		}
		// Every user's first event reads nothing; the state cache answers the rest.
		for _, k := range []string{`fraudwatch_state_reads_total{result="absent"}`, `fraudwatch_state_reads_total{result="cached"}`, "fraudwatch_state_cache_bytes"} {
			if v := m[k]; v <= 0 {
				return fmt.Errorf("process: %s = %v", k, v)
			}
		}
		if _, ok := m[`fraudwatch_leveldb_compactions_total{kind="memtable"}`]; !ok {
			return errors.New("process: no fraudwatch_leveldb_compactions_total")
		}
		// The latency histograms (sharded by partition) count every counted
		// event once, from all partitions.
		counted := m[`fraudwatch_events_total{reason="",result="counted"}`]
		for _, k := range []string{"fraudwatch_processing_latency_seconds_count", "fraudwatch_event_time_lag_seconds_count",
			`fraudwatch_processing_latency_seconds_bucket{le="+Inf"}`} {
			if v := m[k]; counted <= 0 || v != counted {
				return fmt.Errorf("process: %s = %v, %v events counted", k, v, counted)
			}
		}
		for _, k := range []string{`fraudwatch_stage_latency_seconds_count{stage="input"}`, `fraudwatch_stage_latency_seconds_count{stage="loop"}`} {
			if v := m[k]; v <= 0 {
				return fmt.Errorf("process: %s = %v", k, v)
			}
		}
		return nil
	})

	ends, err := c.Admin().ListEndOffsets(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	testkafka.Eventually(t, time.Minute, func() error {
		m, err := scrape(t, serveAddr, "fraudwatch_")
		if err != nil {
			return err
		}
		for part := 0; part < partitions; part++ {
			k := fmt.Sprintf(`fraudwatch_consumer_lag{partition="%d",topic="%s"}`, part, table)
			if v, ok := m[k]; !ok || v != 0 {
				return fmt.Errorf("serve: %s = %v (present %v)", k, v, ok)
			}
			k = fmt.Sprintf(`fraudwatch_restore_remaining_records{partition="%d"}`, part)
			if v, ok := m[k]; !ok || v != 0 {
				return fmt.Errorf("serve: %s = %v (present %v)", k, v, ok)
			}
		}
		if v, ok := m["fraudwatch_view_staleness_seconds"]; !ok || v < 0 || v > 5 {
			return fmt.Errorf("serve: staleness %v (present %v)", v, ok)
		}
		if v := m["fraudwatch_restore_eta_seconds"]; v != 0 {
			return fmt.Errorf("serve: eta %v", v)
		}
		return nil
	})

	// freshness.offset is the table's end offset of the user's partition
	// once the view caught up (the table is quiet now).
	user := events[0].UserID
	part := kafka.Murmur2Partition([]byte(user), partitions)
	want, _ := ends.Lookup(table, part)
	resp, err := http.Get("http://" + serveAddr + "/v1/users/" + user)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u struct {
		Freshness struct {
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		} `json:"freshness"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
		t.Fatal(err)
	}
	if u.Freshness.Partition != part || u.Freshness.Offset != want.Offset || want.Offset == 0 {
		t.Fatalf("freshness %+v, want partition %d offset %d", u.Freshness, part, want.Offset)
	}
	t.Logf("figures: freshness.offset=%d for partition %d", u.Freshness.Offset, part)
}
