package nodescan

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

// Connection types, as in a node's connection_type.
const (
	ConnectionSSH        = "ssh"
	ConnectionNetworkCLI = "network_cli"
	ConnectionWinRM      = "winrm"
)

const (
	// DefaultTimeout bounds a scan whose Target sets no timeout: Nodepool's default
	// boot-timeout.
	DefaultTimeout = 180 * time.Second
	// DefaultAttemptTimeout bounds one connection attempt (TCP connect, and the SSH
	// key exchange that follows it) when the Target sets no bound, as Nodepool's.
	DefaultAttemptTimeout = 10 * time.Second
)

// Retry pacing: the wait after a failed attempt doubles from minBackoff to maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = time.Second
)

// keyTries is how often a key type's key exchange is tried before the type is
// skipped, once the node has answered.
const keyTries = 3

// Target is what to scan.
type Target struct {
	// Host is the node's address or host name (a node's interface_ip).
	Host string
	// Port is the connection port; zero means [DefaultPort] of the connection type.
	Port int
	// ConnectionType is the node's connection_type; empty means "ssh".
	ConnectionType string
	// Timeout bounds the whole scan (the provider's boot-timeout); zero means
	// [DefaultTimeout].
	Timeout time.Duration
	// HostKeys asks for the host keys (host-key-checking). Keys are collected for the
	// ssh and network_cli connection types only; see the package documentation.
	HostKeys bool
	// AttemptTimeout bounds one connection attempt; zero means
	// [DefaultAttemptTimeout].
	AttemptTimeout time.Duration
}

// Result is what a successful scan found.
type Result struct {
	// Keys are the host keys, "<type> <base64>", in the order of the package
	// documentation; empty when no keys were asked for or the connection type has
	// none.
	Keys []string
	// Skipped names the key types the server offered, or may have offered, whose key
	// exchange failed every time; their keys are missing from Keys.
	Skipped []string
	// Attempts counts the connection attempts until the node first answered.
	Attempts int
	// Elapsed is how long the scan took.
	Elapsed time.Duration
}

// ErrTimeout is matched (errors.Is) by every [*TimeoutError].
var ErrTimeout = errors.New("nodescan: timed out")

// TimeoutError reports that the node did not answer, or did not finish handing out
// its keys, within the scan's timeout.
type TimeoutError struct {
	// Addr is the address scanned, host:port.
	Addr string
	// Timeout is the scan's timeout.
	Timeout time.Duration
	// Attempts counts the connection attempts made.
	Attempts int
	// Last is the error of the last failed attempt, if any.
	Last error
}

func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("nodescan: %s did not answer within %s (%d attempts)", e.Addr, e.Timeout, e.Attempts)
	if e.Last != nil {
		msg += ": " + e.Last.Error()
	}
	return msg
}

// Is reports whether target is ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// GathersKeys reports whether nodes of the connection type have SSH host keys to
// collect: "ssh" (and the empty default) and "network_cli".
func GathersKeys(connectionType string) bool {
	switch connectionType {
	case "", ConnectionSSH, ConnectionNetworkCLI:
		return true
	}
	return false
}

// DefaultPort is the connection port of a connection type when none is configured:
// 5986 for winrm, 22 otherwise.
func DefaultPort(connectionType string) int {
	if connectionType == ConnectionWinRM {
		return 5986
	}
	return 22
}

// keyType is a host key type and the host key algorithms that ask for it.
type keyType struct {
	name  string
	algos []string
}

// keyTypes are the key types collected, in the order their keys are returned.
var keyTypes = []keyType{
	{ssh.KeyAlgoRSA, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}},
	{ssh.KeyAlgoECDSA256, []string{ssh.KeyAlgoECDSA256}},
	{ssh.KeyAlgoECDSA384, []string{ssh.KeyAlgoECDSA384}},
	{ssh.KeyAlgoECDSA521, []string{ssh.KeyAlgoECDSA521}},
	{ssh.KeyAlgoED25519, []string{ssh.KeyAlgoED25519}},
}

// allKeyAlgos are the host key algorithms of every key type, for the first key
// exchange.
var allKeyAlgos = func() []string {
	var out []string
	for _, kt := range keyTypes {
		out = append(out, kt.algos...)
	}
	return out
}()

// Key exchange, cipher and MAC algorithms offered: everything the ssh package
// implements, the weak ones last, so that old network gear answers too. Nothing secret
// crosses the connection, and the host key's signature is checked either way.
var (
	kexAlgos    = slices.Concat(ssh.SupportedAlgorithms().KeyExchanges, ssh.InsecureAlgorithms().KeyExchanges)
	cipherAlgos = slices.Concat(ssh.SupportedAlgorithms().Ciphers, ssh.InsecureAlgorithms().Ciphers)
	macAlgos    = slices.Concat(ssh.SupportedAlgorithms().MACs, ssh.InsecureAlgorithms().MACs)
)

// errKeyCaptured ends a key exchange once the host key is known.
var errKeyCaptured = errors.New("host key captured")

