package faults_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fraudwatch/fraudwatch/internal/testkafka"
	"github.com/fraudwatch/fraudwatch/internal/topics"
)

var soak = flag.Int("soak", 1, "multiply every scenario's size by this (a longer soak)")

// binary is the fraudwatch binary built for this run.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "fraudwatch-faults")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fraudwatch")
	build := exec.Command("go", "build", "-o", binary, "github.com/fraudwatch/fraudwatch/cmd/fraudwatch")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fraudwatch:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// size is small on the embedded broker or with -short, full on a real cluster.
func size(small, full int) int {
	n := full
	if testing.Short() || !testkafka.Real() {
		n = small
	}
	return n * max(*soak, 1)
}

// fleet runs fraudwatch process instances as OS processes.
type fleet struct {
	t       *testing.T
	brokers []string
	root    string
	static  bool // instances are static group members, one id per name
	mu      sync.Mutex
	all     []*instance
}

// instance is one "fraudwatch process"; its log (across restarts) is in log.
type instance struct {
	name, dir, log string
	cmd            *exec.Cmd
	exited         chan error
}

func newFleet(t *testing.T, brokers []string) *fleet {
	f := &fleet{t: t, brokers: brokers, root: t.TempDir()}
	t.Cleanup(func() {
		for _, in := range f.all {
			_ = in.cmd.Process.Signal(syscall.SIGKILL)
			<-in.exited
		}
		if t.Failed() {
			f.dumpLogs()
			f.keepLogs()
		}
	})
	return f
}

// start runs an instance named name on dir (relative to the fleet's root).
func (f *fleet) start(name, dir string) *instance {
	f.t.Helper()
	in := &instance{name: name, dir: filepath.Join(f.root, dir), log: filepath.Join(f.root, name+".log"), exited: make(chan error, 1)}
	logf, err := os.OpenFile(in.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- start %s on %s at %s\n", name, in.dir, time.Now().Format(time.RFC3339Nano))
	in.cmd = exec.Command(binary, "process", "--brokers", strings.Join(f.brokers, ","), "--data-dir", in.dir,
		"--client-id", name, "--log-level", cmp.Or(os.Getenv("FRAUDWATCH_FAULTS_LOG_LEVEL"), "info"))
	if f.static {
		in.cmd.Args = append(in.cmd.Args, "--group-instance-id", "fraudwatch-"+name)
	}
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	if err := in.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { in.exited <- in.cmd.Wait() }()
	f.mu.Lock()
	f.all = append(f.all, in)
	f.mu.Unlock()
	return in
}

// kill sends SIGKILL: no shutdown, no final commit.
func (in *instance) kill(t *testing.T) {
	t.Helper()
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	err := <-in.exited
	in.exited <- err
}

// stop sends SIGTERM and requires a clean exit, as when a deployment scales in.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.exited:
		in.exited <- err
		if err != nil {
			t.Fatalf("%s did not stop cleanly: %v", in.name, err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not stop within 2 minutes of SIGTERM", in.name)
	}
}

// alive returns an error for an instance that exited without being stopped.
func (f *fleet) alive(running ...*instance) func() error {
	return func() error {
		for _, in := range running {
			select {
			case err := <-in.exited:
				in.exited <- err
				return fmt.Errorf("%s exited on its own: %v (log %s)", in.name, err, in.log)
			default:
			}
		}
		return nil
	}
}

// keepLogs copies the instances' logs to $FRAUDWATCH_ARTIFACTS/faults/<test>
// (default: artifacts/ at the repository root).
func (f *fleet) keepLogs() {
	dir := filepath.Join(cmp.Or(os.Getenv("FRAUDWATCH_ARTIFACTS"), filepath.Join("..", "..", "artifacts")), "faults", f.t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Logf("keeping logs: %v", err)
		return
	}
	logs, _ := filepath.Glob(filepath.Join(f.root, "*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644)
		}
	}
	f.t.Logf("instance logs kept in %s", dir)
}

func (f *fleet) dumpLogs() {
	seen := map[string]bool{}
	for _, in := range f.all {
		if seen[in.log] {
			continue
		}
		seen[in.log] = true
		b, _ := os.ReadFile(in.log)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		f.t.Logf("tail of %s:\n%s", in.log, b)
	}
}

// produceAsync produces the workload in the background; the channel closes
// when every record is acknowledged.
func produceAsync(t *testing.T, c *testkafka.Cluster, events []testkafka.Event, partitions int32, rate float64) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Produce(t, events, 4, partitions, rate)
	}()
	return done
}

