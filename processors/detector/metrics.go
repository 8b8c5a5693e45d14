package detector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/telemetry"
)

// Metrics are the detector's Prometheus metrics.
type Metrics struct {
	events *prometheus.CounterVec
	alerts *prometheus.CounterVec
	// Histograms observed for every event are sharded by partition (see
	// telemetry.Histograms).
	eventLatency, recLatency *telemetry.Histogram
	stages                   *telemetry.Histograms
	// the stages of an event, as in StageLatency
	inputStage, loopStage, alertStage *telemetry.Histogram
	// outcome[o] counts the events of outcome o that are not dead-lettered
	// (Counted, Duplicate, Replayed), looked up once: a label lookup per
	// event was about 1% of the processor's CPU in a throughput profile.
	outcome [rules.Replayed + 1]prometheus.Counter
}

// StageLatency is the histogram of the stages an event passes through inside
// the processor, by label "stage":
//   - input: the transaction's Kafka record time (its producer's clock) to
//     the ingest callback: the producer's linger, the broker, the fetch;
//   - loop: a re-keyed transaction's loop record time (when ingest produced
//     it) to its apply callback;
//   - alert_ack: an alert's produce to Kafka's ack (the apply callback waits
//     for it before it writes the state).
//
// With the end-to-end alert latency they show where the time goes.
const StageLatency = "fraudwatch_stage_latency_seconds"

// Stage names of StageLatency.
const (
	StageInput    = "input"
	StageLoop     = "loop"
	StageAlertAck = "alert_ack"
)

// NewMetrics registers the detector's metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudwatch_events_total",
			Help: "Transactions by result: counted, duplicate (same transaction_id), replayed (re-delivered record), dlq (with reason).",
		}, []string{"result", "reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudwatch_alerts_total",
			Help: "Alerts produced, by rule.",
		}, []string{"rule"}),
		stages: telemetry.NewHistograms(StageLatency,
			"Time an event spends in a stage of the processor: input (Kafka record time to ingest), loop (re-key produce to apply), alert_ack (alert produce to Kafka's ack).",
			prometheus.ExponentialBuckets(0.00025, 1.5, 26), "stage"),
	}
	eventLatency := telemetry.NewHistograms("fraudwatch_event_time_lag_seconds", "Event time (payload timestamp) to processed.",
		prometheus.ExponentialBuckets(0.001, 4, 12))
	recLatency := telemetry.NewHistograms("fraudwatch_processing_latency_seconds", "Kafka record time to processed.",
		prometheus.ExponentialBuckets(0.0005, 2, 16))
	m.eventLatency, m.recLatency = eventLatency.With(), recLatency.With()
	m.inputStage = m.stages.With(StageInput)
	m.loopStage = m.stages.With(StageLoop)
	m.alertStage = m.stages.With(StageAlertAck)
	if reg != nil {
		reg.MustRegister(m.events, m.alerts, eventLatency, recLatency, m.stages)
	}
	for _, r := range codecs.Reasons {
		m.events.WithLabelValues("dlq", string(r))
	}
	for _, o := range []rules.Outcome{rules.Counted, rules.Duplicate, rules.Replayed} {
		m.outcome[o] = m.events.WithLabelValues(o.String(), "")
	}
	for _, r := range []rules.Rule{rules.RuleVelocity, rules.RuleAmount, rules.RuleCountries} {
		m.alerts.WithLabelValues(r.String())
	}
	return m
}

// event counts an event of outcome Counted, Duplicate or Replayed.
func (m *Metrics) event(o rules.Outcome)      { m.outcome[o].Inc() }
func (m *Metrics) deadLetter(r codecs.Reason) { m.events.WithLabelValues("dlq", string(r)).Inc() }
func (m *Metrics) alert(r rules.Rule)         { m.alerts.WithLabelValues(r.String()).Inc() }

// stage observes, from partition, the time from start to now in a stage; a
// start the record does not carry (zero) is not observed.
func stage(o *telemetry.Histogram, partition int32, now, start time.Time) {
	if !start.IsZero() {
		o.Observe(partition, max(0, now.Sub(start).Seconds()))
	}
}

func (m *Metrics) observeLatency(partition int32, now time.Time, recordTime, eventTime int64) {
	m.recLatency.Observe(partition, now.Sub(time.Unix(0, recordTime)).Seconds())
	m.eventLatency.Observe(partition, now.Sub(time.Unix(0, eventTime)).Seconds())
}
