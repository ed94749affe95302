package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	// TemporalDevBinEnv names the temporal-dev binary to run, overriding the search
	// for bin/temporal-dev in the repository.
	TemporalDevBinEnv = "TEMPORAL_DEV_BIN"
	// BuildTemporalDevScript is the repository-relative command that builds
	// temporal-dev.
	BuildTemporalDevScript = "scripts/build-temporal-dev.sh"
	// temporalReadyPrefix starts the line temporal-dev prints once it serves.
	temporalReadyPrefix = "temporal-dev ready "
	// temporalStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	temporalStopTimeout = 10 * time.Second
)

// TemporalOptions configure StartTemporal. The zero value starts a headless,
// in-memory server on a free loopback port.
type TemporalOptions struct {
	// Binary is the temporal-dev executable; empty means TemporalDevBinary().
	Binary string
	// IP is the address the frontend and the UI bind to; empty means 127.0.0.1.
	IP string
	// Port is the frontend gRPC port; 0 picks a free port.
	Port int
	// UI enables the web UI.
	UI bool
	// UIPort is the UI port when UI is set; 0 means Port+1000, or a free port when
	// Port is 0.
	UIPort int
	// DBFile is the SQLite file that keeps the server's state across restarts; empty
	// means in memory (":memory:" too).
	DBFile string
	// Shards is the number of history shards of a new database; 0 means the
	// server's default.
	Shards int
	// Namespaces are registered in addition to "default".
	Namespaces []string
	// SearchAttributes are registered in addition to the project's own, as name →
	// type ("Keyword", "KeywordList", "Int", "Text", ...).
	SearchAttributes map[string]string
	// DynamicConfig are KEY=VALUE dynamic configuration values.
	DynamicConfig []string
	// LogLevel is the server's log level; empty means warn.
	LogLevel string
	// LogFile receives the server's output; empty keeps only its last lines.
	LogFile string
	// Output, when set, also receives the server's output.
	Output io.Writer
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// StartTimeout bounds the start; zero means DefaultStartTimeout.
	StartTimeout time.Duration
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
	if opts.Shards > 0 {
		args = append(args, "--shards", strconv.Itoa(opts.Shards))
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
	for _, kv := range opts.DynamicConfig {
		args = append(args, "--dynamic-config-value", kv)
	}
	return append(args, opts.ExtraArgs...)
}

// Temporal is a running temporal-dev process. Restart brings it back on the same
// ports; with a database file, workflows, timers and history survive.
type Temporal struct {
	*Proc
	// Addr is the frontend's gRPC address, host:port.
	Addr string
	// UIAddr is the web UI's address, host:port; empty when the UI is off.
	UIAddr string
}

// UIURL returns the web UI's base URL, or "" when the UI is off.
func (t *Temporal) UIURL() string {
	if t.UIAddr == "" {
		return ""
	}
	return "http://" + t.UIAddr
}

// StartTemporal starts temporal-dev and returns once it serves requests (its ready
// line says so: health checks pass, namespaces and search attributes are usable and
// the UI answers). The server runs until it is stopped or the calling process exits.
func StartTemporal(ctx context.Context, opts TemporalOptions) (*Temporal, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = TemporalDevBinary(); err != nil {
			return nil, err
		}
	}
	if opts.DBFile != "" && opts.DBFile != ":memory:" {
		// The server only creates the file; create its directory too.
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("creating directory of %s: %w", opts.DBFile, err)
		}
	}
	t := &Temporal{Proc: NewProc(ProcSpec{
		Name:         "temporal-dev",
		Path:         bin,
		Args:         opts.Args(),
		LogFile:      opts.LogFile,
		Output:       opts.Output,
		ReadyMarker:  temporalReadyPrefix,
		StartTimeout: opts.StartTimeout,
		StopTimeout:  temporalStopTimeout,
	})}
	if err := t.Start(ctx); err != nil {
		return nil, err
	}
	r, err := parseReadyLine(strings.TrimSpace(t.ReadyLine()))
	if err != nil {
		_ = t.Stop()
		return nil, err
	}
	t.Addr, t.UIAddr = r.grpc, r.ui
	// Later starts use the ports this one got, so that clients find the server
	// again after a restart.
	pinned := opts
	if _, port, err := net.SplitHostPort(r.grpc); err == nil {
		pinned.Port, _ = strconv.Atoi(port)
	}
	if _, port, err := net.SplitHostPort(r.ui); err == nil && opts.UI {
		pinned.UIPort, _ = strconv.Atoi(port)
	}
	t.setArgs(pinned.Args())
	return t, nil
}

// readyLine is the parsed announcement of a ready server.
type readyLine struct {
	grpc string // host:port
	ui   string // host:port, or "" when the UI is off
}

// parseReadyLine parses "temporal-dev ready grpc=HOST:PORT ui=URL|none".
func parseReadyLine(line string) (readyLine, error) {
	rest, ok := strings.CutPrefix(line, temporalReadyPrefix)
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

// TemporalDevBinary returns the temporal-dev executable to run: the file named by
// TEMPORAL_DEV_BIN, or bin/temporal-dev in the repository that contains the working
// directory. The error names the command that builds the binary.
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
	root, err := RepoRoot(wd)
	if err != nil {
		return "", fmt.Errorf("%w; set %s to a temporal-dev binary", err, TemporalDevBinEnv)
	}
	bin := filepath.Join(root, "bin", "temporal-dev")
	if err := checkExecutable(bin); err != nil {
		return "", fmt.Errorf("temporal-dev binary %s: %w; build it with: %s",
			bin, err, filepath.Join(root, BuildTemporalDevScript))
	}
	return bin, nil
}

// RepoRoot returns the nearest directory at or above dir that holds the temporal-dev
// sources (tools/devtemporal/go.mod): the repository's root.
func RepoRoot(dir string) (string, error) {
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
