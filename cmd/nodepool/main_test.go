package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul/zuultest"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// simConfig is a configuration with one sim provider serving "small" and "large".
const simConfig = `zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
labels:
  - name: small
  - name: large
providers:
  - name: sim-one
    driver: sim
    flavors:
      - name: s
        cores: 1
        ram: 1024
    cloud-images:
      - name: debian
    pools:
      - name: main
        max-servers: 5
        labels:
          - name: small
            flavor: s
            cloud-image: debian
          - name: large
            flavor: s
            cloud-image: debian
`

// env is one test's ZooKeeper chroot, a configuration file pointing at it, and a
// client of the same chroot for setting up and checking records.
type env struct {
	t      *testing.T
	cfg    string
	chroot string
	zk     *zookeeper.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	addr, chroot := testenv.ZooKeeperChroot(t)
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	cfg := writeFile(t, "nodepool.yaml", fmt.Sprintf(simConfig, host, port, chroot))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &env{t: t, cfg: cfg, chroot: chroot, zk: c}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// result is the outcome of one in-process run of the command.
type result struct {
	code   int
	stdout string
	stderr string
}

// runCLI runs the command in-process with args.
func runCLI(ctx context.Context, args ...string) result {
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// cli runs a subcommand against the environment's configuration.
func (e *env) cli(args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return runCLI(ctx, append([]string{"-c", e.cfg}, args...)...)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// readyNode returns a ready node record of the sim-one provider.
func readyNode(label string) *zookeeper.Node { return zuultest.ReadyNode(label) }

func ptr[T any](v T) *T { return &v }

// createNode stores n and returns its id.
func (e *env) createNode(n *zookeeper.Node) string {
	e.t.Helper()
	id, err := e.zk.CreateNode(ctxT(e.t), n)
	require.NoError(e.t, err)
	return id
}

// createRaw creates a znode with raw data below the chroot.
func (e *env) createRaw(p string, data []byte) {
	e.t.Helper()
	require.NoError(e.t, e.zk.EnsurePath(ctxT(e.t), parentOf(p)))
	_, err := e.zk.Create(ctxT(e.t), p, data, 0)
	require.NoError(e.t, err)
}

func parentOf(p string) string { return p[:strings.LastIndex(p, "/")] }

// node reads node id.
func (e *env) node(id string) *zookeeper.Node {
	e.t.Helper()
	n, err := e.zk.GetNode(ctxT(e.t), id)
	require.NoError(e.t, err)
	return n
}

// locked reports whether node id has lock contenders.
func (e *env) locked(id string) bool {
	e.t.Helper()
	ok, err := e.zk.IsLocked(ctxT(e.t), zookeeper.NodeLockPath(id))
	require.NoError(e.t, err)
	return ok
}

// requests lists the request ids.
func (e *env) requests() []string {
	e.t.Helper()
	ids, err := e.zk.ListRequests(ctxT(e.t))
	require.NoError(e.t, err)
	return ids
}

// tableRows returns the data rows of the first ASCII table in out, as cells.
func tableRows(out string) [][]string {
	var rows [][]string
	rules := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "+") {
			rules++
			if rules == 3 {
				break
			}
			continue
		}
		if rules == 2 && strings.HasPrefix(line, "|") {
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			rows = append(rows, cells)
		}
	}
	return rows
}

// tableHeader returns the header cells of the first ASCII table in out.
func tableHeader(out string) []string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "|") {
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			return cells
		}
	}
	return nil
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func TestGlobalUsage(t *testing.T) {
	ctx := ctxT(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no command prints help", nil, 1, "", "usage: nodepool"},
		{"version", []string{"--version"}, 0, "nodepool ", ""},
		{"help", []string{"-h"}, 0, "", "commands:"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"unknown global flag", []string{"--frob"}, 2, "", "flag provided but not defined"},
		{"unknown command flag", []string{"-c", "/nonexistent", "config-validate", "--frob"}, 2, "", "flag provided but not defined"},
		{"command help", []string{"config-validate", "-h"}, 0, "", "usage: nodepool config-validate"},
		{"missing config file", []string{"-c", "/nonexistent/nodepool.yaml", "list"}, 1, "", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(ctx, tc.args...)
			assert.Equal(t, tc.wantCode, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stdout, tc.wantStdout)
			assert.Contains(t, r.stderr, tc.wantStderr)
		})
	}
}

func TestCommandUsageErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"delete without id", []string{"delete"}, "missing ID"},
		{"hold with two ids", []string{"hold", "1", "2"}, `unexpected arguments ["2"]`},
		{"list with argument", []string{"list", "x"}, "unexpected arguments"},
		{"info without provider", []string{"info"}, "missing PROVIDER"},
		{"request without label", []string{"request"}, "missing LABEL"},
		{"request priority out of range", []string{"request", "small", "--priority", "1000"}, "between 0 and 999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.cli(tc.args...)
			assert.Equal(t, 2, r.code)
			assert.Contains(t, r.stderr, tc.want)
			assert.Contains(t, r.stderr, "usage: nodepool "+tc.args[0])
		})
	}
	assert.Empty(t, e.requests(), "no request may be submitted on a usage error")
}

func TestConfigValidate(t *testing.T) {
	good := writeFile(t, "good.yaml", fmt.Sprintf(simConfig, "127.0.0.1", "2181", "/nodepool"))
	bad := writeFile(t, "bad.yaml", `zookeeper-servers:
  - host: 127.0.0.1
labels:
  - name: small
providers:
  - name: sim-one
    driver: sim
    flavors:
      - name: s
        cores: 0
        ram: 1024
    cloud-images:
      - name: debian
    pools:
      - name: main
        bogus-key: 1
        labels:
          - name: small
            flavor: s
            cloud-image: debian
          - name: unknown-label
            flavor: s
            cloud-image: debian
`)
	ctx := ctxT(t)

	r := runCLI(ctx, "-c", good, "config-validate")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "Configuration is valid\n", r.stdout)

	r = runCLI(ctx, "-c", bad, "config-validate")
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.GreaterOrEqual(t, len(lines), 2, r.stderr)
	problem := regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `:\d+: \S+: .+$`)
	for _, line := range lines {
		assert.Regexp(t, problem, line)
	}
	assert.Contains(t, r.stderr, "unknown-label")
	assert.Contains(t, r.stderr, "bogus-key")

	// The other commands refuse a bad file the same way, before touching
	// ZooKeeper.
	r = runCLI(ctx, "-c", bad, "list")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "invalid configuration "+bad)
	assert.Contains(t, r.stderr, "unknown-label")

	r = runCLI(ctx, "-c", filepath.Join(t.TempDir(), "missing.yaml"), "config-validate")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "reading configuration file")
}

func TestUnreachableZooKeeper(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, ln.Close())
	cfg := writeFile(t, "nodepool.yaml", fmt.Sprintf(simConfig, "127.0.0.1", port, "/nodepool"))

	old := zkConnectTimeout
	zkConnectTimeout = time.Second
	t.Cleanup(func() { zkConnectTimeout = old })

	r := runCLI(ctxT(t), "-c", cfg, "list")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no ZooKeeper session with 127.0.0.1:"+port+" within 1s")
	assert.Empty(t, r.stdout)
}

