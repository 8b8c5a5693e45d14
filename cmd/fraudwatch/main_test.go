package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/fraudwatch/fraudwatch/internal/app"
)

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"no command", nil, nil, exitUsage, "Usage:"},
		{"unknown command", []string{"frobnicate"}, nil, exitUsage, `unknown command "frobnicate"`},
		{"help", []string{"--help"}, nil, exitOK, "fraudwatch dev"},
		{"process needs brokers and data dir", []string{"process"}, nil, exitUsage, "no brokers"},
		{"process data dir from env", []string{"process", "--grace", "-5s"}, map[string]string{"FRAUDWATCH_DATA_DIR": "/tmp/x"}, exitUsage, "grace must be >= 0"},
		{"negative write buffer", []string{"process", "--brokers", "x", "--data-dir", "d", "--write-buffer-mb", "-1"}, nil, exitUsage, "--write-buffer-mb must be >= 0"},
		{"negative gc percent", []string{"process", "--brokers", "x", "--data-dir", "d", "--gc-percent", "-1"}, nil, exitUsage, "--gc-percent must be >= 0"},
		{"bench repeat zero", []string{"bench", "--repeat", "0"}, nil, exitUsage, "--repeat must be >= 1"},
		{"bench repeat on a cluster", []string{"bench", "--repeat", "2", "--brokers", "x"}, nil, exitUsage, "--repeat needs the embedded broker"},
		{"produce linger too long", []string{"process", "--brokers", "x", "--data-dir", "d", "--produce-linger", "2s"}, nil, exitUsage, "--produce-linger must be between 1ms and 1s"},
		{"bad group instance id", []string{"process", "--brokers", "x", "--data-dir", "d", "--group-instance-id", "pod 1"}, nil, exitUsage, "--group-instance-id may hold only"},
		{"group instance id from env", []string{"process", "--brokers", "x", "--data-dir", "d"}, map[string]string{"FRAUDWATCH_GROUP_INSTANCE_ID": ".."}, exitUsage, `--group-instance-id cannot be ".."`},
		{"fetch wait too short", []string{"process", "--brokers", "x", "--data-dir", "d", "--fetch-wait", "100us"}, nil, exitUsage, "--fetch-wait must be between 1ms and 1s"},
		{"commit interval too short", []string{"process", "--brokers", "x", "--data-dir", "d", "--commit-interval", "1ms"}, nil, exitUsage, "--commit-interval must be between 10ms and 1m"},
		{"dev commit interval too long", []string{"dev", "--commit-interval", "2m"}, nil, exitUsage, "--commit-interval must be between 10ms and 1m"},
		{"process commit interval default", []string{"process", "--help"}, nil, exitOK, "delays the next) (default 1s)"},
		{"negative gc headroom", []string{"process", "--brokers", "x", "--data-dir", "d", "--gc-headroom-mb", "-1"}, nil, exitUsage, "--gc-headroom-mb must be >= 0"},
		{"dev negative gc headroom", []string{"dev", "--gc-headroom-mb", "-1"}, nil, exitUsage, "--gc-headroom-mb must be >= 0"},
		{"process gc headroom default", []string{"process", "--help"}, nil, exitOK, "(default 160)"},
		{"bench negative gc headroom", []string{"bench", "--gc-headroom-mb", "-1"}, nil, exitUsage, "--gc-headroom-mb must be >= 0"},
		{"negative restore cache", []string{"process", "--brokers", "x", "--data-dir", "d", "--restore-cache-mb", "-1"}, nil, exitUsage, "--restore-cache-mb must be >= 0"},
		{"serve cache default", []string{"serve", "--help"}, nil, exitOK, "(default 256)"},
		{"serve gc percent default", []string{"serve", "--help"}, nil, exitOK, "-gc-percent int"},
		{"serve negative gc percent", []string{"serve", "--brokers", "x", "--memory", "--gc-percent", "-1"}, nil, exitUsage, "--gc-percent must be >= 0"},
		{"bad env value", []string{"process"}, map[string]string{"FRAUDWATCH_MAX_SKEW": "soon"}, exitUsage, "FRAUDWATCH_MAX_SKEW"},
		{"topics needs create", []string{"topics"}, nil, exitUsage, "topics create"},
		{"produce key", []string{"produce", "--brokers", "x", "--count", "1", "--key", "merchant"}, nil, exitUsage, "--key must be none or user_id"},
		{"bad rules file", []string{"process", "--brokers", "x", "--data-dir", "d", "--rules", "/nonexistent.yaml"}, nil, exitUsage, "nonexistent.yaml"},
		{"command help", []string{"alerts", "--help"}, nil, exitOK, "-from-beginning"},
		{"process write buffer default", []string{"process", "--help"}, nil, exitOK, "twice as much memory (default 6)"},
		{"serve write buffer default", []string{"serve", "--help"}, nil, exitOK, "twice as much memory (default 4)"},
		{"bench sizes", []string{"bench", "--events", "0", "--clients", "0"}, nil, exitUsage, "--clients must be >= 1"},
		{"bench serve gc percent", []string{"bench", "--serve-gc-percent", "-1"}, nil, exitUsage, "--serve-gc-percent must be >= 0"},
		{"bench query rates not numbers", []string{"bench", "--query-rates", "5000,fast"}, nil, exitUsage, `--query-rates: "fast" is not a number`},
		{"bench query rates zero", []string{"bench", "--query-rates", "5000,0"}, nil, exitUsage, "--query-rates must all be > 0, got 0"},
		{"bench child role", []string{"bench", "--child", "nope"}, nil, exitUsage, "unknown child role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String()+out.String(), tt.want) {
				t.Fatalf("code %d (want %d), output:\n%s%s\nwant %q", code, tt.code, out.String(), errb.String(), tt.want)
			}
		})
	}
}

// TestSetServeGC: a view service's --gc-percent becomes its GOGC; 0 leaves
// the runtime's (GOGC from the environment) alone.
func TestSetServeGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	debug.SetGCPercent(130) // as GOGC=130 in the environment would
	setServeGC(0)
	if got := debug.SetGCPercent(130); got != 130 {
		t.Errorf("--gc-percent 0: GOGC %d, want the environment's 130", got)
	}
	setServeGC(400)
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("--gc-percent 400: GOGC %d", got)
	}
}

// TestSetGCPercent: --gc-percent becomes the process's GOGC, 0 the default.
func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct{ flag, want int }{{0, app.DefaultGCPercent}, {120, 120}, {50, 50}} {
		setGCPercent(tc.flag)
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("--gc-percent %d: GOGC %d, want %d", tc.flag, got, tc.want)
		}
	}
}
