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
	// AllowCNOnly accepts a server certificate that names its host only in the
	// subject's common name, without a subject alternative name (certificates made
	// by Nodepool's tools/zk-ca.sh are such). The chain is still verified against
	// the CA; the common name must equal the server's configured host name.
	AllowCNOnly bool
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
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
	}
	if t.AllowCNOnly {
		cnOnly(cfg)
	}
	return cfg, nil
}

// cnOnly makes cfg verify the server's chain against its CAs as usual, but its host
// name against the subject's common name when the certificate has no subject
// alternative name (Go's verifier ignores the common name).
func cnOnly(cfg *tls.Config) {
	cfg.InsecureSkipVerify = true // replaced by the verification below
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("zookeeper server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, Intermediates: inter}); err != nil {
			return fmt.Errorf("verifying zookeeper server certificate: %w", err)
		}
		if len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 {
			return leaf.VerifyHostname(cs.ServerName)
		}
		if leaf.Subject.CommonName != cs.ServerName {
			return fmt.Errorf("zookeeper server certificate is for %q, not %q", leaf.Subject.CommonName, cs.ServerName)
		}
		return nil
	}
}

// serverNames maps the addresses the configured servers resolve to ("ip:port") to
// their configured host names. Entries given as addresses map to themselves.
func serverNames(servers []string) map[string]string {
	out := map[string]string{}
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || net.ParseIP(host) != nil {
			continue
		}
		addrs, err := net.LookupHost(host)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if _, seen := out[net.JoinHostPort(a, port)]; !seen {
				out[net.JoinHostPort(a, port)] = host
			}
		}
	}
	return out
}

// tlsHandshakeTimeout bounds the TLS handshake. go-zookeeper's connect
// timeout (1 s) covers only the TCP connect; a busy server's first
// handshakes can take longer.
const tlsHandshakeTimeout = 10 * time.Second

// tlsDialer wraps base (or plain TCP) in a TLS client handshake that
// verifies the server certificate against the configured CA and the host
// name of the server entry as configured: the ZooKeeper client resolves
// "zk1.example.com:2281" to an address before it dials, so names maps each
// resolved address back to the configured host name.
func tlsDialer(cfg *tls.Config, base zk.Dialer, names map[string]string) zk.Dialer {
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
		if name, ok := names[address]; ok {
			host = name
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
