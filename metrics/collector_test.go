package metrics

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// fakeFacts answers the Temporal questions with fixed values.
type fakeFacts struct {
	mu      sync.Mutex
	asked   int
	phases  map[string]int64
	ledgers []Ledger
	err     error
}

func (f *fakeFacts) RequestPhases(context.Context) (map[string]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	return f.phases, f.err
}

func (f *fakeFacts) Ledgers(context.Context) ([]Ledger, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ledgers, f.err
}

func (f *fakeFacts) times() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

// zkClient connects to the test's corner of the test ZooKeeper; each call is a
// session of its own, as another launcher process would have.
func zkClient(t *testing.T, addr, chroot string) *zookeeper.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(zk.Close)
	return zk
}

// seed registers two pools and writes nodes and requests:
//
//	sim/main serves small and large; aws/p serves small
//	nodes: sim ready [small], sim ready [small large], sim building [large],
//	       aws in-use [small], other ready [gpu] (a provider and label nobody registers)
//	requests: requested [small], requested [small large], pending [gpu]
func seed(t *testing.T, zk *zookeeper.Client) {
	t.Helper()
	ctx := context.Background()
	for _, p := range []zookeeper.PoolComponent{
		{Hostname: "h", ID: "h-PoolWorker.sim-main", Name: "main", ProviderName: "sim", SupportedLabels: []string{"small", "large"}},
		{Hostname: "h", ID: "h-PoolWorker.aws-p", Name: "p", ProviderName: "aws", SupportedLabels: []string{"small"}},
	} {
		_, err := zk.RegisterPool(ctx, p)
		require.NoError(t, err)
	}
	for _, n := range []struct {
		state    zookeeper.NodeState
		provider string
		labels   []string
	}{
		{zookeeper.NodeReady, "sim", []string{"small"}},
		{zookeeper.NodeReady, "sim", []string{"small", "large"}},
		{zookeeper.NodeBuilding, "sim", []string{"large"}},
		{zookeeper.NodeInUse, "aws", []string{"small"}},
		{zookeeper.NodeReady, "other", []string{"gpu"}},
	} {
		_, err := zk.CreateNode(ctx, &zookeeper.Node{State: n.state, Provider: n.provider, Type: n.labels})
		require.NoError(t, err)
	}
	_, err := zk.Create(ctx, zookeeper.NodesPath+"/9999999999", []byte("{bad"), 0)
	require.NoError(t, err, "an undecodable node is skipped")
	for _, r := range []struct {
		state zookeeper.RequestState
		types []string
	}{
		{zookeeper.StateRequested, []string{"small"}},
		{zookeeper.StateRequested, []string{"small", "large"}},
		{zookeeper.StatePending, []string{"gpu"}},
	} {
		_, err := zk.SubmitRequest(ctx, &zookeeper.NodeRequest{State: r.state, NodeTypes: r.types}, "100", false)
		require.NoError(t, err)
	}
}

// wantGauges are the statsd gauges of the seeded ZooKeeper: every state of the
// registered providers and labels, zeros included, plus what the nodes add.
func wantGauges() map[string]string {
	want := map[string]string{}
	for _, st := range NodeStates {
		want["nodepool.nodes."+string(st)] = "0"
		for _, p := range []string{"aws", "sim"} {
			want["nodepool.provider."+p+".nodes."+string(st)] = "0"
		}
		for _, l := range []string{"large", "small"} {
			want["nodepool.label."+l+".nodes."+string(st)] = "0"
		}
	}
	for k, v := range map[string]string{
		"nodepool.nodes.ready":                                 "3",
		"nodepool.nodes.building":                              "1",
		"nodepool.nodes.in-use":                                "1",
		"nodepool.provider.sim.nodes.ready":                    "2",
		"nodepool.provider.sim.nodes.building":                 "1",
		"nodepool.provider.aws.nodes.in-use":                   "1",
		"nodepool.provider.other.nodes.ready":                  "1",
		"nodepool.label.small.nodes.ready":                     "2",
		"nodepool.label.small.nodes.in-use":                    "1",
		"nodepool.label.large.nodes.ready":                     "1",
		"nodepool.label.large.nodes.building":                  "1",
		"nodepool.label.gpu.nodes.ready":                       "1",
		"nodepool.provider.sim.pool.main.addressable_requests": "2",
		"nodepool.provider.aws.pool.p.addressable_requests":    "1",
	} {
		want[k] = v
	}
	return want
}

