package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Cluster component names beyond "temporal-<service>" (see TemporalServices).
const (
	// ClusterPostgres is the PostgreSQL server.
	ClusterPostgres = "postgres"
	// ClusterSimCloud is the simulated cloud of provider ClusterProvider.
	ClusterSimCloud = "simcloud"
	// ClusterProvider is the sim provider of the generated launcher configuration.
	ClusterProvider = "sim"
	// ClusterConfigFile is the launcher configuration in the cluster's directory.
	ClusterConfigFile = "nodepool.yaml"
)

// ClusterZooKeeperName returns the component name of ZooKeeper member id (1-based).
func ClusterZooKeeperName(id int) string { return "zookeeper-" + strconv.Itoa(id) }

// ClusterPollerName and ClusterWorkerName return the component names of the i-th
// (1-based) poller and worker process.
func ClusterPollerName(i int) string { return "poller-" + strconv.Itoa(i) }

// ClusterWorkerName returns the component name of the i-th (1-based) worker process.
func ClusterWorkerName(i int) string { return "worker-" + strconv.Itoa(i) }

// ClusterOptions configure StartCluster. The zero value (with Dir) is the production
// topology on one machine: PostgreSQL, the four Temporal services, three ZooKeeper
// members, a sim cloud, one poller and three workers.
type ClusterOptions struct {
	Options
	// ZooKeeperMembers is the ensemble's size; 0 means 3.
	ZooKeeperMembers int
	// Pollers and Workers are the numbers of launcher processes of each role; 0 means
	// 1 poller and 3 workers.
	Pollers, Workers int
	// FrontendPort is the Temporal frontend's gRPC port and UIPort the web UI's; 0
	// picks free ports.
	FrontendPort, UIPort int
	// Shards is the number of history shards; 0 means 4.
	Shards int
	// TemporalLogLevel is the Temporal services' log level; empty means warn.
	TemporalLogLevel string
	// TemporalDynamicConfig are KEY=VALUE dynamic config values of every service.
	TemporalDynamicConfig []string
	// SimCloud configures the simulated cloud.
	SimCloud SimCloudConfig
	// Launcher returns the launcher configuration for the cluster's ZooKeeper
	// ensemble, Temporal frontend and sim cloud; nil means DefaultClusterConfig.
	Launcher func(c *Cluster) LauncherConfig
	// LauncherLogLevel is the launchers' --log-level; empty means info.
	LauncherLogLevel string
	// PollerReady, when set, returns the readiness check of the pollers (for example:
	// their pools are registered in ZooKeeper); it is called once ZooKeeper, Temporal
	// and the cloud run.
	PollerReady func(ctx context.Context, c *Cluster) (func(context.Context) error, error)
	// LauncherOutput, when set, also receives the first poller's output.
	LauncherOutput io.Writer
}

// Cluster is the production topology on one machine: every component a process of its
// own, each named in the Stack, so any of them can be killed and started again by
// name.
type Cluster struct {
	*Stack
	Postgres  *Postgres
	ZooKeeper []*ZooKeeper
	Temporal  *TemporalCluster
	SimCloud  *SimCloud
	// Config is the launchers' configuration file.
	Config string
	// Pollers and Workers are the launcher processes.
	Pollers, Workers []*Launcher
}

// ZooKeeperAddrs returns the client addresses of the ensemble's members.
func (c *Cluster) ZooKeeperAddrs() []string {
	out := make([]string, len(c.ZooKeeper))
	for i, z := range c.ZooKeeper {
		out[i] = z.Addr
	}
	return out
}