// Scan waits until the target answers and collects its host keys; see the package
// documentation. It fails with a *TimeoutError when the target's timeout passes, with
// the context's error when ctx ends first, and at once for a target it cannot scan (no
// host, a port out of range) or an SSH server that offers no key type this package
// knows.
func Scan(ctx context.Context, t Target) (Result, error) {
	start := time.Now()
	if t.Host == "" {
		return Result{}, errors.New("nodescan: no host")
	}
	if t.Port == 0 {
		t.Port = DefaultPort(t.ConnectionType)
	}
	if t.Port < 1 || t.Port > 65535 {
		return Result{}, fmt.Errorf("nodescan: port %d out of range", t.Port)
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
	if t.AttemptTimeout <= 0 {
		t.AttemptTimeout = DefaultAttemptTimeout
	}
	s := &scan{
		t:        t,
		addr:     net.JoinHostPort(t.Host, strconv.Itoa(t.Port)),
		deadline: start.Add(t.Timeout),
		gather:   t.HostKeys && GathersKeys(t.ConnectionType),
	}
	res, err := s.run(ctx)
	res.Attempts = s.attempts
	res.Elapsed = time.Since(start)
	return res, err
}

// scan is one run of Scan.
type scan struct {
	t        Target
	addr     string
	deadline time.Time
	gather   bool
	attempts int
}

func (s *scan) run(ctx context.Context) (Result, error) {
	var res Result
	// Wait for the node to answer: a TCP connection, or a first complete key
	// exchange when keys are wanted.
	keys := make([]ssh.PublicKey, len(keyTypes))
	var last error
	for wait := minBackoff; ; wait = min(2*wait, maxBackoff) {
		if s.attempts > 0 && s.expired() {
			return res, s.timeout(last)
		}
		s.attempts++
		var err error
		if s.gather {
			var key ssh.PublicKey
			key, err = s.exchange(ctx, allKeyAlgos)
			if err == nil {
				i := keyTypeIndex(key.Type())
				if i < 0 {
					return res, fmt.Errorf("nodescan: %s offered a host key of unexpected type %q", s.addr, key.Type())
				}
				keys[i] = key
			}
		} else {
			var conn net.Conn
			conn, err = s.dial(ctx)
			if err == nil {
				_ = conn.Close()
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("nodescan: %s: %w", s.addr, ctx.Err())
		}
		var nerr *ssh.AlgorithmNegotiationError
		if errors.As(err, &nerr) {
			// An SSH server answered but shares no algorithm with us: retrying
			// cannot help.
			return res, fmt.Errorf("nodescan: %s: %w", s.addr, err)
		}
		last = err
		if err := s.sleep(ctx, wait); err != nil {
			return res, err
		}
	}
	if !s.gather {
		return res, nil
	}

	// Ask for each remaining key type in turn. The server's list of host key
	// algorithms is learnt from the first key exchange that finds no common one.
	var offered []string
	for i, kt := range keyTypes {
		if keys[i] != nil {
			continue
		}
		if offered != nil && !slices.ContainsFunc(kt.algos, func(a string) bool { return slices.Contains(offered, a) }) {
			continue
		}
		wait := minBackoff
		for try := 1; ; try++ {
			if s.expired() {
				return res, s.timeout(last)
			}
			key, err := s.exchange(ctx, kt.algos)
			if err == nil {
				keys[i] = key
				break
			}
			if ctx.Err() != nil {
				return res, fmt.Errorf("nodescan: %s: %w", s.addr, ctx.Err())
			}
			var nerr *ssh.AlgorithmNegotiationError
			if errors.As(err, &nerr) && nerr.What == "host key" {
				offered = nerr.RequestedAlgorithms
				break
			}
			last = err
			if try == keyTries {
				res.Skipped = append(res.Skipped, kt.name)
				break
			}
			if err := s.sleep(ctx, wait); err != nil {
				return res, err
			}
			wait = min(2*wait, maxBackoff)
		}
	}
	for _, key := range keys {
		if key != nil {
			res.Keys = append(res.Keys, FormatKey(key))
		}
	}
	return res, nil
}

// expired reports whether the scan's time is up.
func (s *scan) expired() bool { return !time.Now().Before(s.deadline) }

// timeout is the error of a scan whose time is up.
func (s *scan) timeout(last error) error {
	return &TimeoutError{Addr: s.addr, Timeout: s.t.Timeout, Attempts: s.attempts, Last: last}
}

// sleep waits before the next attempt, at most until the deadline.
func (s *scan) sleep(ctx context.Context, d time.Duration) error {
	d = min(d, time.Until(s.deadline))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("nodescan: %s: %w", s.addr, ctx.Err())
	case <-t.C:
		return nil
	}
}

// attemptDeadline is when the attempt starting now must end.
func (s *scan) attemptDeadline() time.Time {
	if d := time.Now().Add(s.t.AttemptTimeout); d.Before(s.deadline) {
		return d
	}
	return s.deadline
}

// dial opens a TCP connection within one attempt's time.
func (s *scan) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithDeadline(ctx, s.attemptDeadline())
	defer cancel()
	var d net.Dialer
	return d.DialContext(dctx, "tcp", s.addr)
}

// exchange connects and runs an SSH key exchange offering the host key algorithms,
// and returns the server's host key.
func (s *scan) exchange(ctx context.Context, algos []string) (ssh.PublicKey, error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.SetDeadline(s.attemptDeadline()); err != nil {
		return nil, err
	}
	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{
		Config: ssh.Config{KeyExchanges: kexAlgos, Ciphers: cipherAlgos, MACs: macAlgos},
		User:   "nodescan",
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errKeyCaptured
		},
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-nodescan",
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, s.addr, cfg)
	if err == nil {
		// Not reached: the host key callback always ends the handshake.
		go ssh.DiscardRequests(reqs)
		go func() {
			for ch := range chans {
				_ = ch.Reject(ssh.Prohibited, "")
			}
		}()
		_ = c.Close()
	}
	if key != nil {
		return key, nil
	}
	if err == nil {
		err = errors.New("no host key received")
	}
	return nil, err
}

// keyTypeIndex is the position of a key type in keyTypes, or -1.
func keyTypeIndex(name string) int {
	return slices.IndexFunc(keyTypes, func(kt keyType) bool { return kt.name == name })
}

// FormatKey formats a host key as Nodepool stores it: "<type> <base64>".
func FormatKey(key ssh.PublicKey) string {
	return key.Type() + " " + base64.StdEncoding.EncodeToString(key.Marshal())
}
