package views

import (
	"fmt"
	"math"
	"time"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// Risk is a user's risk summary.
type Risk struct {
	Level   string   `json:"level"` // normal | elevated | high
	Score   int      `json:"score"` // 0-100
	Reasons []string `json:"reasons"`
}

// Score rates a user: for every enabled rule and retained window, how close
// the window is to the rule's threshold (count / (max_txns+1), sum / threshold,
// countries / min); the score is the largest of those ratios as a percentage,
// capped at 100. 100 means a rule fired. A recent alert also makes it 100.
// Level: high at 100, elevated from 60, normal below.
func Score(c rules.Config, ws []rules.Window, recent []*codecs.AlertRecord) Risk {
	best := 0.0
	var reasons []string
	span := func(w rules.Window) string {
		return time.Unix(0, w.Start).UTC().Format("15:04:05") + "–" + time.Unix(0, w.End).UTC().Format("15:04:05")
	}
	// notable records ratio and reports whether it is worth a reason; the
	// reason is formatted only then (most windows of most users are not).
	notable := func(ratio float64) bool {
		best = math.Max(best, ratio)
		return ratio >= 0.6
	}
	for _, w := range ws {
		if c.Velocity.Enabled {
			if notable(float64(w.NumTxns) / float64(c.Velocity.MaxTxns+1)) {
				reasons = append(reasons, fmt.Sprintf("%d transactions in window %s (alert above %d)", w.NumTxns, span(w), c.Velocity.MaxTxns))
			}
		}
		if c.Amount.Enabled {
			for _, t := range w.TotalsByCurrency {
				cur, sum := t.Currency, t.Amount
				thr, ok := c.Amount.Thresholds[cur]
				if !ok {
					thr = c.Amount.Default
				}
				if thr > 0 && notable(sum/thr) {
					reasons = append(reasons, fmt.Sprintf("%.2f %s spent in window %s (alert above %.2f)", sum, cur, span(w), thr))
				}
			}
		}
		if c.Countries.Enabled {
			if notable(float64(len(w.Countries)) / float64(c.Countries.Min)) {
				reasons = append(reasons, fmt.Sprintf("%d countries in window %s (alert at %d)", len(w.Countries), span(w), c.Countries.Min))
			}
		}
	}
	for _, a := range recent {
		best = math.Max(best, 1)
		reasons = append(reasons, fmt.Sprintf("alert %s (%s) for window %s–%s", a.AlertID, a.Rule,
			a.Window.Start.Format(time.RFC3339), a.Window.End.Format(time.RFC3339)))
	}
	score := int(math.Round(math.Min(best, 1) * 100))
	level := "normal"
	switch {
	case score >= 100:
		level = "high"
	case score >= 60:
		level = "elevated"
	}
	if reasons == nil {
		reasons = []string{}
	}
	return Risk{Level: level, Score: score, Reasons: reasons}
}