// monitor watches the end offsets of the detector's table: every applied
// event writes it, so a partition whose end offset stops moving while input
// flows has stalled.
type monitor struct {
	mu       sync.Mutex
	last     map[int32]int64
	advanced map[int32]time.Time
	anyAt    time.Time
	gaps     []gap
	stop     func()
}

// gap is a time in which partition (-1: every partition) made no progress.
type gap struct {
	partition int32
	from, to  time.Time
}

func watch(t *testing.T, c *testkafka.Cluster) *monitor {
	m := &monitor{last: map[int32]int64{}, advanced: map[int32]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stop = func() { cancel(); <-done }
	t.Cleanup(m.stop)
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			ends, err := c.Admin().ListEndOffsets(rctx, string(topics.DetectorTable()))
			rcancel()
			if err != nil {
				continue
			}
			now := time.Now()
			m.mu.Lock()
			moved := false
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil || o.Offset <= m.last[o.Partition] {
					return
				}
				if prev, ok := m.advanced[o.Partition]; ok {
					m.gaps = append(m.gaps, gap{o.Partition, prev, now})
				}
				m.last[o.Partition], m.advanced[o.Partition] = o.Offset, now
				moved = true
			})
			if moved {
				if !m.anyAt.IsZero() {
					m.gaps = append(m.gaps, gap{-1, m.anyAt, now})
				}
				m.anyAt = now
			}
			m.mu.Unlock()
		}
	}()
	return m
}