// gauges reads datagrams until it has seen every key of want (or times out) and
// returns the last value of every gauge seen, as "value" strings.
func (s *udpServer) gauges(t *testing.T, want map[string]string) map[string]string {
	t.Helper()
	got := map[string]string{}
	deadline := time.After(20 * time.Second)
	for {
		complete := true
		for k := range want {
			if _, ok := got[k]; !ok {
				complete = false
				break
			}
		}
		if complete {
			return got
		}
		select {
		case p := <-s.packets:
			for _, line := range strings.Split(p, "\n") {
				name, rest, ok := strings.Cut(line, ":")
				require.True(t, ok, line)
				value, typ, ok := strings.Cut(rest, "|")
				require.True(t, ok, line)
				require.Equal(t, "g", typ, "only gauges: %s", line)
				got[name] = value
			}
		case <-deadline:
			t.Fatalf("missing gauges; got %v", slices.Sorted(maps.Keys(got)))
		}
	}
}

func startCollector(t *testing.T, opts CollectorOptions) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := NewCollector(opts)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("collector did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestCollectorReportsUpstreamGauges(t *testing.T) {
	addr, chroot := testenv.ZooKeeperChroot(t)
	zk := zkClient(t, addr, chroot)
	seed(t, zk)
	st, srv := newTestStatsd(t)
	prom := NewPrometheus()
	scrape := newScraper(t, prom)
	facts := &fakeFacts{
		phases:  map[string]int64{"launching": 3, "waiting-for-capacity": 2, "other": 1},
		ledgers: []Ledger{{Provider: "sim", Pool: "main", Waiting: 2, Used: map[string]int64{"instances": 3}, Limits: map[string]int64{"instances": 4}}},
	}
	startCollector(t, CollectorOptions{
		ZK: zk, Statsd: st, Prometheus: prom, Facts: facts, Identifier: "h-1",
		Limits: Limits{
			MaxServers: map[string]int64{"sim": 10},
			Tenants:    map[string]map[string]int64{"tenant.one": {"cores": 8, "instances": 2}},
		},
		Interval: 100 * time.Millisecond, FactsInterval: time.Hour,
	})

	want := wantGauges()
	want["nodepool.provider.sim.max_servers"] = "10"
	want["nodepool.tenant_limits.tenant_one.cores"] = "8"
	want["nodepool.tenant_limits.tenant_one.instances"] = "2"
	got := srv.gauges(t, want)
	assert.Equal(t, want, got, "exactly upstream's gauges")

	require.Eventually(t, func() bool {
		return slices.Contains(scrape.samples(t, "nodepool_stats_reporter"), "nodepool_stats_reporter 1")
	}, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return len(scrape.samples(t, "nodepool_nodes{")) > 0 }, 20*time.Second, 50*time.Millisecond)
	nodes := scrape.samples(t, "nodepool_nodes{")
	for _, s := range []string{
		`nodepool_nodes{label="small",provider="sim",state="ready"} 2`,
		`nodepool_nodes{label="large",provider="sim",state="ready"} 1`,
		`nodepool_nodes{label="large",provider="sim",state="building"} 1`,
		`nodepool_nodes{label="small",provider="aws",state="in-use"} 1`,
		`nodepool_nodes{label="gpu",provider="other",state="ready"} 1`,
		`nodepool_nodes{label="small",provider="aws",state="hold"} 0`,
	} {
		assert.Contains(t, nodes, s)
	}
	// Registered (provider, label) pairs for every state, plus the one observed pair.
	assert.Len(t, nodes, 3*len(NodeStates)+1)
	assert.Equal(t, []string{
		`nodepool_requests{state="failed"} 0`,
		`nodepool_requests{state="fulfilled"} 0`,
		`nodepool_requests{state="pending"} 1`,
		`nodepool_requests{state="requested"} 2`,
	}, scrape.samples(t, "nodepool_requests{"))
	assert.Equal(t, []string{
		`nodepool_request_workflows{phase="launching"} 3`,
		`nodepool_request_workflows{phase="other"} 1`,
		`nodepool_request_workflows{phase="waiting-for-capacity"} 2`,
	}, scrape.samples(t, "nodepool_request_workflows"))
	assert.Contains(t, scrape.samples(t, "nodepool_ledger_waiting_requests"), `nodepool_ledger_waiting_requests{pool="main",provider="sim"} 2`)
	assert.Equal(t, []string{
		`nodepool_tenant_limits{resource="cores",tenant="tenant.one"} 8`,
		`nodepool_tenant_limits{resource="instances",tenant="tenant.one"} 2`,
	}, scrape.samples(t, "nodepool_tenant_limits"))
	assert.Equal(t, 1, facts.times(), "Temporal is asked once per facts interval")
}

