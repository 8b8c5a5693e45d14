package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/processors/detector"
)

// Result is what "fraudwatch bench" reports; it is also the --json document.
// Each figure of fraudwatch has its baseline twin; Ratios holds
// fraudwatch ÷ baseline for each of them (higher is better for rates, lower
// for latencies, CPU and memory).
type Result struct {
	ThroughputEPS         float64 `json:"throughput_eps"`
	BaselineThroughputEPS float64 `json:"baseline_throughput_eps"`
	CPUMicrosPerEvent     float64 `json:"cpu_us_per_event"`
	BaselineCPUMicros     float64 `json:"baseline_cpu_us_per_event"`
	ThroughputSeconds     float64 `json:"throughput_seconds"`
	BaselineThroughputSec float64 `json:"baseline_throughput_seconds"`

	AlertLatencyMS         Percentiles `json:"alert_latency_ms"`
	BaselineAlertLatencyMS Percentiles `json:"baseline_alert_latency_ms"`
	// StageLatencyMS is where fraudwatch's events spent their time in the
	// latency run, by stage of detector.StageLatency (input, loop,
	// alert_ack): every event of the timed run, estimated from the
	// processor's histogram buckets.
	StageLatencyMS map[string]Percentiles `json:"stage_latency_ms,omitempty"`
	// LatencyCPUMicrosPerEvent is the processor's CPU per event over the
	// timed latency run (live traffic at its rate, until drained), against
	// CPUMicrosPerEvent off a backlog.
	LatencyCPUMicrosPerEvent float64 `json:"latency_cpu_us_per_event"`
	BaselineLatencyCPUMicros float64 `json:"baseline_latency_cpu_us_per_event"`
	// LatencyStoredReadShare is the share of fraudwatch's state reads over
	// the timed latency run that LevelDB answered (the user was not in the
	// state cache); LatencyCompactions and LatencyCompactionSeconds are
	// LevelDB's compactions over it and the time they took. From the
	// processor's metrics (fraudwatch_state_reads_total,
	// fraudwatch_leveldb_compactions_total and _compaction_seconds_total).
	LatencyStoredReadShare   float64 `json:"latency_state_stored_read_share"`
	LatencyCompactions       float64 `json:"latency_leveldb_compactions"`
	LatencyCompactionSeconds float64 `json:"latency_leveldb_compaction_seconds"`
	// LatencyGCCycles and LatencyGCPauseMS are the processor's garbage
	// collections over the timed latency run and their stop-the-world
	// pauses in total (go_gc_duration_seconds).
	LatencyGCCycles  float64 `json:"latency_gc_cycles"`
	LatencyGCPauseMS float64 `json:"latency_gc_pause_ms"`
	// LatencyMaxLagRecords is the most records of the input and loop topics
	// the processor's group had not committed, sampled every second over the
	// timed latency run and as its last event was sent; LatencyEndLagRecords
	// is that last sample. Both sides commit every second at most, so up to
	// a second's input on each topic is a lag of commits; more says the
	// processor fell behind the rate.
	LatencyMaxLagRecords         int64 `json:"latency_max_lag_records"`
	BaselineLatencyMaxLagRecords int64 `json:"baseline_latency_max_lag_records"`
	LatencyEndLagRecords         int64 `json:"latency_end_lag_records"`
	BaselineLatencyEndLagRecords int64 `json:"baseline_latency_end_lag_records"`

	RestoreSeconds         float64 `json:"restore_seconds"`
	RestoreRecords         int64   `json:"restore_records"`
	RestoreRPS             float64 `json:"restore_rps"`
	BaselineRestoreSeconds float64 `json:"baseline_restore_seconds"`
	BaselineRestoreRecords int64   `json:"baseline_restore_records"`
	BaselineRestoreRPS     float64 `json:"baseline_restore_rps"`
	// RestorePeakRSSBytes is the restoring process's peak RSS, start to ready.
	RestorePeakRSSBytes         int64 `json:"restore_peak_rss_bytes"`
	BaselineRestorePeakRSSBytes int64 `json:"baseline_restore_peak_rss_bytes"`
	// ReadySeconds1MUsers is the time to ready for 1M users: measured when
	// the run held at least 1M users, else estimated as 1M changelog records
	// (one per user, compacted) at the measured restore rate.
	ReadySeconds1MUsers          float64 `json:"time_to_ready_1m_users_seconds"`
	BaselineReadySeconds1MUsers  float64 `json:"baseline_time_to_ready_1m_users_seconds"`
	ReadySeconds1MUsersEstimated bool    `json:"time_to_ready_1m_users_estimated"`

	// QueryPeakRSSBytes is the view service's peak RSS, from its start
	// (recovering the table) to the end of its queries.
	QueryPeakRSSBytes         int64 `json:"query_peak_rss_bytes"`
	BaselineQueryPeakRSSBytes int64 `json:"baseline_query_peak_rss_bytes"`

	// QueryLatencyMS is the view service's query latency with the clients
	// sending at a fixed rate (RateEPS, requests/s: half of QueryRPS unless
	// --query-rate), from when each request was due.
	QueryLatencyMS         Percentiles `json:"query_latency_ms"`
	BaselineQueryLatencyMS Percentiles `json:"baseline_query_latency_ms"`
	// QueryRPS is the most requests/s: each client sends its next request
	// as soon as the last is answered. QuerySaturatedLatencyMS is the
	// latency of that run, where requests queue in the saturated service.
	QueryRPS                        float64     `json:"query_rps"`
	BaselineQueryRPS                float64     `json:"baseline_query_rps"`
	QuerySaturatedLatencyMS         Percentiles `json:"query_saturated_latency_ms"`
	BaselineQuerySaturatedLatencyMS Percentiles `json:"baseline_query_saturated_latency_ms"`
	// QueryLatencyByRateMS is the query latency at each of --query-rates
	// (RateEPS), in their order, as QueryLatencyMS is measured.
	QueryLatencyByRateMS         []Percentiles `json:"query_latency_by_rate_ms,omitempty"`
	BaselineQueryLatencyByRateMS []Percentiles `json:"baseline_query_latency_by_rate_ms,omitempty"`

	PeakRSSBytes                    int64   `json:"peak_rss_bytes"`
	BaselinePeakRSSBytes            int64   `json:"baseline_peak_rss_bytes"`
	UsersHeld                       int     `json:"users_held"`
	RSSBytesPerMillionUsers         float64 `json:"rss_bytes_per_million_users"`
	BaselineRSSBytesPerMillionUsers float64 `json:"baseline_rss_bytes_per_million_users"`

	Ratios  map[string]float64 `json:"ratios"`
	Targets map[string]bool    `json:"targets_met"`

	Config  RunInfo  `json:"config"`
	Machine Machine  `json:"machine"`
	Notes   []string `json:"notes"`
	// Runs, for --repeat N, are the N runs the figures are the medians of.
	Runs []*Result `json:"runs,omitempty"`
}

