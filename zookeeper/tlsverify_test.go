package zookeeper

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// certs makes a CA and a server certificate signed by it, for the given common name
// and DNS names (none: the name is in the common name only, as Nodepool's
// tools/zk-ca.sh makes them).
func certs(t *testing.T, cn string, dnsNames ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsServer accepts TLS connections with cert and completes their handshakes.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestTLSVerifiesTheConfiguredHostName(t *testing.T) {
	tests := []struct {
		name     string
		cn       string
		dns      []string
		cnOnly   bool
		hostName string // the configured host the address maps to ("" = none)
		ok       bool
	}{
		{"DNS name of the configured host", "zk", []string{"localhost"}, false, "localhost", true},
		{"DNS name, address not mapped", "zk", []string{"localhost"}, false, "", false},
		{"common name only, refused by default", "localhost", nil, false, "localhost", false},
		{"common name only, allowed", "localhost", nil, true, "localhost", true},
		{"common name of another host", "zk9.example.com", nil, true, "localhost", false},
		{"allowed, but the SAN decides when present", "localhost", []string{"zk9.example.com"}, true, "localhost", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roots, cert := certs(t, tc.cn, tc.dns...)
			addr := tlsServer(t, cert)
			cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			if tc.cnOnly {
				cnOnly(cfg)
			}
			names := map[string]string{}
			if tc.hostName != "" {
				names[addr] = tc.hostName
			}
			conn, err := tlsDialer(cfg, net.DialTimeout, names)("tcp", addr, 5*time.Second)
			if tc.ok {
				if err != nil {
					t.Fatalf("handshake failed: %v", err)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("handshake succeeded, want a verification error")
			}
		})
	}
}

func TestServerNamesMapResolvedAddresses(t *testing.T) {
	names := serverNames([]string{"localhost:2281", "127.0.0.9:2281"})
	if names["127.0.0.1:2281"] != "localhost" {
		t.Fatalf("localhost:2281 not mapped: %v", names)
	}
	if _, ok := names["127.0.0.9:2281"]; ok {
		t.Fatalf("an address entry needs no mapping: %v", names)
	}
}
