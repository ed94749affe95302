package devstack

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// SimCloudConfig is the configuration file of a simcloud server: the cloud keys of a
// sim provider (see drivers/sim.Config). Zero fields are left out, so the cloud's
// defaults apply.
type SimCloudConfig struct {
	Seed       int64
	APILatency float64
	// BootSteps are the boot step latencies in seconds; nil means the cloud's default,
	// an empty non-nil list boots at once.
	BootSteps     []float64
	DeleteLatency float64
	// Quota is the cloud-wide quota ("instances", "cores", "ram"); absent keys are
	// unlimited.
	Quota map[string]int64
	// ErrorRate is the fraction of calls by kind ("create", "delete", "list",
	// "describe") answered with an internal error.
	ErrorRate         map[string]float64
	RateLimitRate     float64
	CapacityErrorRate float64
	LostReplyRate     float64
	// Extra holds further keys.
	Extra map[string]any
}

// YAML renders the configuration file.
func (c SimCloudConfig) YAML() ([]byte, error) {
	m := map[string]any{}
	for k, v := range c.Extra {
		m[k] = v
	}
	set := func(key string, v any, ok bool) {
		if ok {
			m[key] = v
		}
	}
	set("seed", c.Seed, c.Seed != 0)
	set("api-latency", c.APILatency, c.APILatency != 0)
	set("boot-steps", c.BootSteps, c.BootSteps != nil)
	set("delete-latency", c.DeleteLatency, c.DeleteLatency != 0)
	set("quota", c.Quota, len(c.Quota) > 0)
	set("error-rate", c.ErrorRate, len(c.ErrorRate) > 0)
	set("rate-limit-rate", c.RateLimitRate, c.RateLimitRate != 0)
	set("capacity-error-rate", c.CapacityErrorRate, c.CapacityErrorRate != 0)
	set("lost-reply-rate", c.LostReplyRate, c.LostReplyRate != 0)
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding simcloud configuration: %w", err)
	}
	return out, nil
}

// SimCloudOptions configure StartSimCloud.
type SimCloudOptions struct {
	// Binary is the simcloud executable; required (a Stack fills it in).
	Binary string
	// Name names the process; empty means "simcloud".
	Name string
	// ConfigFile is the cloud's configuration file; empty runs the cloud's defaults.
	ConfigFile string
	// Listen is the address to listen on; empty picks a free loopback port.
	Listen string
	// LogLevel is simcloud's --log-level; empty means warn.
	LogLevel string
	// LogFile receives the output; empty keeps only its last lines.
	LogFile string
	// Output, when set, also receives the output.
	Output io.Writer
}

// SimCloud is a running simcloud server: one simulated cloud that launchers share
// through their sim providers' server key. Its state lives in the process, so a
// restart starts an empty cloud (on the same address).
type SimCloud struct {
	*Proc
	// Addr is host:port and URL http://host:port.
	Addr, URL string
}

// StartSimCloud starts a simcloud server and waits until it listens.
func StartSimCloud(ctx context.Context, opts SimCloudOptions) (*SimCloud, error) {
	name := opts.Name
	if name == "" {
		name = "simcloud"
	}
	args := []string{"--log-level", cmpOr(opts.LogLevel, "warn")}
	if opts.ConfigFile != "" {
		args = append(args, "--config", opts.ConfigFile)
	}
	p, addr, err := startListener(ctx, ProcSpec{
		Name: name, Path: opts.Binary, LogFile: opts.LogFile, Output: opts.Output,
		ReadyMarker: "simcloud listening on ",
	}, args, opts.Listen)
	if err != nil {
		return nil, err
	}
	return &SimCloud{Proc: p, Addr: addr, URL: "http://" + addr}, nil
}

// EC2SimOptions configure StartEC2Sim.
type EC2SimOptions struct {
	// Binary is the ec2sim executable; required (a Stack fills it in).
	Binary string
	// Name names the process; empty means "ec2sim".
	Name string
	// Listen is the address to listen on; empty picks a free loopback port.
	Listen string
	// Seed seeds the injected errors; zero means ec2sim's default.
	Seed uint64
	// BootTime and TerminateTime are how long instances stay pending and
	// shutting-down; zero means ec2sim's defaults.
	BootTime, TerminateTime time.Duration
	// ErrorRates are injected error rates by kind (throttle, capacity, quota,
	// internal).
	ErrorRates map[string]float64
	// VCPULimits are vCPU limits by quota code.
	VCPULimits map[string]int
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// LogLevel is ec2sim's --log-level; empty means warn.
	LogLevel string
	// LogFile receives the output; empty keeps only its last lines.
	LogFile string
	// Output, when set, also receives the output.
	Output io.Writer
}

// EC2Sim is a running ec2sim server, an EC2-compatible endpoint. Its state lives in the
// process, so a restart starts an empty region (on the same address).
type EC2Sim struct {
	*Proc
	// Addr is host:port and URL http://host:port.
	Addr, URL string
}

