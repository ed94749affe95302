package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestZooKeeperAnswersRuok(t *testing.T) {
	addr := ZooKeeper(t)
	if !ZKRuok(addr) {
		t.Fatalf("zookeeper at %s does not answer imok", addr)
	}
	if again := ZooKeeper(t); again != addr {
		t.Fatalf("second call returned %s, want the shared server %s", again, addr)
	}
}

func TestZooKeeperChrootIsUniqueAndRemoved(t *testing.T) {
	var addr, first string
	t.Run("use", func(t *testing.T) {
		var second string
		addr, first = ZooKeeperChroot(t)
		_, second = ZooKeeperChroot(t)
		if first == second || !strings.HasPrefix(first, "/t-") {
			t.Fatalf("chroots %q and %q: want distinct /t-<random> paths", first, second)
		}
		conn := connect(t, addr, nil)
		if _, err := conn.Create(first, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("creating chroot: %v", err)
		}
		if _, err := conn.Create(first+"/child", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("creating child: %v", err)
		}
	})
	conn := connect(t, addr, nil)
	exists, _, err := conn.Exists(first)
	if err != nil {
		t.Fatalf("checking chroot: %v", err)
	}
	if exists {
		t.Fatalf("chroot %s still exists after the test ended", first)
	}
}

func TestZKSessionTapExpiresSession(t *testing.T) {
	addr := ZooKeeper(t)
	tap := NewZKSessionTap()
	conn := connect(t, addr, tap.Dial)
	observer := connect(t, addr, nil)
	oldSID := conn.SessionID()
	if tap.SessionID() != oldSID {
		t.Fatalf("tap saw session %#x, client has %#x", tap.SessionID(), oldSID)
	}
	_, chroot := ZooKeeperChroot(t)
	if _, err := observer.Create(chroot, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("creating chroot: %v", err)
	}
	eph := chroot + "/eph"
	if _, err := conn.Create(eph, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("creating ephemeral: %v", err)
	}

	tap.Drop()
	waitFor(t, "reconnect with the same session", func() bool {
		return conn.State() == zk.StateHasSession && tap.SessionID() == oldSID && dialCount(tap) > 0
	})
	if ok, _, err := observer.Exists(eph); err != nil || !ok {
		t.Fatalf("ephemeral after a dropped connection: exists=%v err=%v, want it kept", ok, err)
	}

	tap.Expire(t)
	if ok, _, err := observer.Exists(eph); err != nil || ok {
		t.Fatalf("ephemeral after expiry: exists=%v err=%v, want it gone", ok, err)
	}
	waitFor(t, "a new session", func() bool {
		return conn.State() == zk.StateHasSession && conn.SessionID() != oldSID && conn.SessionID() != 0
	})
}

func dialCount(tap *ZKSessionTap) int {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return len(tap.conns)
}

func TestGenerateZKCertsChainToCA(t *testing.T) {
	server, client, err := GenerateZKCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(client.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca file has no certificate")
	}
	tests := []struct {
		name      string
		cert, key string
		usage     x509.ExtKeyUsage
		dnsName   string
	}{
		{"server", server.CertFile, server.KeyFile, x509.ExtKeyUsageServerAuth, "127.0.0.1"},
		{"client", client.CertFile, client.KeyFile, x509.ExtKeyUsageClientAuth, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(tc.cert, tc.key)
			if err != nil {
				t.Fatalf("loading key pair: %v", err)
			}
			leaf, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = leaf.Verify(x509.VerifyOptions{
				Roots: pool, DNSName: tc.dnsName, KeyUsages: []x509.ExtKeyUsage{tc.usage},
			})
			if err != nil {
				t.Fatalf("verifying: %v", err)
			}
		})
	}
}

func TestZooKeeperTLSRequiresClientCertificate(t *testing.T) {
	addr, files := ZooKeeperTLS(t)
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		certs   []tls.Certificate
		wantErr bool
	}{
		{"with client certificate", []tls.Certificate{pair}, false},
		{"without client certificate", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ruok := func() error {
				conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: tc.certs, MinVersion: tls.VersionTLS12})
				if err != nil {
					return err
				}
				defer conn.Close()
				// TLS 1.3 reports a rejected client certificate on the first read, not
				// in the handshake.
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err = conn.Write([]byte("ruok")); err != nil {
					return err
				}
				buf := make([]byte, 4)
				n, err := conn.Read(buf)
				if err == nil && string(buf[:n]) != "imok" {
					err = errors.New("answer " + string(buf[:n]))
				}
				return err
			}
			err := ruok()
			// A server under load may close the first TLS connections while its secure
			// port warms up; a valid certificate must be accepted within a few seconds.
			for deadline := time.Now().Add(15 * time.Second); err != nil && !tc.wantErr && time.Now().Before(deadline); {
				time.Sleep(200 * time.Millisecond)
				err = ruok()
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("ruok over tls: err=%v, want error=%v", err, tc.wantErr)
			}
		})
	}
}

func connect(t *testing.T, addr string, dialer zk.Dialer) *zk.Conn {
	t.Helper()
	conn, err := zkConnect(addr, dialer)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	t.Cleanup(conn.Close)
	return conn
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
