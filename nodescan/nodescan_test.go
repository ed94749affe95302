package nodescan_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/nodescan"
	"github.com/nodepool-temporal/nodepool-temporal/nodescan/nodescantest"
)

func TestScan(t *testing.T) {
	type setup struct {
		target nodescan.Target
		// wantKeys are the keys the scan must return, in order.
		wantKeys []string
	}
	tests := []struct {
		name string
		// start brings up what the scan targets.
		start func(t *testing.T) setup
		// wantTimeout expects a *TimeoutError; wantErr another error (substring).
		wantTimeout bool
		wantErr     string
		// minAttempts is the least number of connection attempts expected.
		minAttempts int
		// check runs extra assertions on the result or error.
		check func(t *testing.T, res nodescan.Result, err error)
	}{
		{
			name: "every key type",
			start: func(t *testing.T) setup {
				s := nodescantest.NewServer(t, nodescantest.Options{})
				return setup{nodescan.Target{Host: s.Host, Port: s.Port, HostKeys: true, Timeout: 10 * time.Second}, s.Keys}
			},
			check: func(t *testing.T, res nodescan.Result, _ error) {
				var types []string
				for _, k := range res.Keys {
					types = append(types, strings.Fields(k)[0])
				}
				assert.Equal(t, nodescantest.AllKeyTypes, types, "key types in order")
				assert.Empty(t, res.Skipped)
			},
		},
		{
			name: "ed25519 only",
			start: func(t *testing.T) setup {
				s := nodescantest.NewServer(t, nodescantest.Options{KeyTypes: []string{nodescantest.Ed25519}})
				return setup{nodescan.Target{Host: s.Host, Port: s.Port, HostKeys: true, Timeout: 10 * time.Second}, s.Keys}
			},
		},
		{
			name: "rsa and ecdsa",
			start: func(t *testing.T) setup {
				s := nodescantest.NewServer(t, nodescantest.Options{KeyTypes: []string{nodescantest.ECDSA384, nodescantest.RSA}})
				return setup{nodescan.Target{Host: s.Host, Port: s.Port, HostKeys: true, Timeout: 10 * time.Second}, s.Keys}
			},
		},
		{
			name: "network_cli gathers keys",
			start: func(t *testing.T) setup {
				s := nodescantest.NewServer(t, nodescantest.Options{KeyTypes: []string{nodescantest.ECDSA256, nodescantest.Ed25519}})
				return setup{nodescan.Target{Host: s.Host, Port: s.Port, ConnectionType: nodescan.ConnectionNetworkCLI,
					HostKeys: true, Timeout: 10 * time.Second}, s.Keys}
			},
		},
		{
			name: "no keys wanted: port check",
			start: func(t *testing.T) setup {
				s := nodescantest.NewServer(t, nodescantest.Options{})
				return setup{nodescan.Target{Host: s.Host, Port: s.Port, Timeout: 10 * time.Second}, nil}
			},
		},
		{
			name: "winrm: port check only",
			start: func(t *testing.T) setup {
				host, port := nodescantest.Silent(t)
				return setup{nodescan.Target{Host: host, Port: port, ConnectionType: nodescan.ConnectionWinRM,
					HostKeys: true, Timeout: 10 * time.Second}, nil}
			},
		},
		{
			name: "server listens late",
			start: func(t *testing.T) setup {
				s := nodescantest.NewServer(t, nodescantest.Options{})
				s.Stop()
				timer := time.AfterFunc(700*time.Millisecond, func() {
					if err := s.Start(); err != nil {
						t.Errorf("restarting the server: %v", err)
					}
				})
				t.Cleanup(func() { timer.Stop() })
				return setup{nodescan.Target{Host: s.Host, Port: s.Port, HostKeys: true, Timeout: 20 * time.Second}, s.Keys}
			},
			minAttempts: 2,
		},
		{
			name: "server drops the first connections",
			start: func(t *testing.T) setup {
				s := nodescantest.NewServer(t, nodescantest.Options{DropFirst: 3})
				return setup{nodescan.Target{Host: s.Host, Port: s.Port, HostKeys: true, Timeout: 20 * time.Second}, s.Keys}
			},
			minAttempts: 4,
		},
		{
			name: "no banner: times out",
			start: func(t *testing.T) setup {
				host, port := nodescantest.Silent(t)
				return setup{nodescan.Target{Host: host, Port: port, HostKeys: true, Timeout: 1500 * time.Millisecond,
					AttemptTimeout: 500 * time.Millisecond}, nil}
			},
			wantTimeout: true,
			minAttempts: 2,
			check: func(t *testing.T, res nodescan.Result, err error) {
				assert.GreaterOrEqual(t, res.Elapsed, 1500*time.Millisecond, "gave up before the timeout")
				assert.Less(t, res.Elapsed, 4*time.Second, "gave up long after the timeout")
			},
		},
		{
			name: "closed port: times out",
			start: func(t *testing.T) setup {
				host, port := nodescantest.ClosedPort(t)
				return setup{nodescan.Target{Host: host, Port: port, HostKeys: true, Timeout: time.Second}, nil}
			},
			wantTimeout: true,
			minAttempts: 3,
			check: func(t *testing.T, _ nodescan.Result, err error) {
				var te *nodescan.TimeoutError
				require.ErrorAs(t, err, &te)
				assert.ErrorIs(t, te.Last, syscall.ECONNREFUSED, "last error")
			},
		},
		{
			name: "closed port, port check: times out",
			start: func(t *testing.T) setup {
				host, port := nodescantest.ClosedPort(t)
				return setup{nodescan.Target{Host: host, Port: port, ConnectionType: nodescan.ConnectionWinRM, Timeout: 500 * time.Millisecond}, nil}
			},
			wantTimeout: true,
		},
		{
			name: "no host",
			start: func(t *testing.T) setup {
				return setup{nodescan.Target{Port: 22}, nil}
			},
			wantErr: "no host",
		},
		{
			name: "port out of range",
			start: func(t *testing.T) setup {
				return setup{nodescan.Target{Host: "127.0.0.1", Port: 70000}, nil}
			},
			wantErr: "out of range",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.start(t)
			res, err := nodescan.Scan(t.Context(), s.target)
			switch {
			case tc.wantTimeout:
				require.Error(t, err)
				assert.ErrorIs(t, err, nodescan.ErrTimeout, "error %v", err)
				var te *nodescan.TimeoutError
				assert.ErrorAs(t, err, &te)
			case tc.wantErr != "":
				require.ErrorContains(t, err, tc.wantErr)
				assert.NotErrorIs(t, err, nodescan.ErrTimeout)
			default:
				require.NoError(t, err)
				assert.Equal(t, s.wantKeys, res.Keys)
			}
			assert.GreaterOrEqual(t, res.Attempts, tc.minAttempts, "connection attempts")
			if tc.check != nil {
				tc.check(t, res, err)
			}
		})
	}
}

