package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Names of the deployment. Each launcher has a pool "main" of priority 100 and a pool
// "first" of priority 1 that holds one server, so that a request for two nodes of its
// label is first offered to that pool, declined there, and served by the other side.
// Our label both serve is in a pool "both" of its own that holds sharedPoolSize
// servers, fewer than the requests for it, so that upstream serves some of them.
const (
	sharedPoolSize = 3

	chroot           = "/nodepool-interop"
	ourProvider      = "ours-sim"
	upstreamProvider = "upstream-fake"

	labelShared       = "shared"        // our pool "both", upstream's main pool
	labelOursOnly     = "ours-only"     // our main pool
	labelUpstreamOnly = "upstream-only" // upstream's main pool
	labelPreferOurs   = "prefer-ours"   // our first pool (1 server), upstream's main pool
	labelPreferUp     = "prefer-up"     // upstream's first pool (1 server), our main pool
	labelNobody       = "nobody"        // no pool
)

// pythonModules are the modules upstream's launcher and CLI import from Debian's
// packages (scripts/install-interop-deps.sh).
var pythonModules = []string{
	"kazoo", "openstack", "keystoneauth1", "voluptuous", "yaml", "paste", "webob", "statsd",
	"cachetools", "paramiko", "pbr.version", "pkg_resources", "daemon", "extras", "prettytable",
}

func TestMain(m *testing.M) { testenv.Main(m) }

// binaries returns the directory of our launcher, CLI and simulated cloud:
// $NODEPOOL_BIN_DIR, or a temporary directory they are built into.
func binaries(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("NODEPOOL_BIN_DIR"); dir != "" {
		return dir
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/nodepool-launcher", "../cmd/simcloud", "../cmd/nodepool")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the binaries:\n%s", out)
	return dir
}

