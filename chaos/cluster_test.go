package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack/zkready"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// clusterTestsEnv set to "1" runs the tests on the production topology (make
// test-cluster); the long version of the suite (NODEPOOL_CHAOS=long, make chaos) runs
// them too. They need PostgreSQL (scripts/install-deps.sh installs it).
const clusterTestsEnv = "NODEPOOL_CLUSTER_TESTS"

// clusterKillPause is how long a killed component stays down.
const clusterKillPause = 2 * time.Second

// TestClusterKills runs a burst on the production topology (devstack.StartCluster:
// PostgreSQL, the four Temporal services as separate processes, a three-member
// ZooKeeper ensemble, two pollers and three workers) while a history service, the
// ZooKeeper leader and a worker are killed with kill -9 one after the other, each
// started again 2 s later. It makes the checks of every scenario of TestChaos: every
// request ended, no node was in two fulfilled requests, nothing is left in ZooKeeper
// or the cloud, no node id had two instances at once, and the pool's whole capacity
// is free again.
func TestClusterKills(t *testing.T) {
	m := currentMode()
	if os.Getenv(clusterTestsEnv) != "1" && m.name != longMode.name {
		t.Skipf("the production topology's chaos test runs with %s=1 (make test-cluster) or NODEPOOL_CHAOS=long", clusterTestsEnv)
	}
	rep := &scenarioReport{
		Name: "cluster-kills",
		What: "production topology; kill -9 of the history service, the ZooKeeper leader and a worker mid-burst, each started again 2 s later",
	}
	violate := func(format string, args ...any) {
		rep.Violations = append(rep.Violations, fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.burstTimeout+4*m.cleanTimeout+5*time.Minute)
	defer cancel()

	t0 := time.Now()
	c, dc, err := newProductionCluster(ctx, t, m)
	if err != nil {
		t.Fatalf("starting the cluster: %v", err)
	}
	rep.Startup = time.Since(t0)
	rep.MaxServers = c.maxServers
	defer func() {
		c.stop()
		if t.Failed() || os.Getenv("NODEPOOL_CHAOS_KEEP") != "" {
			t.Logf("configuration and logs kept in %s", c.dir)
		} else {
			_ = os.RemoveAll(c.dir)
		}
	}()

	log := &faultLog{}
	bctx, bcancel := context.WithTimeout(ctx, m.burstTimeout)
	defer bcancel()
	l := newLedger()
	b := &burst{c: c, l: l, ctx: bctx}
	start := time.Now()
	log.start = start
	if err := b.submit(c.requestSets(m.burst)); err != nil {
		violate("%v", err)
	}
	if err := clusterKills(bctx, c, dc, log); err != nil {
		violate("injecting the faults: %v", err)
	}
	b.wg.Wait()
	results := b.all()
	var last time.Time
	for _, r := range results {
		if r.done.After(last) {
			last = r.done
		}
	}
	rep.Burst = last.Sub(start)
	if !log.first.IsZero() && last.After(log.first) {
		rep.Recovery = last.Sub(log.first)
	}
	rep.Injected = log.events

	var notEnded []string
	for _, r := range results {
		rep.Requests++
		switch {
		case r.err != nil:
			notEnded = append(notEnded, r.id)
			_ = c.zuul.Cancel(ctx, r.id)
		case r.state == zookeeper.StateFulfilled:
			rep.Fulfilled++
			rep.Nodes += len(r.nodes)
		case r.state == zookeeper.StateFailed:
			rep.Failed++
		}
		switch {
		case r.zuulErr == nil:
		case errors.Is(r.zuulErr, zookeeper.ErrNotFound) && r.state == "":
			violate("request %s vanished before it ended: %v", r.id, r.zuulErr)
		case errors.Is(r.zuulErr, zuul.ErrNotAllocated):
			violate("request %s: %v", r.id, r.zuulErr)
		default:
			rep.ZuulProblems = append(rep.ZuulProblems, r.zuulErr.Error())
		}
	}
	if len(notEnded) > 0 {
		violate("%d of %d requests did not end within %s: %s", len(notEnded), len(results), m.burstTimeout, sample(notEnded))
	}
	for _, d := range l.duplicates {
		violate("a node was in two fulfilled requests: %s", d)
	}

	cleanStart := time.Now()
	nodes, requests, instances, err := c.waitClean(ctx, m.cleanTimeout)
	rep.Clean = time.Since(cleanStart)
	switch {
	case err != nil:
		violate("checking what is left: %v", err)
	case len(nodes)+len(requests)+len(instances) > 0:
		violate("left %s after the burst: nodes %s, requests %s, instances %s",
			m.cleanTimeout, sample(nodes), sample(requests), sample(instances))
	}
	c.followUp(ctx, rep, violate)

	rep.Created = c.created(ctx)
	twice, most, err := c.creationProblems(ctx)
	rep.MostPerNode = most
	switch {
	case err != nil:
		violate("reading the cloud's creations: %v", err)
	case len(twice) > 0:
		violate("%d node id(s) had more than one instance at once: %s", len(twice), sample(twice))
	}
	if err := c.st.CheckAlive(); err != nil {
		violate("components not running at the end: %v", err)
	}
	rep.AttemptFailures = c.attemptFailures()

	for _, e := range rep.Injected {
		t.Logf("injected %s", e)
	}
	t.Logf("start-up %s; %d requests (%d fulfilled, %d failed, %d nodes) in %s, recovery %s, cleanup %s; "+
		"follow-up %d of %d fulfilled at once in %s; %d instances created, at most %d at once per node id; "+
		"Zuul-side problems %d; failed launch attempts %v",
		secs(rep.Startup), rep.Requests, rep.Fulfilled, rep.Failed, rep.Nodes, secs(rep.Burst), secs(rep.Recovery),
		secs(rep.Clean), rep.FollowUpFulfilled, rep.FollowUpSize, secs(rep.FollowUp), rep.Created, rep.MostPerNode,
		len(rep.ZuulProblems), rep.AttemptFailures)
	for _, p := range rep.ZuulProblems {
		t.Logf("Zuul-side problem: %s", p)
	}
	for _, v := range rep.Violations {
		t.Errorf("%s", v)
	}
}

// clusterKills kills, once the burst is under way, the history service, the ZooKeeper
// leader and the first worker with SIGKILL, one after the other, and starts each again
// after clusterKillPause.
func clusterKills(ctx context.Context, c *cluster, dc *devstack.Cluster, log *faultLog) error {
	if err := midBurst(ctx, c); err != nil {
		return err
	}
	leader := ""
	for i, z := range dc.ZooKeeper {
		if devstack.ZooKeeperMode(z.Addr) == "leader" {
			leader = devstack.ClusterZooKeeperName(i + 1)
		}
	}
	if leader == "" {
		return errors.New("no ZooKeeper member reports being the leader")
	}
	for _, name := range []string{"temporal-history", leader, devstack.ClusterWorkerName(1)} {
		p := c.st.Proc(name)
		pid := p.Pid()
		p.Kill()
		log.add("killed %s (pid %d) with SIGKILL", name, pid)
		time.Sleep(clusterKillPause)
		if err := p.Start(ctx); err != nil {
			return fmt.Errorf("starting %s again: %w", name, err)
		}
		log.add("%s running again (pid %d)", name, p.Pid())
	}
	return nil
}

// newProductionCluster starts the production topology with the chaos suite's sim
// provider, connects the suite's Zuul to the ZooKeeper ensemble and dials Temporal.
func newProductionCluster(ctx context.Context, t *testing.T, m mode) (*cluster, *devstack.Cluster, error) {
	dir, err := os.MkdirTemp("", "chaos-cluster-")
	if err != nil {
		return nil, nil, err
	}
	c := &cluster{t: t, m: m, dir: dir, provider: simProvider, labels: simLabels, maxServers: m.maxServers}
	dc, err := devstack.StartCluster(ctx, devstack.ClusterOptions{
		Options:          devstack.Options{Dir: dir, BinDir: binDir},
		Pollers:          2,
		Workers:          3,
		UIPort:           -1,
		SimCloud:         devstack.SimCloudConfig{Seed: 1, BootSteps: m.bootSteps, DeleteLatency: 0.2},
		LauncherLogLevel: "debug",
		Launcher: func(dc *devstack.Cluster) devstack.LauncherConfig {
			c.sim = dc.SimCloud
			return devstack.LauncherConfig{
				ZooKeeper:        dc.ZooKeeperAddrs(),
				ZooKeeperTimeout: 10,
				Temporal:         devstack.TemporalSection{Address: dc.Temporal.Addr, Namespace: "default", TaskQueue: taskQueue},
				Launcher:         devstack.LauncherSection{Hostname: hostname, PollInterval: 0.5, DeleteInterval: 2},
				Providers:        []devstack.Provider{c.simProvider()},
			}
		},
		PollerReady: func(ctx context.Context, dc *devstack.Cluster) (func(context.Context) error, error) {
			zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if c.zk, err = zookeeper.Connect(zctx, zookeeper.Options{Servers: dc.ZooKeeperAddrs(), Logger: quietLogger()}); err != nil {
				return nil, fmt.Errorf("connecting to ZooKeeper: %w", err)
			}
			return zkready.PoolsRegistered(c.zk, simProvider), nil
		},
	})
	if err != nil {
		if c.zk != nil {
			c.zk.Close()
		}
		t.Logf("logs kept in %s", dir)
		return nil, nil, err
	}
	c.st = dc.Stack
	if c.zuul, err = zuul.New(c.zk, zuul.Options{
		SystemID: "chaos-zuul", Tenant: "chaos", Pipeline: "check", Job: "chaos", Project: "chaos/project",
		Recheck:  2 * time.Second,
		Observer: zuul.Observer{Warning: func(error) { c.warnings.Add(1) }},
	}); err != nil {
		c.stop()
		return nil, nil, err
	}
	if c.temporal, err = client.Dial(client.Options{HostPort: dc.Temporal.Addr, Logger: quietSDKLogger{}}); err != nil {
		c.stop()
		return nil, nil, fmt.Errorf("dialing Temporal: %w", err)
	}
	return c, dc, nil
}
