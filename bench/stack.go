package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack/zkready"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Start-up bounds of the components.
const (
	zookeeperStartTimeout = 90 * time.Second
	temporalStartTimeout  = 90 * time.Second
	launcherStartTimeout  = 90 * time.Second
)

// stackOptions describe one stack: ZooKeeper, Temporal, a cloud and the launcher.
type stackOptions struct {
	// BinDir holds temporal-dev, simcloud, ec2sim, ossim and nodepool-launcher.
	BinDir string
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
	// Cluster runs the production topology instead (devstack.StartCluster): PostgreSQL,
	// the four Temporal services, a three-member ZooKeeper ensemble, the cloud, one
	// poller and Workers worker processes. Only the sim driver.
	Cluster bool
	// NoWebapp starts the launchers with --no-webapp: no web app, so no Prometheus
	// metrics and no stats collector.
	NoWebapp bool
	// StaticHosts is the number of hosts of the static driver's pool.
	StaticHosts int
	// MinReady is the label's min-ready; 0 leaves it out.
	MinReady int
	Logger   *slog.Logger
	Monitor  *monitor
}

// stack is a running set of components.
type stack struct {
	opts stackOptions
	st   *devstack.Stack

	temporalAddr string
	// zkAddr is a ZooKeeper member and zkAddrs every member.
	zkAddr   string
	zkAddrs  []string
	cloudURL string
	zk       *zookeeper.Client
	// procs are processes started beside the devstack ones (ossim), stopped after them.
	procs []*devstack.Proc
	// static holds the static driver's host listeners.
	static *staticListeners
}

