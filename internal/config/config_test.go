package config

import (
	"strings"
	"testing"
	"time"

	"github.com/fraudwatch/fraudwatch/internal/rules"
)

func TestParse(t *testing.T) {
	r, l := rules.Default(), Limits{MaxBytes: 1, MaxSkew: time.Second}
	doc := `
window: {mode: sliding, size: 2m, grace: 30s}
rules:
  velocity: {max_txns: 9}
  amount: {enabled: true, thresholds: {USD: 5000}}
limits: {max_bytes: 2048, max_skew: 1m}
`
	if err := Parse([]byte(doc), "t.yaml", &r, &l); err != nil {
		t.Fatal(err)
	}
	if r.Mode != rules.Sliding || r.Size != 2*time.Minute || r.Grace != 30*time.Second || r.Velocity.MaxTxns != 9 ||
		!r.Velocity.Enabled || !r.Amount.Enabled || r.Amount.Thresholds["USD"] != 5000 || l.MaxBytes != 2048 || l.MaxSkew != time.Minute {
		t.Fatalf("parsed %+v %+v", r, l)
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown key":  {"rules: {velocty: {max_txns: 1}}", "velocty"},
		"bad duration": {"window: {size: 1 minute}", "window.size"},
		"bad mode":     {"window: {mode: hopping}", "hopping"},
	} {
		t.Run(name, func(t *testing.T) {
			r, l := rules.Default(), Limits{}
			err := Parse([]byte(tc.doc), "t.yaml", &r, &l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want mention of %q", err, tc.want)
			}
		})
	}
	r, l := rules.Default(), Limits{}
	if err := Parse(nil, "empty.yaml", &r, &l); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}
