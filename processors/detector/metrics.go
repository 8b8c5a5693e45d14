package detector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// Metrics are the detector's Prometheus metrics.
type Metrics struct {
	events       *prometheus.CounterVec
	alerts       *prometheus.CounterVec
	eventLatency prometheus.Histogram
	recLatency   prometheus.Histogram
	stages       *prometheus.HistogramVec
	// the stages of an event, as in StageLatency
	inputStage, loopStage, alertStage prometheus.Observer
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
		eventLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fraudwatch_event_time_lag_seconds",
			Help:    "Event time (payload timestamp) to processed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}),
		recLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fraudwatch_processing_latency_seconds",
			Help:    "Kafka record time to processed.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    StageLatency,
			Help:    "Time an event spends in a stage of the processor: input (Kafka record time to ingest), loop (re-key produce to apply), alert_ack (alert produce to Kafka's ack).",
			Buckets: prometheus.ExponentialBuckets(0.00025, 1.5, 26),
		}, []string{"stage"}),
	}
	m.inputStage = m.stages.WithLabelValues(StageInput)
	m.loopStage = m.stages.WithLabelValues(StageLoop)
	m.alertStage = m.stages.WithLabelValues(StageAlertAck)
	if reg != nil {
		reg.MustRegister(m.events, m.alerts, m.eventLatency, m.recLatency, m.stages)
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

// stage observes the time from start to now in a stage; a start the
// record does not carry (zero) is not observed.
func stage(o prometheus.Observer, now, start time.Time) {
	if !start.IsZero() {
		o.Observe(max(0, now.Sub(start).Seconds()))
	}
}

func (m *Metrics) observeLatency(now time.Time, recordTime, eventTime int64) {
	m.recLatency.Observe(now.Sub(time.Unix(0, recordTime)).Seconds())
	m.eventLatency.Observe(now.Sub(time.Unix(0, eventTime)).Seconds())
}
