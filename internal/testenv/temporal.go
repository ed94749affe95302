package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// TemporalAddressEnv names an existing Temporal frontend (host:port) for
	// Temporal to return instead of starting a server.
	TemporalAddressEnv = "TEMPORAL_TEST_ADDRESS"
	// TemporalDevBinEnv names the temporal-dev binary to run, overriding the
	// search for bin/temporal-dev in the repository.
	TemporalDevBinEnv = "TEMPORAL_DEV_BIN"

	// readyPrefix starts the line temporal-dev prints once it serves requests.
	readyPrefix = "temporal-dev ready "
	// temporalStartTimeout bounds the start of the shared test server.
	temporalStartTimeout = 2 * time.Minute
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 10 * time.Second
	// tailLines is how many output lines are kept for error messages.
	tailLines = 40
	// buildScript is the repository-relative command that builds temporal-dev.
	buildScript = "scripts/build-temporal-dev.sh"
)

// TemporalOptions configures StartTemporalDev. The zero value starts a
// headless, in-memory server on a free loopback port.
type TemporalOptions struct {
	// Binary is the temporal-dev executable; empty means TemporalDevBinary().
	Binary string
	// IP is the address the frontend and the UI bind to; empty means 127.0.0.1.
	IP string
	// Port is the frontend gRPC port; 0 picks a free port.
	Port int
	// UI enables the web UI.
	UI bool
	// UIPort is the UI port when UI is set; 0 means Port+1000, or a free port
	// when Port is 0.
	UIPort int
	// DBFile is the SQLite file that keeps the server's state across restarts;
	// empty means in memory.
	DBFile string
	// Namespaces are registered in addition to "default".
	Namespaces []string
	// SearchAttributes are registered in addition to the project's own,
	// as name → type ("Keyword", "KeywordList", "Int", "Text", ...).
	SearchAttributes map[string]string
	// LogLevel is the server's log level; empty means warn.
	LogLevel string
	// Output receives the server's log output; nil discards it. The last
	// lines are kept either way and reported when the start fails.
	Output io.Writer
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Server is a running temporal-dev process.
type Server struct {
	// Addr is the frontend's gRPC address, host:port.
	Addr string
	// UIAddr is the web UI's address, host:port; empty when the UI is off.
	UIAddr string

	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid after done is closed
	tail     *tailBuffer
	stopOnce sync.Once
}

// UIURL returns the web UI's base URL, or "" when the UI is off.
func (s *Server) UIURL() string {
	if s.UIAddr == "" {
		return ""
	}
	return "http://" + s.UIAddr
}

// Stop terminates the server: SIGTERM, then SIGKILL if it has not exited
// within 10 s. It waits for the process to exit and may be called more than
// once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(stopGrace):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// Args returns the temporal-dev command line (without the binary) for opts.
func (opts TemporalOptions) Args() []string {
	ip := opts.IP
	if ip == "" {
		ip = "127.0.0.1"
	}
	level := opts.LogLevel
	if level == "" {
		level = "warn"
	}
	args := []string{"--ip", ip, "--port", strconv.Itoa(opts.Port), "--log-level", level}
	switch {
	case !opts.UI:
		args = append(args, "--headless")
	case opts.UIPort > 0:
		args = append(args, "--ui-port", strconv.Itoa(opts.UIPort))
	}
	if opts.DBFile != "" {
		args = append(args, "--db", opts.DBFile)
	}
	for _, ns := range opts.Namespaces {
		args = append(args, "--namespace", ns)
	}
	names := make([]string, 0, len(opts.SearchAttributes))
	for name := range opts.SearchAttributes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args = append(args, "--search-attribute", name+"="+opts.SearchAttributes[name])
	}
	return append(args, opts.ExtraArgs...)
}

// StartTemporalDev starts temporal-dev and returns once it serves requests.
// The server runs until Stop is called or the calling process exits (it gets
// SIGTERM when its parent dies). If ctx ends first, the process is killed.
func StartTemporalDev(ctx context.Context, opts TemporalOptions) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = TemporalDevBinary(); err != nil {
			return nil, err
		}
	}
	if opts.DBFile != "" {
		// The server only creates the file; create its directory too.
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("creating directory of %s: %w", opts.DBFile, err)
		}
	}

	tail := &tailBuffer{max: tailLines}
	var out io.Writer = tail
	if opts.Output != nil {
		out = io.MultiWriter(tail, opts.Output)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating stdout pipe: %w", err)
	}
	cmd := exec.Command(bin, opts.Args()...)
	cmd.Stdout = stdoutW
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}

	s := &Server{cmd: cmd, done: make(chan struct{}), tail: tail}
	if err := startLocked(cmd, s); err != nil {
		_ = stdoutR.Close()
		_ = stdoutW.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	_ = stdoutW.Close() // the child holds its own copy

	ready := make(chan readyLine, 1)
	go func() {
		defer func() { _ = stdoutR.Close() }()
		sc := bufio.NewScanner(stdoutR)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			if !announced && strings.HasPrefix(line, readyPrefix) {
				if r, err := parseReadyLine(line); err == nil {
					announced = true
					ready <- r
					continue
				}
			}
			_, _ = fmt.Fprintln(out, line)
		}
	}()

	select {
	case r := <-ready:
		s.Addr, s.UIAddr = r.grpc, r.ui
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("temporal-dev exited before becoming ready (%v); last output:\n%s", s.waitErr, tail)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-s.done
		return nil, fmt.Errorf("waiting for temporal-dev to become ready: %w; last output:\n%s", ctx.Err(), tail)
	}
}

