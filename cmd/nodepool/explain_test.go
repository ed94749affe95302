package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/internal/inspect"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// explainConfig has pools that serve, decline for every reason, or take no
// requests, a tenant limit, and a Temporal section.
const explainConfig = `zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
temporal:
  address: %s
  namespace: default
  task-queue: %s
launcher:
  hostname: test
labels:
  - name: small
  - name: large
  - name: arm
tenant-resource-limits:
  - tenant-name: tenant-one
    max-servers: 2
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
      - name: tiny
        max-servers: 1
        priority: 50
        labels:
          - name: small
            flavor: s
            cloud-image: debian
      - name: off
        max-servers: 0
        labels:
          - name: small
            flavor: s
            cloud-image: debian
  - name: sim-idle
    driver: sim
    max-concurrency: 0
    flavors:
      - name: s
        cores: 1
        ram: 1024
    cloud-images:
      - name: debian
    pools:
      - name: main
        labels:
          - name: small
            flavor: s
            cloud-image: debian
`

// Pool ids of explainConfig.
const (
	poolMain  = "test-PoolWorker.sim-one-main"
	poolTiny  = "test-PoolWorker.sim-one-tiny"
	poolOff   = "test-PoolWorker.sim-one-off"
	poolIdle  = "test-PoolWorker.sim-idle-main"
	poolOther = "other-PoolWorker.arm-cloud-main"
)

// newExplainEnv returns an environment with explainConfig pointing at temporalAddr
// and task queue queue.
func newExplainEnv(t *testing.T, temporalAddr, queue string) *env {
	t.Helper()
	e := newEnv(t)
	host, port, err := net.SplitHostPort(testenv.ZooKeeper(t))
	require.NoError(t, err)
	e.cfg = writeFile(t, "explain.yaml", fmt.Sprintf(explainConfig, host, port, e.chroot, temporalAddr, queue))
	return e
}

// submit stores a request and returns its id.
func (e *env) submit(r *zookeeper.NodeRequest) string {
	e.t.Helper()
	if r.State == "" {
		r.State = zookeeper.StateRequested
	}
	r.Reuse = true
	id, err := e.zk.SubmitRequest(ctxT(e.t), r, "200", false)
	require.NoError(e.t, err)
	return id
}

// explainJSON runs explain --json and decodes its output.
func (e *env) explainJSON(id string, extra ...string) (explanation, result) {
	e.t.Helper()
	r := e.cli(append([]string{"explain", id, "--json"}, extra...)...)
	var x explanation
	if r.code == 0 {
		require.NoError(e.t, json.Unmarshal([]byte(r.stdout), &x), r.stdout)
	}
	return x, r
}

// verdicts maps pool ids to "verdict: reason".
func verdicts(x explanation) map[string]string {
	out := map[string]string{}
	for _, p := range x.Pools {
		out[p.ID] = strings.TrimSuffix(p.Verdict+": "+p.Reason, ": ")
	}
	return out
}

