// Package nodescantest runs SSH servers on loopback for tests of node scans: real SSH
// servers (golang.org/x/crypto/ssh) that complete key exchanges with their host keys,
// and TCP listeners that never speak SSH.
package nodescantest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodepool-temporal/nodepool-temporal/nodescan"
)

// Key types a server can hold, named as the keys' types.
const (
	RSA       = ssh.KeyAlgoRSA
	ECDSA256  = ssh.KeyAlgoECDSA256
	ECDSA384  = ssh.KeyAlgoECDSA384
	ECDSA521  = ssh.KeyAlgoECDSA521
	Ed25519   = ssh.KeyAlgoED25519
	localhost = "127.0.0.1"
)

// AllKeyTypes are every key type, in the order nodescan returns their keys.
var AllKeyTypes = []string{RSA, ECDSA256, ECDSA384, ECDSA521, Ed25519}

// hostKeys are generated once per test binary: RSA keys take a while.
var (
	hostKeysOnce sync.Once
	hostKeys     map[string]ssh.Signer
	hostKeysErr  error
)

func signers() (map[string]ssh.Signer, error) {
	hostKeysOnce.Do(func() {
		gen := map[string]func() (crypto.Signer, error){
			RSA:      func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
			ECDSA256: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
			ECDSA384: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
			ECDSA521: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
			Ed25519: func() (crypto.Signer, error) {
				_, k, err := ed25519.GenerateKey(rand.Reader)
				return k, err
			},
		}
		hostKeys = map[string]ssh.Signer{}
		for name, g := range gen {
			k, err := g()
			if err != nil {
				hostKeysErr = fmt.Errorf("generating %s host key: %w", name, err)
				return
			}
			s, err := ssh.NewSignerFromSigner(k)
			if err != nil {
				hostKeysErr = fmt.Errorf("wrapping %s host key: %w", name, err)
				return
			}
			hostKeys[name] = s
		}
	})
	return hostKeys, hostKeysErr
}

// Options configure a Server.
type Options struct {
	// Host is the address to listen on; default 127.0.0.1. Any 127.0.0.0/8 address
	// works on Linux, which gives several servers distinct host names.
	Host string
	// Port to listen on; zero picks a free one.
	Port int
	// KeyTypes are the host keys the server holds; nil means AllKeyTypes.
	KeyTypes []string
	// DropFirst is how many connections the server closes at once before it starts
	// answering, as a server that is still starting up.
	DropFirst int
}

// Server is an SSH server on loopback. Clients never get past authentication: the
// server completes key exchanges, which is all a node scan needs.
type Server struct {
	// Host and Port are where the server listens; Addr is both, as host:port.
	Host string
	Port int
	Addr string
	// Keys are the server's host keys as nodescan formats them, in nodescan's order.
	Keys []string

	cfg       *ssh.ServerConfig
	dropFirst int64

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup

	accepted atomic.Int64
}

// NewServer starts an SSH server that is stopped when the test ends.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	keys, err := signers()
	if err != nil {
		t.Fatal(err)
	}
	types := opts.KeyTypes
	if types == nil {
		types = AllKeyTypes
	}
	s := &Server{
		Host:      opts.Host,
		Port:      opts.Port,
		cfg:       &ssh.ServerConfig{NoClientAuth: true, ServerVersion: "SSH-2.0-nodescantest"},
		dropFirst: int64(opts.DropFirst),
		conns:     map[net.Conn]bool{},
	}
	if s.Host == "" {
		s.Host = localhost
	}
	for _, kt := range AllKeyTypes {
		for _, want := range types {
			if want == kt {
				s.cfg.AddHostKey(keys[kt])
				s.Keys = append(s.Keys, nodescan.FormatKey(keys[kt].PublicKey()))
			}
		}
	}
	if len(s.Keys) != len(types) {
		t.Fatalf("unknown key type in %v", types)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Start listens (again), on the same port once one was chosen.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		return err
	}
	s.ln = ln
	if s.Addr == "" {
		// The first start; later ones listen on the same port and leave the fields
		// alone, so that tests may read them while the server restarts.
		s.Port = ln.Addr().(*net.TCPAddr).Port
		s.Addr = ln.Addr().String()
	}
	s.wg.Add(1)
	go s.serve(ln)
	return nil
}

// Stop stops listening and closes every connection; the port then refuses
// connections until Start.
func (s *Server) Stop() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	s.wg.Wait()
}

// Accepted counts the TCP connections accepted so far.
func (s *Server) Accepted() int { return int(s.accepted.Load()) }

func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		n := s.accepted.Add(1)
		if n <= s.dropFirst {
			_ = c.Close()
			continue
		}
		s.mu.Lock()
		if s.ln != ln {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for ch := range chans {
		_ = ch.Reject(ssh.Prohibited, "no channels")
	}
	_ = sc.Close()
}

// Silent is a TCP listener that accepts connections and never sends a byte: a port
// that is open but has no SSH server behind it. It closes when the test ends.
func Silent(t testing.TB) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(localhost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return localhost, ln.Addr().(*net.TCPAddr).Port
}

// ClosedPort returns a loopback port that nothing listens on (it was free a moment
// ago).
func ClosedPort(t testing.TB) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(localhost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return localhost, port
}
