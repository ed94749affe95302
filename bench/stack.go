package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Start-up bounds of the components.
const (
	zookeeperStartTimeout = 90 * time.Second
	temporalStartTimeout  = 90 * time.Second
	cloudStartTimeout     = 30 * time.Second
	launcherStartTimeout  = 90 * time.Second
)

// stackOptions describe one stack: ZooKeeper, Temporal, a cloud and the launcher.
type stackOptions struct {
	// BinDir holds temporal-dev, simcloud, ec2sim and nodepool-launcher.
	BinDir string
	// ScriptsDir holds zookeeper.sh.
	ScriptsDir string
	// Dir receives configuration, data and logs.
	Dir    string
	Driver string
	// Shards is temporal-dev's number of history shards.
	Shards int
	// Workers is the number of launcher processes: the first runs the poller and a
	// worker, the others only a worker.
	Workers int
	// BootSteps are the cloud's boot step latencies in seconds (ec2sim gets their sum).
	BootSteps []float64
	// DeleteLatency is the cloud's instance deletion time in seconds.
	DeleteLatency  float64
	MaxServers     int
	PollInterval   float64
	DeleteInterval float64
	Rate           float64
	Seed           int64
	// LauncherLogLevel is the launcher's --log-level.
	LauncherLogLevel string
	// TemporalConfig are KEY=VALUE dynamic config values for temporal-dev.
	TemporalConfig []string
	Logger         *slog.Logger
	Monitor        *monitor
}

// stack is a running set of components.
type stack struct {
	opts stackOptions

	zkDir        string
	zkPort       int
	temporalAddr string
	cloudURL     string
	// procs are the started processes in start order (ZooKeeper is not among them: its
	// script manages it).
	procs     []*proc
	launchers []*proc
	zk        *zookeeper.Client
}