// startStack starts every component and waits until the launcher has registered its
// pool. On failure everything started so far is stopped.
func startStack(ctx context.Context, o stackOptions) (s *stack, err error) {
	if o.Cluster {
		return startCluster(ctx, o)
	}
	ds, err := devstack.New(devstack.Options{Dir: o.Dir, LogDir: o.Dir, BinDir: o.BinDir, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	s = &stack{opts: o, st: ds}
	defer func() {
		if err != nil {
			_ = s.stop()
			s = nil
		}
	}()
	log := o.Logger

	log.Info("starting ZooKeeper")
	z, err := ds.StartZooKeeper(ctx, devstack.ZooKeeperOptions{StartTimeout: zookeeperStartTimeout})
	if err != nil {
		return s, err
	}
	o.Monitor.track("zookeeper", z.Pid())
	s.zkAddr, s.zkAddrs = z.Addr, []string{z.Addr}

	log.Info("starting Temporal dev server", "shards", o.Shards)
	tp, err := ds.StartTemporal(ctx, devstack.TemporalOptions{
		DBFile: ":memory:", Shards: o.Shards, LogLevel: "error", DynamicConfig: o.TemporalConfig,
		StartTimeout: temporalStartTimeout,
	})
	if err != nil {
		return s, err
	}
	s.temporalAddr = tp.Addr
	o.Monitor.track("temporal-dev", tp.Pid())

	log.Info("starting cloud", "driver", o.Driver, "boot_steps", o.BootSteps, "delete_latency", o.DeleteLatency)
	switch o.Driver {
	case driverSim:
		c, err := ds.StartSimCloud(ctx, "simcloud", benchCloud(o.BootSteps, o.DeleteLatency, o.Seed), devstack.SimCloudOptions{})
		if err != nil {
			return s, err
		}
		s.cloudURL = c.URL
		o.Monitor.track("simcloud", c.Pid())
	case driverAWS:
		c, err := ds.StartEC2Sim(ctx, "ec2sim", devstack.EC2SimOptions{
			Seed: uint64(o.Seed), BootTime: seconds(sum(o.BootSteps)), TerminateTime: seconds(o.DeleteLatency),
			// ec2sim's defaults are seconds; a zero here means instant.
			ExtraArgs: zeroDurations(o.BootSteps, o.DeleteLatency),
		})
		if err != nil {
			return s, err
		}
		s.cloudURL = c.URL
		o.Monitor.track("ec2sim", c.Pid())
	case driverOpenStack:
		p, url, err := startOSSim(ctx, ds, o)
		if err != nil {
			return s, err
		}
		s.procs = append(s.procs, p)
		s.cloudURL = url
		o.Monitor.track("ossim", p.Pid())
	case driverStatic:
		// No cloud: the hosts are loopback addresses with a listener each.
		if s.static, err = listenStatic(o.StaticHosts); err != nil {
			return s, err
		}
	default:
		return s, fmt.Errorf("unknown driver %q", o.Driver)
	}

	_, zkPort, _ := net.SplitHostPort(z.Addr)
	port, _ := strconv.Atoi(zkPort)
	params := launcherParams{
		ZooKeeperPort: port, TemporalAddress: s.temporalAddr, Driver: o.Driver, CloudURL: s.cloudURL,
		MaxServers: o.MaxServers, PollInterval: o.PollInterval, DeleteInterval: o.DeleteInterval, Rate: o.Rate,
		MinReady: o.MinReady,
	}
	if s.static != nil {
		params.StaticHosts = s.static.hosts
	}
	data, err := launcherConfig(params)
	if err != nil {
		return s, err
	}
	cfgPath := ds.Path("nodepool.yaml")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return s, fmt.Errorf("writing the launcher configuration: %w", err)
	}

	zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.zk, err = zookeeper.Connect(zctx, zookeeper.Options{
		Servers: []string{z.Addr},
		Logger:  log.With("component", "zookeeper"),
	})
	if err != nil {
		return s, fmt.Errorf("connecting to ZooKeeper: %w", err)
	}

	env := []string{"TEMPORAL_ADDRESS=" + s.temporalAddr, "TEMPORAL_NAMESPACE=default", "TEMPORAL_TASK_QUEUE=" + benchTaskQueue}
	if o.Driver == driverOpenStack {
		clouds, err := cloudsYAML(s.cloudURL)
		if err != nil {
			return s, err
		}
		path := ds.Path("clouds.yaml")
		if err := os.WriteFile(path, clouds, 0o600); err != nil {
			return s, fmt.Errorf("writing clouds.yaml: %w", err)
		}
		// The provider's cloud key names the entry; OS_CLOUD from the caller's
		// environment must not pick another.
		env = append(env, "OS_CLIENT_CONFIG_FILE="+path, "OS_CLOUD=")
	}
	log.Info("starting launcher", "processes", o.Workers)
	for i := range o.Workers {
		lo := devstack.LauncherOptions{
			Config: cfgPath, Role: "all", LogLevel: o.LauncherLogLevel, Env: env, StartTimeout: launcherStartTimeout,
			StopTimeout: 20 * time.Second,
		}
		if o.NoWebapp {
			lo.ExtraArgs = append(lo.ExtraArgs, "--no-webapp")
		}
		name := "launcher"
		if i == 0 {
			// The first process runs the poller: it is ready once its pool is registered.
			lo.ReadyCheck = zkready.PoolsRegistered(s.zk, providerName(o.Driver))
		} else {
			lo.Role, name = "worker", fmt.Sprintf("launcher-worker-%d", i)
		}
		l, err := ds.StartLauncher(ctx, name, lo)
		if err != nil {
			return s, err
		}
		o.Monitor.track("launcher", l.Pid())
	}
	return s, nil
}

// zeroDurations returns the ec2sim flags that make a zero boot or termination time
// explicit (devstack leaves zero durations to ec2sim's defaults).
func zeroDurations(bootSteps []float64, deleteLatency float64) []string {
	var args []string
	if sum(bootSteps) == 0 {
		args = append(args, "--boot-time", "0s")
	}
	if deleteLatency == 0 {
		args = append(args, "--terminate-time", "0s")
	}
	return args
}

// checkAlive returns an error naming any component that exited.
func (s *stack) checkAlive() error {
	errs := []error{s.st.CheckAlive()}
	for _, p := range s.procs {
		if !p.Running() {
			errs = append(errs, fmt.Errorf("%s is not running (%v); last lines of %s:\n%s",
				p.Name(), p.ExitErr(), p.LogPath(), p.Tail(20)))
		}
	}
	return errors.Join(errs...)
}

// stop stops every component in reverse start order: launchers first, so that they
// drain while Temporal, ZooKeeper and the cloud still answer.
func (s *stack) stop() error {
	if s.zk != nil {
		s.zk.Close()
	}
	var errs []error
	if s.st != nil {
		errs = append(errs, s.st.Stop())
	}
	for i := len(s.procs) - 1; i >= 0; i-- {
		errs = append(errs, s.procs[i].Stop())
	}
	if s.static != nil {
		s.static.close()
	}
	return errors.Join(errs...)
}

// startOSSim starts bin/ossim, the OpenStack-compatible endpoint, with the stack's
// boot and deletion times and no limits, and returns it with its base URL.
func startOSSim(ctx context.Context, ds *devstack.Stack, o stackOptions) (*devstack.Proc, string, error) {
	const marker = "ossim listening on "
	p := devstack.NewProc(devstack.ProcSpec{
		Name: "ossim", Path: ds.Bin("ossim"), LogFile: ds.LogFile("ossim"), ReadyMarker: marker,
		Args: []string{
			"--listen", "127.0.0.1:0", "--log-level", "warn", "--seed", strconv.FormatInt(o.Seed, 10),
			"--boot-time", seconds(sum(o.BootSteps)).String(), "--delete-time", seconds(o.DeleteLatency).String(),
			"--max-instances", "-1", "--max-cores", "-1", "--max-ram", "-1",
		},
	})
	if err := p.Start(ctx); err != nil {
		return nil, "", err
	}
	_, addr, _ := strings.Cut(p.ReadyLine(), marker)
	addr = strings.TrimSpace(addr)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		_ = p.Stop()
		return nil, "", fmt.Errorf("ossim: reading the listening address from %q: %w", p.ReadyLine(), err)
	}
	return p, "http://" + addr, nil
}