// DefaultClusterConfig is the launcher configuration of a cluster unless
// ClusterOptions.Launcher gives one: provider ClusterProvider on the cluster's sim
// cloud with the labels ubuntu-jammy, debian-bookworm (2 cores) and large (8 cores)
// in a pool of 10 servers, task queue "nodepool".
func DefaultClusterConfig(c *Cluster) LauncherConfig {
	return LauncherConfig{
		ZooKeeper:        c.ZooKeeperAddrs(),
		ZooKeeperTimeout: 10,
		Temporal:         TemporalSection{Address: c.Temporal.Addr, Namespace: "default", TaskQueue: "nodepool"},
		Launcher:         LauncherSection{PollInterval: 1, DeleteInterval: 2},
		Providers: []Provider{{
			Name: ClusterProvider, Driver: "sim", Server: c.SimCloud.URL, LaunchTimeout: 300, LaunchRetries: 3,
			Flavors:     []Flavor{{Name: "small", Cores: 2, RAM: 4096}, {Name: "large", Cores: 8, RAM: 16384}},
			CloudImages: []CloudImage{{Name: "ubuntu-jammy", Username: "ubuntu"}, {Name: "debian-bookworm", Username: "debian"}},
			Pools: []Pool{{
				Name: "main", MaxServers: 10, MaxCores: 40,
				Attributes: map[string]any{"executor-zone": "sim"},
				Labels: []Label{
					{Name: "ubuntu-jammy", Flavor: "small", CloudImage: "ubuntu-jammy"},
					{Name: "debian-bookworm", Flavor: "small", CloudImage: "debian-bookworm"},
					{Name: "large", Flavor: "large", CloudImage: "ubuntu-jammy"},
				},
			}},
		}},
	}
}

// StartCluster starts a cluster under opts.Dir: PostgreSQL (its own instance, data in
// Dir/postgres), the Temporal schema, the four Temporal services, the ZooKeeper
// ensemble (Dir/zookeeper-N), the sim cloud, the launcher configuration
// (Dir/nodepool.yaml), the pollers and the workers. On an error it stops what it
// started.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	st, err := New(opts.Options)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Stack: st}
	if err := c.start(ctx, opts); err != nil {
		return nil, errors.Join(err, st.Stop())
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts ClusterOptions) error {
	var err error
	if c.Postgres, err = c.StartPostgres(ctx, PostgresOptions{}); err != nil {
		return err
	}
	// ZooKeeper's JVMs start while Temporal's services do.
	var zkErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.ZooKeeper, zkErr = c.StartZooKeeperEnsemble(ctx, cmpInt(opts.ZooKeeperMembers, 3))
	}()
	tOpts := TemporalClusterOptions{
		Postgres:      c.Postgres,
		UIPort:        opts.UIPort,
		Shards:        opts.Shards,
		LogLevel:      opts.TemporalLogLevel,
		DynamicConfig: opts.TemporalDynamicConfig,
	}
	if opts.FrontendPort != 0 {
		tOpts.Ports = map[string]TemporalServicePorts{"frontend": {GRPC: opts.FrontendPort}}
	}
	c.Temporal, err = c.StartTemporalCluster(ctx, tOpts)
	wg.Wait()
	if err := errors.Join(err, zkErr); err != nil {
		return err
	}
	if c.SimCloud, err = c.StartSimCloud(ctx, ClusterSimCloud, opts.SimCloud, SimCloudOptions{LogLevel: "info"}); err != nil {
		return err
	}
	cfgFn := opts.Launcher
	if cfgFn == nil {
		cfgFn = DefaultClusterConfig
	}
	lc := cfgFn(c)
	// The first poller serves the web app; the others would find its port taken.
	webPort, err := FreePort()
	if err != nil {
		return err
	}
	if lc.Extra == nil {
		lc.Extra = map[string]any{}
	}
	if _, ok := lc.Extra["webapp"]; !ok {
		lc.Extra["webapp"] = map[string]any{"port": webPort, "listen_address": "127.0.0.1"}
	}
	if c.Config, err = c.WriteConfig(ClusterConfigFile, lc); err != nil {
		return err
	}
	var ready func(context.Context) error
	if opts.PollerReady != nil {
		if ready, err = opts.PollerReady(ctx, c); err != nil {
			return err
		}
	}
	for i := range cmpInt(opts.Pollers, 1) {
		lo := LauncherOptions{Config: c.Config, Role: "poller", LogLevel: opts.LauncherLogLevel, ReadyCheck: ready}
		if i == 0 {
			lo.Output = opts.LauncherOutput
		} else {
			lo.ExtraArgs = []string{"--no-webapp"}
		}
		l, err := c.StartLauncher(ctx, ClusterPollerName(i+1), lo)
		if err != nil {
			return err
		}
		c.Pollers = append(c.Pollers, l)
	}
	for i := range cmpInt(opts.Workers, 3) {
		l, err := c.StartLauncher(ctx, ClusterWorkerName(i+1), LauncherOptions{
			Config: c.Config, Role: "worker", LogLevel: opts.LauncherLogLevel, ExtraArgs: []string{"--no-webapp"},
		})
		if err != nil {
			return err
		}
		c.Workers = append(c.Workers, l)
	}
	return nil
}

