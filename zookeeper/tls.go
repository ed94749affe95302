package zookeeper

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/go-zookeeper/zk"
)

// TLSConfig names the PEM files for mutual TLS with ZooKeeper, the
// equivalent of Nodepool's zookeeper-tls cert, key and ca settings.
type TLSConfig struct {
	// CertFile is the client certificate (PEM).
	CertFile string
	// KeyFile is the client certificate's private key (PEM).
	KeyFile string
	// CAFile holds the CA certificates that sign the server's certificate
	// (PEM).
	CAFile string
}

// Load reads the three files and returns a client TLS configuration. Each
// file is opened on its own first so that a missing or unreadable file is
// named in the error.
func (t *TLSConfig) Load() (*tls.Config, error) {
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
		return nil, errors.New("loading zookeeper tls config: cert, key and ca files are all required")
	}
	for _, f := range []struct{ what, path string }{
		{"cert", t.CertFile}, {"key", t.KeyFile}, {"ca", t.CAFile},
	} {
		if _, err := os.ReadFile(f.path); err != nil {
			return nil, fmt.Errorf("reading zookeeper tls %s file: %w", f.what, err)
		}
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading zookeeper tls key pair %s, %s: %w", t.CertFile, t.KeyFile, err)
	}
	caPEM, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading zookeeper tls ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("loading zookeeper tls ca file %s: no pem certificates found", t.CAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// tlsHandshakeTimeout bounds the TLS handshake. go-zookeeper's connect
// timeout (1 s) covers only the TCP connect; a busy server's first
// handshakes can take longer.
const tlsHandshakeTimeout = 10 * time.Second

// tlsDialer wraps base (or plain TCP) in a TLS client handshake that
// verifies the server certificate against the configured CA and the host
// name (or IP address) of the server entry.
func tlsDialer(cfg *tls.Config, base zk.Dialer) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		raw, err := base(network, address, timeout)
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("parsing zookeeper address %s: %w", address, err)
		}
		c := cfg.Clone()
		if c.ServerName == "" {
			c.ServerName = host
		}
		conn := tls.Client(raw, c)
		_ = conn.SetDeadline(time.Now().Add(max(timeout, tlsHandshakeTimeout)))
		if err := conn.Handshake(); err != nil {
			raw.Close()
			return nil, fmt.Errorf("tls handshake with zookeeper %s: %w", address, err)
		}
		_ = conn.SetDeadline(time.Time{})
		return conn, nil
	}
}