func TestExplainFromZooKeeper(t *testing.T) {
	e := newExplainEnv(t, closedPort(t), "np")
	old := explainTimeout
	explainTimeout = 2 * time.Second
	t.Cleanup(func() { explainTimeout = old })
	e.registerPool(poolMain, "sim-one", "main", "small", "large")
	e.registerPool(poolOther, "arm-cloud", "main", "arm")

	// One node of tenant-one exists already.
	n := readyNode("small")
	n.TenantName = ptr("tenant-one")
	n.Resources = map[string]float64{"instances": 1, "cores": 1}
	e.createNode(n)

	tests := []struct {
		name         string
		req          *zookeeper.NodeRequest
		wantSummary  string
		wantVerdicts map[string]string
		check        func(t *testing.T, x explanation)
	}{
		{
			name:        "two small nodes for a tenant at its limit",
			req:         &zookeeper.NodeRequest{NodeTypes: []string{"small", "small"}, TenantName: ptr("tenant-one"), EventID: ptr("ev-1")},
			wantSummary: "waiting for this launcher to plan it for pool sim-one/main",
			wantVerdicts: map[string]string{
				poolTiny:  "would decline: 2 nodes exceed max-servers 1",
				poolMain:  "selected",
				poolOff:   "would decline: the pool is disabled by max-servers 0",
				poolIdle:  "idle: the provider takes no requests (max-concurrency 0)",
				poolOther: "cannot serve: node type(s) small not offered",
			},
			check: func(t *testing.T, x explanation) {
				require.NotNil(t, x.Tenant)
				assert.Equal(t, "tenant-one", x.Tenant.Name)
				assert.Equal(t, []string{"instances"}, x.Tenant.Over)
				require.NotEmpty(t, x.Tenant.Resources)
				inst := x.Tenant.Resources[0]
				assert.Equal(t, "instances", inst.Name)
				assert.Equal(t, int64(1), inst.Used)
				assert.Equal(t, int64(2), *inst.Limit)
				assert.Equal(t, int64(2), *inst.Need)
				assert.Equal(t, "ev-1", strCell(x.Request.EventID))
			},
		},
		{
			name: "a label only another launcher offers",
			req:  &zookeeper.NodeRequest{NodeTypes: []string{"arm"}},
			wantSummary: "none of this launcher's pools can serve it (sim-one/tiny: node type(s) arm not offered; " +
				"sim-one/main: node type(s) arm not offered; sim-one/off: the pool is disabled by max-servers 0; " +
				"sim-idle/main: the provider takes no requests (max-concurrency 0))",
			wantVerdicts: map[string]string{
				poolMain:  "would decline: node type(s) arm not offered",
				poolOther: "may serve",
			},
			check: func(t *testing.T, x explanation) {
				assert.Contains(t, x.Summary, "; waiting for other launchers ("+poolOther+")")
				assert.Nil(t, x.Tenant)
			},
		},
		{
			name: "declined by us, failed",
			req: &zookeeper.NodeRequest{State: zookeeper.StateFailed, NodeTypes: []string{"large"},
				DeclinedBy: []string{poolMain, poolOther}},
			wantSummary: "failed: declined by every registered pool (" + poolMain + ", " + poolOther + ")",
			wantVerdicts: map[string]string{
				poolMain:  "declined: in declined_by",
				poolOther: "declined: in declined_by",
				poolTiny:  "would decline: node type(s) large not offered",
			},
		},
		{
			name: "declined by us for a label we lack",
			req: &zookeeper.NodeRequest{NodeTypes: []string{"arm"},
				DeclinedBy: []string{poolMain, poolTiny, poolOff}},
			wantSummary: "none of this launcher's pools can serve it (sim-one/tiny: node type(s) arm not offered; " +
				"sim-one/main: node type(s) arm not offered; sim-one/off: the pool is disabled by max-servers 0; " +
				"sim-idle/main: the provider takes no requests (max-concurrency 0)); waiting for other launchers (" + poolOther + ")",
			wantVerdicts: map[string]string{
				poolMain: "declined: in declined_by: node type(s) arm not offered",
				poolOff:  "declined: in declined_by: the pool is disabled by max-servers 0",
			},
		},
		{
			name:        "fulfilled",
			req:         &zookeeper.NodeRequest{State: zookeeper.StateFulfilled, NodeTypes: []string{"small"}, Nodes: []string{"0000000001"}},
			wantSummary: "fulfilled with node(s) 0000000001; the requestor has not taken them yet",
		},
		{
			name:        "requested provider goes first",
			req:         &zookeeper.NodeRequest{NodeTypes: []string{"small"}, Provider: ptr("sim-one")},
			wantSummary: "waiting for this launcher to plan it for pool sim-one/tiny",
			wantVerdicts: map[string]string{
				poolTiny: "selected: not registered: no poller of this launcher runs",
				poolMain: "candidate",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := e.submit(tc.req)
			x, r := e.explainJSON(id)
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, id, x.RequestID)
			assert.True(t, strings.HasPrefix(x.Summary, tc.wantSummary), "summary: %s", x.Summary)
			got := verdicts(x)
			for pool, want := range tc.wantVerdicts {
				assert.Equal(t, want, got[pool], "pool %s", pool)
			}
			require.NotNil(t, x.Workflow)
			assert.Equal(t, "http://127.0.0.1:8233/namespaces/default/workflows/np%2Frequest%2F"+id, x.Workflow.WebURL)
			assert.Nil(t, x.Workflow.Execution)
			require.NotEmpty(t, x.Notes)
			assert.Contains(t, x.Notes[len(x.Notes)-1], "Temporal is not reachable")
			assert.Contains(t, x.Notes[len(x.Notes)-1], "ZooKeeper's facts only")
			if tc.check != nil {
				tc.check(t, x)
			}

			// The text form says the same.
			r = e.cli("explain", id)
			require.Equal(t, 0, r.code, r.stderr)
			assert.True(t, strings.HasPrefix(r.stdout, "Request "+id+": "+tc.wantSummary), r.stdout)
			assert.Contains(t, r.stdout, "\nPools:\n")
			assert.Contains(t, r.stdout, "Temporal Web:")
			assert.Contains(t, r.stdout, "Temporal is not reachable")
		})
	}

	r := e.cli("explain", "200-0000099999")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Request id 200-0000099999 not found")
}

