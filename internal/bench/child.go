package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/bench/baseline"
	"github.com/fraudwatch/fraudwatch/internal/rules"
)

// Role is what a child process of the benchmark runs.
type Role string

// The roles.
const (
	RoleProcess       Role = "process"        // one fraudwatch processor (app.Processor)
	RoleServe         Role = "serve"          // the fraudwatch view service (app.Serve)
	RoleBaseline      Role = "baseline"       // the naive goka processor
	RoleBaselineServe Role = "baseline-serve" // a naive goka view behind HTTP
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleProcess, RoleServe, RoleBaseline, RoleBaselineServe:
		return r, nil
	}
	return "", fmt.Errorf("bench: unknown child role %q (want process, serve, baseline or baseline-serve)", s)
}

// ChildConfig is what a child process is told.
type ChildConfig struct {
	Role     Role
	Brokers  []string
	DataDir  string
	HTTPAddr string // serve roles; fraudwatch's processor serves its /metrics there when set
	// CPUProfile, when set, is where the child writes its CPU profile (pprof).
	CPUProfile string
	// StateCacheMB and WriteBufferMB are fraudwatch's --state-cache-mb and
	// --write-buffer-mb (0: their defaults); the baseline ignores them.
	StateCacheMB, WriteBufferMB int
	// FetchWait is fraudwatch's --fetch-wait (0: its default).
	FetchWait time.Duration
	// GCPercent is the --gc-percent of fraudwatch's view service (0: its
	// default); the command running the child sets it.
	GCPercent int
	// GCHeadroomMB is the --gc-headroom-mb of fraudwatch's view service (0: off).
	GCHeadroomMB int
	// ProcessGCHeadroomMB is the --gc-headroom-mb of fraudwatch's processor (0: off).
	ProcessGCHeadroomMB int
}

// Spawner returns the command that runs a child with c; the benchmark starts
// and stops it. The CLI re-executes its own binary ("fraudwatch bench --child").
type Spawner func(c ChildConfig) *exec.Cmd

// readyLine is what a processor child prints on stdout once it is ready.
const readyLine = "ready"

// RunChild runs one role until ctx is cancelled. Processor roles print
// "ready" on stdout once every partition is recovered; serve roles answer
// 200 on /readyz once recovered.
func RunChild(ctx context.Context, c ChildConfig, stdout io.Writer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ready := func() { fmt.Fprintln(stdout, readyLine) }
	if c.CPUProfile != "" {
		stop, err := startCPUProfile(c.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
		// and the heap at the end, next to it
		defer func() {
			if f, err := os.Create(strings.TrimSuffix(c.CPUProfile, ".cpu.pprof") + ".heap.pprof"); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	switch c.Role {
	case RoleProcess:
		env := app.Env{Log: log}
		if c.HTTPAddr != "" {
			// go_* too, as "fraudwatch process" serves them: collections and
			// heap beside the processor's own metrics when sampling a run.
			env.Registry = prometheus.NewRegistry()
			env.Registry.MustRegister(collectors.NewGoCollector())
		}
		p, err := app.NewProcessor(app.ProcessConfig{Brokers: c.Brokers, DataDir: c.DataDir, ClientID: "fraudwatch-bench",
			Rules: rules.Default(), MaxBytes: codecs.DefaultMaxBytes, MaxSkew: 5 * time.Minute, HTTPAddr: c.HTTPAddr,
			StateCacheMB: c.StateCacheMB, WriteBufferMB: c.WriteBufferMB, FetchWait: c.FetchWait, GCHeadroomMB: c.ProcessGCHeadroomMB}, env)
		if err != nil {
			return err
		}
		return p.Run(ctx, ready)
	case RoleServe:
		return app.Serve(ctx, app.ServeConfig{Brokers: c.Brokers, DataDir: c.DataDir, HTTPAddr: c.HTTPAddr,
			ClientID: "fraudwatch-bench-serve", Rules: rules.Default(), StateCacheMB: c.StateCacheMB, WriteBufferMB: c.WriteBufferMB, GCHeadroomMB: c.GCHeadroomMB}, app.Env{Log: log})
	case RoleBaseline:
		p, err := baseline.NewProcessor(c.Brokers, c.DataDir)
		if err != nil {
			return err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return p.Run(gctx) })
		g.Go(func() error {
			if p.WaitForReadyContext(gctx) == nil {
				ready()
			}
			return nil
		})
		return g.Wait()
	case RoleBaselineServe:
		v, err := baseline.NewView(c.Brokers, c.DataDir)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			return fmt.Errorf("bench: listen %s: %w", c.HTTPAddr, err)
		}
		srv := &http.Server{Handler: baseline.Handler(v), ReadHeaderTimeout: 5 * time.Second}
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return v.Run(gctx) })
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
		return g.Wait()
	}
	return fmt.Errorf("bench: unknown child role %q", c.Role)
}

// child is a running child process.
type child struct {
	cmd     *exec.Cmd
	started time.Time
	ready   chan struct{} // closed when the child printed "ready"
	exited  chan struct{} // closed when the process exited
	err     error         // Wait's error, valid after exited
}

// start starts a child.
func start(spawn Spawner, c ChildConfig, stderr io.Writer) (*child, error) {
	cmd := spawn(c)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: %s child: %w", c.Role, err)
	}
	ch := &child{cmd: cmd, ready: make(chan struct{}), exited: make(chan struct{})}
	ch.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s child: %w", c.Role, err)
	}
	go func() { // ends when the child's stdout closes, before Wait returns
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if !once && strings.TrimSpace(sc.Text()) == readyLine {
				once = true
				close(ch.ready)
			}
		}
		ch.err = cmd.Wait()
		close(ch.exited)
	}()
	return ch, nil
}

// waitReady waits for the ready line.
func (c *child) waitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-c.exited:
		return fmt.Errorf("bench: child %s exited before it was ready: %v", c.cmd.Path, c.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// alive reports an error once the child exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("bench: child exited early: %v", c.err)
	default:
		return nil
	}
}

// stop terminates the child (SIGTERM, then SIGKILL after 30 s) and waits.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// usage is a child's resource use so far, from /proc (Linux; zero elsewhere).
type usage struct {
	CPU         time.Duration // user + system
	System      time.Duration // system alone
	MinorFaults int64         // page faults served without I/O (fresh pages among them)
	PeakRSS     int64         // VmHWM
}

func (c *child) usage() usage {
	return procUsage(c.cmd.Process.Pid)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func procUsage(pid int) usage {
	var u usage
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// fields after the parenthesised command name; minflt, utime and
		// stime are 10, 14 and 15.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 13 {
				u.MinorFaults, _ = strconv.ParseInt(f[7], 10, 64)
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				u.CPU = time.Duration(ut+st) * time.Second / clockTicks
				u.System = time.Duration(st) * time.Second / clockTicks
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				u.PeakRSS = kb << 10
			}
		}
	}
	return u
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
