package app_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudwatch/fraudwatch/codecs"
	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
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