// StartEC2Sim starts an ec2sim server and waits until it listens.
func StartEC2Sim(ctx context.Context, opts EC2SimOptions) (*EC2Sim, error) {
	name := opts.Name
	if name == "" {
		name = "ec2sim"
	}
	args := []string{"--log-level", cmpOr(opts.LogLevel, "warn")}
	if opts.Seed != 0 {
		args = append(args, "--seed", strconv.FormatUint(opts.Seed, 10))
	}
	if opts.BootTime > 0 {
		args = append(args, "--boot-time", opts.BootTime.String())
	}
	if opts.TerminateTime > 0 {
		args = append(args, "--terminate-time", opts.TerminateTime.String())
	}
	if len(opts.ErrorRates) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(opts.ErrorRates)) {
			kv = append(kv, k+"="+strconv.FormatFloat(opts.ErrorRates[k], 'g', -1, 64))
		}
		args = append(args, "--error-rate", strings.Join(kv, ","))
	}
	for _, code := range slices.Sorted(maps.Keys(opts.VCPULimits)) {
		args = append(args, "--vcpu-limit", code+"="+strconv.Itoa(opts.VCPULimits[code]))
	}
	args = append(args, opts.ExtraArgs...)
	p, addr, err := startListener(ctx, ProcSpec{
		Name: name, Path: opts.Binary, LogFile: opts.LogFile, Output: opts.Output,
		ReadyMarker: "ec2sim listening on ",
	}, args, opts.Listen)
	if err != nil {
		return nil, err
	}
	return &EC2Sim{Proc: p, Addr: addr, URL: "http://" + addr}, nil
}

// startListener starts one of the project's HTTP servers, which print "<name> listening
// on ADDR" once they accept connections, and pins later starts to the address it got.
func startListener(ctx context.Context, spec ProcSpec, args []string, listen string) (*Proc, string, error) {
	if spec.Path == "" {
		return nil, "", fmt.Errorf("starting %s: no binary", spec.Name)
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	spec.Args = append([]string{"--listen", listen}, args...)
	p := NewProc(spec)
	if err := p.Start(ctx); err != nil {
		return nil, "", err
	}
	_, addr, _ := strings.Cut(p.ReadyLine(), spec.ReadyMarker)
	addr = strings.TrimSpace(addr)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		_ = p.Stop()
		return nil, "", fmt.Errorf("%s: reading the listening address from %q: %w", spec.Name, p.ReadyLine(), err)
	}
	p.setArgs(append([]string{"--listen", addr}, args...))
	return p, addr, nil
}

// LauncherOptions configure StartLauncher.
type LauncherOptions struct {
	// Binary is the nodepool-launcher executable; required (a Stack fills it in).
	Binary string
	// Name names the process; empty means "launcher".
	Name string
	// Config is the nodepool.yaml to run with; required.
	Config string
	// Role is --role: all (empty), poller or worker.
	Role string
	// LogLevel is --log-level; empty means info.
	LogLevel string
	// Env is added to the environment (TEMPORAL_ADDRESS, cloud credentials, ...). The
	// AWS SDK's credentials for the EC2-compatible endpoint are set unless Env sets
	// them.
	Env []string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// ReadyCheck, when set, must pass before the launcher counts as started (for
	// example: its pools are registered in ZooKeeper).
	ReadyCheck func(ctx context.Context) error
	// StartTimeout bounds the start; zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// StopTimeout bounds the drain on SIGTERM; zero means 40 s.
	StopTimeout time.Duration
	// LogFile receives the output; empty keeps only its last lines.
	LogFile string
	// Output, when set, also receives the output.
	Output io.Writer
}

// LauncherReadyMarker is logged by a launcher once its workers and poller run.
const LauncherReadyMarker = "launcher running"

// Launcher is a running nodepool-launcher process.
type Launcher struct {
	*Proc
	// Role is the process's --role.
	Role string
	// Config is its configuration file.
	Config string
}

// StartLauncher starts a launcher and waits until it runs (and its ready check
// passes).
func StartLauncher(ctx context.Context, opts LauncherOptions) (*Launcher, error) {
	if opts.Binary == "" {
		return nil, fmt.Errorf("starting %s: no binary", cmpOr(opts.Name, "launcher"))
	}
	if opts.Config == "" {
		return nil, fmt.Errorf("starting %s: no configuration file", cmpOr(opts.Name, "launcher"))
	}
	role := cmpOr(opts.Role, "all")
	args := []string{"-c", opts.Config, "--role", role, "--log-level", cmpOr(opts.LogLevel, "info")}
	env := []string{
		// The simulated EC2 endpoint accepts any credentials; the AWS SDK wants some,
		// and must not look for an instance metadata service.
		"AWS_ACCESS_KEY_ID=devstack", "AWS_SECRET_ACCESS_KEY=devstack", "AWS_EC2_METADATA_DISABLED=true",
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
	}
	stop := opts.StopTimeout
	if stop <= 0 {
		stop = 40 * time.Second
	}
	p := NewProc(ProcSpec{
		Name:         cmpOr(opts.Name, "launcher"),
		Path:         opts.Binary,
		Args:         append(args, opts.ExtraArgs...),
		Env:          append(env, opts.Env...),
		LogFile:      opts.LogFile,
		Output:       opts.Output,
		ReadyMarker:  LauncherReadyMarker,
		ReadyCheck:   opts.ReadyCheck,
		StartTimeout: opts.StartTimeout,
		StopTimeout:  stop,
	})
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return &Launcher{Proc: p, Role: role, Config: opts.Config}, nil
}

// BinDir returns the directory of the project's binaries: $NODEPOOL_BIN_DIR, or bin/
// in the repository that contains the working directory.
func BinDir() (string, error) {
	if dir := os.Getenv("NODEPOOL_BIN_DIR"); dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := RepoRoot(wd)
	if err != nil {
		return "", fmt.Errorf("%w; set NODEPOOL_BIN_DIR to the directory of the built binaries", err)
	}
	return filepath.Join(root, "bin"), nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
