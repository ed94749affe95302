package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack/zkready"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

var binDir string

func TestMain(m *testing.M) {
	binDir = os.Getenv("NODEPOOL_BIN_DIR")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "nodepool-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/nodepool-launcher", "../cmd/simcloud", "../cmd/ec2sim")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building binaries:", err)
			os.Exit(1)
		}
		binDir = dir
	}
	testenv.Main(m)
}

// cloudSpec configures one simulated cloud (a simcloud server process) and the
// provider that uses it.
type cloudSpec struct {
	Provider      string
	BootSteps     string // YAML list in seconds, e.g. "[0.2, 0.3]"
	DeleteLatency float64
	MaxServers    int
	LaunchTimeout float64
	LaunchRetries int
	Labels        []string
	URL           string // filled in when started
}

type clusterSpec struct {
	Clouds     []*cloudSpec
	MaxHoldAge int
	// ExtraLabels and ExtraProviders add labels and raw provider sections (YAML list
	// items, indented for the providers list) for other drivers.
	ExtraLabels    []string
	ExtraProviders string
}

// cluster is one isolated deployment: its own ZooKeeper chroot, task queue, clouds and
// launchers (processes of its devstack; ZooKeeper and Temporal are the shared test
// servers).
type cluster struct {
	t         *testing.T
	zkAddr    string
	stack     *devstack.Stack
	cfgPath   string
	taskQueue string
	providers []string
	zk        *zookeeper.Client
	temporal  client.Client
	mu        sync.Mutex
	launchers int
}

// proc is a launcher process of a cluster.
type proc struct {
	*devstack.Launcher
}

// kill9 kills the launcher as kill -9 does.
func (p *proc) kill9() { p.Kill() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newCluster(t *testing.T, spec clusterSpec) *cluster {
	t.Helper()
	zkAddr, chroot := testenv.ZooKeeperChroot(t)
	temporalAddr := testenv.Temporal(t)
	st, err := devstack.New(devstack.Options{Dir: t.TempDir(), BinDir: binDir})
	require.NoError(t, err)
	c := &cluster{t: t, zkAddr: zkAddr, stack: st, taskQueue: "e2e-" + randomHex(6)}
	t.Cleanup(func() {
		// Launchers first, then the clouds; also when the test fails before the end.
		if err := st.Stop(); err != nil {
			t.Logf("stopping the cluster: %v", err)
		}
	})
	labels := map[string]bool{}
	var labelList []string
	for _, cl := range spec.Clouds {
		if cl.LaunchTimeout == 0 {
			cl.LaunchTimeout = 60
		}
		if cl.LaunchRetries == 0 {
			cl.LaunchRetries = 2
		}
		if cl.BootSteps == "" {
			cl.BootSteps = "[0.2, 0.3]"
		}
		cl.URL = c.startCloud(cl)
		c.providers = append(c.providers, cl.Provider)
		for _, l := range cl.Labels {
			if !labels[l] {
				labels[l] = true
				labelList = append(labelList, l)
			}
		}
	}
	for _, l := range spec.ExtraLabels {
		if !labels[l] {
			labels[l] = true
			labelList = append(labelList, l)
		}
	}
	cfg := devstack.LauncherConfig{
		ZooKeeper:        []string{zkAddr},
		Chroot:           chroot,
		ZooKeeperTimeout: 4,
		Temporal:         devstack.TemporalSection{Address: temporalAddr, TaskQueue: c.taskQueue},
		Launcher:         devstack.LauncherSection{Hostname: "e2e", PollInterval: 0.5, DeleteInterval: 0.5},
		MaxHoldAge:       spec.MaxHoldAge,
		Labels:           labelList,
	}
	for _, cl := range spec.Clouds {
		pool := devstack.Pool{Name: "main", MaxServers: cl.MaxServers, Attributes: map[string]any{"executor-zone": "e2e"}}
		for _, l := range cl.Labels {
			pool.Labels = append(pool.Labels, devstack.Label{Name: l, Flavor: "small", CloudImage: "img"})
		}
		cfg.Providers = append(cfg.Providers, devstack.Provider{
			Name: cl.Provider, Driver: "sim", LaunchTimeout: cl.LaunchTimeout, LaunchRetries: cl.LaunchRetries,
			Server:      cl.URL,
			Flavors:     []devstack.Flavor{{Name: "small", Cores: 1, RAM: 1024}},
			CloudImages: []devstack.CloudImage{{Name: "img", Username: "zuul-user"}},
			Pools:       []devstack.Pool{pool},
		})
	}
	if spec.ExtraProviders != "" {
		var extra []devstack.Provider
		require.NoError(t, yaml.Unmarshal([]byte(spec.ExtraProviders), &extra), "extra providers")
		for _, p := range extra {
			c.providers = append(c.providers, p.Name)
		}
		cfg.Providers = append(cfg.Providers, extra...)
	}
	c.cfgPath, err = st.WriteConfig("nodepool.yaml", cfg)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{zkAddr}, Chroot: chroot})
	require.NoError(t, err)
	c.zk = zk
	tc, err := client.Dial(client.Options{HostPort: temporalAddr, Logger: quietLogger{}})
	require.NoError(t, err)
	c.temporal = tc
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		c.stopLaunchers()
		tc.Close()
		zk.Close()
	})
	return c
}

