package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/testkafka"
)

const (
	// envChromium names the browser binary; by default chromium is looked up on PATH.
	envChromium = "FRAUDWATCH_CHROMIUM"
	// envSkipBrowser=1 skips the browser test on a machine without chromium.
	envSkipBrowser = "FRAUDWATCH_SKIP_BROWSER"
	// envArtifacts is where the screenshot goes (default: artifacts/ at the repository root).
	envArtifacts = "FRAUDWATCH_ARTIFACTS"
)

// chromium returns the browser to drive. A missing browser fails the test:
// CI installs it, so a skip would hide a broken setup.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv(envSkipBrowser) == "1" {
		t.Skipf("%s=1", envSkipBrowser)
	}
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("chromium not found; apt-get install chromium chromium-driver (or set %s to the browser, or %s=1 to skip)",
		envChromium, envSkipBrowser)
	return ""
}

// artifactPath is where the test keeps file name.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startDev runs "fraudwatch dev" in-process and returns its brokers once ready.
func startDev(t *testing.T, httpAddr string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	pc := processConfig(nil, "")
	pc.HTTPAddr = httpAddr
	// The data directory is taken here, before the cleanup below: cleanups
	// run last first, so dev stops (and the embedded broker writes its last
	// snapshots) before the directory is removed. Taken inside the goroutine,
	// its removal could come first and the snapshots were left behind.
	dir := t.TempDir()
	go func() {
		done <- app.Dev(ctx, app.DevConfig{KafkaListen: "127.0.0.1:0", DataDir: dir, Partitions: 3, Process: pc},
			app.Env{Log: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()}, func(line string) { ready <- line })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev: %v", err)
		}
	})
	select {
	case line := <-ready:
		for _, f := range strings.Fields(line) {
			if b, ok := strings.CutPrefix(f, "kafka="); ok {
				return strings.Split(b, ",")
			}
		}
		t.Fatalf("no brokers in %q", line)
	case err := <-done:
		t.Fatalf("dev stopped: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("dev not ready within 2 minutes")
	}
	return nil
}

// openPage starts headless chromium on url. step runs actions under a
// deadline and fails the test with a screenshot when they do not complete.
func openPage(t *testing.T, browser, url string) (context.Context, func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void])) {
	t.Helper()
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1360, 1000))...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel() })
	// The first run starts the browser; it must not carry the step deadlines.
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("loading %s in %s: %v", url, browser, err)
	}
	return bctx, func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, timeout)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			shot := artifactPath(t, strings.ReplaceAll(t.Name(), "/", "_")+"-failed.png")
			if png, serr := chromedp.Run(bctx, chromedp.FullScreenshot(100)); serr == nil {
				_ = os.WriteFile(shot, png, 0o644)
			}
			t.Fatalf("%s: %v (screenshot %s)", what, err, shot)
		}
	}
}

