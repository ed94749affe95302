package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestPrometheusRecorder(t *testing.T) {
	p := NewPrometheus()
	s := newScraper(t, p)
	p.Launch("aws", "us-east-1a", "zuul.example.com", "ready", 42*time.Second)
	p.Launch("aws", "us-east-1a", "zuul.example.com", "ready", 3*time.Second)
	p.Launch("sim", "", "", "error.quota", 500*time.Millisecond)
	p.Leaked("aws", "instance")
	p.Leaked("aws", "instance")
	p.Activity("CreateStep", 1, true)
	p.Activity("CreateStep", 2, false)
	p.Activity("NodeReady", 1, false)

	assert.Equal(t, []string{
		`nodepool_launches_total{az="",provider="sim",requestor="",result="error.quota"} 1`,
		`nodepool_launches_total{az="us-east-1a",provider="aws",requestor="zuul.example.com",result="ready"} 2`,
	}, s.samples(t, "nodepool_launches_total"))
	dur := s.samples(t, "nodepool_launch_duration_seconds")
	assert.Contains(t, dur, `nodepool_launch_duration_seconds_count{az="us-east-1a",provider="aws",requestor="zuul.example.com",result="ready"} 2`)
	assert.Contains(t, dur, `nodepool_launch_duration_seconds_sum{az="us-east-1a",provider="aws",requestor="zuul.example.com",result="ready"} 45`)
	assert.Contains(t, dur, `nodepool_launch_duration_seconds_bucket{az="us-east-1a",provider="aws",requestor="zuul.example.com",result="ready",le="5"} 1`)
	assert.Contains(t, dur, `nodepool_launch_duration_seconds_bucket{az="us-east-1a",provider="aws",requestor="zuul.example.com",result="ready",le="45"} 2`)
	assert.Contains(t, dur, `nodepool_launch_duration_seconds_bucket{az="",provider="sim",requestor="",result="error.quota",le="1"} 1`)
	assert.Equal(t, []string{`nodepool_provider_leaked_total{provider="aws",type="instances"} 2`},
		s.samples(t, "nodepool_provider_leaked_total"))
	assert.Equal(t, []string{
		`nodepool_activity_executions_total{activity="CreateStep",outcome="completed"} 1`,
		`nodepool_activity_executions_total{activity="CreateStep",outcome="failed"} 1`,
		`nodepool_activity_executions_total{activity="NodeReady",outcome="completed"} 1`,
		`nodepool_activity_retries_total{activity="CreateStep"} 1`,
	}, s.samples(t, "nodepool_activity_"))
	assert.Equal(t, []string{"nodepool_stats_reporter 0"}, s.samples(t, "nodepool_stats_reporter"))
	assert.NotEmpty(t, s.samples(t, "go_goroutines"), "runtime metrics")
	assert.NotEmpty(t, s.samples(t, "process_"), "process metrics")
}

// The collector's state is exposed as one consistent set of gauges, and only while
// this process is the reporter.
func TestPrometheusState(t *testing.T) {
	p := NewPrometheus()
	s := newScraper(t, p)
	p.setLimits(Limits{MaxServers: map[string]int64{"sim": 10}, Tenants: map[string]map[string]int64{"t.1": {"cores": 8}}})
	p.setReporter(true)
	p.setSnapshot(Compute(time.Now(),
		[]zookeeper.PoolComponent{{ProviderName: "sim", Name: "main", SupportedLabels: []string{"small"}}},
		[]*zookeeper.Node{{State: zookeeper.NodeReady, Provider: "sim", Type: zookeeper.Labels{"small"}}},
		[]*zookeeper.NodeRequest{{State: zookeeper.StateRequested, NodeTypes: []string{"small"}}}))
	p.setFacts(map[string]int64{"launching": 2, "other": 0},
		[]Ledger{{Provider: "sim", Pool: "main", Waiting: 3, Used: map[string]int64{"instances": 1}, Limits: map[string]int64{"instances": 10}, Paused: true}})

	assert.Equal(t, []string{
		`nodepool_addressable_requests{pool="main",provider="sim"} 1`,
		`nodepool_ledger_limit{pool="main",provider="sim",resource="instances"} 10`,
		`nodepool_ledger_paused{pool="main",provider="sim"} 1`,
		`nodepool_ledger_used{pool="main",provider="sim",resource="instances"} 1`,
		`nodepool_ledger_waiting_requests{pool="main",provider="sim"} 3`,
	}, append(s.samples(t, "nodepool_addressable"), s.samples(t, "nodepool_ledger")...))
	assert.Equal(t, []string{`nodepool_provider_max_servers{provider="sim"} 10`}, s.samples(t, "nodepool_provider_max_servers"))
	assert.Equal(t, []string{`nodepool_tenant_limits{resource="cores",tenant="t.1"} 8`}, s.samples(t, "nodepool_tenant_limits"))
	assert.Equal(t, []string{
		`nodepool_request_workflows{phase="launching"} 2`,
		`nodepool_request_workflows{phase="other"} 0`,
	}, s.samples(t, "nodepool_request_workflows"))
	nodes := s.samples(t, "nodepool_nodes{")
	assert.Len(t, nodes, len(NodeStates), "every state of the registered provider and label")
	assert.Contains(t, nodes, `nodepool_nodes{label="small",provider="sim",state="ready"} 1`)
	assert.Contains(t, nodes, `nodepool_nodes{label="small",provider="sim",state="hold"} 0`)
	assert.Contains(t, s.samples(t, "nodepool_requests{"), `nodepool_requests{state="requested"} 1`)
	assert.Equal(t, []string{"nodepool_stats_reporter 1"}, s.samples(t, "nodepool_stats_reporter"))

	p.setReporter(false)
	assert.Empty(t, s.samples(t, "nodepool_nodes"))
	assert.Empty(t, s.samples(t, "nodepool_ledger"))
	assert.Empty(t, s.samples(t, "nodepool_request_workflows"))
	assert.Equal(t, []string{"nodepool_stats_reporter 0"}, s.samples(t, "nodepool_stats_reporter"))
	assert.NotEmpty(t, s.samples(t, "nodepool_provider_max_servers"), "limits stay")
}

// The activity interceptor reports every attempt of an activity, with its outcome.
func TestActivityInterceptor(t *testing.T) {
	rec := &fakeRecorder{}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{ActivityInterceptor(rec)}})
	calls := 0
	flaky := func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errors.New("not yet")
		}
		return "done", nil
	}
	env.RegisterActivityWithOptions(flaky, activity.RegisterOptions{Name: "Flaky"})
	env.ExecuteWorkflow(func(ctx workflow.Context) (string, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Millisecond, MaximumAttempts: 5},
		})
		var out string
		err := workflow.ExecuteActivity(ctx, "Flaky").Get(ctx, &out)
		return out, err
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{"activity Flaky 1 true", "activity Flaky 2 true", "activity Flaky 3 false"}, rec.events())
}