// startCloud runs a simcloud server for the spec and returns its URL.
func (c *cluster) startCloud(cl *cloudSpec) string {
	t := c.t
	var steps []float64
	require.NoError(t, yaml.Unmarshal([]byte(cl.BootSteps), &steps), "boot steps %q", cl.BootSteps)
	if steps == nil {
		steps = []float64{}
	}
	sc, err := c.stack.StartSimCloud(c.ctx(time.Minute), cl.Provider+"-cloud",
		devstack.SimCloudConfig{Seed: 7, BootSteps: steps, DeleteLatency: cl.DeleteLatency}, devstack.SimCloudOptions{})
	require.NoError(t, err)
	return sc.URL
}

// startEC2 runs an EC2-compatible endpoint with ec2sim's flags args for the test's
// lifetime and returns its URL.
func startEC2(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := devstack.StartEC2Sim(ctx, devstack.EC2SimOptions{
		Binary: filepath.Join(binDir, "ec2sim"), ExtraArgs: args, LogFile: filepath.Join(t.TempDir(), "ec2sim.log"),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Stop() })
	return e.URL
}

// startLauncher runs the launcher binary with a role and returns once it runs (and,
// with a poller, once the cluster's pools are registered).
func (c *cluster) startLauncher(role string) *proc {
	c.t.Helper()
	c.mu.Lock()
	name := fmt.Sprintf("launcher-%d-%s", c.launchers, role)
	c.launchers++
	c.mu.Unlock()
	opts := devstack.LauncherOptions{Config: c.cfgPath, Role: role, LogLevel: "debug"}
	if role != "worker" {
		opts.ReadyCheck = zkready.PoolsRegistered(c.zk, c.providers...)
	}
	l, err := c.stack.StartLauncher(c.ctx(2*time.Minute), name, opts)
	require.NoError(c.t, err)
	return &proc{Launcher: l}
}

// stopLaunchers stops every launcher and cloud of the cluster (SIGTERM, drain, then
// SIGKILL).
func (c *cluster) stopLaunchers() {
	if err := c.stack.Stop(); err != nil {
		c.t.Logf("stopping the cluster: %v", err)
	}
}

// dumpLogs logs the last lines of every launcher's log.
func (c *cluster) dumpLogs() {
	for _, p := range c.stack.Procs() {
		if !strings.HasPrefix(p.Name(), "launcher") {
			continue
		}
		data, _ := os.ReadFile(p.LogPath())
		lines := strings.Split(string(data), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		c.t.Logf("---- %s (last lines) ----\n%s", p.Name(), strings.Join(lines, "\n"))
	}
}

// ctx returns a context bounded by d.
func (c *cluster) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	c.t.Cleanup(cancel)
	return ctx
}