// stall returns the longest time one partition, and every partition at once,
// made no progress, among the gaps that overlap [from, to].
func (m *monitor) stall(from, to time.Time) (partition, all time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range m.gaps {
		if g.to.Before(from) || g.from.After(to) {
			continue
		}
		d := g.to.Sub(g.from)
		if g.partition < 0 {
			all = max(all, d)
		} else {
			partition = max(partition, d)
		}
	}
	return partition, all
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// TestR1Kill9 SIGKILLs one of three instances every few seconds while the
// workload flows, restarting it on the same disk, an empty disk or a new
// directory.
func TestR1Kill9(t *testing.T) { r1(t, "R1", false) }

// TestR1Kill9Static is R1 with static group members (--group-instance-id,
// one per instance name): a restarted instance takes its partitions back
// without a rebalance. Its line is "R1s:".
func TestR1Kill9Static(t *testing.T) { r1(t, "R1s", true) }

func r1(t *testing.T, label string, static bool) {
	const partitions = 6
	c := testkafka.Start(t, partitions)
	events, tr := testkafka.Workload(size(20_000, 200_000), 11, 0.002)
	f := newFleet(t, c.Brokers)
	f.static = static
	insts := []*instance{f.start("a", "a"), f.start("b", "b"), f.start("c", "c")}
	mon := watch(t, c)
	began := time.Now()
	produced := produceAsync(t, c, events, partitions, float64(size(1000, 4000)))
	r := rand.New(rand.NewPCG(11, 1))
	plan := []string{"same", "empty", "same", "new"}
	kills, wiped, moved := 0, 0, 0
	for done := false; !done; {
		select {
		case <-produced:
			done = true
		case <-time.After(time.Duration(2000+r.IntN(3000)) * time.Millisecond):
			i := r.IntN(len(insts))
			in := insts[i]
			in.kill(t)
			dir := strings.TrimPrefix(in.dir, f.root+"/")
			switch plan[kills%len(plan)] {
			case "empty":
				if err := os.RemoveAll(in.dir); err != nil {
					t.Fatal(err)
				}
				wiped++
			case "new":
				dir = fmt.Sprintf("%s-%d", in.name, kills)
				moved++
			}
			insts[i] = f.start(in.name, dir)
			kills++
		}
	}
	fig := c.Verify(t, tr, partitions, f.alive(insts...))
	mon.stop()
	stall, all := mon.stall(began, time.Now())
	t.Logf("%s: events=%d kills=%d restarts_on_empty_disk=%d restarts_in_new_dir=%d lost=%d double_counted=%d alerts_expected=%d alerts_seen=%d alert_records_duplicate=%d dlq_missing=%d max_partition_stall_seconds=%s all_partitions_stall_seconds=%s took=%s",
		label, fig.Events, kills, wiped, moved, fig.Lost, fig.DoubleCounted, fig.AlertsExpected, fig.AlertsSeen,
		fig.AlertRecordsDuplicate, fig.DLQMissing, secs(stall), secs(all), time.Since(began).Round(time.Second))
	if kills < 3 {
		t.Errorf("only %d kills happened while the workload flowed", kills)
	}
}

// TestR2Scale scales from one instance to three and back to one while the
// workload flows; scaling in is a SIGTERM, as a deployment does it.
func TestR2Scale(t *testing.T) {
	const partitions = 6
	c := testkafka.Start(t, partitions)
	events, tr := testkafka.Workload(size(12_000, 100_000), 12, 0.002)
	rate := float64(size(400, 2500))
	f := newFleet(t, c.Brokers)
	a := f.start("a", "a")
	mon := watch(t, c)
	began := time.Now()
	third := time.Duration(float64(len(events)) / rate / 3 * float64(time.Second))
	produced := produceAsync(t, c, events, partitions, rate)
	time.Sleep(third)
	b, cc := f.start("b", "b"), f.start("c", "c")
	scaledOut := time.Now()
	time.Sleep(third)
	scaledIn := time.Now()
	b.stop(t)
	cc.stop(t)
	<-produced
	fig := c.Verify(t, tr, partitions, f.alive(a))
	mon.stop()
	outStall, _ := mon.stall(scaledOut, scaledOut.Add(third))
	inStall, _ := mon.stall(scaledIn, time.Now())
	t.Logf("R2: events=%d scale=1->3->1 lost=%d double_counted=%d alerts_expected=%d alerts_seen=%d alert_records_duplicate=%d dlq_missing=%d scale_out_stall_seconds=%s scale_in_stall_seconds=%s took=%s",
		fig.Events, fig.Lost, fig.DoubleCounted, fig.AlertsExpected, fig.AlertsSeen, fig.AlertRecordsDuplicate,
		fig.DLQMissing, secs(outStall), secs(inStall), time.Since(began).Round(time.Second))
}

// TestR3BrokerBounce SIGKILLs and restarts a broker (the group coordinator,
// or a partition leader) and then the controller leader of a 3-node cluster
// whose topics have RF 3 and min.insync.replicas 2, while two instances
// process the workload.
func TestR3BrokerBounce(t *testing.T) {
	ctl := kafkaControl(t)
	const partitions = 6
	c := testkafka.Start(t, partitions)
	events, tr := testkafka.Workload(size(20_000, 100_000), 13, 0.002)
	rate := max(float64(len(events))/70, 200)
	f := newFleet(t, c.Brokers)
	a, b := f.start("a", "a"), f.start("b", "b")
	mon := watch(t, c)
	began := time.Now()
	produced := produceAsync(t, c, events, partitions, rate)
	type bounce struct {
		what        string
		node        int32
		stall, all  time.Duration
		unavailable time.Duration
	}
	var bounces []bounce
	for _, what := range []string{"broker", "controller-leader"} {
		time.Sleep(8 * time.Second)
		controller := ctl.controllerLeader(t, c)
		node := controller
		if what == "broker" {
			node = ctl.otherThan(t, c, controller)
		}
		killed := time.Now()
		ctl.run(t, "kill-node", fmt.Sprint(node))
		t.Cleanup(func() { ctl.ensureUp(node) })
		time.Sleep(5 * time.Second)
		ctl.run(t, "start-node", fmt.Sprint(node))
		back := time.Now()
		ctl.waitInSync(t, c)
		time.Sleep(8 * time.Second)
		stall, all := mon.stall(killed, time.Now())
		bounces = append(bounces, bounce{what, node, stall, all, back.Sub(killed)})
	}
	select {
	case <-produced:
	case <-time.After(10 * time.Minute):
		t.Fatal("the workload was not acknowledged within 10 minutes")
	}
	fig := c.Verify(t, tr, partitions, f.alive(a, b))
	mon.stop()
	for _, bc := range bounces {
		t.Logf("R3: bounce=%s node=%d broker_down_seconds=%s max_partition_stall_seconds=%s all_partitions_stall_seconds=%s",
			bc.what, bc.node, secs(bc.unavailable), secs(bc.stall), secs(bc.all))
	}
	t.Logf("R3: events=%d lost=%d double_counted=%d alerts_expected=%d alerts_seen=%d alert_records_duplicate=%d dlq_missing=%d took=%s",
		fig.Events, fig.Lost, fig.DoubleCounted, fig.AlertsExpected, fig.AlertsSeen, fig.AlertRecordsDuplicate,
		fig.DLQMissing, time.Since(began).Round(time.Second))
}

// TestR4LocalStateLoss damages an instance's LevelDB files in every way the
// storage must notice, and deletes a running instance's state directory; the
// answers must stay exact and the log must say what was rebuilt.
func TestR4LocalStateLoss(t *testing.T) {
	const partitions = 4
	c := testkafka.Start(t, partitions)
	events, tr := testkafka.Workload(size(8_000, 60_000), 14, 0.002)
	f := newFleet(t, c.Brokers)
	caughtUp := func(running ...*instance) {
		t.Helper()
		c.WaitCaughtUp(t, 3*time.Minute, f.alive(running...))
	}
	a := f.start("a", "a")
	// phase 1: one instance holds every partition
	c.Produce(t, events[:len(events)/3], 4, partitions, 0)
	caughtUp(a)
	// The damage needs files to damage: a store holds what it wrote for up
	// to about 2 s before its LevelDB journal has it.
	waitJournals(t, filepath.Join(a.dir, "detector"), partitions)
	a.kill(t)
	parts, _ := filepath.Glob(filepath.Join(a.dir, "detector", "*"))
	slices.Sort(parts)
	if len(parts) != partitions {
		t.Fatalf("want %d partition directories, found %v", partitions, parts)
	}
	damages := []struct {
		name    string
		damage  func(dir string) error
		noticed bool // the log names the partition as corrupt
	}{
		{"journal bytes flipped", func(d string) error { return flipNewest(d, "*.log") }, true},
		{"manifest truncated", func(d string) error { return truncateAll(d, "MANIFEST-*") }, true},
		{"current file points nowhere", func(d string) error {
			return os.WriteFile(filepath.Join(d, "CURRENT"), []byte("MANIFEST-999999\n"), 0o644)
		}, true},
		{"directory deleted", os.RemoveAll, false},
	}
	for i, p := range parts {
		if err := damages[i].damage(p); err != nil {
			t.Fatalf("%s on %s: %v", damages[i].name, p, err)
		}
		t.Logf("R4: %s: %s", filepath.Base(p), damages[i].name)
	}
	// phase 2: alone again, the instance opens (and must rebuild) every partition
	a = f.start("a", "a")
	c.Produce(t, events[len(events)/3:len(events)/2], 4, partitions, 0)
	caughtUp(a)
	// phase 3: a second instance joins; its state directory is deleted while
	// it runs, then it is killed and restarts on the emptied directory
	b := f.start("b", "b")
	c.Produce(t, events[len(events)/2:3*len(events)/4], 4, partitions, 0)
	caughtUp(a, b)
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	c.Produce(t, events[3*len(events)/4:7*len(events)/8], 4, partitions, 0)
	b.kill(t)
	b = f.start("b", "b")
	c.Produce(t, events[7*len(events)/8:], 4, partitions, 0)
	fig := c.Verify(t, tr, partitions, f.alive(a, b))
	logs, err := os.ReadFile(a.log)
	if err != nil {
		t.Fatal(err)
	}
	noticed := 0
	for i, p := range parts {
		said := corruptLogged(logs, filepath.Base(p))
		if said {
			noticed++
		}
		if damages[i].noticed && !said {
			t.Errorf("%s (%s): the log does not say the local state is corrupt", filepath.Base(p), damages[i].name)
		}
	}
	t.Logf("R4: events=%d damaged_partitions=%d corruption_logged=%d deleted_while_running=1 lost=%d double_counted=%d alerts_expected=%d alerts_seen=%d alert_records_duplicate=%d dlq_missing=%d",
		fig.Events, len(parts), noticed, fig.Lost, fig.DoubleCounted, fig.AlertsExpected, fig.AlertsSeen,
		fig.AlertRecordsDuplicate, fig.DLQMissing)
}

func corruptLogged(logs []byte, partitionDir string) bool {
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "local state is corrupt") && strings.Contains(l, partitionDir) {
			return true
		}
	}
	return false
}