// startStack starts every component and waits until the launcher has registered its
// pool. On failure everything started so far is stopped.
func startStack(ctx context.Context, o stackOptions) (s *stack, err error) {
	s = &stack{opts: o}
	defer func() {
		if err != nil {
			s.stop()
			s = nil
		}
	}()
	log := o.Logger

	log.Info("starting ZooKeeper")
	if err := s.startZooKeeper(ctx); err != nil {
		return s, err
	}

	log.Info("starting Temporal dev server", "shards", o.Shards)
	targs := []string{"--ip", "127.0.0.1", "--port", "0", "--ui-port", "0", "--db", ":memory:",
		"--shards", strconv.Itoa(o.Shards), "--log-level", "error"}
	for _, kv := range o.TemporalConfig {
		targs = append(targs, "--dynamic-config-value", kv)
	}
	tp, err := s.start("temporal-dev", nil, "temporal-dev ready", filepath.Join(o.BinDir, "temporal-dev"), targs...)
	if err != nil {
		return s, err
	}
	line, err := tp.waitReady(ctx, temporalStartTimeout)
	if err != nil {
		return s, err
	}
	if s.temporalAddr, err = field(line, "grpc="); err != nil {
		return s, fmt.Errorf("reading temporal-dev address: %w", err)
	}

	log.Info("starting cloud", "driver", o.Driver, "boot_steps", o.BootSteps, "delete_latency", o.DeleteLatency)
	if err := s.startCloud(ctx); err != nil {
		return s, err
	}

	cfg, err := launcherConfig(launcherParams{
		ZooKeeperPort: s.zkPort, TemporalAddress: s.temporalAddr, Driver: o.Driver, CloudURL: s.cloudURL,
		MaxServers: o.MaxServers, PollInterval: o.PollInterval, DeleteInterval: o.DeleteInterval, Rate: o.Rate,
	})
	if err != nil {
		return s, err
	}
	cfgPath := filepath.Join(o.Dir, "nodepool.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return s, fmt.Errorf("writing launcher config: %w", err)
	}

	env := []string{
		"TEMPORAL_ADDRESS=" + s.temporalAddr, "TEMPORAL_NAMESPACE=default", "TEMPORAL_TASK_QUEUE=" + benchTaskQueue,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
	}
	if o.Driver == driverAWS {
		// ec2sim accepts any credentials; the SDK wants some, and must not look for an
		// instance metadata service.
		env = append(env, "AWS_ACCESS_KEY_ID=npbench", "AWS_SECRET_ACCESS_KEY=npbench", "AWS_EC2_METADATA_DISABLED=true")
	}
	log.Info("starting launcher", "processes", o.Workers)
	for i := range o.Workers {
		role, name := "all", "launcher"
		if i > 0 {
			role, name = "worker", fmt.Sprintf("launcher-worker-%d", i)
		}
		lp, err := s.start(name, env, "launcher running", filepath.Join(o.BinDir, "nodepool-launcher"),
			"-c", cfgPath, "--role", role, "--log-level", o.LauncherLogLevel)
		if err != nil {
			return s, err
		}
		s.launchers = append(s.launchers, lp)
	}
	for _, lp := range s.launchers {
		if _, err := lp.waitReady(ctx, launcherStartTimeout); err != nil {
			return s, err
		}
	}

	zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.zk, err = zookeeper.Connect(zctx, zookeeper.Options{
		Servers: []string{fmt.Sprintf("127.0.0.1:%d", s.zkPort)},
		Logger:  log.With("component", "zookeeper"),
	})
	if err != nil {
		return s, fmt.Errorf("connecting to ZooKeeper: %w", err)
	}
	if err := s.waitRegistered(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// start starts a process and tracks it.
func (s *stack) start(name string, env []string, marker, bin string, args ...string) (*proc, error) {
	p, err := startProc(name, s.opts.Dir, env, marker, bin, args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	component := name
	if strings.HasPrefix(name, "launcher") {
		component = "launcher"
	}
	s.opts.Monitor.track(component, p.pid())
	return p, nil
}

func (s *stack) startZooKeeper(ctx context.Context) error {
	s.zkDir = filepath.Join(s.opts.Dir, "zookeeper")
	cctx, cancel := context.WithTimeout(ctx, zookeeperStartTimeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, filepath.Join(s.opts.ScriptsDir, "zookeeper.sh"), "start", s.zkDir)
	cmd.Env = append(os.Environ(), fmt.Sprintf("ZK_START_TIMEOUT=%d", int(zookeeperStartTimeout.Seconds())))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("starting ZooKeeper: %w\n%s", err, stderr.String())
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return fmt.Errorf("reading ZooKeeper port from %q: %w", out, err)
	}
	s.zkPort = port
	pidText, err := os.ReadFile(filepath.Join(s.zkDir, "zookeeper.pid"))
	if err != nil {
		return fmt.Errorf("reading ZooKeeper pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		return fmt.Errorf("reading ZooKeeper pid: %w", err)
	}
	s.opts.Monitor.track("zookeeper", pid)
	return nil
}

func (s *stack) startCloud(ctx context.Context) error {
	o := s.opts
	var (
		p      *proc
		err    error
		marker string
	)
	switch o.Driver {
	case driverSim:
		cfg, cerr := simCloudConfig(o.BootSteps, o.DeleteLatency, o.Seed)
		if cerr != nil {
			return cerr
		}
		path := filepath.Join(o.Dir, "simcloud.yaml")
		if err := os.WriteFile(path, cfg, 0o644); err != nil {
			return fmt.Errorf("writing simcloud config: %w", err)
		}
		marker = "simcloud listening on "
		p, err = s.start("simcloud", nil, marker, filepath.Join(o.BinDir, "simcloud"),
			"--listen", "127.0.0.1:0", "--config", path, "--log-level", "warn")
	case driverAWS:
		marker = "ec2sim listening on "
		p, err = s.start("ec2sim", nil, marker, filepath.Join(o.BinDir, "ec2sim"),
			"--listen", "127.0.0.1:0", "--seed", strconv.FormatInt(o.Seed, 10),
			"--boot-time", seconds(sum(o.BootSteps)).String(),
			"--terminate-time", seconds(o.DeleteLatency).String(), "--log-level", "warn")
	default:
		return fmt.Errorf("unknown driver %q", o.Driver)
	}
	if err != nil {
		return err
	}
	line, err := p.waitReady(ctx, cloudStartTimeout)
	if err != nil {
		return err
	}
	_, addr, _ := strings.Cut(line, marker)
	s.cloudURL = "http://" + strings.TrimSpace(addr)
	return nil
}

// waitRegistered waits until the launcher has registered its pool in ZooKeeper.
func (s *stack) waitRegistered(ctx context.Context) error {
	deadline := time.Now().Add(launcherStartTimeout)
	for {
		pools, err := s.zk.ListPools(ctx)
		if err == nil && slices.ContainsFunc(pools, func(p zookeeper.PoolComponent) bool {
			return p.ProviderName == providerName(s.opts.Driver)
		}) {
			return nil
		}
		if s.launchers[0].exited() {
			return fmt.Errorf("launcher exited during start (%v); last lines of %s:\n%s",
				s.launchers[0].err, s.launchers[0].logPath, s.launchers[0].tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("launcher registered no pool within %s; last lines of %s:\n%s",
				launcherStartTimeout, s.launchers[0].logPath, s.launchers[0].tail(20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the pool registration: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkAlive returns an error naming any component that exited.
func (s *stack) checkAlive() error {
	for _, p := range s.procs {
		if p.exited() {
			return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.err, p.logPath, p.tail(20))
		}
	}
	return nil
}

// stop stops every component in reverse start order: launchers first, so that they
// drain while Temporal and ZooKeeper still answer.
func (s *stack) stop() error {
	log := s.opts.Logger
	if s.zk != nil {
		s.zk.Close()
	}
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		if err := s.procs[i].stop(log); err != nil {
			errs = append(errs, err)
		}
	}
	if s.zkDir != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(s.opts.ScriptsDir, "zookeeper.sh"), "stop", s.zkDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("stopping ZooKeeper: %w: %s", err, out))
		}
	}
	return errors.Join(errs...)
}

// field returns the value of "key" (e.g. "grpc=") in a space-separated line.
func field(line, key string) (string, error) {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, key); ok && v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in %q", key, line)
}

func sum(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