// Percentiles of a latency in milliseconds.
type Percentiles struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Samples int     `json:"samples"`
	// RateEPS is the rate the latency was measured at: input events/s for
	// alerts, requests/s for queries.
	RateEPS float64 `json:"rate_eps,omitempty"`
}

// RunInfo is how the run was made.
type RunInfo struct {
	Broker        string  `json:"broker"` // "embedded (kfake, in the harness process)" or the bootstrap servers
	Events        int     `json:"events"`
	Users         int     `json:"users"`
	BurstUsers    int     `json:"burst_users"`
	Partitions    int     `json:"partitions"`
	Clients       int     `json:"clients"`
	EventBytesAvg float64 `json:"event_bytes_avg"`
	LatencyEvents int     `json:"latency_events"`
	// LatencyWarmupSeconds of events at the latency rate came before the timed ones.
	LatencyWarmupSeconds float64 `json:"latency_warmup_seconds"`
	QuerySeconds         float64 `json:"query_seconds"`
	Keyed                bool    `json:"keyed"` // events keyed by user_id (else unkeyed)
	StateCacheMB         int     `json:"state_cache_mb,omitempty"`
	WriteBufferMB        int     `json:"write_buffer_mb,omitempty"`
	FetchWaitMS          float64 `json:"fetch_wait_ms,omitempty"`
	ServeGCPercent       int     `json:"serve_gc_percent,omitempty"`
	GCHeadroomMB         int     `json:"gc_headroom_mb"` // of fraudwatch's processor
	ServeGCHeadroomMB    int     `json:"serve_gc_headroom_mb"`
	ProducerLingerMS     float64 `json:"producer_linger_ms"` // of the harness's transactions producer
	Baseline             bool    `json:"baseline"`
	Started              string  `json:"started"`
	WallSeconds          float64 `json:"wall_seconds"`
	// Repeat is how many runs the figures are the medians of (1: one run).
	Repeat int `json:"repeat"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUModel    string `json:"cpu_model"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	GoVersion   string `json:"go_version"`
	Hostname    string `json:"hostname"`
	// LoadAvgStart and LoadAvgEnd are the 1-minute load averages when the
	// run started and ended: other work on the machine skews every figure.
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
}

