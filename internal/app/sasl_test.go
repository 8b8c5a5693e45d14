package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
	"github.com/fraudwatch/fraudwatch/internal/rules"
	"github.com/fraudwatch/fraudwatch/internal/testkafka"
)

// TestSASL runs every client (topics, processor with its goka/sarama clients,
// produce, alerts) against a broker that requires SASL, for each mechanism.
func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "fraud", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			brokers := cl.ListenAddrs()
			sec := kafka.Security{SASLMechanism: mech, SASLUser: "fraud", SASLPassword: "s3cret"}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			runSecured(t, ctx, brokers, sec, "usr_sasl")

			bad := sec
			bad.SASLPassword = "wrong"
			bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
			defer bcancel()
			err = app.CreateTopics(bctx, app.TopicsConfig{Brokers: brokers, Partitions: 2, Replication: 1, Security: bad}, &bytes.Buffer{})
			if err == nil {
				t.Fatal("a wrong password was accepted")
			}
		})
	}
}

func TestSecurityValidate(t *testing.T) {
	for name, s := range map[string]kafka.Security{
		"unknown mechanism": {SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"},
		"no password":       {SASLMechanism: "PLAIN", SASLUser: "u"},
		"user without mech": {SASLUser: "u"},
		"ca without tls":    {TLSCAFile: "/x"},
		"missing ca file":   {TLS: true, TLSCAFile: "/nonexistent/ca.pem"},
		"cert without key":  {TLS: true, TLSCertFile: "/x"},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (kafka.Security{TLS: true, SASLMechanism: "SCRAM-SHA-512", SASLUser: "u", SASLPassword: "p"}).Validate(); err != nil {
		t.Errorf("valid settings rejected: %v", err)
	}
}

// runSecured runs every client (topics, a processor with its goka/sarama
// clients, produce, alerts) with sec until a burst's alert is read back.
func runSecured(t *testing.T, ctx context.Context, brokers []string, sec kafka.Security, user string) {
	t.Helper()
	if err := app.CreateTopics(ctx, app.TopicsConfig{Brokers: brokers, Partitions: 2, Replication: 1, Security: sec}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	pc := processConfig(brokers, t.TempDir())
	pc.Security = sec
	p, err := app.NewProcessor(pc, app.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx, nil) }()
	defer func() {
		pcancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	var lines bytes.Buffer
	at := time.Now().Add(-time.Minute).UTC()
	for i := 0; i < 6; i++ {
		b, _ := codecs.Txn{TransactionID: fmt.Sprintf("s%d", i), UserID: user, Amount: 1, Currency: "USD",
			Timestamp: at}.MarshalJSON()
		lines.Write(append(b, '\n'))
	}
	if err := app.Produce(ctx, app.ProduceConfig{Brokers: brokers, File: "-", Key: "none", Security: sec}, &lines, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	testkafka.Eventually(t, time.Minute, func() error {
		var out bytes.Buffer
		if err := app.Alerts(ctx, app.AlertsConfig{Brokers: brokers, FromBeginning: true, Security: sec}, &out); err != nil {
			return err
		}
		if !strings.Contains(out.String(), `"user_id":"`+user+`"`) {
			return fmt.Errorf("no alert yet: %q", out.String())
		}
		return nil
	})
}

// Environment of TestSASLRealKafka: a real cluster whose listeners take
// SASL/PLAIN ("scripts/kafka start" with FRAUDWATCH_KAFKA_SASL_PLAIN), and
// the user allowed on it. CI starts one.
const (
	envSASLBrokers = "FRAUDWATCH_TEST_SASL_BROKERS"
	envSASLPlain   = "FRAUDWATCH_TEST_SASL_PLAIN" // USER:PASSWORD
)

// TestSASLRealKafka runs every client against a real Kafka with SASL/PLAIN,
// then checks that a wrong password stops every command with Kafka's answer
// (SASL_AUTHENTICATION_FAILED) well within their 30 s limit: a producer
// retried it with its records in flight, saying nothing, until "produce"
// looked the topic up first.
func TestSASLRealKafka(t *testing.T) {
	addrs, cred := os.Getenv(envSASLBrokers), os.Getenv(envSASLPlain)
	if addrs == "" {
		t.Logf("runs when %s names a SASL/PLAIN cluster (CI starts one)", envSASLBrokers)
		return
	}
	user, pass, ok := strings.Cut(cred, ":")
	if !ok || user == "" || pass == "" {
		t.Fatalf("%s must be USER:PASSWORD, got %q", envSASLPlain, cred)
	}
	brokers := strings.Split(addrs, ",")
	sec := kafka.Security{SASLMechanism: "PLAIN", SASLUser: user, SASLPassword: pass}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runSecured(t, ctx, brokers, sec, "usr_sasl_real")

	bad := sec
	bad.SASLPassword = pass + "-wrong"
	quiet := app.Env{Log: slog.New(slog.DiscardHandler)}
	for name, run := range map[string]func(context.Context) error{
		"topics create": func(ctx context.Context) error {
			return app.CreateTopics(ctx, app.TopicsConfig{Brokers: brokers, Partitions: 2, Replication: 1, Security: bad}, &bytes.Buffer{})
		},
		"produce": func(ctx context.Context) error {
			return app.Produce(ctx, app.ProduceConfig{Brokers: brokers, Key: "none", Users: 3, Count: 5, Security: bad}, nil, &bytes.Buffer{})
		},
		"process": func(ctx context.Context) error {
			pc := processConfig(brokers, t.TempDir())
			pc.Security = bad
			p, err := app.NewProcessor(pc, quiet)
			if err != nil {
				return err
			}
			return p.Run(ctx, nil)
		},
		"serve": func(ctx context.Context) error {
			return app.Serve(ctx, app.ServeConfig{Brokers: brokers, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0",
				Rules: rules.Default(), Security: bad}, quiet)
		},
		"alerts": func(ctx context.Context) error {
			return app.Alerts(ctx, app.AlertsConfig{Brokers: brokers, FromBeginning: true, Security: bad}, &bytes.Buffer{})
		},
	} {
		// Well inside the commands' own 30 s limit: an error that only came
		// at a time limit would be this deadline's, not Kafka's answer.
		cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
		start := time.Now()
		err := run(cctx)
		ccancel()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s with a wrong password: want SASL_AUTHENTICATION_FAILED, got %v (after %v)", name, err, time.Since(start).Round(time.Millisecond))
			continue
		}
		t.Logf("%s with a wrong password failed after %v: %v", name, time.Since(start).Round(time.Millisecond), err)
	}
}
