// Package config reads fraudwatch's rules file (YAML). cmd/ fills the rest of
// the configuration from flags and environment; nothing else reads files,
// flags or environment.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// File is the YAML rules file. Absent fields keep their defaults.
type File struct {
	Window struct {
		Mode  *string `yaml:"mode"`
		Size  *string `yaml:"size"`
		Grace *string `yaml:"grace"`
	} `yaml:"window"`
	Rules struct {
		Velocity struct {
			Enabled *bool `yaml:"enabled"`
			MaxTxns *int  `yaml:"max_txns"`
		} `yaml:"velocity"`
		Amount struct {
			Enabled    *bool              `yaml:"enabled"`
			Thresholds map[string]float64 `yaml:"thresholds"`
			Default    *float64           `yaml:"default"`
		} `yaml:"amount"`
		Countries struct {
			Enabled *bool `yaml:"enabled"`
			Min     *int  `yaml:"min"`
		} `yaml:"countries"`
		MaxAlertTxnIDs *int `yaml:"max_alert_transaction_ids"`
	} `yaml:"rules"`
	Limits struct {
		MaxBytes *int    `yaml:"max_bytes"`
		MaxSkew  *string `yaml:"max_skew"`
	} `yaml:"limits"`
}

// Limits are the input limits a file may set.
type Limits struct {
	MaxBytes int
	MaxSkew  time.Duration
}

// Load reads path and applies it over r and l. Unknown keys are errors.
func Load(path string, r *rules.Config, l *Limits) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Parse(b, path, r, l)
}

// Parse applies the YAML document b (named name in errors) over r and l.
func Parse(b []byte, name string, r *rules.Config, l *Limits) error {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	var errs []error
	dur := func(field string, s *string, dst *time.Duration) {
		if s == nil {
			return
		}
		d, err := time.ParseDuration(*s)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %s: %q is not a duration like 1m or 90s", name, field, *s))
			return
		}
		*dst = d
	}
	if f.Window.Mode != nil {
		m, err := rules.ParseMode(*f.Window.Mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s: window.mode: %w", name, err))
		}
		r.Mode = m
	}
	dur("window.size", f.Window.Size, &r.Size)
	dur("window.grace", f.Window.Grace, &r.Grace)
	set(&r.Velocity.Enabled, f.Rules.Velocity.Enabled)
	set(&r.Velocity.MaxTxns, f.Rules.Velocity.MaxTxns)
	set(&r.Amount.Enabled, f.Rules.Amount.Enabled)
	if f.Rules.Amount.Thresholds != nil {
		r.Amount.Thresholds = f.Rules.Amount.Thresholds
	}
	set(&r.Amount.Default, f.Rules.Amount.Default)
	set(&r.Countries.Enabled, f.Rules.Countries.Enabled)
	set(&r.Countries.Min, f.Rules.Countries.Min)
	set(&r.MaxAlertTxnIDs, f.Rules.MaxAlertTxnIDs)
	set(&l.MaxBytes, f.Limits.MaxBytes)
	dur("limits.max_skew", f.Limits.MaxSkew, &l.MaxSkew)
	return errors.Join(errs...)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