func TestList(t *testing.T) {
	e := newEnv(t)
	ready := readyNode("small")
	ready.StateTime = float64(time.Now().Add(-90*time.Minute).Unix()) - 5
	readyID := e.createNode(ready)

	inUse := readyNode("large")
	inUse.State = zookeeper.NodeInUse
	inUse.ExternalID = json.RawMessage(`{"instance": "i-0abc", "host": "h-1"}`)
	inUse.ConnectionPort = json.RawMessage(`{"token": "secret"}`)
	inUse.Comment = ptr("multi\nline")
	inUseID := e.createNode(inUse)
	lock := e.zk.NewLock(zookeeper.NodeLockPath(inUseID), "")
	ok, err := lock.TryAcquire(ctxT(t))
	require.NoError(t, err)
	require.True(t, ok)

	e.createRaw(zookeeper.NodePath("0000099998"), []byte(`{"state": 5`))
	e.createRaw(zookeeper.NodePath("0000099999"), nil)

	r := e.cli("list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, nodeColumns, tableHeader(r.stdout))
	rows := tableRows(r.stdout)
	require.Len(t, rows, 4, r.stdout)

	assert.Equal(t, []string{readyID, "sim-one", "small", "sim-small", "192.0.2.10", "", "ready"}, rows[0][:7])
	assert.Regexp(t, `^00:01:3[0-1]:\d\d$`, rows[0][7])
	assert.Equal(t, "unlocked", rows[0][8])

	assert.Equal(t, inUseID, rows[1][0])
	assert.Equal(t, `{"instance":"i-0abc","host":"h-1"}`, rows[1][3])
	assert.Equal(t, "in-use", rows[1][6])
	assert.Equal(t, "locked", rows[1][8])

	assert.Equal(t, []string{"0000099998", "", "", "", "", "", "malformed", "", "unlocked"}, rows[2])
	assert.Equal(t, []string{"0000099999", "", "", "", "", "", "malformed", "", "unlocked"}, rows[3])
	assert.Contains(t, r.stderr, "warning: node 0000099998")
	assert.Contains(t, r.stderr, "warning: node 0000099999")

	r = e.cli("list", "--detail")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, append(append([]string{}, nodeColumns...), nodeDetailColumns...), tableHeader(r.stdout))
	detail := tableRows(r.stdout)
	// The multi-line comment takes two table lines.
	require.Len(t, detail, 5, r.stdout)
	assert.Equal(t, []string{"main", "", "", "sim-a", "zuul", "22", "test-PoolWorker.sim-one-main-0", "", "", "", "", ""},
		detail[0][9:])
	assert.Equal(t, "redacted", detail[1][14])
	assert.Equal(t, "multi", detail[1][18])
	assert.Equal(t, "line", detail[2][18])
	assert.Equal(t, "", detail[2][0])

	require.NoError(t, lock.Release(ctxT(t)))
}

func TestListEmpty(t *testing.T) {
	e := newEnv(t)
	r := e.cli("list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, nodeColumns, tableHeader(r.stdout))
	assert.Empty(t, tableRows(r.stdout))
}

func TestRequestList(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	first := &zookeeper.NodeRequest{State: zookeeper.StateRequested, NodeTypes: []string{"small", "small"},
		Requestor: ptr("zuul-1"), EventID: ptr("ev-1"), RelativePriority: 3, Reuse: true}
	id1, err := e.zk.SubmitRequest(ctx, first, "200", false)
	require.NoError(t, err)
	second := &zookeeper.NodeRequest{State: zookeeper.StateFulfilled, NodeTypes: []string{"large"},
		Nodes: []string{"0000000004"}, DeclinedBy: []string{"pool-a", "pool-b"}, Reuse: true}
	id2, err := e.zk.SubmitRequest(ctx, second, "100", true)
	require.NoError(t, err)
	e.createRaw(zookeeper.RequestPath("300-0000009999"), []byte("not json"))

	r := e.cli("request-list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, requestColumns, tableHeader(r.stdout))
	assert.Equal(t, [][]string{
		{id2, "0", "fulfilled", "", "large", "0000000004", "pool-a,pool-b", ""},
		{id1, "3", "requested", "zuul-1", "small,small", "", "", "ev-1"},
		{"300-0000009999", "", "malformed", "", "", "", "", ""},
	}, tableRows(r.stdout))
	assert.Contains(t, r.stderr, "warning: request 300-0000009999")
}

func TestHold(t *testing.T) {
	e := newEnv(t)
	id := e.createNode(readyNode("small"))
	before := e.node(id)

	r := e.cli("hold", id, "--reason", "debugging a failure")
	require.Equal(t, 0, r.code, r.stderr)
	n := e.node(id)
	assert.Equal(t, zookeeper.NodeHold, n.State)
	assert.Equal(t, "debugging a failure", strCell(n.Comment))
	assert.Greater(t, n.StateTime, before.StateTime)
	assert.False(t, e.locked(id), "hold must unlock the node")
	rows := tableRows(r.stdout)
	require.Len(t, rows, 1, r.stdout)
	assert.Equal(t, []string{id, "hold", "unlocked"}, []string{rows[0][0], rows[0][6], rows[0][8]})

	// Without --reason the comment is kept.
	r = e.cli("hold", id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "debugging a failure", strCell(e.node(id).Comment))

	r = e.cli("hold", "0000054321")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "Node id 0000054321 not found\n", lastLine(r.stderr))
	assert.Empty(t, r.stdout)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1] + "\n"
}