// loadAvg is the 1-minute load average (Linux; 0 elsewhere).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemoryBytes = kb << 10
			}
		}
	}
	return m
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// finish fills the ratios and the targets.
func (r *Result) finish() {
	r.Ratios = map[string]float64{}
	if r.Config.Baseline {
		r.Ratios["throughput_eps"] = ratio(r.ThroughputEPS, r.BaselineThroughputEPS)
		r.Ratios["cpu_us_per_event"] = ratio(r.CPUMicrosPerEvent, r.BaselineCPUMicros)
		r.Ratios["latency_cpu_us_per_event"] = ratio(r.LatencyCPUMicrosPerEvent, r.BaselineLatencyCPUMicros)
		r.Ratios["alert_latency_ms.p50"] = ratio(r.AlertLatencyMS.P50, r.BaselineAlertLatencyMS.P50)
		r.Ratios["alert_latency_ms.p99"] = ratio(r.AlertLatencyMS.P99, r.BaselineAlertLatencyMS.P99)
		r.Ratios["alert_latency_ms.p999"] = ratio(r.AlertLatencyMS.P999, r.BaselineAlertLatencyMS.P999)
		r.Ratios["restore_rps"] = ratio(r.RestoreRPS, r.BaselineRestoreRPS)
		r.Ratios["restore_seconds"] = ratio(r.RestoreSeconds, r.BaselineRestoreSeconds)
		r.Ratios["restore_peak_rss_bytes"] = ratio(float64(r.RestorePeakRSSBytes), float64(r.BaselineRestorePeakRSSBytes))
		r.Ratios["time_to_ready_1m_users_seconds"] = ratio(r.ReadySeconds1MUsers, r.BaselineReadySeconds1MUsers)
		r.Ratios["query_latency_ms.p50"] = ratio(r.QueryLatencyMS.P50, r.BaselineQueryLatencyMS.P50)
		r.Ratios["query_latency_ms.p99"] = ratio(r.QueryLatencyMS.P99, r.BaselineQueryLatencyMS.P99)
		r.Ratios["query_rps"] = ratio(r.QueryRPS, r.BaselineQueryRPS)
		r.Ratios["query_peak_rss_bytes"] = ratio(float64(r.QueryPeakRSSBytes), float64(r.BaselineQueryPeakRSSBytes))
		r.Ratios["query_saturated_latency_ms.p50"] = ratio(r.QuerySaturatedLatencyMS.P50, r.BaselineQuerySaturatedLatencyMS.P50)
		r.Ratios["query_saturated_latency_ms.p99"] = ratio(r.QuerySaturatedLatencyMS.P99, r.BaselineQuerySaturatedLatencyMS.P99)
		r.Ratios["rss_bytes_per_million_users"] = ratio(r.RSSBytesPerMillionUsers, r.BaselineRSSBytesPerMillionUsers)
	}
	r.judge()
}

