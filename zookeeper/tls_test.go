package zookeeper

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

func TestTLSConnection(t *testing.T) {
	ctx := testCtx(t)
	addr, files := testenv.ZooKeeperTLS(t)
	z := testZK{addr: addr, chroot: "/tls-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + time.Now().Format("150405.000000"), log: testLogger(t)}
	c := z.connect(t, func(o *Options) {
		o.TLS = &TLSConfig{CertFile: files.CertFile, KeyFile: files.KeyFile, CAFile: files.CAFile}
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := c.DeleteRecursive(ctx, "/"); err != nil {
			t.Logf("removing chroot: %v", err)
		}
	})
	id, err := c.SubmitRequest(ctx, &NodeRequest{State: StateRequested, NodeTypes: []string{"a"}}, "200", false)
	if err != nil {
		t.Fatalf("submitting over tls: %v", err)
	}
	r, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatalf("reading over tls: %v", err)
	}
	assertEqual(t, "node_types", r.NodeTypes, []string{"a"})
	l := c.NewLock(RequestLockPath(id), "tls")
	if ok, err := l.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("locking over tls: %v %v", ok, err)
	}
}

func TestTLSConnectionRejected(t *testing.T) {
	addr, good := testenv.ZooKeeperTLS(t)
	_, foreign, err := testenv.GenerateZKCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  TLSConfig
	}{
		// The server does not know the client's CA.
		{"client certificate from another ca", TLSConfig{CertFile: foreign.CertFile, KeyFile: foreign.KeyFile, CAFile: good.CAFile}},
		// The client does not trust the server's CA.
		{"server certificate from another ca", TLSConfig{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: foreign.CAFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cfg := tc.tls
			c, err := Connect(ctx, Options{Servers: []string{addr}, TLS: &cfg, Logger: testLogger(t)})
			if err == nil {
				c.Close()
				t.Fatal("connected, want the handshake to fail")
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("error %q does not name the certificate problem", err)
			}
		})
	}
}

func TestTLSConfigLoad(t *testing.T) {
	dir := t.TempDir()
	_, files, err := testenv.GenerateZKCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		cfg  TLSConfig
		want string // substring of the error; "" for success
	}{
		{"valid", TLSConfig{CertFile: files.CertFile, KeyFile: files.KeyFile, CAFile: files.CAFile}, ""},
		{"all three required", TLSConfig{CertFile: files.CertFile, KeyFile: files.KeyFile}, "all required"},
		{"missing cert", TLSConfig{CertFile: missing, KeyFile: files.KeyFile, CAFile: files.CAFile}, "tls cert file"},
		{"missing key", TLSConfig{CertFile: files.CertFile, KeyFile: missing, CAFile: files.CAFile}, "tls key file"},
		{"missing ca", TLSConfig{CertFile: files.CertFile, KeyFile: files.KeyFile, CAFile: missing}, "tls ca file"},
		{"key does not match cert", TLSConfig{CertFile: files.CertFile, KeyFile: garbage, CAFile: files.CAFile}, "key pair"},
		{"ca without certificates", TLSConfig{CertFile: files.CertFile, KeyFile: files.KeyFile, CAFile: garbage}, "no pem certificates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.Load()
			if tc.want == "" {
				if err != nil || cfg == nil || len(cfg.Certificates) != 1 || cfg.RootCAs == nil {
					t.Fatalf("Load: %v, want a config with one certificate and a CA pool", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