// python returns the interpreter that runs upstream: $NODEPOOL_INTEROP_PYTHON, or the
// system python3 that Debian's packages install into.
func python() string {
	if p := os.Getenv("NODEPOOL_INTEROP_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// requireUpstreamDeps skips the test, naming the installer, when the interpreter or a
// module upstream imports is missing.
func requireUpstreamDeps(t *testing.T) {
	t.Helper()
	var imports strings.Builder
	for _, m := range pythonModules {
		fmt.Fprintf(&imports, "import %s\n", m)
	}
	out, err := exec.Command(python(), "-c", imports.String()).CombinedOutput()
	if err != nil {
		why := err.Error()
		if line := lastLine(string(out)); line != "" {
			why = line
		}
		t.Skipf("upstream Nodepool cannot run: %s cannot import its dependencies (%s); "+
			"install them with scripts/install-interop-deps.sh (Debian 12 packages)", python(), why)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// deployment is ZooKeeper (TLS only for the launchers and clients), Temporal, the
// simulated cloud, our launcher and upstream's launcher.
type deployment struct {
	t        *testing.T
	stack    *devstack.Stack
	zk       *zookeeper.Client
	ourCfg   string
	upCfg    string
	simURL   string
	upstream *devstack.Proc
	harness  string // interop/harness
	upEnv    []string
	// upWebAddr is where upstream's web app listens.
	upWebAddr string
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	harness, err := filepath.Abs("harness")
	require.NoError(t, err)
	// $NODEPOOL_INTEROP_LOGS keeps the components' logs (for CI artifacts); by default
	// they go with the test's temporary directory.
	st, err := devstack.New(devstack.Options{Dir: t.TempDir(), LogDir: os.Getenv("NODEPOOL_INTEROP_LOGS"), BinDir: binaries(t)})
	require.NoError(t, err)
	d := &deployment{t: t, stack: st, harness: harness}
	t.Cleanup(func() {
		if t.Failed() {
			d.dumpLogs()
		}
		if err := st.Stop(); err != nil {
			t.Logf("stopping the deployment: %v", err)
		}
	})

	ctx := d.ctx(3 * time.Minute)
	certDir := st.Path("certs")
	require.NoError(t, os.MkdirAll(certDir, 0o700))
	serverTLS, clientTLS, err := testenv.GenerateZKCerts(certDir)
	require.NoError(t, err)
	zkProc, err := st.StartZooKeeper(ctx, devstack.ZooKeeperOptions{TLS: &serverTLS})
	require.NoError(t, err)
	temporalAddr := testenv.Temporal(t)
	sim, err := st.StartSimCloud(ctx, "simcloud", devstack.SimCloudConfig{Seed: 7, BootSteps: []float64{0.2, 0.2}}, devstack.SimCloudOptions{})
	require.NoError(t, err)
	d.simURL = sim.URL

	ours := devstack.LauncherConfig{
		ZooKeeper:        []string{zkProc.SecureAddr},
		Chroot:           chroot,
		ZooKeeperTimeout: 10,
		Temporal:         devstack.TemporalSection{Address: temporalAddr, TaskQueue: "interop-" + randomHex(6)},
		Launcher:         devstack.LauncherSection{Hostname: "ours", PollInterval: 0.5, DeleteInterval: 0.5},
		Providers: []devstack.Provider{{
			Name: ourProvider, Driver: "sim", Server: sim.URL, LaunchTimeout: 60, LaunchRetries: 2,
			Flavors:     []devstack.Flavor{{Name: "small", Cores: 1, RAM: 1024}},
			CloudImages: []devstack.CloudImage{{Name: "img", Username: "zuul"}},
			Pools: []devstack.Pool{
				{Name: "main", MaxServers: 10, Labels: simLabels(labelOursOnly, labelPreferUp)},
				{Name: "first", MaxServers: 1, Priority: 1, Labels: simLabels(labelPreferOurs)},
				{Name: "both", MaxServers: sharedPoolSize, Labels: simLabels(labelShared)},
			},
		}},
	}
	d.ourCfg = st.Path("ours.yaml")
	require.NoError(t, writeWithTLS(d.ourCfg, ours, clientTLS))

	d.upCfg = st.Path("upstream.yaml")
	d.upWebAddr = freeAddr(t)
	require.NoError(t, os.WriteFile(d.upCfg, []byte(upstreamConfig(zkProc.SecureAddr, d.upWebAddr, clientTLS)), 0o644))

	d.zk, err = zookeeper.Connect(ctx, zookeeper.Options{
		Servers: []string{zkProc.SecureAddr}, Chroot: chroot,
		TLS: &zookeeper.TLSConfig{CertFile: clientTLS.CertFile, KeyFile: clientTLS.KeyFile, CAFile: clientTLS.CAFile},
	})
	require.NoError(t, err)
	t.Cleanup(d.zk.Close)

	_, err = st.StartLauncher(ctx, "ours", devstack.LauncherOptions{
		Config: d.ourCfg, LogLevel: "debug", ExtraArgs: []string{"--no-webapp"}, ReadyCheck: poolsOf(d.zk, ourProvider, 3),
	})
	require.NoError(t, err)

	d.upEnv = []string{
		"OS_CLIENT_CONFIG_FILE=" + filepath.Join(harness, "clouds.yaml"),
		"PYTHONDONTWRITEBYTECODE=1",
		"HOME=" + st.Dir(),
	}
	d.upstream, err = devstack.StartProc(ctx, devstack.ProcSpec{
		Name:         "upstream-launcher",
		Path:         python(),
		Args:         []string{filepath.Join(harness, "nodepool-launcher"), "-f", "-d", "-c", d.upCfg},
		Env:          d.upEnv,
		Dir:          st.Dir(),
		LogFile:      st.LogFile("upstream-launcher"),
		ReadyCheck:   poolsOf(d.zk, upstreamProvider, 2),
		StartTimeout: 2 * time.Minute,
		StopTimeout:  10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.upstream.Stop() })
	return d
}

// writeWithTLS writes a launcher configuration with a zookeeper-tls section for the
// client certificate (devstack.LauncherConfig renders no top-level keys of its own).
func writeWithTLS(path string, cfg devstack.LauncherConfig, tls testenv.ZKTLSFiles) error {
	data, err := cfg.YAML()
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("reading back the launcher configuration: %w", err)
	}
	doc["zookeeper-tls"] = map[string]string{"cert": tls.CertFile, "key": tls.KeyFile, "ca": tls.CAFile}
	if data, err = yaml.Marshal(doc); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func simLabels(names ...string) []devstack.Label {
	out := make([]devstack.Label, len(names))
	for i, n := range names {
		out[i] = devstack.Label{Name: n, Flavor: "small", CloudImage: "img"}
	}
	return out
}

// upstreamConfig is upstream's nodepool.yaml: the same ZooKeeper over TLS, and a fake
// provider whose pools mirror ours.
func upstreamConfig(zkAddr, webAddr string, tls testenv.ZKTLSFiles) string {
	host, port, _ := strings.Cut(zkAddr, ":")
	webHost, webPort, _ := strings.Cut(webAddr, ":")
	label := func(name string) string {
		return fmt.Sprintf("          - name: %s\n            cloud-image: fake-image\n            flavor-name: Fake Flavor\n", name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
zookeeper-tls:
  cert: %s
  key: %s
  ca: %s
zookeeper-timeout: 10
webapp:
  listen_address: %s
  port: %s
labels:
`, host, port, chroot, tls.CertFile, tls.KeyFile, tls.CAFile, webHost, webPort)
	for _, l := range []string{labelShared, labelUpstreamOnly, labelPreferOurs, labelPreferUp} {
		fmt.Fprintf(&b, "  - name: %s\n", l)
	}
	b.WriteString(`providers:
  - name: ` + upstreamProvider + `
    driver: fake
    cloud: fake
    region-name: fake-region
    rate: 0.0001
    cloud-images:
      - name: fake-image
        image-name: Fake Precise
        username: zuul
    pools:
      - name: main
        max-servers: 10
        host-key-checking: false
        networks: [fake-public-network-name]
        labels:
`)
	b.WriteString(label(labelShared) + label(labelUpstreamOnly) + label(labelPreferOurs))
	b.WriteString(`      - name: first
        priority: 1
        max-servers: 1
        host-key-checking: false
        networks: [fake-public-network-name]
        labels:
`)
	b.WriteString(label(labelPreferUp))
	return b.String()
}

// poolsOf returns a check that passes once provider has n pools registered.
func poolsOf(zk *zookeeper.Client, provider string, n int) func(context.Context) error {
	return func(ctx context.Context) error {
		pools, err := zk.ListPools(ctx)
		if err != nil {
			return fmt.Errorf("listing pools: %w", err)
		}
		got := 0
		for _, p := range pools {
			if p.ProviderName == provider {
				got++
			}
		}
		if got < n {
			return fmt.Errorf("%d of %d pools of provider %s registered", got, n, provider)
		}
		return nil
	}
}

// compareRecords checks that the node records of both launchers carry the same keys,
// and that our pool registrations carry every key of upstream's.
func (d *deployment) compareRecords(t *testing.T, nodes map[string]string) {
	ctx := d.ctx(time.Minute)
	nodeKeys := map[string][]string{} // provider -> keys of one of its nodes
	for id := range nodes {
		raw, _, err := d.zk.Get(ctx, zookeeper.NodePath(id))
		require.NoError(t, err)
		var rec map[string]any
		require.NoError(t, json.Unmarshal(raw, &rec), "node %s: %s", id, raw)
		provider, _ := rec["provider"].(string)
		if _, ok := nodeKeys[provider]; !ok {
			nodeKeys[provider] = slices.Sorted(maps.Keys(rec))
		}
	}
	require.Contains(t, nodeKeys, ourProvider)
	require.Contains(t, nodeKeys, upstreamProvider)
	assert.Equal(t, nodeKeys[upstreamProvider], nodeKeys[ourProvider], "node record keys: upstream's, then ours")

	regs, err := d.zk.Children(ctx, zookeeper.PoolComponentsPath)
	require.NoError(t, err)
	poolKeys := map[string]map[string]bool{}
	for _, c := range regs {
		raw, _, err := d.zk.Get(ctx, zookeeper.PoolComponentsPath+"/"+c)
		require.NoError(t, err)
		var rec map[string]any
		require.NoError(t, json.Unmarshal(raw, &rec), "pool %s: %s", c, raw)
		provider, _ := rec["provider_name"].(string)
		if poolKeys[provider] == nil {
			poolKeys[provider] = map[string]bool{}
		}
		for k := range rec {
			poolKeys[provider][k] = true
		}
	}
	for k := range poolKeys[upstreamProvider] {
		assert.True(t, poolKeys[ourProvider][k], "our pool registrations lack upstream's key %q", k)
	}
}

// poolID returns the registered id of a provider's pool.
func (d *deployment) poolID(provider, pool string) string {
	d.t.Helper()
	pools, err := d.zk.ListPools(d.ctx(10 * time.Second))
	require.NoError(d.t, err)
	// Upstream's registrations carry no pool name; pool ids of both sides are
	// "<host>-PoolWorker.<provider>-<pool>-<uuid>".
	worker := "PoolWorker." + provider + "-" + pool
	for _, p := range pools {
		if p.ProviderName != provider {
			continue
		}
		if p.Name == pool || strings.HasSuffix(p.ID, worker) || strings.Contains(p.ID, worker+"-") {
			return p.ID
		}
	}
	d.t.Fatalf("no registered pool %s of provider %s in %+v", pool, provider, pools)
	return ""
}

// ctx returns a context bounded by timeout and cancelled when the test ends.
func (d *deployment) ctx(timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	d.t.Cleanup(cancel)
	return ctx
}

// cli runs a CLI command and returns its standard output; it fails the test when the
// command fails.
func (d *deployment) cli(t *testing.T, upstream bool, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if upstream {
		cmd = exec.CommandContext(ctx, python(), append([]string{filepath.Join(d.harness, "nodepool"), "-c", d.upCfg}, args...)...)
		cmd.Env = append(os.Environ(), d.upEnv...)
	} else {
		cmd = exec.CommandContext(ctx, d.stack.Bin("nodepool"), append([]string{"-c", d.ourCfg}, args...)...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s: stderr:\n%s", cmd, stderr.String())
	return stdout.String()
}

// upstreamWeb returns the text answer of upstream's web app to GET path (the CLI of
// upstream's release has no label-list; its web app serves the same table).
func (d *deployment) upstreamWeb(t *testing.T, path string) string {
	t.Helper()
	var body string
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		req, err := http.NewRequest(http.MethodGet, "http://"+d.upWebAddr+path, nil)
		require.NoError(c, err)
		req.Header.Set("Accept", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(c, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(c, err)
		require.Equal(c, http.StatusOK, resp.StatusCode, "%s", data)
		body = string(data)
	}, 30*time.Second, 200*time.Millisecond, "upstream's web app at %s", d.upWebAddr)
	return body
}

// freeAddr returns a loopback address with a port that is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// table parses an ASCII table ("+---+" rules, "| a | b |" rows) into rows keyed by
// the header's cells.
func table(t *testing.T, out string) []map[string]string {
	t.Helper()
	var header []string
	var rows []map[string]string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		require.Len(t, cells, len(header), "row %q of table:\n%s", line, out)
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		rows = append(rows, row)
	}
	require.NotNil(t, header, "no table in:\n%s", out)
	return rows
}

// rowWith returns the row whose column col is value, or nil.
func rowWith(rows []map[string]string, col, value string) map[string]string {
	i := slices.IndexFunc(rows, func(r map[string]string) bool { return r[col] == value })
	if i < 0 {
		return nil
	}
	return rows[i]
}

// dumpLogs logs the last lines of both launchers' logs.
func (d *deployment) dumpLogs() {
	for _, name := range []string{"ours", "upstream-launcher"} {
		data, _ := os.ReadFile(d.stack.LogFile(name))
		lines := strings.Split(string(data), "\n")
		if len(lines) > 100 {
			lines = lines[len(lines)-100:]
		}
		d.t.Logf("---- %s (last lines of %s) ----\n%s", name, d.stack.LogFile(name), strings.Join(lines, "\n"))
	}
}

// allocationWatch reads every node record every 100 ms and remembers, per node, every
// request it was ever allocated to and every provider it was recorded under.
type allocationWatch struct {
	mu        sync.Mutex
	allocated map[string]map[string]bool
	providers map[string]map[string]bool
	errs      []string
	stop      context.CancelFunc
	done      chan struct{}
}

func (d *deployment) watchAllocations() *allocationWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &allocationWatch{
		allocated: map[string]map[string]bool{}, providers: map[string]map[string]bool{},
		stop: cancel, done: make(chan struct{}),
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			w.scan(ctx, d.zk)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	d.t.Cleanup(w.halt)
	return w
}

func (w *allocationWatch) scan(ctx context.Context, zk *zookeeper.Client) {
	ids, err := zk.ListNodes(ctx)
	if err != nil {
		return
	}
	for _, id := range ids {
		n, err := zk.GetNode(ctx, id)
		if err != nil {
			continue
		}
		w.mu.Lock()
		add := func(m map[string]map[string]bool, v string) {
			if m[id] == nil {
				m[id] = map[string]bool{}
			}
			m[id][v] = true
		}
		if n.AllocatedTo != nil && *n.AllocatedTo != "" {
			add(w.allocated, *n.AllocatedTo)
		}
		add(w.providers, n.Provider)
		w.mu.Unlock()
	}
}

func (w *allocationWatch) halt() {
	w.stop()
	<-w.done
}

// check returns a problem per node allocated to more than one request or recorded
// under more than one provider.
func (w *allocationWatch) check() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var problems []string
	for id, reqs := range w.allocated {
		if len(reqs) > 1 {
			problems = append(problems, fmt.Sprintf("node %s was allocated to %d requests: %v", id, len(reqs), keys(reqs)))
		}
	}
	for id, provs := range w.providers {
		if len(provs) > 1 {
			problems = append(problems, fmt.Sprintf("node %s was recorded under providers %v", id, keys(provs)))
		}
	}
	slices.Sort(problems)
	return problems
}

// seen returns how many nodes the watch saw.
func (w *allocationWatch) seen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.providers)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
