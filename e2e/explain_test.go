package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

var (
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// nodepoolCLI returns the admin CLI binary: $NODEPOOL_BIN_DIR's, else one built for
// this test run.
func nodepoolCLI(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(binDir, "nodepool"); isExecutable(p) {
		return p
	}
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nodepool-e2e-cli")
		if err != nil {
			cliErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/nodepool")
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = errors.New("building the admin CLI: " + err.Error() + "\n" + string(out))
			return
		}
		cliBin = filepath.Join(dir, "nodepool")
	})
	require.NoError(t, cliErr)
	return cliBin
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// explainOut is the part of explain's JSON the tests read.
type explainOut struct {
	Summary string `json:"summary"`
	Request *struct {
		State   string  `json:"state"`
		EventID *string `json:"event_id"`
	} `json:"request"`
	Pools []struct {
		ID      string `json:"id"`
		Verdict string `json:"verdict"`
		Reason  string `json:"reason"`
	} `json:"pools"`
	Capacity *struct {
		Resources []struct {
			Name  string `json:"name"`
			Used  int64  `json:"used"`
			Limit *int64 `json:"limit"`
		} `json:"resources"`
		Waiting  int  `json:"waiting"`
		Position int  `json:"position"`
		Paused   bool `json:"paused"`
	} `json:"capacity"`
	Workflow *struct {
		ID        string `json:"id"`
		WebURL    string `json:"web_url"`
		Execution *struct {
			Status string `json:"status"`
			Type   string `json:"type"`
		} `json:"execution"`
		Status *struct {
			Phase  string `json:"phase"`
			Reason string `json:"reason"`
		} `json:"status"`
	} `json:"workflow"`
	Notes []string `json:"notes"`
}

// explain runs `nodepool explain id --json` against the cluster with extra
// environment variables.
func (c *cluster) explain(id string, env ...string) explainOut {
	c.t.Helper()
	cmd := exec.CommandContext(c.ctx(time.Minute), nodepoolCLI(c.t), "explain", id, "-c", c.cfgPath, "--json")
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(c.t, cmd.Run(), "explain %s: %s", id, stderr.String())
	var out explainOut
	require.NoError(c.t, json.Unmarshal(stdout.Bytes(), &out), stdout.String())
	return out
}

func (x explainOut) verdict(pool string) string {
	for _, p := range x.Pools {
		if p.ID == pool {
			return p.Verdict
		}
	}
	return ""
}

func TestExplainWaitingAndFailedRequests(t *testing.T) {
	cl := simCloud(1, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	launcher := c.startLauncher("all")

	// The pool's only slot is taken.
	first := c.waitRequest(c.submit("100", "small"), 60*time.Second, stateIs(zookeeper.StateFulfilled))
	held := c.accept(first)

	// A second request waits for capacity: explain says where and why.
	waiting := c.submitRequest("200", "small")
	var x explainOut
	require.Eventually(t, func() bool {
		x = c.explain(waiting.ID)
		return x.Workflow != nil && x.Workflow.Status != nil && x.Workflow.Status.Phase == "waiting-for-capacity" &&
			x.Capacity != nil && x.Capacity.Position == 1
	}, 60*time.Second, 500*time.Millisecond, "last explanation: %+v", x)
	assert.Equal(t, "waiting for capacity in pool sim/main: instances 1/1 used; position 1 of 1 waiting", x.Summary)
	assert.Equal(t, "requested", x.Request.State)
	assert.Equal(t, *waiting.EventID, *x.Request.EventID)
	assert.Equal(t, "selected", x.verdict(poolID))
	assert.True(t, x.Capacity.Paused)
	require.NotEmpty(t, x.Capacity.Resources)
	assert.Equal(t, "instances", x.Capacity.Resources[0].Name)
	assert.Equal(t, int64(1), x.Capacity.Resources[0].Used)
	assert.Equal(t, int64(1), *x.Capacity.Resources[0].Limit)
	wid := names.RequestWorkflowID(c.taskQueue, waiting.ID)
	assert.Equal(t, wid, x.Workflow.ID)
	assert.Equal(t, "http://127.0.0.1:8233/namespaces/default/workflows/"+strings.ReplaceAll(wid, "/", "%2F"), x.Workflow.WebURL)
	require.NotNil(t, x.Workflow.Execution)
	assert.Equal(t, "Running", x.Workflow.Execution.Status)
	assert.Equal(t, "HandleRequest", x.Workflow.Execution.Type)
	assert.Empty(t, x.Notes)

	// Without Temporal: ZooKeeper's facts, and a note saying so.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	x = c.explain(waiting.ID, "TEMPORAL_ADDRESS="+closed, "TEMPORAL_WEB_URL=http://web.example")
	assert.Equal(t, "waiting for this launcher to plan it for pool sim/main", x.Summary)
	assert.Equal(t, "selected", x.verdict(poolID))
	require.NotNil(t, x.Workflow)
	assert.Nil(t, x.Workflow.Execution)
	assert.True(t, strings.HasPrefix(x.Workflow.WebURL, "http://web.example/namespaces/default/workflows/"))
	require.Len(t, x.Notes, 1)
	assert.Contains(t, x.Notes[0], "Temporal is not reachable")

	// A label nobody offers: declined by every registered pool, failed.
	unknown := c.submit("200", "no-such-label")
	c.waitRequest(unknown, 60*time.Second, stateIs(zookeeper.StateFailed))
	x = c.explain(unknown)
	assert.Regexp(t, "^"+regexp.QuoteMeta("failed: declined by every registered pool ("+poolID+"-")+"[0-9a-f]{32}"+
		regexp.QuoteMeta("); this launcher's pools: sim/main: node type(s) no-such-label not offered")+"$", x.Summary)
	assert.Equal(t, "declined", x.verdict(poolID))
	require.NotNil(t, x.Workflow.Execution)
	assert.Equal(t, "Completed", x.Workflow.Execution.Status)
	require.NotNil(t, x.Workflow.Status, "notes: %v", x.Notes)
	assert.Equal(t, "declined", x.Workflow.Status.Phase)
	assert.Contains(t, x.Workflow.Status.Reason, "node type(s) [no-such-label] not available")

	// The slot comes back: the waiting request is fulfilled.
	c.giveBack(held)
	c.waitRequest(waiting.ID, 60*time.Second, stateIs(zookeeper.StateFulfilled))
	x = c.explain(waiting.ID)
	assert.True(t, strings.HasPrefix(x.Summary, "fulfilled with node(s) "), x.Summary)

	// The launcher logged each phase change of the request under the request
	// handler's name, with the request id.
	data, err := os.ReadFile(launcher.LogPath())
	require.NoError(t, err)
	phase := regexp.MustCompile(`nodepool\.driver\.NodeRequestHandler.*` + regexp.QuoteMeta(waiting.ID) + `.*waiting-for-capacity|` +
		regexp.QuoteMeta(waiting.ID) + `.*waiting-for-capacity.*nodepool\.driver\.NodeRequestHandler`)
	assert.Regexp(t, phase, string(data))
}