// Fakes of the launcher's workflows: they answer the status query with what the
// test sets, as the real ones do.
var fakes struct {
	sync.Mutex
	request inspect.RequestStatus
	ledger  inspect.LedgerStatus
}

// setFakes sets what the fakes answer.
func setFakes(req inspect.RequestStatus, led *inspect.LedgerStatus) {
	fakes.Lock()
	defer fakes.Unlock()
	fakes.request = req
	if led != nil {
		fakes.ledger = *led
	}
}

func fakeRequest(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, inspect.QueryStatus, func() (inspect.RequestStatus, error) {
		fakes.Lock()
		defer fakes.Unlock()
		return fakes.request, nil
	}); err != nil {
		return err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 50 * time.Millisecond, BackoffCoefficient: 1, MaximumAttempts: 100},
	})
	workflow.ExecuteActivity(actx, "CreateStep")
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return nil
}

func fakeLedger(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, inspect.QueryStatus, func() (inspect.LedgerStatus, error) {
		fakes.Lock()
		defer fakes.Unlock()
		return fakes.ledger, nil
	}); err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return nil
}

func failingStep(context.Context) error { return errors.New("no capacity in zone a") }

func TestExplainWithTemporal(t *testing.T) {
	addr := testenv.Temporal(t)
	queue := fmt.Sprintf("explain-%d", time.Now().UnixNano())
	e := newExplainEnv(t, addr, queue)
	e.registerPool(poolMain, "sim-one", "main", "small", "large")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tc, err := client.Dial(client.Options{HostPort: addr, Logger: quiet{}})
	require.NoError(t, err)
	defer tc.Close()
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(fakeRequest, workflow.RegisterOptions{Name: "HandleRequest"})
	w.RegisterWorkflowWithOptions(fakeLedger, workflow.RegisterOptions{Name: "PoolLedger"})
	w.RegisterActivityWithOptions(failingStep, activity.RegisterOptions{Name: "CreateStep"})
	require.NoError(t, w.Start())
	defer w.Stop()

	id := e.submit(&zookeeper.NodeRequest{NodeTypes: []string{"small", "large"}, EventID: ptr("ev-2")})
	other := "100-0000000042"
	waiting := inspect.RequestStatus{RequestID: id, Phase: "waiting-for-capacity", Provider: "sim-one", Pool: "main",
		Nodes: []inspect.NodeStatus{{Index: 0, Label: "small", State: "waiting"}, {Index: 1, Label: "large", State: "waiting"}}}
	setFakes(waiting, &inspect.LedgerStatus{Provider: "sim-one", Pool: "main",
		Limits: map[string]int64{"instances": 5}, Used: map[string]int64{"instances": 5, "cores": 5},
		Waiting: []string{other, id}, WaitingCount: 2, Granted: 3, Nodes: 5, Paused: true})

	wid := names.RequestWorkflowID(queue, id)
	for _, start := range []struct{ id, typ string }{{wid, "HandleRequest"}, {names.LedgerWorkflowID(queue, "sim-one", "main"), "PoolLedger"}} {
		_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: start.id, TaskQueue: queue}, start.typ)
		require.NoError(t, err)
		defer func() { _ = tc.SignalWorkflow(context.Background(), start.id, "", "finish", nil) }()
	}

	// The step has failed at least once.
	require.Eventually(t, func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, wid, "")
		return err == nil && len(d.PendingActivities) == 1 && d.PendingActivities[0].Attempt >= 2
	}, 30*time.Second, 50*time.Millisecond)

	t.Setenv(inspect.EnvWebURL, "http://temporal-web.example:8080/")
	x, r := e.explainJSON(id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "waiting for capacity in pool sim-one/main: instances 5/5 used; position 2 of 2 waiting", x.Summary)
	assert.Equal(t, "http://temporal-web.example:8080/namespaces/default/workflows/"+strings.ReplaceAll(wid, "/", "%2F"),
		x.Workflow.WebURL)
	require.NotNil(t, x.Workflow.Execution)
	assert.Equal(t, "Running", x.Workflow.Execution.Status)
	assert.Equal(t, "HandleRequest", x.Workflow.Execution.Type)
	require.Len(t, x.Workflow.Execution.PendingActivities, 1)
	assert.Equal(t, "CreateStep", x.Workflow.Execution.PendingActivities[0].Type)
	assert.GreaterOrEqual(t, x.Workflow.Execution.PendingActivities[0].Attempt, int32(2))
	assert.Contains(t, x.Workflow.Execution.PendingActivities[0].LastFailure, "no capacity in zone a")
	require.NotNil(t, x.Workflow.Status)
	assert.Equal(t, waiting, *x.Workflow.Status)
	require.NotNil(t, x.Capacity)
	assert.Equal(t, 2, x.Capacity.Position)
	assert.Equal(t, 2, x.Capacity.Waiting)
	assert.True(t, x.Capacity.Paused)
	assert.Equal(t, []resourceFacts{
		{Name: "instances", Used: 5, Limit: ptr(int64(5)), Need: ptr(int64(2))},
		{Name: "cores", Used: 5},
	}, x.Capacity.Resources)
	assert.Equal(t, "selected", verdicts(x)[poolMain])
	assert.Empty(t, x.Notes)

	// The flag overrides the environment; the text form has every section.
	r = e.cli("explain", id, "--web-url", "http://127.0.0.1:9999")
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{
		"Request " + id + ": waiting for capacity in pool sim-one/main",
		"Event ID:",
		"Capacity of pool sim-one/main (ledger " + queue + "/ledger/sim-one/main):",
		"Waiting requests: 2 (this request: position 2); granted: 3; nodes: 5; paused: yes",
		"Workflow " + wid,
		"Phase:",
		"waiting-for-capacity",
		"Pending activities:",
		"no capacity in zone a",
		"Temporal Web:  http://127.0.0.1:9999/namespaces/default/workflows/",
	} {
		assert.Contains(t, r.stdout, want)
	}

	// A launching request: the phase and the nodes' attempts.
	setFakes(inspect.RequestStatus{RequestID: id, Phase: "launching", Provider: "sim-one", Pool: "main",
		Nodes: []inspect.NodeStatus{{Index: 0, Label: "small", NodeID: "0000000007", Attempt: 2, Step: "boot", State: "building",
			Error: "boot timeout"}}}, nil)
	x, r = e.explainJSON(id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "launching in pool sim-one/main; nodes: 0000000007 (small) building, attempt 2, step boot, last error: boot timeout",
		x.Summary)

	// A request whose workflow is unknown.
	lone := e.submit(&zookeeper.NodeRequest{NodeTypes: []string{"small"}})
	x, r = e.explainJSON(lone)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Nil(t, x.Workflow.Execution)
	assert.Contains(t, strings.Join(x.Notes, "\n"), "Temporal has no workflow "+names.RequestWorkflowID(queue, lone))
	// It would go to the pool of the better priority, which has no ledger yet.
	assert.Equal(t, "waiting for this launcher to plan it for pool sim-one/tiny", x.Summary)
	assert.Nil(t, x.Capacity)
	assert.Contains(t, strings.Join(x.Notes, "\n"), "pool sim-one/tiny has no capacity ledger yet")
}

// quiet drops the Temporal client's logging in tests.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