// judge fills the targets from the figures and ratios.
func (r *Result) judge() {
	r.Targets = map[string]bool{
		"alert_latency_p99_under_50ms":    r.AlertLatencyMS.Samples > 0 && r.AlertLatencyMS.P99 < 50,
		"query_p99_under_2ms":             r.QueryLatencyMS.Samples > 0 && r.QueryLatencyMS.P99 < 2,
		"rss_under_512MiB_per_1M_users":   r.RSSBytesPerMillionUsers > 0 && r.RSSBytesPerMillionUsers < 512<<20,
		"throughput_at_least_3x_baseline": r.Config.Baseline && r.Ratios["throughput_eps"] >= 3,
		"restore_at_least_3x_baseline":    r.Config.Baseline && r.Ratios["restore_rps"] >= 3,
	}
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the human table.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name, fw, bl, key, unit string) {
		rt := "-"
		if v, ok := r.Ratios[key]; ok && v != 0 {
			rt = fmt.Sprintf("%.2fx", v)
		}
		if !r.Config.Baseline {
			bl = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", name, fw, bl, rt, unit)
	}
	f0 := func(v float64) string { return commas(int64(v + 0.5)) }
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	mib := func(v float64) string { return strconv.FormatFloat(v/(1<<20), 'f', 0, 64) }
	c := r.Config
	keys := "unkeyed"
	if c.Keyed {
		keys = "keyed by user_id"
	}
	fmt.Fprintf(w, "fraudwatch bench: %s events (%s), %s users (%d bursting), %d partitions, broker %s\n",
		commas(int64(c.Events)), keys, commas(int64(c.Users)), c.BurstUsers, c.Partitions, c.Broker)
	if c.Repeat > 1 {
		fmt.Fprintf(w, "figures and ratios: the medians of %d runs\n", c.Repeat)
	}
	if c.StateCacheMB > 0 || c.WriteBufferMB > 0 || c.FetchWaitMS > 0 || c.ServeGCPercent > 0 || c.GCHeadroomMB != app.DefaultGCHeadroomMB || c.ServeGCHeadroomMB != app.DefaultServeGCHeadroomMB {
		fmt.Fprintf(w, "fraudwatch settings: --state-cache-mb %d, --write-buffer-mb %d, --fetch-wait %gms, --gc-headroom-mb %d, serve --gc-percent %d (0: default), serve --gc-headroom-mb %d\n", c.StateCacheMB, c.WriteBufferMB, c.FetchWaitMS, c.GCHeadroomMB, c.ServeGCPercent, c.ServeGCHeadroomMB)
	}
	fmt.Fprintf(w, "machine: %s, %d cores, %s GiB, %s/%s, %s, load average %.1f at start, %.1f at end\n\n", r.Machine.CPUModel,
		r.Machine.Cores, strconv.FormatFloat(float64(r.Machine.MemoryBytes)/(1<<30), 'f', 1, 64), r.Machine.OS, r.Machine.Arch,
		r.Machine.GoVersion, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	fmt.Fprintf(tw, "figure\tfraudwatch\tbaseline\tratio\tunit\t\n")
	row("throughput", f0(r.ThroughputEPS), f0(r.BaselineThroughputEPS), "throughput_eps", "events/s")
	row("CPU per event", f2(r.CPUMicrosPerEvent), f2(r.BaselineCPUMicros), "cpu_us_per_event", "µs")
	// Each side's latency run goes at half its own throughput, so the
	// baseline's rate is shown beside fraudwatch's.
	rate := "ms @ " + f0(r.AlertLatencyMS.RateEPS) + "/s"
	if c.Baseline {
		rate += " / " + f0(r.BaselineAlertLatencyMS.RateEPS)
	}
	row("alert latency p50", f2(r.AlertLatencyMS.P50), f2(r.BaselineAlertLatencyMS.P50), "alert_latency_ms.p50", rate)
	row("alert latency p99", f2(r.AlertLatencyMS.P99), f2(r.BaselineAlertLatencyMS.P99), "alert_latency_ms.p99", rate)
	row("alert latency p999", f2(r.AlertLatencyMS.P999), f2(r.BaselineAlertLatencyMS.P999), "alert_latency_ms.p999", rate)
	row("CPU per event, live", f2(r.LatencyCPUMicrosPerEvent), f2(r.BaselineLatencyCPUMicros), "latency_cpu_us_per_event", "µs, over the latency run")
	row("lag max / at the end", f0(float64(r.LatencyMaxLagRecords))+" / "+f0(float64(r.LatencyEndLagRecords)),
		f0(float64(r.BaselineLatencyMaxLagRecords))+" / "+f0(float64(r.BaselineLatencyEndLagRecords)), "", "records not committed (input + loop), over the latency run")
	for _, st := range []string{detector.StageInput, detector.StageLoop, detector.StageAlertAck} {
		if p, ok := r.StageLatencyMS[st]; ok {
			v := "-" // no event passed the stage (the loop, for keyed input)
			if p.Samples > 0 {
				v = f2(p.P50) + " / " + f2(p.P99)
			}
			row("stage "+st+" p50 / p99", v, "-", "", "ms, inside the processor")
		}
	}
	if r.StageLatencyMS != nil { // read from the processor's metrics with the stages
		row("state reads from LevelDB", fmt.Sprintf("%.1f%%", 100*r.LatencyStoredReadShare), "-", "", "of the processor's state reads, over the latency run")
		row("LevelDB compactions", fmt.Sprintf("%.0f / %.2f s", r.LatencyCompactions, r.LatencyCompactionSeconds), "-", "", "count / time, over the latency run")
		row("processor collections", fmt.Sprintf("%.0f / %.1f ms", r.LatencyGCCycles, r.LatencyGCPauseMS), "-", "", "count / stop-the-world pauses, over the latency run")
	}
	row("restore rate", f0(r.RestoreRPS), f0(r.BaselineRestoreRPS), "restore_rps", "records/s")
	row("restore time", f2(r.RestoreSeconds), f2(r.BaselineRestoreSeconds), "restore_seconds",
		fmt.Sprintf("s (%s / %s records)", commas(r.RestoreRecords), commas(r.BaselineRestoreRecords)))
	row("restore peak RSS", mib(float64(r.RestorePeakRSSBytes)), mib(float64(r.BaselineRestorePeakRSSBytes)), "restore_peak_rss_bytes", "MiB, start to ready")
	est := "s"
	if r.ReadySeconds1MUsersEstimated {
		est = "s (estimated)"
	}
	row("time to ready, 1M users", f2(r.ReadySeconds1MUsers), f2(r.BaselineReadySeconds1MUsers), "time_to_ready_1m_users_seconds", est)
	row("queries", f0(r.QueryRPS), f0(r.BaselineQueryRPS), "query_rps", fmt.Sprintf("requests/s, %d clients back to back", c.Clients))
	qrate := "ms @ " + f0(r.QueryLatencyMS.RateEPS) + " requests/s"
	if c.Baseline {
		qrate += " / " + f0(r.BaselineQueryLatencyMS.RateEPS)
	}
	qrate += fmt.Sprintf(", %d clients", c.Clients)
	row("query latency p50", f2(r.QueryLatencyMS.P50), f2(r.BaselineQueryLatencyMS.P50), "query_latency_ms.p50", qrate)
	row("query latency p99", f2(r.QueryLatencyMS.P99), f2(r.BaselineQueryLatencyMS.P99), "query_latency_ms.p99", qrate)
	row("query latency p999", f2(r.QueryLatencyMS.P999), f2(r.BaselineQueryLatencyMS.P999), "query_latency_ms.p999", qrate)
	row("saturated query p50 / p99", f2(r.QuerySaturatedLatencyMS.P50)+" / "+f2(r.QuerySaturatedLatencyMS.P99),
		f2(r.BaselineQuerySaturatedLatencyMS.P50)+" / "+f2(r.BaselineQuerySaturatedLatencyMS.P99), "query_saturated_latency_ms.p99", "ms, back to back (queued)")
	pct := func(p Percentiles) string { return f2(p.P50) + " / " + f2(p.P99) + " / " + f2(p.P999) }
	for i, p := range r.QueryLatencyByRateMS {
		bl := "-"
		if i < len(r.BaselineQueryLatencyByRateMS) {
			bl = pct(r.BaselineQueryLatencyByRateMS[i])
		}
		row("query p50 / p99 / p999 @ "+f0(p.RateEPS)+"/s", pct(p), bl, "", fmt.Sprintf("ms @ %s requests/s (--query-rates), %d clients", f0(p.RateEPS), c.Clients))
	}
	row("view service peak RSS", mib(float64(r.QueryPeakRSSBytes)), mib(float64(r.BaselineQueryPeakRSSBytes)), "query_peak_rss_bytes", "MiB, recovery and queries")
	row("peak RSS per 1M users", mib(r.RSSBytesPerMillionUsers), mib(r.BaselineRSSBytesPerMillionUsers), "rss_bytes_per_million_users",
		fmt.Sprintf("MiB (peak %s / %s MiB, %s users)", mib(float64(r.PeakRSSBytes)), mib(float64(r.BaselinePeakRSSBytes)), commas(int64(r.UsersHeld))))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