// StartPostgres starts a PostgreSQL server of the stack's own, named "postgres"; by
// default with its data in Dir/postgres on a free port.
func (s *Stack) StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	const name = ClusterPostgres
	if err := s.reserve(name); err != nil {
		return nil, err
	}
	opts.Dir = cmpOr(opts.Dir, s.Path("postgres"))
	opts.LogFile = cmpOr(opts.LogFile, s.LogFile(name))
	pg, err := StartPostgres(ctx, opts)
	var p *Proc
	if pg != nil {
		p = pg.Proc
	}
	return pg, s.add(name, p, err)
}

// StartZooKeeperEnsemble starts an ensemble of n members on free loopback ports, named
// "zookeeper-1" to "zookeeper-n" with their data in Dir/zookeeper-N, all at once (a
// member serves only once a quorum runs).
func (s *Stack) StartZooKeeperEnsemble(ctx context.Context, n int) ([]*ZooKeeper, error) {
	if n < 1 {
		return nil, fmt.Errorf("devstack: a ZooKeeper ensemble of %d members", n)
	}
	members := make([]ZooKeeperMember, n)
	for i := range members {
		members[i].ID = i + 1
		for _, dst := range []*int{&members[i].ClientPort, &members[i].QuorumPort, &members[i].ElectionPort} {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			*dst = p
		}
	}
	for i := range members {
		if err := s.reserve(ClusterZooKeeperName(i + 1)); err != nil {
			return nil, err
		}
	}
	out := make([]*ZooKeeper, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := ClusterZooKeeperName(i + 1)
			z, err := StartZooKeeper(ctx, ZooKeeperOptions{
				Name: name, ID: members[i].ID, Ensemble: members,
				Dir: s.Path(name), LogFile: s.LogFile(name),
			})
			var p *Proc
			if z != nil {
				p = z.Proc
			}
			out[i], errs[i] = z, s.add(name, p, err)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// StartTemporalCluster starts a Temporal cluster (see StartTemporalCluster) with the
// stack's bin/temporal-dev when there is one, its services named "temporal-<service>",
// their logs in the log directory.
func (s *Stack) StartTemporalCluster(ctx context.Context, opts TemporalClusterOptions) (*TemporalCluster, error) {
	for _, svc := range TemporalServices {
		if err := s.reserve("temporal-" + svc); err != nil {
			return nil, err
		}
	}
	if opts.Binary == "" {
		if bin := s.Bin("temporal-dev"); checkExecutable(bin) == nil {
			opts.Binary = bin
		}
	}
	if opts.LogFile == nil {
		opts.LogFile = func(svc string) string { return s.LogFile("temporal-" + svc) }
	}
	if opts.PortsFile == "" {
		opts.PortsFile = s.Path("temporal-ports.json")
	}
	tc, err := StartTemporalCluster(ctx, opts)
	var errs []error
	for _, svc := range TemporalServices {
		var p *Proc
		if tc != nil {
			p = tc.Services[svc]
		}
		errs = append(errs, s.add("temporal-"+svc, p, err))
	}
	if err != nil {
		return nil, err
	}
	return tc, errors.Join(errs...)
}

func cmpInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
