package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
)

// zkInstallHint names what provides the server.
const zkInstallHint = "install java and the zookeeper package with scripts/install-deps.sh, or set ZK_TEST_ADDRESS"

// ZKServer is a standalone ZooKeeper server process from the Debian package.
type ZKServer struct {
	// Addr is the plain client address, "127.0.0.1:<port>".
	Addr string
	// SecureAddr is the TLS client address when the server was started with
	// TLS, "" otherwise.
	SecureAddr string
	// Dir holds zoo.cfg, the data directory and zookeeper.log.
	Dir string
	// LogPath is the server's log file.
	LogPath string

	proc *devstack.ZooKeeper
}

// ZKServerTLS configures a TLS client port with mutual authentication.
type ZKServerTLS = devstack.ZooKeeperTLS

// ZKServerOptions tunes StartZooKeeperWithOptions.
type ZKServerOptions struct {
	// TLS, when set, adds a TLS client port (Netty connection factory) next
	// to the plain one.
	TLS *ZKServerTLS
}

// StartZooKeeper starts a standalone ZooKeeper with its configuration and
// data in dir, listening on a free loopback port, and waits until it accepts
// sessions; ctx bounds the wait. The caller stops it with Stop.
func StartZooKeeper(ctx context.Context, dir string) (*ZKServer, error) {
	return StartZooKeeperWithOptions(ctx, dir, ZKServerOptions{})
}

// StartZooKeeperWithOptions is StartZooKeeper with options.
func StartZooKeeperWithOptions(ctx context.Context, dir string, opts ZKServerOptions) (*ZKServer, error) {
	z, err := devstack.StartZooKeeper(ctx, devstack.ZooKeeperOptions{Dir: dir, TLS: opts.TLS})
	if err != nil {
		return nil, err
	}
	return &ZKServer{Addr: z.Addr, SecureAddr: z.SecureAddr, Dir: z.Dir, LogPath: z.LogPath(), proc: z}, nil
}

// Stop terminates the server (SIGTERM, then SIGKILL) and waits for it.
func (s *ZKServer) Stop() { _ = s.proc.Stop() }

// ZKRuok reports whether the ZooKeeper at addr answers "ruok" with "imok".
func ZKRuok(addr string) bool { return devstack.ZooKeeperRuok(addr) }

// The shared test servers. A server stopped by stopAll (Main, or a test of
// stopAll itself) is replaced by a fresh one on the next call.
var (
	zkMu     sync.Mutex
	zkShared *ZKServer

	zkTLSMu     sync.Mutex
	zkTLSShared *ZKServer
	zkTLSClient ZKTLSFiles
)

// running reports whether the server process is still alive.
func (s *ZKServer) running() bool { return s.proc.Running() }

// ZooKeeper returns "host:port" of a real ZooKeeper for tests: ZK_TEST_ADDRESS
// when set, otherwise a server from the Debian package started once per test
// process (stopped by Main). It fails the test, naming
// scripts/install-deps.sh, when no server can be started. Tests share the
// server; use ZooKeeperChroot for isolation.
func ZooKeeper(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv("ZK_TEST_ADDRESS"); addr != "" {
		return addr
	}
	zkMu.Lock()
	defer zkMu.Unlock()
	if zkShared == nil || !zkShared.running() {
		s, err := startShared("testenv-zookeeper-", ZKServerOptions{})
		if err != nil {
			tb.Fatalf("starting zookeeper for tests: %v\n(%s)", err, zkInstallHint)
		}
		zkShared = s
	}
	return zkShared.Addr
}

// startShared starts a server in a new temporary directory that stopAll
// stops and removes.
func startShared(prefix string, opts ZKServerOptions) (*ZKServer, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	s, err := StartZooKeeperWithOptions(context.Background(), dir, opts)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	registerStop(func() {
		s.Stop()
		_ = os.RemoveAll(dir)
	})
	return s, nil
}

// ZooKeeperChroot returns the test ZooKeeper's address and a chroot unique to
// this test ("/t-<random>"). The chroot is deleted when the test ends.
func ZooKeeperChroot(tb testing.TB) (addr, chroot string) {
	tb.Helper()
	addr = ZooKeeper(tb)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("generating chroot name: %v", err)
	}
	chroot = "/t-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		if err := zkDeleteTree(addr, chroot); err != nil {
			tb.Logf("removing zookeeper chroot %s: %v", chroot, err)
		}
	})
	return addr, chroot
}