// staticListeners are TCP listeners on the static driver's host addresses, one per
// host, so that every host answers on its connection-port.
type staticListeners struct {
	hosts     []staticHost
	lns       []net.Listener
	wg        sync.WaitGroup
	connected atomic.Int64
}

// listenStatic opens a listener on a free port of each of n loopback addresses
// (staticAddrs). Connections are counted and closed at once.
func listenStatic(n int) (*staticListeners, error) {
	if n < 1 {
		return nil, fmt.Errorf("the static driver needs at least one host, not %d", n)
	}
	l := &staticListeners{}
	for _, addr := range staticAddrs(n) {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			l.close()
			return nil, fmt.Errorf("listening on %s for a static host: %w", addr, err)
		}
		l.lns = append(l.lns, ln)
		l.hosts = append(l.hosts, staticHost{Name: addr, Port: ln.Addr().(*net.TCPAddr).Port})
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				l.connected.Add(1)
				_ = c.Close()
			}
		}()
	}
	return l, nil
}

// connections returns how many connections the hosts have accepted.
func (l *staticListeners) connections() int64 { return l.connected.Load() }

func (l *staticListeners) close() {
	for _, ln := range l.lns {
		_ = ln.Close()
	}
	l.wg.Wait()
}

func sum(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// startCluster starts the production topology (see stackOptions.Cluster) and waits
// until the poller has registered its pool. On failure everything started so far is
// stopped.
func startCluster(ctx context.Context, o stackOptions) (*stack, error) {
	if o.Driver != driverSim {
		return nil, fmt.Errorf("the cluster topology runs the sim driver only, not %q", o.Driver)
	}
	s := &stack{opts: o}
	var cfgErr error
	log := o.Logger
	log.Info("starting the cluster: PostgreSQL, Temporal services, ZooKeeper ensemble, cloud, poller and workers", "workers", o.Workers)
	c, err := devstack.StartCluster(ctx, devstack.ClusterOptions{
		Options:  devstack.Options{Dir: o.Dir, LogDir: o.Dir, BinDir: o.BinDir, Logger: o.Logger},
		Workers:  o.Workers,
		Shards:   o.Shards,
		SimCloud: benchCloud(o.BootSteps, o.DeleteLatency, o.Seed),
		Launcher: func(c *devstack.Cluster) devstack.LauncherConfig {
			cfg, err := benchConfig(launcherParams{
				ZooKeeperAddrs: c.ZooKeeperAddrs(), TemporalAddress: c.Temporal.Addr, Driver: o.Driver, CloudURL: c.SimCloud.URL,
				MaxServers: o.MaxServers, PollInterval: o.PollInterval, DeleteInterval: o.DeleteInterval, Rate: o.Rate,
			})
			cfgErr = err
			return cfg
		},
		TemporalDynamicConfig: o.TemporalConfig,
		LauncherLogLevel:      o.LauncherLogLevel,
		PollerReady: func(ctx context.Context, c *devstack.Cluster) (func(context.Context) error, error) {
			zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			zk, err := zookeeper.Connect(zctx, zookeeper.Options{Servers: c.ZooKeeperAddrs(), Logger: log.With("component", "zookeeper")})
			if err != nil {
				return nil, fmt.Errorf("connecting to ZooKeeper: %w", err)
			}
			s.zk = zk
			return zkready.PoolsRegistered(zk, providerName(o.Driver)), nil
		},
	})
	if err != nil || cfgErr != nil {
		if s.zk != nil {
			s.zk.Close()
		}
		return nil, errors.Join(err, cfgErr)
	}
	s.st = c.Stack
	s.temporalAddr, s.cloudURL = c.Temporal.Addr, c.SimCloud.URL
	s.zkAddrs = c.ZooKeeperAddrs()
	s.zkAddr = s.zkAddrs[0]
	o.Monitor.track("postgres", c.Postgres.Pid())
	for _, svc := range slices.Sorted(maps.Keys(c.Temporal.Services)) {
		o.Monitor.track("temporal-server", c.Temporal.Services[svc].Pid())
	}
	for _, z := range c.ZooKeeper {
		o.Monitor.track("zookeeper", z.Pid())
	}
	o.Monitor.track("simcloud", c.SimCloud.Pid())
	for _, l := range slices.Concat(c.Pollers, c.Workers) {
		o.Monitor.track("launcher", l.Pid())
	}
	return s, nil
}
