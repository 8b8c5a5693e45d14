package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudwatch/fraudwatch/internal/app"
	"github.com/fraudwatch/fraudwatch/internal/kafka"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	caFile, clientCert, clientKey string
	server                        tls.Certificate
	pool                          *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fraudwatch test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, name string, usage x509.ExtKeyUsage) ([]byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	p := &pki{caFile: filepath.Join(dir, "ca.pem"), clientCert: filepath.Join(dir, "client.pem"),
		clientKey: filepath.Join(dir, "client.key"), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	cc, ck := issue(2, "fraudwatch client", x509.ExtKeyUsageClientAuth)
	write(p.clientCert, cc)
	write(p.clientKey, ck)
	sc, sk := issue(3, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	if p.server, err = tls.X509KeyPair(sc, sk); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLS runs every client against a broker that only speaks TLS: with the
// CA given, with mutual TLS, and with TLS and SCRAM together; a client that
// does not trust the broker's CA is refused.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name   string
		mutual bool
		sasl   bool
	}{
		{"server certificate", false, false},
		{"mutual TLS", true, false},
		{"TLS and SCRAM-SHA-512", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
			if tc.mutual {
				cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, p.pool
			}
			opts := []kfake.Opt{kfake.NumBrokers(1), kfake.TLS(cfg)}
			sec := kafka.Security{TLS: true, TLSCAFile: p.caFile}
			if tc.mutual {
				sec.TLSCertFile, sec.TLSKeyFile = p.clientCert, p.clientKey
			}
			if tc.sasl {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "fraud", "s3cret"))
				sec.SASLMechanism, sec.SASLUser, sec.SASLPassword = "SCRAM-SHA-512", "fraud", "s3cret"
			}
			cl, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := sec.Validate(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			runSecured(t, ctx, cl.ListenAddrs(), sec, "usr_tls")

			refused := func(what string, s kafka.Security) {
				t.Helper()
				bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
				defer bcancel()
				err := app.CreateTopics(bctx, app.TopicsConfig{Brokers: cl.ListenAddrs(), Partitions: 2, Replication: 1, Security: s}, &bytes.Buffer{})
				if err == nil {
					t.Fatalf("%s was accepted", what)
				}
				t.Logf("%s: %v", what, err)
			}
			untrusted := sec
			untrusted.TLSCAFile = "" // system roots do not hold the test CA
			refused("a client without the broker's CA", untrusted)
			if tc.mutual {
				anonymous := sec
				anonymous.TLSCertFile, anonymous.TLSKeyFile = "", ""
				refused("a client without a certificate", anonymous)
			}
		})
	}
}