// zkDeleteTree removes p and everything below it on the server at addr.
func zkDeleteTree(addr, p string) error {
	conn, err := zkConnect(addr, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	var del func(string) error
	del = func(p string) error {
		children, _, err := conn.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := del(p + "/" + c); err != nil {
				return err
			}
		}
		if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		return nil
	}
	var lastErr error
	for range 3 {
		if lastErr = del(p); !errors.Is(lastErr, zk.ErrNotEmpty) {
			return lastErr
		}
	}
	return lastErr
}

// zkConnect opens a quiet go-zookeeper connection and waits for a session.
func zkConnect(addr string, dialer zk.Dialer) (*zk.Conn, error) {
	if dialer == nil {
		dialer = net.DialTimeout
	}
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second,
		zk.WithLogger(zkQuietLogger{}), zk.WithLogInfo(false), zk.WithDialer(dialer))
	if err != nil {
		return nil, err
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, errors.New("zookeeper connection closed")
			}
			if ev.State == zk.StateHasSession {
				return conn, nil
			}
		case <-deadline:
			conn.Close()
			return nil, fmt.Errorf("no zookeeper session with %s", addr)
		}
	}
}

type zkQuietLogger struct{}

// Printf implements zk.Logger and discards the message.
func (zkQuietLogger) Printf(string, ...any) {}

// ZKSessionTap is a go-zookeeper dialer for tests that watches the session
// handshake, so that a test can expire the client's session on the server
// (the way kazoo's test harness does: connect a second time with the same
// session id and password, and close that session) or cut its connection
// without losing the session. Plain TCP only.
type ZKSessionTap struct {
	mu        sync.Mutex
	addr      string
	sessionID int64
	passwd    []byte
	timeout   int32
	conns     map[*zkTapConn]struct{}
}

// NewZKSessionTap returns a tap; pass its Dial as the client's dialer.
func NewZKSessionTap() *ZKSessionTap {
	return &ZKSessionTap{conns: make(map[*zkTapConn]struct{})}
}

// Dial opens a TCP connection and records the session the server grants on
// it.
func (t *ZKSessionTap) Dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	tc := &zkTapConn{Conn: c, tap: t}
	t.mu.Lock()
	t.addr = address
	t.conns[tc] = struct{}{}
	t.mu.Unlock()
	return tc, nil
}

// SessionID returns the last session id the server granted (0 before any).
func (t *ZKSessionTap) SessionID() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessionID
}

// Drop closes the client's current connections. The client reconnects and
// resumes the same session.
func (t *ZKSessionTap) Drop() {
	t.mu.Lock()
	conns := make([]*zkTapConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Expire closes the client's session on the server: its ephemeral znodes are
// deleted at once and the client, on reconnecting, learns that its session
// expired and starts a new one.
func (t *ZKSessionTap) Expire(tb testing.TB) {
	tb.Helper()
	if err := t.expire(); err != nil {
		tb.Fatalf("expiring zookeeper session: %v", err)
	}
}

func (t *ZKSessionTap) expire() error {
	t.mu.Lock()
	addr, sid, passwd, timeout := t.addr, t.sessionID, append([]byte(nil), t.passwd...), t.timeout
	t.mu.Unlock()
	if sid == 0 {
		return errors.New("no session seen yet")
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))

	// ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId,
	// passwd (length-prefixed).
	req := binary.BigEndian.AppendUint32(nil, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, uint32(timeout))
	req = binary.BigEndian.AppendUint64(req, uint64(sid))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	if _, err := conn.Write(binary.BigEndian.AppendUint32(nil, uint32(len(req)))); err != nil {
		return err
	}
	if _, err := conn.Write(req); err != nil {
		return err
	}
	resp, err := readZKFrame(conn)
	if err != nil {
		return fmt.Errorf("reading connect response: %w", err)
	}
	if len(resp) < 16 {
		return errors.New("short connect response")
	}
	if getSID := int64(binary.BigEndian.Uint64(resp[8:16])); getSID == 0 {
		return nil // already expired
	}
	// closeSession: xid 1, opcode -11.
	closeReq := binary.BigEndian.AppendUint32(nil, 1)
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(0xFFFFFFF5))
	if _, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(closeReq))), closeReq...)); err != nil {
		return err
	}
	if _, err := readZKFrame(conn); err != nil {
		return fmt.Errorf("reading close response: %w", err)
	}
	return nil
}