// startLocked starts cmd from a goroutine locked to its OS thread and keeps
// that thread until the process exits. The parent-death signal is tied to
// the thread that started the child, so this keeps it from firing early.
func startLocked(cmd *exec.Cmd, s *Server) error {
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the
		// child has exited.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	return <-started
}

// readyLine is the parsed announcement of a ready server.
type readyLine struct {
	grpc string // host:port
	ui   string // host:port, or "" when the UI is off
}

// parseReadyLine parses "temporal-dev ready grpc=HOST:PORT ui=URL|none".
func parseReadyLine(line string) (readyLine, error) {
	rest, ok := strings.CutPrefix(line, readyPrefix)
	if !ok {
		return readyLine{}, fmt.Errorf("not a ready line: %q", line)
	}
	var r readyLine
	for _, field := range strings.Fields(rest) {
		key, val, _ := strings.Cut(field, "=")
		switch key {
		case "grpc":
			if _, _, err := net.SplitHostPort(val); err != nil {
				return readyLine{}, fmt.Errorf("ready line %q: grpc address: %w", line, err)
			}
			r.grpc = val
		case "ui":
			if val == "none" || val == "" {
				continue
			}
			hostPort := strings.TrimSuffix(strings.TrimPrefix(val, "http://"), "/")
			if _, _, err := net.SplitHostPort(hostPort); err != nil {
				return readyLine{}, fmt.Errorf("ready line %q: ui address: %w", line, err)
			}
			r.ui = hostPort
		}
	}
	if r.grpc == "" {
		return readyLine{}, fmt.Errorf("ready line %q: no grpc address", line)
	}
	return r, nil
}

// TemporalDevBinary returns the temporal-dev executable to run: the file
// named by TEMPORAL_DEV_BIN, or bin/temporal-dev in the repository that
// contains the working directory. The error names the command that builds
// the binary.
func TemporalDevBinary() (string, error) {
	if bin := os.Getenv(TemporalDevBinEnv); bin != "" {
		if err := checkExecutable(bin); err != nil {
			return "", fmt.Errorf("%s=%s: %w", TemporalDevBinEnv, bin, err)
		}
		return bin, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getting working directory: %w", err)
	}
	root, err := repoRoot(wd)
	if err != nil {
		return "", fmt.Errorf("%w; set %s to a temporal-dev binary", err, TemporalDevBinEnv)
	}
	bin := filepath.Join(root, "bin", "temporal-dev")
	if err := checkExecutable(bin); err != nil {
		return "", fmt.Errorf("temporal-dev binary %s: %w; build it with: %s",
			bin, err, filepath.Join(root, buildScript))
	}
	return bin, nil
}

// repoRoot returns the nearest directory at or above dir that holds the
// temporal-dev sources (tools/devtemporal/go.mod).
func repoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tools", "devtemporal", "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no repository root (a directory with tools/devtemporal/go.mod) at or above %s", dir)
		}
	}
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

var (
	temporalOnce sync.Once
	temporalSrv  *Server
	temporalErr  error
)

// Temporal returns the host:port of a Temporal frontend for tests. If
// TEMPORAL_TEST_ADDRESS is set, that address is returned. Otherwise the first
// call starts bin/temporal-dev (see TemporalDevBinary) headless, in memory, on
// a free loopback port, and later calls return the same server; Main stops it
// after the tests. The server has the "default" namespace and the project's
// search attributes. When the binary is missing the test fails with the
// command that builds it.
func Temporal(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv(TemporalAddressEnv); addr != "" {
		return addr
	}
	temporalOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), temporalStartTimeout)
		defer cancel()
		temporalSrv, temporalErr = StartTemporalDev(ctx, TemporalOptions{})
		if temporalErr == nil {
			registerStop(temporalSrv.Stop)
		}
	})
	if temporalErr != nil {
		tb.Fatalf("testenv: starting Temporal dev server: %v", temporalErr)
	}
	return temporalSrv.Addr
}

// tailBuffer is an io.Writer that keeps the last max lines written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	data := append(t.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(data[:i]))
		data = data[i+1:]
	}
	t.partial = append([]byte(nil), data...)
	if over := len(t.lines) - t.max; over > 0 {
		t.lines = append([]string(nil), t.lines[over:]...)
	}
	return len(p), nil
}

// String returns the kept lines, including an unterminated last line.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(append([]string(nil), lines...), string(t.partial))
	}
	return strings.Join(lines, "\n")
}
