package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestWebURL(t *testing.T) {
	tests := []struct {
		base, ns, id, want string
	}{
		{DefaultWebURL, "default", "nodepool/request/200-0000000042",
			"http://127.0.0.1:8233/namespaces/default/workflows/nodepool%2Frequest%2F200-0000000042"},
		{"https://temporal.example.com/", "prod ns", "q/ledger/aws/main",
			"https://temporal.example.com/namespaces/prod%20ns/workflows/q%2Fledger%2Faws%2Fmain"},
		{"http://web:8080/ui", "np", "a?b#c", "http://web:8080/ui/namespaces/np/workflows/a%3Fb%23c"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, WebURL(tc.base, tc.ns, tc.id))
	}
}

// roundTrip encodes v (a workflows type) and decodes it into out strictly: a field
// the workflows add that this package does not know fails the test.
func roundTrip(t *testing.T, v, out any) {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(out), "the status types of this package must follow the workflows'")
	again, err := json.Marshal(out)
	require.NoError(t, err)
	assert.JSONEq(t, string(data), string(again))
}

func TestStatusTypesFollowTheWorkflows(t *testing.T) {
	req := workflows.RequestStatus{
		RequestID: "200-0000000001", Phase: workflows.PhaseLaunching, Reason: "r", Provider: "p", Pool: "q",
		Nodes: []workflows.NodeStatus{{Index: 1, Label: "l", NodeID: "0000000001", Attempt: 2, Step: "s",
			ExternalID: "i-1", State: workflows.NodeBuilding, Error: "e"}},
		HoldFailed: true, HeldNodes: []string{"0000000002"},
	}
	roundTrip(t, req, &RequestStatus{})

	led := workflows.LedgerStatus{
		Provider: "p", Pool: "q", Limits: drivers.Resources{"instances": 2}, Used: drivers.Resources{"instances": 1},
		Waiting: []string{"200-0000000003"}, WaitingCount: 1, Granted: 1, Nodes: 1, Paused: true,
	}
	var got LedgerStatus
	roundTrip(t, led, &got)
	assert.Equal(t, 1, got.Position("200-0000000003"))
	assert.Equal(t, 0, got.Position("200-0000000004"))
	assert.Equal(t, workflows.QueryStatus, QueryStatus)
}

// fixtureStatus is what the fixture workflow's status query answers.
var fixtureStatus = RequestStatus{RequestID: "200-0000000009", Phase: "waiting-for-capacity", Provider: "sim", Pool: "main",
	Nodes: []NodeStatus{{Label: "small", State: "waiting"}}}

// statusFixture answers the status query, runs an activity that keeps failing, and
// ends on the signal "finish".
func statusFixture(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (RequestStatus, error) { return fixtureStatus, nil }); err != nil {
		return err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 50 * time.Millisecond, BackoffCoefficient: 1, MaximumAttempts: 1000},
	})
	workflow.ExecuteActivity(actx, "Flaky")
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return nil
}

func flaky(context.Context) error { return errors.New("flaky failure") }

func TestClientAgainstTemporal(t *testing.T) {
	addr := testenv.Temporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := Dial(ctx, config.Temporal{Address: addr, Namespace: "default"})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "default", c.Namespace())

	queue := "inspect-" + time.Now().Format("150405.000000")
	w := worker.New(c.c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(statusFixture, workflow.RegisterOptions{Name: "StatusFixture"})
	w.RegisterActivityWithOptions(flaky, activityName("Flaky"))
	require.NoError(t, w.Start())
	defer w.Stop()

	id := queue + "/request/200-0000000009"
	_, err = c.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, "StatusFixture")
	require.NoError(t, err)
	defer func() { _ = c.c.SignalWorkflow(context.Background(), id, "", "finish", nil) }()

	st, err := c.RequestStatus(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, fixtureStatus, *st)

	var ex *Execution
	require.Eventually(t, func() bool {
		ex, err = c.Describe(ctx, id)
		return err == nil && len(ex.PendingActivities) == 1 && ex.PendingActivities[0].Attempt >= 2 &&
			ex.PendingActivities[0].LastFailure != ""
	}, 30*time.Second, 100*time.Millisecond, "pending activity with a retry: %+v %v", ex, err)
	assert.Equal(t, "StatusFixture", ex.Type)
	assert.Equal(t, "Running", ex.Status)
	assert.Equal(t, id, ex.WorkflowID)
	assert.NotEmpty(t, ex.RunID)
	assert.Nil(t, ex.CloseTime)
	assert.Equal(t, "Flaky", ex.PendingActivities[0].Type)
	assert.Equal(t, int32(1000), ex.PendingActivities[0].MaximumAttempts)
	assert.Contains(t, ex.PendingActivities[0].LastFailure, "flaky failure")

	require.NoError(t, c.c.SignalWorkflow(ctx, id, "", "finish", nil))
	require.Eventually(t, func() bool {
		ex, err = c.Describe(ctx, id)
		return err == nil && ex.Status == "Completed"
	}, 30*time.Second, 100*time.Millisecond)
	assert.NotNil(t, ex.CloseTime)

	_, err = c.Describe(ctx, queue+"/request/missing")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = c.LedgerStatus(ctx, queue+"/ledger/missing/main")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestDialUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, config.Temporal{Address: addr, Namespace: "default"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connecting to Temporal at "+addr)
	assert.Less(t, time.Since(start), 10*time.Second)

	_, err = Dial(ctx, config.Temporal{Address: addr, TLS: config.TemporalTLS{CA: "/nonexistent/ca.pem"}})
	assert.ErrorContains(t, err, "reading Temporal CA")
}

func activityName(name string) activity.RegisterOptions { return activity.RegisterOptions{Name: name} }