// TestBrowserDashboard loads the dashboard of a running "dev" in headless
// chromium, injects a burst and checks that its alert appears in the live
// feed and that a lookup renders the user's windows, reasons and alert
// history. It keeps a screenshot (see artifactPath).
func TestBrowserDashboard(t *testing.T) {
	browser := chromium(t)
	addr := freeAddr(t)
	brokers := startDev(t, addr)
	base := "http://" + addr + "/"

	testkafka.Eventually(t, time.Minute, func() error {
		resp, err := http.Get(base + "readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})

	bctx, step := openPage(t, browser, base)
	step("the feed connects", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(`#partitions tbody tr[data-partition="2"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("feed-state").textContent === "live"`, chromedp.WithPollingTimeout(0)))

	// A burst of 7 transactions in one minute: the 6th fires velocity.
	const user = "usr_browser"
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Minute)
	var burst []testkafka.Event
	for i := range 7 {
		v, _ := codecs.Txn{TransactionID: fmt.Sprintf("browser_%d", i), UserID: user, Amount: 25,
			Currency: "EUR", Country: "DE", Timestamp: at.Add(time.Duration(i) * time.Second)}.MarshalJSON()
		burst = append(burst, testkafka.Event{Value: v, UserID: user})
	}
	(&testkafka.Cluster{Brokers: brokers}).Produce(t, burst, 1, 3, 0)
	produced := time.Now()
	alertID := rules.AlertID(user, rules.RuleVelocity, at.UnixNano(), at.Add(time.Minute).UnixNano())

	step("the alert appears in the live feed", time.Minute,
		chromedp.WaitVisible(chromedp.CSS(`#alert-feed li[data-alert-id="`+alertID+`"]`)))
	t.Logf("figures: burst acked -> alert visible in the browser feed: %v", time.Since(produced).Round(time.Millisecond))
	feed, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#alert-feed li[data-alert-id="`+alertID+`"]`)))
	if err != nil || !strings.Contains(feed, user) || !strings.Contains(strings.ToLower(feed), "velocity") {
		t.Fatalf("feed item %q (%v)", feed, err)
	}

	// The view may lag the alert a little: look up until all 7 are counted.
	step("a lookup renders the windows", time.Minute,
		chromedp.SendKeys(chromedp.ID("lookup-input"), user),
		chromedp.Click(chromedp.ID("lookup-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#user-windows tbody tr td`)),
		chromedp.Poll[chromedp.Void](`(() => {
			const row = document.querySelector("#user-windows tbody tr");
			if (row && row.cells[2].textContent === "7") return true;
			document.getElementById("lookup-form").requestSubmit();
			return false;
		})()`, chromedp.WithPollingInterval(500*time.Millisecond), chromedp.WithPollingTimeout(0)))
	checks := map[string]string{
		`#user-windows tbody`: "175 eur",
		`#user-level`:         "high",
		`#user-score`:         "100",
		`#user-reasons`:       "",
		`#user-alerts`:        "velocity",
		`#partitions tbody`:   "recovered",
	}
	for sel, want := range checks {
		got, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil || !strings.Contains(strings.ToLower(got), want) || strings.TrimSpace(got) == "" {
			t.Errorf("%s: %q, want it to contain %q (%v)", sel, got, want, err)
		}
	}

	// Partition health follows the table: the user's partition shows the
	// burst's changelog records applied up to the end and no lag. (The burst
	// wrote 1 to 7 records: the states a user gets within one produce linger
	// are written once.)
	part := kafka.Murmur2Partition([]byte(user), 3)
	step("partition health shows the burst applied", 30*time.Second,
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => {
			const row = document.querySelector('#partitions tbody tr[data-partition="%d"]');
			return row && Number(row.cells[3].textContent) >= 1 && row.cells[3].textContent === row.cells[4].textContent &&
				row.cells[5].textContent === "0";
		})()`, part), chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(0)))

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := artifactPath(t, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	// dev serves the metrics of both components on one registry.
	m, err := scrape(t, addr, "fraudwatch_")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		`fraudwatch_consumer_lag{component="process",partition="0",topic="transactions"}`,
		`fraudwatch_consumer_lag{component="serve",partition="0",topic="fraudwatch-detector-table"}`,
		`fraudwatch_restore_eta_seconds{component="process"}`,
		`fraudwatch_restore_eta_seconds{component="serve"}`,
		`fraudwatch_view_staleness_seconds{component="serve"}`,
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("dev /metrics has no %s", k)
		}
	}
}

// TestBrowserDashboardWithToken: with --auth-token the page still loads (it
// is static), asks for the token, and works once it is given; health,
// readiness and metrics stay open.
func TestBrowserDashboardWithToken(t *testing.T) {
	browser := chromium(t)
	brokers := startDev(t, freeAddr(t))
	const user = "usr_token"
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Minute)
	var burst []testkafka.Event
	for i := range 6 {
		v, _ := codecs.Txn{TransactionID: fmt.Sprintf("token_%d", i), UserID: user, Amount: 5,
			Currency: "USD", Country: "US", Timestamp: at.Add(time.Duration(i) * time.Second)}.MarshalJSON()
		burst = append(burst, testkafka.Event{Value: v, UserID: user})
	}
	(&testkafka.Cluster{Brokers: brokers}).Produce(t, burst, 1, 3, 0)

	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- app.Serve(ctx, app.ServeConfig{Brokers: brokers, Memory: true, HTTPAddr: addr, Rules: rules.Default(),
			AuthToken: "s3cret"}, app.Env{Log: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr + "/"
	want := map[string]int{"": 200, "app.js": 200, "healthz": 200, "readyz": 200, "metrics": 200, "v1/alerts": 401, "v1/partitions": 401}
	testkafka.Eventually(t, time.Minute, func() error {
		for path, code := range want {
			resp, err := http.Get(base + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != code {
				return fmt.Errorf("GET /%s without a token: %d, want %d", path, resp.StatusCode, code)
			}
		}
		return nil
	})

	_, step := openPage(t, browser, base)
	step("the page asks for the token", 30*time.Second, chromedp.WaitVisible(chromedp.ID("token-form")))
	step("with the token, the feed fills and partitions show", time.Minute,
		chromedp.SendKeys(chromedp.ID("token-input"), "s3cret"),
		chromedp.Click(chromedp.ID("token-submit")),
		chromedp.WaitNotVisible(chromedp.ID("token-form")),
		chromedp.WaitVisible(chromedp.CSS(`#alert-feed li[data-user-id="`+user+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#partitions tbody tr[data-partition="0"]`)),
		chromedp.Poll[chromedp.Void](`sessionStorage.getItem("fraudwatch.token") === "s3cret"`, chromedp.WithPollingTimeout(0)))
}
