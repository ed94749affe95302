package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack/zkready"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Names in the generated configuration.
const (
	taskQueue   = "chaos"
	hostname    = "chaos"
	simProvider = "sim"
	awsProvider = "aws"
	// awsImageID is one of ec2sim's canned AMIs (Ubuntu 22.04).
	awsImageID = "ami-0a1b2c3d4e5f60002"
)

// Labels: a small and a large size on each cloud.
var (
	simLabels = []string{"small", "large"}
	awsLabels = []string{"aws-small", "aws-large"}
)

// mode holds the sizes of a run.
type mode struct {
	name string
	// burst is the number of requests of a scenario's burst; every multiEvery-th
	// request asks for several nodes.
	burst, multiEvery int
	// maxServers is the pool's max-servers (the follow-up burst's size).
	maxServers int
	// hold is how long Zuul keeps a request's nodes in use.
	hold time.Duration
	// bootSteps are the sim cloud's boot steps in seconds; bootTime ec2sim's.
	bootSteps []float64
	bootTime  time.Duration
	// burstTimeout bounds a burst, cleanTimeout the wait for every node and
	// instance to be gone.
	burstTimeout, cleanTimeout time.Duration
}

var (
	shortMode = mode{
		name: "short", burst: 40, multiEvery: 4, maxServers: 10, hold: 200 * time.Millisecond,
		bootSteps: []float64{0.3, 0.5}, bootTime: 800 * time.Millisecond,
		burstTimeout: 6 * time.Minute, cleanTimeout: 3 * time.Minute,
	}
	longMode = mode{
		name: "long", burst: 200, multiEvery: 4, maxServers: 30, hold: 500 * time.Millisecond,
		bootSteps: []float64{0.5, 1.0}, bootTime: 1500 * time.Millisecond,
		burstTimeout: 25 * time.Minute, cleanTimeout: 5 * time.Minute,
	}
)

// currentMode is the mode NODEPOOL_CHAOS selects.
func currentMode() mode {
	if os.Getenv("NODEPOOL_CHAOS") == "long" {
		return longMode
	}
	return shortMode
}

// cluster is one scenario's deployment and its Zuul.
type cluster struct {
	t        *testing.T
	m        mode
	dir      string
	st       *devstack.Stack
	zk       *zookeeper.Client
	zuul     *zuul.Client
	temporal client.Client
	sim      *devstack.SimCloud
	ec2      *devstack.EC2Sim
	// provider is the provider the scenario's requests go to; labels its labels.
	provider string
	labels   []string
	// maxServers is the pool's max-servers.
	maxServers int
	warnings   atomic.Int64
}

// clusterSpec is what a scenario needs of its deployment.
type clusterSpec struct {
	// aws sends the requests to the aws provider (ec2sim) instead of the sim one.
	aws bool
	// maxServers overrides the mode's max-servers.
	maxServers int
	// bootSteps overrides the mode's sim boot steps.
	bootSteps []float64
}

