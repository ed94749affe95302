package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
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
	// BinDir holds temporal-dev, simcloud, ec2sim and nodepool-launcher.
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
	default:
		return s, fmt.Errorf("unknown driver %q", o.Driver)
	}

	_, zkPort, _ := net.SplitHostPort(z.Addr)
	port, _ := strconv.Atoi(zkPort)
	cfg, err := benchConfig(launcherParams{
		ZooKeeperPort: port, TemporalAddress: s.temporalAddr, Driver: o.Driver, CloudURL: s.cloudURL,
		MaxServers: o.MaxServers, PollInterval: o.PollInterval, DeleteInterval: o.DeleteInterval, Rate: o.Rate,
	})
	if err != nil {
		return s, err
	}
	cfgPath, err := ds.WriteConfig("nodepool.yaml", cfg)
	if err != nil {
		return s, err
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
func (s *stack) checkAlive() error { return s.st.CheckAlive() }

// stop stops every component in reverse start order: launchers first, so that they
// drain while Temporal and ZooKeeper still answer.
func (s *stack) stop() error {
	if s.zk != nil {
		s.zk.Close()
	}
	return s.st.Stop()
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
