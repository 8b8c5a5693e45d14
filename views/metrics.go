package views

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudwatch/fraudwatch/internal/telemetry"
)

// Metrics are the view service's Prometheus metrics.
type Metrics struct {
	partitions *telemetry.Partitions
	staleness  prometheus.Gauge
}

// NewMetrics registers the view's metrics on reg (nil: not registered):
// lag and restore progress of the table's partitions, and staleness.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		partitions: telemetry.NewPartitions(reg),
		staleness: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraudwatch_view_staleness_seconds",
			Help: "Seconds since the view last held every record of the detector table (largest over partitions); counted from the start of serve until the first catch-up.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.staleness)
	}
	return m
}