func readZKFrame(conn net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 1<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// zkTapConn records the first frame the server sends on a connection, the
// ConnectResponse: protocolVersion, timeOut, sessionId, passwd.
type zkTapConn struct {
	net.Conn
	tap  *ZKSessionTap
	buf  []byte
	done bool
}

// Read passes data through, recording the connect response.
func (c *zkTapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done && n > 0 {
		c.buf = append(c.buf, p[:n]...)
		c.parse()
	}
	return n, err
}

func (c *zkTapConn) parse() {
	if len(c.buf) < 4 {
		return
	}
	n := int(binary.BigEndian.Uint32(c.buf[:4]))
	if len(c.buf) < 4+n {
		return
	}
	c.done = true
	body := c.buf[4 : 4+n]
	c.buf = nil
	if len(body) < 20 {
		return
	}
	timeout := int32(binary.BigEndian.Uint32(body[4:8]))
	sid := int64(binary.BigEndian.Uint64(body[8:16]))
	plen := int(int32(binary.BigEndian.Uint32(body[16:20])))
	if plen < 0 || len(body) < 20+plen {
		return
	}
	c.tap.mu.Lock()
	c.tap.sessionID = sid
	c.tap.passwd = append([]byte(nil), body[20:20+plen]...)
	c.tap.timeout = timeout
	c.tap.mu.Unlock()
}

// Close closes the connection and forgets it.
func (c *zkTapConn) Close() error {
	c.tap.mu.Lock()
	delete(c.tap.conns, c)
	c.tap.mu.Unlock()
	return c.Conn.Close()
}

// ZKTLSFiles names the PEM files of a TLS ZooKeeper client: its certificate
// and key, and the CA that signed the server's certificate.
type ZKTLSFiles struct {
	// CertFile and KeyFile are the client certificate and key (PEM).
	CertFile, KeyFile string
	// CAFile holds the CA that signed the server certificate (PEM).
	CAFile string
}

// GenerateZKCerts writes a throwaway CA, a server certificate for 127.0.0.1
// and localhost, and a client certificate, all signed by that CA, into dir.
func GenerateZKCerts(dir string) (ZKServerTLS, ZKTLSFiles, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return ZKServerTLS{}, ZKTLSFiles{}, fmt.Errorf("generating ca key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testenv zookeeper ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return ZKServerTLS{}, ZKTLSFiles{}, fmt.Errorf("creating ca certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return ZKServerTLS{}, ZKTLSFiles{}, fmt.Errorf("parsing ca certificate: %w", err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := writePEM(caFile, "CERTIFICATE", caDER); err != nil {
		return ZKServerTLS{}, ZKTLSFiles{}, err
	}

	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", fmt.Errorf("generating %s key: %w", name, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return "", "", fmt.Errorf("creating %s certificate: %w", name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return "", "", fmt.Errorf("encoding %s key: %w", name, err)
		}
		certFile = filepath.Join(dir, name+".pem")
		keyFile = filepath.Join(dir, name+"-key.pem")
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return "", "", err
		}
		if err := writePEM(keyFile, "PRIVATE KEY", keyDER); err != nil {
			return "", "", err
		}
		return certFile, keyFile, nil
	}
	serverCert, serverKey, err := issue("server", 2, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return ZKServerTLS{}, ZKTLSFiles{}, err
	}
	clientCert, clientKey, err := issue("client", 3, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return ZKServerTLS{}, ZKTLSFiles{}, err
	}
	return ZKServerTLS{CertFile: serverCert, KeyFile: serverKey, CAFile: caFile},
		ZKTLSFiles{CertFile: clientCert, KeyFile: clientKey, CAFile: caFile}, nil
}

func writePEM(path, typ string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ZooKeeperTLS returns the TLS address of a ZooKeeper that requires client
// certificates, and the client files to connect with. The server (with its
// own throwaway CA) is started once per test process and stopped by Main.
func ZooKeeperTLS(tb testing.TB) (addr string, client ZKTLSFiles) {
	tb.Helper()
	zkTLSMu.Lock()
	defer zkTLSMu.Unlock()
	if zkTLSShared == nil || !zkTLSShared.running() {
		certDir, err := os.MkdirTemp("", "testenv-zookeeper-certs-")
		if err != nil {
			tb.Fatalf("creating certificate directory: %v", err)
		}
		registerStop(func() { _ = os.RemoveAll(certDir) })
		serverTLS, clientTLS, err := GenerateZKCerts(certDir)
		if err != nil {
			tb.Fatalf("generating zookeeper certificates: %v", err)
		}
		s, err := startShared("testenv-zookeeper-tls-", ZKServerOptions{TLS: &serverTLS})
		if err != nil {
			tb.Fatalf("starting tls zookeeper for tests: %v\n(%s)", err, zkInstallHint)
		}
		zkTLSShared, zkTLSClient = s, clientTLS
	}
	return zkTLSShared.SecureAddr, zkTLSClient
}