// A scan ends with the context, and the error says so rather than timing out.
func TestScanContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(t *testing.T) context.Context
		want error
	}{
		{"cancelled", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx
		}, context.Canceled},
		{"deadline before the timeout", func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host, port := nodescantest.Silent(t)
			start := time.Now()
			_, err := nodescan.Scan(tc.ctx(t), nodescan.Target{Host: host, Port: port, HostKeys: true, Timeout: time.Minute})
			require.ErrorIs(t, err, tc.want)
			assert.NotErrorIs(t, err, nodescan.ErrTimeout)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

// The keys are those ssh-keyscan prints for the same server, without the host.
func TestScanMatchesSSHKeyscan(t *testing.T) {
	keyscan, err := exec.LookPath("ssh-keyscan")
	if err != nil {
		t.Skip("ssh-keyscan is not installed")
	}
	s := nodescantest.NewServer(t, nodescantest.Options{KeyTypes: []string{nodescantest.RSA, nodescantest.ECDSA256, nodescantest.Ed25519}})
	res, err := nodescan.Scan(t.Context(), nodescan.Target{Host: s.Host, Port: s.Port, HostKeys: true, Timeout: 10 * time.Second})
	require.NoError(t, err)

	out, err := exec.CommandContext(t.Context(), keyscan, "-p", strconv.Itoa(s.Port), "-t", "rsa,ecdsa,ed25519", s.Host).Output()
	require.NoError(t, err, "ssh-keyscan")
	require.ElementsMatch(t, res.Keys, keyscanKeys(t, out), "ssh-keyscan printed\n%s", out)
}

// keyscanKeys returns ssh-keyscan's keys without the host.
func keyscanKeys(t *testing.T, out []byte) []string {
	t.Helper()
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		keys = append(keys, f[1]+" "+f[2])
	}
	return keys
}