func TestHoldAndDeleteLockedNode(t *testing.T) {
	e := newEnv(t)
	id := e.createNode(readyNode("small"))
	lock := e.zk.NewLock(zookeeper.NodeLockPath(id), "")
	ok, err := lock.TryAcquire(ctxT(t))
	require.NoError(t, err)
	require.True(t, ok)

	old := adminLockTimeout
	adminLockTimeout = 200 * time.Millisecond
	t.Cleanup(func() { adminLockTimeout = old })

	for _, cmd := range []string{"hold", "delete"} {
		r := e.cli(cmd, id)
		assert.Equal(t, 1, r.code, cmd)
		assert.Contains(t, r.stderr, "still locked by another holder", cmd)
		assert.Equal(t, zookeeper.NodeReady, e.node(id).State, cmd)
	}
	// Our contender is gone again: only the test's lock remains.
	children, err := e.zk.Children(ctxT(t), zookeeper.NodeLockPath(id))
	require.NoError(t, err)
	assert.Len(t, children, 1)
	require.NoError(t, lock.Release(ctxT(t)))
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	id := e.createNode(readyNode("small"))

	r := e.cli("delete", id)
	require.Equal(t, 0, r.code, r.stderr)
	n := e.node(id)
	assert.Equal(t, zookeeper.NodeDeleting, n.State)
	assert.False(t, e.locked(id))
	rows := tableRows(r.stdout)
	require.Len(t, rows, 1)
	assert.Equal(t, "deleting", rows[0][6])

	r = e.cli("delete", "0000054321")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Node id 0000054321 not found")
}

func TestDeleteNow(t *testing.T) {
	e := newEnv(t)
	id := e.createNode(readyNode("small"))

	// A stand-in for the launcher's deletion: remove the node once it is
	// deleting and unlocked.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deleterDone := make(chan error, 1)
	go func() {
		deleterDone <- func() error {
			for {
				n, err := e.zk.GetNode(ctx, id)
				if err != nil {
					return err
				}
				locked, err := e.zk.IsLocked(ctx, zookeeper.NodeLockPath(id))
				if err != nil {
					return err
				}
				if n.State == zookeeper.NodeDeleting && !locked {
					return e.zk.DeleteNode(ctx, id)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}()

	r := e.cli("delete", "--now", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, <-deleterDone)
	assert.Contains(t, r.stdout, "Node "+id+" deleted")
	_, err := e.zk.GetNode(ctxT(t), id)
	assert.ErrorIs(t, err, zookeeper.ErrNotFound)
}

func TestInfo(t *testing.T) {
	e := newEnv(t)
	mine := e.createNode(readyNode("small"))
	other := readyNode("small")
	other.Provider = "sim-two"
	e.createNode(other)
	e.createRaw("/nodepool/images/debian/builds/0000000001/providers/sim-one/images/0000000001", []byte("{}"))
	e.createRaw("/nodepool/images/debian/builds/0000000001/providers/sim-one/images/0000000002", []byte("{}"))
	e.createRaw("/nodepool/images/debian/builds/0000000001/providers/sim-two/images/0000000003", []byte("{}"))

	r := e.cli("info", "sim-one")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "ZooKeeper data for provider sim-one\n\nImage data:\n"), r.stdout)
	assert.Equal(t, [][]string{{"debian", "0000000001", "0000000001,0000000002"}}, tableRows(r.stdout))
	_, nodes, ok := strings.Cut(r.stdout, "\nNodes:\n")
	require.True(t, ok, r.stdout)
	assert.Equal(t, []string{"ID", "Server ID"}, tableHeader(nodes))
	assert.Equal(t, [][]string{{mine, "sim-small"}}, tableRows(nodes))

	r = e.cli("info", "sim-gone")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "warning: provider sim-gone is not in")
	_, nodes, _ = strings.Cut(r.stdout, "\nNodes:\n")
	assert.Empty(t, tableRows(nodes))
}