// zuulClient returns a client acting as the tests' Zuul, reporting to obs.
func (c *cluster) zuulClient(obs zuul.Observer) *zuul.Client {
	c.t.Helper()
	z, err := zuul.New(c.zk, zuul.Options{SystemID: "zuul-e2e", Tenant: "tenant-one", Pipeline: "check",
		Job: "tox", Project: "example/project", Observer: obs})
	require.NoError(c.t, err)
	return z
}

// submit creates a node request as Zuul does and returns its id.
func (c *cluster) submit(priority string, labels ...string) string {
	c.t.Helper()
	return c.submitRequest(priority, labels...).ID
}

// submitRequest creates a node request as Zuul does and returns it as written.
func (c *cluster) submitRequest(priority string, labels ...string) *zookeeper.NodeRequest {
	c.t.Helper()
	prio, err := strconv.Atoi(priority)
	require.NoError(c.t, err)
	r, err := c.zuulClient(zuul.Observer{}).Submit(c.ctx(10*time.Second), prio, labels...)
	require.NoError(c.t, err)
	return r
}

// waitRequest watches the request until cond holds for it (or fails the test).
func (c *cluster) waitRequest(id string, timeout time.Duration, cond func(*zookeeper.NodeRequest) bool) *zookeeper.NodeRequest {
	c.t.Helper()
	var last *zookeeper.NodeRequest
	z := c.zuulClient(zuul.Observer{RequestRead: func(r *zookeeper.NodeRequest) { last = r }})
	r, err := z.WaitUntil(c.ctx(timeout), id, cond)
	if err != nil {
		c.t.Fatalf("request %s: condition not met within %s: %v; last seen: %+v", id, timeout, err, last)
	}
	return r
}

func stateIs(states ...zookeeper.RequestState) func(*zookeeper.NodeRequest) bool {
	return func(r *zookeeper.NodeRequest) bool {
		for _, s := range states {
			if r.State == s {
				return true
			}
		}
		return false
	}
}

func (c *cluster) node(id string) *zookeeper.Node {
	c.t.Helper()
	n, err := c.zk.GetNode(c.ctx(5*time.Second), id)
	require.NoError(c.t, err)
	return n
}

// accept does what Zuul's executor does with a fulfilled request: accept the
// nodes (check allocated_to, lock each within 30 s, check again, delete the
// request), then set them in use.
func (c *cluster) accept(req *zookeeper.NodeRequest) *zuul.NodeSet {
	c.t.Helper()
	z := c.zuulClient(zuul.Observer{Warning: func(err error) { c.t.Logf("zuul: %v", err) }})
	set, err := z.Accept(c.ctx(70*time.Second), req)
	require.NoError(c.t, err)
	require.NoError(c.t, set.Use(c.ctx(10*time.Second)))
	return set
}

// giveBack returns the nodes as Zuul does after a build: those in use become
// used, then every node is unlocked.
func (c *cluster) giveBack(held *zuul.NodeSet) {
	c.t.Helper()
	_, err := held.Return(c.ctx(30 * time.Second))
	require.NoError(c.t, err)
}

func (c *cluster) nodeIDs() []string {
	ids, err := c.zk.ListNodes(c.ctx(5 * time.Second))
	require.NoError(c.t, err)
	return ids
}

// waitNoNodes waits until no node znode is left.
func (c *cluster) waitNoNodes(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if len(c.nodeIDs()) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("nodes left after %s: %v", timeout, c.nodeIDs())
}

// cloudStats returns a simcloud's counters.
func cloudStats(t *testing.T, cl *cloudSpec) map[string]int64 {
	t.Helper()
	resp, err := http.Get(cl.URL + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st map[string]int64
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// waitCloudEmpty waits until the cloud has no instance left.
func waitCloudEmpty(t *testing.T, cl *cloudSpec, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st map[string]int64
	for time.Now().Before(deadline) {
		st = cloudStats(t, cl)
		if st["instances"] == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("cloud %s still has instances after %s: %v", cl.Provider, timeout, st)
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}