// waitJournals waits until each of the partition directories under dir
// holds a non-empty LevelDB journal.
func waitJournals(t *testing.T, dir string, partitions int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		written := 0
		parts, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, p := range parts {
			if newestNonEmpty(p, "*.log") != "" {
				written++
			}
		}
		if written >= partitions {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d partitions under %s wrote their journal within a minute", written, partitions, dir)
		}
	}
}

// newestNonEmpty is the newest non-empty file in dir that matches glob, ""
// if there is none.
func newestNonEmpty(dir, glob string) string {
	files, _ := filepath.Glob(filepath.Join(dir, glob))
	var newest string
	var at time.Time
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() > 0 && st.ModTime().After(at) {
			newest, at = f, st.ModTime()
		}
	}
	return newest
}

// flipNewest inverts bytes in the newest non-empty file matching glob in dir.
func flipNewest(dir, glob string) error {
	newest := newestNonEmpty(dir, glob)
	if newest == "" {
		return fmt.Errorf("no non-empty %s in %s", glob, dir)
	}
	b, err := os.ReadFile(newest)
	if err != nil {
		return err
	}
	for i := len(b) / 3; i < len(b)/3+64 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	return os.WriteFile(newest, b, 0o644)
}

func truncateAll(dir, glob string) error {
	files, _ := filepath.Glob(filepath.Join(dir, glob))
	if len(files) == 0 {
		return fmt.Errorf("no %s in %s", glob, dir)
	}
	for _, f := range files {
		if err := os.Truncate(f, 7); err != nil {
			return err
		}
	}
	return nil
}