// newCluster starts a deployment: ZooKeeper, temporal-dev on a database file, a
// simcloud (and ec2sim when the scenario uses it), a poller and two workers.
func newCluster(ctx context.Context, t *testing.T, m mode, name string, spec clusterSpec) (*cluster, error) {
	dir, err := os.MkdirTemp("", "chaos-"+name+"-")
	if err != nil {
		return nil, err
	}
	st, err := devstack.New(devstack.Options{Dir: dir, BinDir: binDir})
	if err != nil {
		return nil, err
	}
	c := &cluster{t: t, m: m, dir: dir, st: st, provider: simProvider, labels: simLabels, maxServers: m.maxServers}
	if spec.maxServers > 0 {
		c.maxServers = spec.maxServers
	}
	if spec.aws {
		c.provider, c.labels = awsProvider, awsLabels
	}
	if err := c.start(ctx, spec); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) start(ctx context.Context, spec clusterSpec) error {
	z, err := c.st.StartZooKeeper(ctx, devstack.ZooKeeperOptions{})
	if err != nil {
		return err
	}
	tp, err := c.st.StartTemporal(ctx, devstack.TemporalOptions{DBFile: c.st.Path("temporal.db")})
	if err != nil {
		return err
	}
	steps := c.m.bootSteps
	if spec.bootSteps != nil {
		steps = spec.bootSteps
	}
	if c.sim, err = c.st.StartSimCloud(ctx, "simcloud", devstack.SimCloudConfig{
		Seed: 1, BootSteps: steps, DeleteLatency: 0.2,
	}, devstack.SimCloudOptions{LogLevel: "info"}); err != nil {
		return err
	}
	providers := []devstack.Provider{c.simProvider()}
	if spec.aws {
		if c.ec2, err = c.st.StartEC2Sim(ctx, "ec2sim", devstack.EC2SimOptions{
			Seed: 1, BootTime: c.m.bootTime, TerminateTime: 300 * time.Millisecond, LogLevel: "info",
		}); err != nil {
			return err
		}
		providers = append(providers, c.awsProvider())
	}
	cfg, err := c.st.WriteConfig("nodepool.yaml", devstack.LauncherConfig{
		ZooKeeper:        []string{z.Addr},
		ZooKeeperTimeout: 10,
		Temporal:         devstack.TemporalSection{Address: tp.Addr, Namespace: "default", TaskQueue: taskQueue},
		Launcher:         devstack.LauncherSection{Hostname: hostname, PollInterval: 0.5, DeleteInterval: 2},
		Providers:        providers,
	})
	if err != nil {
		return err
	}

	zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if c.zk, err = zookeeper.Connect(zctx, zookeeper.Options{Servers: []string{z.Addr}, Logger: quietLogger()}); err != nil {
		return fmt.Errorf("connecting to ZooKeeper: %w", err)
	}
	if c.zuul, err = zuul.New(c.zk, zuul.Options{
		SystemID: "chaos-zuul", Tenant: "chaos", Pipeline: "check", Job: "chaos", Project: "chaos/project",
		Recheck:  2 * time.Second,
		Observer: zuul.Observer{Warning: func(error) { c.warnings.Add(1) }},
	}); err != nil {
		return err
	}
	if c.temporal, err = client.Dial(client.Options{HostPort: tp.Addr, Logger: quietSDKLogger{}}); err != nil {
		return fmt.Errorf("dialing Temporal: %w", err)
	}

	var names []string
	for _, p := range providers {
		names = append(names, p.Name)
	}
	launchers := []struct{ name, role string }{{"poller", "poller"}, {"worker-1", "worker"}, {"worker-2", "worker"}}
	for _, l := range launchers {
		opts := devstack.LauncherOptions{Config: cfg, Role: l.role, LogLevel: "debug"}
		if l.role == "poller" {
			opts.ReadyCheck = zkready.PoolsRegistered(c.zk, names...)
		}
		if _, err := c.st.StartLauncher(ctx, l.name, opts); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) simProvider() devstack.Provider {
	pool := devstack.Pool{Name: "main", MaxServers: c.maxServers, Attributes: map[string]any{"executor-zone": "chaos"}}
	for _, l := range simLabels {
		pool.Labels = append(pool.Labels, devstack.Label{Name: l, Flavor: l, CloudImage: "img"})
	}
	return devstack.Provider{
		Name: simProvider, Driver: "sim", Server: c.sim.URL, LaunchTimeout: 120, LaunchRetries: 3,
		Flavors:     []devstack.Flavor{{Name: "small", Cores: 1, RAM: 1024}, {Name: "large", Cores: 2, RAM: 2048}},
		CloudImages: []devstack.CloudImage{{Name: "img", Username: "zuul"}},
		Pools:       []devstack.Pool{pool},
	}
}

func (c *cluster) awsProvider() devstack.Provider {
	return devstack.Provider{
		Name: awsProvider, Driver: "aws", Region: "us-east-1", Endpoint: c.ec2.URL, LaunchTimeout: 120, LaunchRetries: 3,
		CloudImages: []devstack.CloudImage{{Name: "jammy", ImageID: awsImageID, Username: "ubuntu"}},
		Pools: []devstack.Pool{{
			Name: "main", MaxServers: c.maxServers,
			SubnetID: "subnet-0b0e0c0b0e0c0b0e0", SecurityGroupID: "sg-0b0e0c0b0e0c0b0e0",
			Attributes: map[string]any{"executor-zone": "chaos"},
			// The EC2 endpoint's instances run no SSH server to scan.
			Extra: map[string]any{"host-key-checking": false},
			Labels: []devstack.Label{
				{Name: awsLabels[0], CloudImage: "jammy", InstanceType: "t3.small", KeyName: "zuul"},
				{Name: awsLabels[1], CloudImage: "jammy", InstanceType: "t3.medium", KeyName: "zuul"},
			},
		}},
	}
}

// stop stops every process; the scenario's directory is removed unless keep.
func (c *cluster) stop() {
	if c.temporal != nil {
		c.temporal.Close()
	}
	if c.zk != nil {
		c.zk.Close()
	}
	if err := c.st.Stop(); err != nil {
		c.t.Logf("stopping the deployment: %v", err)
	}
}

// requestSets returns the label sets of a burst of n requests: every multiEvery-th
// request asks for two or three nodes of both sizes, the others for one node (every
// third of them a large one).
func (c *cluster) requestSets(n int) [][]string {
	small, large := c.labels[0], c.labels[1]
	sets := make([][]string, n)
	multi := 0
	for i := range sets {
		switch {
		case c.m.multiEvery > 0 && i%c.m.multiEvery == c.m.multiEvery-1:
			if multi%2 == 0 {
				sets[i] = []string{small, large}
			} else {
				sets[i] = []string{large, small, small}
			}
			multi++
		case i%3 == 2:
			sets[i] = []string{large}
		default:
			sets[i] = []string{small}
		}
	}
	return sets
}

// result is one request as Zuul saw it.
type result struct {
	id        string
	labels    []string
	submitted time.Time
	done      time.Time
	state     zookeeper.RequestState
	nodes     []string
	// zuulErr is a problem on Zuul's side of the exchange (the request vanished, a
	// node could not be accepted); err is a request that never ended.
	zuulErr error
	err     error
}

// ledger collects what Zuul got: which request every node was fulfilled to.
type ledger struct {
	mu         sync.Mutex
	nodeOf     map[string]string // node id → request id
	duplicates []string
	// ended counts the requests whose wait ended (whatever the outcome).
	ended     atomic.Int64
	fulfilled atomic.Int64
	failed    atomic.Int64
	returned  atomic.Int64
}

func newLedger() *ledger { return &ledger{nodeOf: map[string]string{}} }

// record records the nodes of a fulfilled request.
func (l *ledger) record(r *result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range r.nodes {
		if other, ok := l.nodeOf[n]; ok && other != r.id {
			l.duplicates = append(l.duplicates, fmt.Sprintf("node %s in requests %s and %s", n, other, r.id))
		}
		l.nodeOf[n] = r.id
	}
}

// submit creates the requests of sets, eight at a time.
func (c *cluster) submit(ctx context.Context, sets [][]string) ([]*result, error) {
	out := make([]*result, len(sets))
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, labels := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			now := time.Now()
			r, err := c.zuul.Submit(ctx, zuul.PriorityNormal, labels...)
			if err != nil {
				errs[i] = fmt.Errorf("submitting request %d: %w", i, err)
				return
			}
			out[i] = &result{id: r.ID, labels: labels, submitted: now}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// serve acts as Zuul for one request: wait until it ends; if fulfilled, accept the
// nodes, use them for the mode's hold time and return them; if failed, delete it.
// hold, when set, keeps the nodes until it is closed.
func (c *cluster) serve(ctx context.Context, r *result, l *ledger, hold <-chan struct{}) {
	req, err := c.zuul.Wait(ctx, r.id)
	r.done = time.Now()
	l.ended.Add(1)
	if err != nil {
		if ctx.Err() != nil {
			r.err = fmt.Errorf("request %s did not end: %w", r.id, err)
		} else {
			r.zuulErr = fmt.Errorf("waiting for request %s: %w", r.id, err)
		}
		return
	}
	r.state = req.State
	if req.State == zookeeper.StateFailed {
		l.failed.Add(1)
		if err := c.zuul.Cancel(ctx, r.id); err != nil {
			r.zuulErr = fmt.Errorf("deleting failed request %s: %w", r.id, err)
		}
		return
	}
	r.nodes = slices.Clone(req.Nodes)
	l.fulfilled.Add(1)
	l.record(r)
	set, err := c.accept(ctx, req)
	if err != nil {
		r.zuulErr = err
		return
	}
	for attempt := 0; ; attempt++ {
		err := set.Use(ctx)
		if err == nil {
			break
		}
		if attempt == 10 || ctx.Err() != nil {
			r.zuulErr = fmt.Errorf("using the nodes of %s: %w", r.id, err)
			_ = set.Unlock(ctx)
			return
		}
		c.waitConnected(ctx)
		time.Sleep(time.Second)
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
		}
	} else {
		time.Sleep(c.m.hold)
	}
	c.waitConnected(ctx)
	if _, err := set.Return(ctx); err != nil {
		r.zuulErr = fmt.Errorf("returning the nodes of %s: %w", r.id, err)
	}
	l.returned.Add(int64(len(r.nodes)))
}

// accept accepts a fulfilled request's nodes, trying again while ZooKeeper is away as
// long as the request exists.
func (c *cluster) accept(ctx context.Context, req *zookeeper.NodeRequest) (*zuul.NodeSet, error) {
	for attempt := 0; ; attempt++ {
		c.waitConnected(ctx)
		set, err := c.zuul.Accept(ctx, req)
		if err == nil {
			return set, nil
		}
		if errors.Is(err, zuul.ErrNotAllocated) || attempt == 10 || ctx.Err() != nil {
			return nil, fmt.Errorf("accepting the nodes of %s: %w", req.ID, err)
		}
		again, gerr := c.zk.GetRequest(ctx, req.ID)
		if errors.Is(gerr, zookeeper.ErrNotFound) {
			return nil, fmt.Errorf("accepting the nodes of %s: %w (the request is gone)", req.ID, err)
		}
		if gerr == nil {
			req = again
		}
		time.Sleep(time.Second)
	}
}

// waitConnected waits (up to a minute) until the ZooKeeper client has a session.
func (c *cluster) waitConnected(ctx context.Context) {
	deadline := time.Now().Add(time.Minute)
	for !c.zk.Connected() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
}

// simStats returns the simcloud's counters.
func (c *cluster) simStats(ctx context.Context) (map[string]int64, error) {
	var st map[string]int64
	return st, getJSON(ctx, c.sim.URL+sim.PathStats, &st)
}

// ec2Stats returns ec2sim's counters.
func (c *cluster) ec2Stats(ctx context.Context) (ec2sim.Stats, error) {
	var st ec2sim.Stats
	return st, getJSON(ctx, c.ec2.URL+"/_stats", &st)
}

// created returns how many instances the scenario's cloud created.
func (c *cluster) created(ctx context.Context) int64 {
	if c.provider == awsProvider {
		st, err := c.ec2Stats(ctx)
		if err != nil {
			return 0
		}
		return st.Created
	}
	st, err := c.simStats(ctx)
	if err != nil {
		return 0
	}
	return st["instances.created"]
}

// waitCreated waits until the scenario's cloud created at least n instances.
func (c *cluster) waitCreated(ctx context.Context, n int64) {
	for ctx.Err() == nil && c.created(ctx) < n {
		time.Sleep(50 * time.Millisecond)
	}
}

// cloudInstances lists the instances left in both clouds.
func (c *cluster) cloudInstances(ctx context.Context) ([]string, error) {
	insts, err := sim.NewClient(c.sim.URL)
	if err != nil {
		return nil, err
	}
	list, err := insts.Instances(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range list {
		out = append(out, fmt.Sprintf("sim %s (%s, node %s)", i.ID, i.Status, i.Metadata["nodepool_node_id"]))
	}
	if c.ec2 != nil {
		st, err := c.ec2Stats(ctx)
		if err != nil {
			return nil, err
		}
		for _, state := range []string{"pending", "running", "shutting-down", "stopping", "stopped"} {
			if n := st.Instances[state]; n > 0 {
				out = append(out, fmt.Sprintf("ec2 %d %s", n, state))
			}
		}
	}
	return out, nil
}

// creationProblems reports node ids that had more than one instance at once, and the
// most one had. A node id may get a new instance per launch attempt (the failed attempt's instance is
// deleted first, as in Nodepool); what must never happen is two instances of one node
// id at once. The clouds count, per node id, the most instances not being deleted that
// it ever had at once.
func (c *cluster) creationProblems(ctx context.Context) (twice []string, most int64, err error) {
	var byNode map[string]int64
	if err := getJSON(ctx, c.sim.URL+sim.PathPeakLive, &byNode); err != nil {
		return nil, 0, err
	}
	if c.ec2 != nil {
		var ec2By map[string]int64
		if err := getJSON(ctx, c.ec2.URL+"/_creations/peak-live", &ec2By); err != nil {
			return nil, 0, err
		}
		for k, v := range ec2By {
			byNode[k] += v
		}
	}
	for node, n := range byNode {
		most = max(most, n)
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s (%d instances)", node, n))
		}
	}
	sort.Strings(twice)
	return twice, most, nil
}

// zkLeft lists the node and request znodes left.
func (c *cluster) zkLeft(ctx context.Context) (nodes, requests []string, err error) {
	ids, err := c.zk.ListNodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		desc := id
		if n, err := c.zk.GetNode(ctx, id); err == nil {
			desc = fmt.Sprintf("%s (%s)", id, n.State)
		}
		nodes = append(nodes, desc)
	}
	rids, err := c.zk.ListRequests(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range rids {
		desc := id
		if r, err := c.zk.GetRequest(ctx, id); err == nil {
			desc = fmt.Sprintf("%s (%s)", id, r.State)
		}
		requests = append(requests, desc)
	}
	return nodes, requests, nil
}

// waitClean waits until no node or request znode and no cloud instance is left, and
// returns what is left after timeout.
func (c *cluster) waitClean(ctx context.Context, timeout time.Duration) (nodes, requests, instances []string, err error) {
	deadline := time.Now().Add(timeout)
	for {
		nodes, requests, err = c.zkLeft(ctx)
		if err == nil {
			instances, err = c.cloudInstances(ctx)
		}
		if err == nil && len(nodes)+len(requests)+len(instances) == 0 {
			return nil, nil, nil, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nodes, requests, instances, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// setSimFaults replaces the simcloud's fault settings.
func (c *cluster) setSimFaults(ctx context.Context, f sim.Faults) error {
	return putJSON(ctx, c.sim.URL+sim.PathFaults, f)
}

// setEC2Faults replaces ec2sim's fault settings.
func (c *cluster) setEC2Faults(ctx context.Context, f ec2sim.Faults) error {
	return putJSON(ctx, c.ec2.URL+"/_faults", f)
}

// cloudErrors returns the errors the scenario's cloud answered, by code.
func (c *cluster) cloudErrors(ctx context.Context) map[string]int64 {
	out := map[string]int64{}
	if c.provider == awsProvider {
		if st, err := c.ec2Stats(ctx); err == nil {
			for k, v := range st.Errors {
				out[k] = v
			}
		}
		return out
	}
	if st, err := c.simStats(ctx); err == nil {
		for k, v := range st {
			if code, ok := strings.CutPrefix(k, "errors."); ok {
				out[code] = v
			}
		}
		if n := st["lost_replies"]; n > 0 {
			out["lost replies"] = n
		}
	}
	return out
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func putJSON(ctx context.Context, url string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT %s: %s: %s", url, resp.Status, msg)
	}
	return nil
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// quietSDKLogger keeps the Temporal SDK's chatter out of the test output.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}

var (
	attemptLine = regexp.MustCompile(`launch attempt failed.* error="(.*)"$`)
	apiCode     = regexp.MustCompile(`api error ([A-Za-z.]+)`)
	instanceID  = regexp.MustCompile(`\b(i|sim)-[0-9a-f]+\b`)
	number      = regexp.MustCompile(`\b\d+(\.\d+)?`)
)

// attemptFailures counts the launch attempts that failed, by reason, from the workers'
// logs (the reasons with numbers and ids blanked out).
func (c *cluster) attemptFailures() map[string]int {
	out := map[string]int{}
	for _, p := range c.st.Procs() {
		if !strings.HasPrefix(p.Name(), "worker") {
			continue
		}
		data, err := os.ReadFile(p.LogPath())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			m := attemptLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			out[attemptReason(m[1])]++
		}
	}
	return out
}

// attemptReason shortens a failed attempt's error to its reason.
func attemptReason(s string) string {
	s = strings.ReplaceAll(s, `\"`, `"`)
	code := ""
	if m := apiCode.FindStringSubmatch(s); m != nil {
		code = " (" + m[1] + ")"
	}
	if i := strings.Index(s, "advancing "); i >= 0 {
		s = s[i:]
	}
	for _, cut := range []string{" (type:", ": operation error"} {
		if i := strings.Index(s, cut); i >= 0 {
			s = s[:i]
		}
	}
	s = instanceID.ReplaceAllString(s, "$1-…")
	s = number.ReplaceAllString(s, "N")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s + code
}
