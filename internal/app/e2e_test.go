package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/broker"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/testkafka"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

const (
	envChild        = "FRAUDWATCH_TEST_CHILD"
	envChildBrokers = "FRAUDWATCH_TEST_CHILD_BROKERS"
	envChildDir     = "FRAUDWATCH_TEST_CHILD_DIR"
)

// TestMain doubles as a processor process for the crash tests: with
// FRAUDWATCH_TEST_CHILD set, the test binary runs one processor until killed.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		flag.Parse()
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

func runChild() int {
	level := slog.LevelWarn
	if os.Getenv("FRAUDWATCH_TEST_CHILD_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	p, err := app.NewProcessor(processConfig([]string{os.Getenv(envChildBrokers)}, os.Getenv(envChildDir)), app.Env{Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := p.Run(context.Background(), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func processConfig(brokers []string, dir string) app.ProcessConfig {
	return app.ProcessConfig{Brokers: brokers, DataDir: dir, ClientID: "test", Rules: rules.Default(),
		MaxBytes: codecs.DefaultMaxBytes, MaxSkew: 5 * time.Minute}
}

// instance is one in-process processor.
type instance struct {
	dir    string
	cancel context.CancelFunc
	done   chan error
}

func startInstance(t *testing.T, brokers []string, dir string) *instance {
	t.Helper()
	p, err := app.NewProcessor(processConfig(brokers, dir), app.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- p.Run(ctx, nil) }()
	return in
}

func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("instance %s: %v", in.dir, err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("instance %s did not stop", in.dir)
	}
}

func scale(short, full int) int {
	if testing.Short() {
		return short
	}
	return full
}

// TestChurnExact starts and stops instances (sometimes on an empty disk)
// while events flow, then requires exact per-user counts and alerts.
func TestChurnExact(t *testing.T) {
	const partitions = 6
	c := testkafka.Start(t, partitions)
	events, tr := testkafka.Workload(scale(20_000, 100_000), 1, 0.005)
	root := t.TempDir()
	insts := make([]*instance, 3)
	for i := range insts {
		insts[i] = startInstance(t, c.Brokers, filepath.Join(root, fmt.Sprint(i)))
	}
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		c.Produce(t, events, 3, partitions, float64(scale(2000, 5000)))
	}()
	r := rand.New(rand.NewPCG(3, 4))
	restarts, wiped := 0, 0
	for done := false; !done; {
		select {
		case <-produced:
			done = true
		case <-time.After(time.Duration(1500+r.IntN(2500)) * time.Millisecond):
			i := r.IntN(len(insts))
			insts[i].stop(t)
			dir := insts[i].dir
			if restarts%2 == 1 {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				wiped++
			}
			insts[i] = startInstance(t, c.Brokers, dir)
			restarts++
		}
	}
	t.Logf("churn: %d restarts, %d on an empty disk", restarts, wiped)
	c.Verify(t, tr, partitions, func() error { return nil })
	for _, in := range insts {
		in.stop(t)
	}
}

// child is a processor in its own OS process, killed with SIGKILL.
type child struct {
	cmd    *exec.Cmd
	dir    string
	exited chan error
}

func startChild(t *testing.T, brokers []string, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envChildBrokers+"="+brokers[0], envChildDir+"="+dir)
	cmd.Stderr = io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, dir: dir, exited: make(chan error, 1)}
	go func() { ch.exited <- cmd.Wait() }()
	return ch
}

func (ch *child) kill(t *testing.T) {
	t.Helper()
	_ = ch.cmd.Process.Signal(syscall.SIGKILL)
	err := <-ch.exited
	ch.exited <- err
}

// exitErr reports a child that exited on its own: a failure, not a fixture.
func (ch *child) exitErr() error {
	select {
	case err := <-ch.exited:
		ch.exited <- err
		return fmt.Errorf("processor process in %s exited: %v", ch.dir, err)
	default:
		return nil
	}
}