// Of several collectors, only the winner of the stats election reports the
// deployment-wide gauges; the others report only their limits. When the winner stops,
// another takes over. A contender that is not ours (an upstream launcher's stats
// worker) holds the election just as well.
func TestCollectorElection(t *testing.T) {
	addr, chroot := testenv.ZooKeeperChroot(t)
	seed(t, zkClient(t, addr, chroot))

	// An upstream launcher reports first.
	upstreamZK := zkClient(t, addr, chroot)
	upstream := upstreamZK.NewLock(ElectionPath, "upstream-host-4242")
	require.NoError(t, upstream.Acquire(context.Background(), 10*time.Second))

	type proc struct {
		srv  *udpServer
		prom *Prometheus
		s    scraper
		stop func()
	}
	var procs []*proc
	for i := range 2 {
		st, srv := newTestStatsd(t)
		prom := NewPrometheus()
		p := &proc{srv: srv, prom: prom, s: newScraper(t, prom)}
		p.stop = startCollector(t, CollectorOptions{
			ZK: zkClient(t, addr, chroot), Statsd: st, Prometheus: prom, Identifier: fmt.Sprintf("h-%d", i),
			Limits:   Limits{MaxServers: map[string]int64{"sim": 10}},
			Interval: 100 * time.Millisecond,
		})
		procs = append(procs, p)
	}
	reporting := func(p *proc) bool {
		return slices.Contains(p.s.samples(t, "nodepool_stats_reporter"), "nodepool_stats_reporter 1")
	}
	// While upstream holds the election, ours send only their limits.
	for _, p := range procs {
		assert.Equal(t, "nodepool.provider.sim.max_servers:10|g", p.srv.next(t))
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			pkt, quiet := p.srv.quiet(200 * time.Millisecond)
			if !quiet {
				assert.Equal(t, "nodepool.provider.sim.max_servers:10|g", pkt)
			}
		}
		assert.False(t, reporting(p))
		assert.Empty(t, p.s.samples(t, "nodepool_nodes"))
	}

	require.NoError(t, upstream.Release(context.Background()))
	var winner, other *proc
	require.Eventually(t, func() bool {
		for i, p := range procs {
			if reporting(p) {
				winner, other = p, procs[1-i]
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	want := wantGauges()
	want["nodepool.provider.sim.max_servers"] = "10"
	assert.Equal(t, want, winner.srv.gauges(t, want))
	assert.False(t, reporting(other), "one reporter")
	assert.Empty(t, other.s.samples(t, "nodepool_nodes"))

	winner.stop()
	require.Eventually(t, func() bool { return reporting(other) }, 20*time.Second, 50*time.Millisecond)
	assert.Equal(t, want, other.srv.gauges(t, want))
}

// The reporter reads a node or request record when it appears and when it changes, not
// every interval: its ZooKeeper reads grow with changes, not with the records.
func TestCollectorReadsRecordsOnlyWhenTheyChange(t *testing.T) {
	addr, chroot := testenv.ZooKeeperChroot(t)
	zk := zkClient(t, addr, chroot)
	seed(t, zk)
	prom := NewPrometheus()
	scrape := newScraper(t, prom)
	c := NewCollector(CollectorOptions{ZK: zk, Prometheus: prom, Identifier: "h-1",
		Interval: 50 * time.Millisecond, FactsInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	require.Eventually(t, func() bool {
		return slices.Contains(scrape.samples(t, "nodepool_requests{"), `nodepool_requests{state="pending"} 1`)
	}, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return c.recordReads() >= 9 }, 20*time.Second, 50*time.Millisecond,
		"each of 6 nodes and 3 requests read once")
	time.Sleep(200 * time.Millisecond)
	before := c.recordReads()
	time.Sleep(500 * time.Millisecond) // ten intervals
	require.Equal(t, before, c.recordReads(), "unchanged records are not read again")

	ids, err := zk.ListRequests(context.Background())
	require.NoError(t, err)
	for _, id := range ids {
		r, err := zk.GetRequest(context.Background(), id)
		require.NoError(t, err)
		if r.State == zookeeper.StatePending {
			r.State = zookeeper.StateFulfilled
			require.NoError(t, zk.UpdateRequest(context.Background(), r))
		}
	}
	require.Eventually(t, func() bool {
		return slices.Contains(scrape.samples(t, "nodepool_requests{"), `nodepool_requests{state="fulfilled"} 1`)
	}, 20*time.Second, 50*time.Millisecond, "the change is reported")
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, before+1, c.recordReads(), "one change, one read")
}