// control drives the real cluster through scripts/kafka.
type control struct{ script string }

// kafkaControl returns the control of the real cluster started by
// scripts/kafka that FRAUDWATCH_TEST_BROKERS names, or skips: killing
// brokers needs that script (CI always runs this scenario on it).
func kafkaControl(t *testing.T) *control {
	t.Helper()
	if !testkafka.Real() {
		t.Skip("R3 needs a real 3-node cluster from scripts/kafka (FRAUDWATCH_TEST_BROKERS); CI runs it there")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "kafka"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, "bootstrap").Output()
	if err != nil {
		t.Skipf("FRAUDWATCH_TEST_BROKERS is not a cluster of scripts/kafka (bootstrap: %v)", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), ",")
	want := testkafka.RealBrokers()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Skipf("FRAUDWATCH_TEST_BROKERS %v is not the cluster of scripts/kafka (%v)", want, got)
	}
	if len(got) < 3 {
		t.Skipf("R3 needs 3 nodes, the cluster has %d", len(got))
	}
	return &control{script: script}
}

func (k *control) run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(k.script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/kafka %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ensureUp restarts node if a failed test left it down.
func (k *control) ensureUp(node int32) {
	_ = exec.Command(k.script, "start-node", fmt.Sprint(node)).Run()
}

// controllerLeader asks the KRaft quorum who leads it.
func (k *control) controllerLeader(t *testing.T, c *testkafka.Cluster) int32 {
	t.Helper()
	var leader int32 = -1
	testkafka.Eventually(t, time.Minute, func() error {
		req := kmsg.NewPtrDescribeQuorumRequest()
		rt := kmsg.NewDescribeQuorumRequestTopic()
		rt.Topic = "__cluster_metadata"
		rp := kmsg.NewDescribeQuorumRequestTopicPartition()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := req.RequestWith(ctx, c.Client())
		if err != nil {
			return err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return fmt.Errorf("describe quorum: unexpected answer %+v", resp)
		}
		leader = resp.Topics[0].Partitions[0].LeaderID
		if leader < 0 {
			return errors.New("quorum has no leader")
		}
		return nil
	})
	return leader
}

// otherThan picks the detector group's coordinator, or else the leader of
// the first transactions partition, that is not node not.
func (k *control) otherThan(t *testing.T, c *testkafka.Cluster, not int32) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, co := range c.Admin().FindGroupCoordinators(ctx, string(topics.Detector)) {
		if co.Err == nil && co.NodeID != not {
			return co.NodeID
		}
	}
	td, err := c.Admin().ListTopics(ctx, string(topics.Transactions))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range td[string(topics.Transactions)].Partitions.Sorted() {
		if p.Leader >= 0 && p.Leader != not {
			return p.Leader
		}
	}
	return (not + 1) % 3
}

// waitInSync waits until every partition of fraudwatch's topics has all its
// replicas in sync again.
func (k *control) waitInSync(t *testing.T, c *testkafka.Cluster) {
	t.Helper()
	testkafka.Eventually(t, 3*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		td, err := c.Admin().ListTopics(ctx, topics.Names()...)
		if err != nil {
			return err
		}
		for _, d := range td {
			for _, p := range d.Partitions {
				if p.Err != nil || len(p.ISR) < len(p.Replicas) {
					return fmt.Errorf("%s/%d: isr %v of %v", d.Topic, p.Partition, p.ISR, p.Replicas)
				}
			}
		}
		return nil
	})
}