// The scan collects the host keys of OpenSSH's sshd, started after the scan begins.
func TestScanOpenSSH(t *testing.T) {
	const sshd = "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		t.Skipf("%s is not installed (apt-get install openssh-server); skipping the OpenSSH case", sshd)
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen is not installed")
	}
	// sshd separates privileges into this directory when it runs as root.
	if _, err := os.Stat("/run/sshd"); err != nil {
		if os.Geteuid() != 0 {
			t.Skip("/run/sshd is missing; sshd cannot start")
		}
		require.NoError(t, os.MkdirAll("/run/sshd", 0o755))
	}

	dir := t.TempDir()
	var want []string
	var hostKeyLines []string
	for _, typ := range []string{"rsa", "ecdsa", "ed25519"} {
		key := filepath.Join(dir, "ssh_host_"+typ+"_key")
		out, err := exec.CommandContext(t.Context(), keygen, "-q", "-N", "", "-t", typ, "-f", key).CombinedOutput()
		require.NoError(t, err, "ssh-keygen: %s", out)
		pub, err := os.ReadFile(key + ".pub")
		require.NoError(t, err)
		f := strings.Fields(string(pub))
		want = append(want, f[0]+" "+f[1])
		hostKeyLines = append(hostKeyLines, "HostKey "+key)
	}
	host, port := nodescantest.ClosedPort(t)
	cfg := filepath.Join(dir, "sshd_config")
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Join(append(hostKeyLines,
		"ListenAddress "+host,
		"Port "+strconv.Itoa(port),
		"PidFile none",
		"UsePAM no",
		"StrictModes no",
		"AuthorizedKeysFile none",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
	), "\n")+"\n"), 0o600))

	// Start sshd a moment after the scan, so that the scan has to wait for it.
	stderr := &lockedBuffer{}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	cmd.Stderr = stderr
	started := make(chan error, 1)
	time.AfterFunc(500*time.Millisecond, func() { started <- cmd.Start() })
	t.Cleanup(func() {
		if err := <-started; err != nil {
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	res, err := nodescan.Scan(t.Context(), nodescan.Target{Host: host, Port: port, HostKeys: true, Timeout: 20 * time.Second})
	require.NoError(t, err, "sshd said:\n%s", stderr.String())
	assert.ElementsMatch(t, want, res.Keys)
	assert.Empty(t, res.Skipped)
	assert.Greater(t, res.Attempts, 1, "the scan did not wait for sshd")
	// The keys come in nodescan's order of key types.
	order := func(k string) int {
		return slices.Index(nodescantest.AllKeyTypes, strings.Fields(k)[0])
	}
	assert.True(t, slices.IsSortedFunc(res.Keys, func(a, b string) int { return order(a) - order(b) }), "keys %v", res.Keys)
}

// lockedBuffer is a buffer a process may write while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestHelpers(t *testing.T) {
	tests := []struct {
		ctype       string
		gathers     bool
		defaultPort int
	}{
		{"", true, 22},
		{"ssh", true, 22},
		{"network_cli", true, 22},
		{"winrm", false, 5986},
		{"kubectl", false, 22},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.ctype), func(t *testing.T) {
			assert.Equal(t, tc.gathers, nodescan.GathersKeys(tc.ctype))
			assert.Equal(t, tc.defaultPort, nodescan.DefaultPort(tc.ctype))
		})
	}
	err := &nodescan.TimeoutError{Addr: "192.0.2.1:22", Timeout: time.Second, Attempts: 3, Last: errors.New("refused")}
	assert.ErrorIs(t, fmt.Errorf("wrapped: %w", err), nodescan.ErrTimeout)
	assert.Contains(t, err.Error(), "192.0.2.1:22")
	assert.Contains(t, err.Error(), "refused")
}