// TestCrashKill9 kills processor processes without any shutdown while events
// flow, and restarts them on the same disk, on an empty disk, or not at all.
func TestCrashKill9(t *testing.T) {
	const partitions = 4
	c := testkafka.Start(t, partitions)
	events, tr := testkafka.Workload(scale(10_000, 50_000), 2, 0.005)
	root := t.TempDir()
	kids := []*child{startChild(t, c.Brokers, filepath.Join(root, "a")), startChild(t, c.Brokers, filepath.Join(root, "b"))}
	t.Cleanup(func() {
		for _, k := range kids {
			k.kill(t)
		}
	})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		c.Produce(t, events, 2, partitions, float64(scale(1000, 2000)))
	}()
	kills := 0
	plan := []string{"same", "empty", "same", "other", "same", "empty"}
	for done := false; !done; {
		select {
		case <-produced:
			done = true
		case <-time.After(3 * time.Second):
			i := kills % len(kids)
			kids[i].kill(t)
			dir := kids[i].dir
			switch plan[kills%len(plan)] {
			case "empty":
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			case "other":
				dir = filepath.Join(root, fmt.Sprintf("new%d", kills))
			}
			kids[i] = startChild(t, c.Brokers, dir)
			kills++
		}
	}
	t.Logf("crash: %d SIGKILLs", kills)
	c.Verify(t, tr, partitions, func() error {
		for _, k := range kids {
			if err := k.exitErr(); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestDeadLetterReasons sends one record per reason and checks each reaches
// the dead-letter topic with its exact bytes and position, while processing
// goes on.
func TestDeadLetterReasons(t *testing.T) {
	const partitions = 3
	c := testkafka.Start(t, partitions)
	in := startInstance(t, c.Brokers, t.TempDir())
	defer in.stop(t)
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Minute)
	ok := func(id string, at time.Time) []byte {
		b, _ := codecs.Txn{TransactionID: id, UserID: "usr_dlq", Amount: 1, Currency: "USD", Timestamp: at}.MarshalJSON()
		return b
	}
	cases := []struct {
		value  []byte
		reason codecs.Reason
	}{
		{[]byte(`{"transaction_id":`), codecs.ReasonMalformedJSON},
		{[]byte(`{"user_id":"usr_dlq","amount":1,"currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`), codecs.ReasonMissingField},
		{[]byte(`{"transaction_id":"a","user_id":"usr_dlq","amount":"NaN","currency":"USD","timestamp":"2025-06-15T14:30:00Z"}`), codecs.ReasonInvalidAmount},
		{[]byte(`{"transaction_id":"a","user_id":"usr_dlq","amount":1,"currency":"US","timestamp":"2025-06-15T14:30:00Z"}`), codecs.ReasonInvalidCurrency},
		{[]byte(`{"transaction_id":"a","user_id":"usr_dlq","amount":1,"currency":"USD","timestamp":"yesterday"}`), codecs.ReasonInvalidTimestamp},
		{append(append([]byte(`{"transaction_id":"big","x":"`), make([]byte, 70_000)...), '"', '}'), codecs.ReasonTooLarge},
		{ok("future", time.Now().Add(time.Hour)), codecs.ReasonFuture},
		{ok("recent", base.Add(10*time.Minute)), ""},
		{ok("late", base), codecs.ReasonLate},
	}
	for i := range cases {
		for j := range cases[i].value {
			if cases[i].value[j] == 0 {
				cases[i].value[j] = 'x'
			}
		}
	}
	cl := c.Client()
	for _, tc := range cases {
		// keyed by the user: one partition, so "recent" is applied before "late"
		rec := &kgo.Record{Topic: string(topics.Transactions), Key: []byte("usr_dlq"), Value: tc.value}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var got []*codecs.DeadLetterRecord
	testkafka.Eventually(t, 2*time.Minute, func() error {
		got = c.DeadLetters(t)
		if len(got) < len(cases)-1 {
			return fmt.Errorf("%d dead letters", len(got))
		}
		return nil
	})
	byReason := map[codecs.Reason]*codecs.DeadLetterRecord{}
	for _, d := range got {
		byReason[d.Reason] = d
	}
	for _, tc := range cases {
		if tc.reason == "" {
			continue
		}
		d := byReason[tc.reason]
		if d == nil {
			t.Errorf("no dead letter for %s (got %d)", tc.reason, len(got))
			continue
		}
		if string(d.Original) != string(tc.value) || d.Source.Topic != "transactions" || d.Key == nil || *d.Key != "usr_dlq" || d.Error == "" {
			t.Errorf("%s: dead letter %+v", tc.reason, d)
		}
	}
	testkafka.Eventually(t, time.Minute, func() error {
		st := c.Table(t)["usr_dlq"]
		if st == nil || len(st.Events) != 1 || st.Events[0].ID != "recent" {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
}

// TestGoldenScenario runs testdata/scenario.jsonl through one instance and
// compares the alerts with testdata/scenario.alerts.json (-update rewrites it).
func TestGoldenScenario(t *testing.T) {
	c := testkafka.Start(t, 2)
	in := startInstance(t, c.Brokers, t.TempDir())
	defer in.stop(t)
	events, err := os.ReadFile("testdata/scenario.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for _, l := range splitLines(events) {
		lines = append(lines, l)
	}
	cl := c.Client()
	for _, l := range lines {
		var k struct {
			UserID string `json:"user_id"`
		}
		_ = jsonUnmarshal(l, &k)
		rec := &kgo.Record{Topic: string(topics.Transactions), Key: []byte(k.UserID), Value: l}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitCaughtUp(t, 2*time.Minute, func() error { return nil })
	alerts, _ := c.Alerts(t)
	type golden struct {
		AlertID   string        `json:"alert_id"`
		Rule      string        `json:"rule"`
		UserID    string        `json:"user_id"`
		Window    codecs.Window `json:"window"`
		NumTxns   int           `json:"num_txns"`
		Total     float64       `json:"total"`
		Threshold float64       `json:"threshold"`
		TxnIDs    []string      `json:"transaction_ids"`
	}
	var got []golden
	for _, a := range alerts {
		got = append(got, golden{a.AlertID, a.Rule, a.UserID, a.Window, a.NumTxns, a.Total, a.Threshold, a.TransactionIDs})
	}
	sort.Slice(got, func(i, j int) bool { return got[i].AlertID < got[j].AlertID })
	compareGolden(t, "testdata/scenario.alerts.json", got)
}

// bareBroker starts an embedded broker without fraudwatch's topics. A real
// cluster under test has them, so there it returns nil: nothing to check.
func bareBroker(t *testing.T) []string {
	t.Helper()
	if testkafka.Real() {
		t.Log("runs on the embedded broker only")
		return nil
	}
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}

// wantMissingTopic: err names the missing input topic and the command that creates it.
func wantMissingTopic(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, topics.ErrMissing) || !strings.Contains(err.Error(), `topic "transactions" does not exist`) ||
		!strings.Contains(err.Error(), "fraudwatch topics create") {
		t.Fatalf("want an error naming the missing topic and the fix, got %v", err)
	}
}

// TestProcessRefusesMissingTopics: no silent auto-create outside dev.
func TestProcessRefusesMissingTopics(t *testing.T) {
	brokers := bareBroker(t)
	if brokers == nil {
		return
	}
	p, err := app.NewProcessor(processConfig(brokers, t.TempDir()), app.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantMissingTopic(t, p.Run(ctx, nil))
}

// TestStaticMembersSharingAnID: two instances started with one
// --group-instance-id fence each other at every join; the fenced one stops
// with an error that names the setting, instead of restarting and fencing
// the other in turn, and the other goes on.
func TestStaticMembersSharingAnID(t *testing.T) {
	c := testkafka.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(dir string) (context.CancelFunc, <-chan error) {
		pc := processConfig(c.Brokers, dir)
		pc.GroupInstanceID = "fraudwatch-shared"
		p, err := app.NewProcessor(pc, app.Env{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() { done <- p.Run(pctx, func() { close(ready) }) }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("stopped before it was ready: %v", err)
		case <-ctx.Done():
			t.Fatal("not ready in time")
		}
		return pcancel, done
	}
	cancelFirst, first := run(t.TempDir())
	defer cancelFirst()
	cancelSecond, second := run(t.TempDir())
	defer cancelSecond()
	var err error
	select {
	case err = <-first:
	case err = <-second:
		t.Fatalf("the instance that joined last stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("neither instance stopped: fencing went unnoticed")
	}
	if !errors.Is(err, sarama.ErrFencedInstancedId) || !strings.Contains(err.Error(), `--group-instance-id "fraudwatch-shared"`) {
		t.Fatalf("want the fencing error naming the setting, got %v", err)
	}
	select {
	case err := <-second:
		t.Fatalf("the other instance stopped too: %v", err)
	case <-time.After(3 * time.Second):
	}
	cancelSecond()
	if err := <-second; err != nil {
		t.Errorf("the other instance: %v", err)
	}
}

// TestProduceRefusesMissingTopic: "produce" looks the input topic up first,
// so a missing one (or credentials Kafka rejects) is an error naming the
// fix, not records retried in flight or a topic the broker auto-creates.
func TestProduceRefusesMissingTopic(t *testing.T) {
	brokers := bareBroker(t)
	if brokers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantMissingTopic(t, app.Produce(ctx, app.ProduceConfig{Brokers: brokers, Key: "none", Users: 3, Count: 5}, nil, &bytes.Buffer{}))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md.Has(string(topics.Transactions)) {
		t.Fatalf("the topic was created by the attempt: %v", md.Names())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeUserStateAndAlerts: a burst is processed, then its user's state
// and alert are served over HTTP by the view service.
func TestServeUserStateAndAlerts(t *testing.T) {
	c := testkafka.Start(t, 3)
	in := startInstance(t, c.Brokers, t.TempDir())
	defer in.stop(t)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- app.Serve(ctx, app.ServeConfig{Brokers: c.Brokers, Memory: true, HTTPAddr: addr, Rules: rules.Default()},
			app.Env{Log: slog.New(slog.DiscardHandler)})
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Minute)
	for i := 0; i < 7; i++ {
		b, _ := codecs.Txn{TransactionID: fmt.Sprintf("burst_%d", i), UserID: "usr_view", Amount: 10, Currency: "USD",
			Country: "US", Timestamp: at.Add(time.Duration(i) * time.Second)}.MarshalJSON()
		if err := c.Client().ProduceSync(context.Background(), &kgo.Record{Topic: string(topics.Transactions), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var u struct {
		UserID string `json:"user_id"`
		Risk   struct {
			Level string `json:"level"`
			Score int    `json:"score"`
		} `json:"risk"`
		Windows []struct {
			NumTxns int `json:"num_txns"`
		} `json:"windows"`
		Alerts []codecs.AlertRecord `json:"alerts"`
	}
	testkafka.Eventually(t, 2*time.Minute, func() error {
		resp, err := http.Get("http://" + addr + "/v1/users/usr_view")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		u.Alerts = nil
		if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
			return err
		}
		if len(u.Windows) != 1 || u.Windows[0].NumTxns != 7 || len(u.Alerts) != 1 {
			return fmt.Errorf("not there yet: %+v", u)
		}
		return nil
	})
	if u.Risk.Level != "high" || u.Risk.Score != 100 || u.Alerts[0].NumTxns != 6 {
		t.Fatalf("answer %+v", u)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestCorruptLocalStateRebuildsExact corrupts an instance's LevelDB files
// between runs: it must rebuild from the changelog and stay exact.
func TestCorruptLocalStateRebuildsExact(t *testing.T) {
	const partitions = 3
	c := testkafka.Start(t, partitions)
	events, tr := testkafka.Workload(scale(4_000, 10_000), 5, 0.005)
	dir := t.TempDir()
	in := startInstance(t, c.Brokers, dir)
	c.Produce(t, events[:len(events)/2], 2, partitions, 0)
	c.WaitCaughtUp(t, 2*time.Minute, func() error { return nil })
	in.stop(t)
	manifests, _ := filepath.Glob(filepath.Join(dir, "detector", "*", "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no LevelDB files to corrupt")
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, []byte("not a manifest"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("corrupted %d LevelDB manifests", len(manifests))
	in = startInstance(t, c.Brokers, dir)
	defer in.stop(t)
	c.Produce(t, events[len(events)/2:], 2, partitions, 0)
	c.Verify(t, tr, partitions, func() error { return nil })
}
