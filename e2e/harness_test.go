package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
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
	BootSteps     string // YAML list, e.g. "[0.2, 0.3]"
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

// cluster is one isolated deployment: its own ZooKeeper chroot, task queue and clouds.
type cluster struct {
	t         *testing.T
	dir       string
	cfgPath   string
	taskQueue string
	zk        *zookeeper.Client
	temporal  client.Client
	mu        sync.Mutex
	launchers []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

const configTemplate = `zookeeper-servers:
  - host: {{.ZKHost}}
    port: {{.ZKPort}}
    chroot: {{.Chroot}}
zookeeper-timeout: 4
temporal:
  address: {{.Temporal}}
  task-queue: {{.TaskQueue}}
launcher:
  hostname: e2e
  poll-interval: 0.5
  delete-interval: 0.5
max-hold-age: {{.MaxHoldAge}}
labels:
{{- range .Labels}}
  - name: {{.}}
{{- end}}
providers:
{{- range .Clouds}}
  - name: {{.Provider}}
    driver: sim
    launch-timeout: {{.LaunchTimeout}}
    launch-retries: {{.LaunchRetries}}
    server: {{.URL}}
    flavors:
      - name: small
        cores: 1
        ram: 1024
    cloud-images:
      - name: img
        username: zuul-user
    pools:
      - name: main
        max-servers: {{.MaxServers}}
        node-attributes:
          executor-zone: e2e
        labels:
{{- range .Labels}}
          - name: {{.}}
            flavor: small
            cloud-image: img
{{- end}}
{{- end}}
{{.ExtraProviders}}
`

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newCluster(t *testing.T, spec clusterSpec) *cluster {
	t.Helper()
	zkAddr, chroot := testenv.ZooKeeperChroot(t)
	temporalAddr := testenv.Temporal(t)
	c := &cluster{t: t, dir: t.TempDir(), taskQueue: "e2e-" + randomHex(6)}
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
	host, port, _ := strings.Cut(zkAddr, ":")
	var sb strings.Builder
	require.NoError(t, template.Must(template.New("cfg").Parse(configTemplate)).Execute(&sb, map[string]any{
		"ZKHost": host, "ZKPort": port, "Chroot": chroot, "Temporal": temporalAddr,
		"TaskQueue": c.taskQueue, "Labels": labelList, "Clouds": spec.Clouds, "MaxHoldAge": spec.MaxHoldAge,
		"ExtraProviders": spec.ExtraProviders,
	}))
	c.cfgPath = filepath.Join(c.dir, "nodepool.yaml")
	require.NoError(t, os.WriteFile(c.cfgPath, []byte(sb.String()), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{zkAddr}, Chroot: chroot})
	require.NoError(t, err)
	c.zk = zk
	tc, err := client.Dial(client.Options{HostPort: temporalAddr, Logger: quietLogger{}})
	require.NoError(t, err)
	c.temporal = tc
	t.Cleanup(func() {
		c.stopLaunchers()
		tc.Close()
		zk.Close()
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

// startCloud runs a simcloud server for the spec and returns its URL.
func (c *cluster) startCloud(cl *cloudSpec) string {
	t := c.t
	cfg := fmt.Sprintf("seed: 7\nboot-steps: %s\ndelete-latency: %g\nflavors:\n  - name: small\n    cores: 1\n    ram: 1024\ncloud-images:\n  - name: img\n    username: zuul-user\n",
		cl.BootSteps, cl.DeleteLatency)
	path := filepath.Join(c.dir, cl.Provider+"-cloud.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	return startServer(t, "simcloud", "--listen", "127.0.0.1:0", "--config", path, "--log-level", "warn")
}

// startEC2 runs an EC2-compatible endpoint and returns its URL.
func startEC2(t *testing.T, args ...string) string {
	t.Helper()
	return startServer(t, "ec2sim", append([]string{"--listen", "127.0.0.1:0"}, args...)...)
}

// startServer runs one of the project's HTTP servers (which print "<name> listening on
// ADDR" when ready) for the test's lifetime and returns its URL.
func startServer(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), name+" listening on "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return "http://" + strings.TrimSpace(addr)
		}
	}
	t.Fatalf("%s did not start", name)
	return ""
}

// startLauncher runs the launcher binary with a role.
func (c *cluster) startLauncher(role string) *proc {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	name := fmt.Sprintf("launcher-%d-%s", len(c.launchers), role)
	logPath := filepath.Join(c.dir, name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(c.t, err)
	cmd := exec.Command(filepath.Join(binDir, "nodepool-launcher"), "-c", c.cfgPath, "--role", role, "--log-level", "debug")
	// The EC2-compatible endpoint accepts any credentials; the AWS SDK wants some.
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=e2e", "AWS_SECRET_ACCESS_KEY=e2e", "AWS_EC2_METADATA_DISABLED=true")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(c.t, cmd.Start())
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	c.launchers = append(c.launchers, p)
	return p
}

func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (c *cluster) stopLaunchers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.launchers {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range c.launchers {
		select {
		case <-p.done:
		case <-time.After(40 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func (c *cluster) dumpLogs() {
	for _, p := range c.launchers {
		data, _ := os.ReadFile(p.log)
		lines := strings.Split(string(data), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		c.t.Logf("---- %s (last lines) ----\n%s", p.name, strings.Join(lines, "\n"))
	}
}

// ctx returns a context bounded by d.
func (c *cluster) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	c.t.Cleanup(cancel)
	return ctx
}

// submit creates a node request as Zuul does.
func (c *cluster) submit(priority string, labels ...string) string {
	c.t.Helper()
	now := float64(time.Now().UnixNano()) / 1e9
	requestor, tenant, event := "zuul-e2e", "tenant-one", "ev-"+randomHex(4)
	req := &zookeeper.NodeRequest{
		State: zookeeper.StateRequested, StateTime: now, NodeTypes: labels, Requestor: &requestor,
		RequestorData: json.RawMessage(`{"build_set_uuid":"b1","tenant_name":"tenant-one","pipeline_name":"check","job_uuid":"j1","job_name":"tox","span_info":null}`),
		EventID:       &event, CreatedTime: &now, TenantName: &tenant, Reuse: true,
	}
	id, err := c.zk.SubmitRequest(c.ctx(10*time.Second), req, priority, false)
	require.NoError(c.t, err)
	return id
}

// waitRequest polls until cond holds for the request (or fails the test).
func (c *cluster) waitRequest(id string, timeout time.Duration, cond func(*zookeeper.NodeRequest) bool) *zookeeper.NodeRequest {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *zookeeper.NodeRequest
	for time.Now().Before(deadline) {
		r, err := c.zk.GetRequest(c.ctx(5*time.Second), id)
		if err == nil {
			last = r
			if cond(r) {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("request %s: condition not met within %s; last seen: %+v", id, timeout, last)
	return nil
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

// accept does what Zuul's executor does with a fulfilled request: lock every node
// (30 s), check allocated_to, delete the request, mark the nodes in-use.
func (c *cluster) accept(req *zookeeper.NodeRequest) []*zookeeper.Lock {
	c.t.Helper()
	var locks []*zookeeper.Lock
	for _, id := range req.Nodes {
		n := c.node(id)
		require.NotNil(c.t, n.AllocatedTo)
		require.Equal(c.t, req.ID, *n.AllocatedTo)
		l := c.zk.NewLock(zookeeper.NodeLockPath(id), "")
		require.NoError(c.t, l.Acquire(c.ctx(35*time.Second), 30*time.Second))
		locks = append(locks, l)
	}
	require.NoError(c.t, c.zk.DeleteRequest(c.ctx(5*time.Second), req.ID))
	for _, id := range req.Nodes {
		c.setNodeState(id, zookeeper.NodeInUse, nil)
	}
	return locks
}

func (c *cluster) setNodeState(id string, st zookeeper.NodeState, edit func(*zookeeper.Node)) {
	c.t.Helper()
	for {
		n := c.node(id)
		n.State = st
		n.StateTime = float64(time.Now().UnixNano()) / 1e9
		if n.Extra == nil {
			n.Extra = map[string]json.RawMessage{}
		}
		n.Extra["id"] = json.RawMessage(`"` + id + `"`)
		if edit != nil {
			edit(n)
		}
		err := c.zk.UpdateNode(c.ctx(5*time.Second), n)
		if errors.Is(err, zookeeper.ErrBadVersion) {
			continue
		}
		require.NoError(c.t, err)
		return
	}
}

// giveBack marks the nodes used and unlocks them, as Zuul does after a build.
func (c *cluster) giveBack(req *zookeeper.NodeRequest, locks []*zookeeper.Lock) {
	c.t.Helper()
	for _, id := range req.Nodes {
		c.setNodeState(id, zookeeper.NodeUsed, nil)
	}
	for _, l := range locks {
		require.NoError(c.t, l.Release(c.ctx(5*time.Second)))
	}
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
