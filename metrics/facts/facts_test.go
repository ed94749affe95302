package facts

import (
	"context"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/metrics"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const signalStop = "stop"

// fakeRequest stands in for a request workflow: it shows phase in the NodepoolState
// search attribute (none when empty) and runs until signalled.
func fakeRequest(ctx workflow.Context, phase string) error {
	if phase != "" {
		if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.SAState.ValueSet(phase)); err != nil {
			return err
		}
	}
	workflow.GetSignalChannel(ctx, signalStop).Receive(ctx, nil)
	return nil
}

// fakeLedger stands in for a pool ledger: its status query answers st.
func fakeLedger(ctx workflow.Context, st workflows.LedgerStatus) error {
	if err := workflow.SetQueryHandler(ctx, workflows.QueryStatus, func() (workflows.LedgerStatus, error) {
		return st, nil
	}); err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, signalStop).Receive(ctx, nil)
	return nil
}

func dial(t *testing.T) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: testenv.Temporal(t), Namespace: "default",
		Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// startWorker runs the fake workflows under the real workflow type names on queue.
func startWorker(t *testing.T, c client.Client, queue string) {
	t.Helper()
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(fakeRequest, workflow.RegisterOptions{Name: workflows.RequestWorkflowType})
	w.RegisterWorkflowWithOptions(fakeLedger, workflow.RegisterOptions{Name: workflows.LedgerWorkflowType})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}

func start(t *testing.T, c client.Client, queue, id string, wf string, arg any) {
	t.Helper()
	_, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: queue}, wf, arg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), id, "", "test over") })
}

// The phases and ledgers are read from a real Temporal server: visibility counts by
// the NodepoolState search attribute, and the ledgers' status query.
func TestTemporalFacts(t *testing.T) {
	c := dial(t)
	queue := "facts-" + uuid.NewString()
	other := "facts-other-" + uuid.NewString()
	startWorker(t, c, queue)
	startWorker(t, c, other)

	phases := []string{workflows.PhaseLaunching, workflows.PhaseLaunching, workflows.PhaseLaunching,
		workflows.PhaseWaiting, workflows.PhaseWaiting, "", workflows.OutcomeFulfilled}
	for _, phase := range phases {
		start(t, c, queue, names.RequestWorkflowID(queue, uuid.NewString()), workflows.RequestWorkflowType, phase)
	}
	// Another deployment's request and a finished one do not count.
	start(t, c, other, names.RequestWorkflowID(other, "100-0000000001"), workflows.RequestWorkflowType, workflows.PhaseLaunching)
	done := names.RequestWorkflowID(queue, "100-0000000002")
	start(t, c, queue, done, workflows.RequestWorkflowType, workflows.PhaseLaunching)
	require.NoError(t, c.SignalWorkflow(context.Background(), done, "", signalStop, nil))
	require.NoError(t, c.GetWorkflow(context.Background(), done, "").Get(context.Background(), nil))

	start(t, c, queue, names.LedgerWorkflowID(queue, "sim", "main"), workflows.LedgerWorkflowType, workflows.LedgerStatus{
		Provider: "sim", Pool: "main", WaitingCount: 4, Paused: true,
		Used: drivers.Resources{"instances": 3, "cores": 12}, Limits: drivers.Resources{"instances": 3},
	})

	f := &Temporal{Client: c, Namespace: "default", TaskQueue: queue,
		Pools: []Pool{{Provider: "sim", Name: "main"}, {Provider: "aws", Name: "never-started"}}}
	want := map[string]int64{}
	for _, p := range Phases {
		want[p] = 0
	}
	want[workflows.PhaseLaunching] = 3
	want[workflows.PhaseWaiting] = 2
	want[PhaseOther] = 2 // no phase yet, and finishing with an outcome
	var got map[string]int64
	require.Eventually(t, func() bool {
		var err error
		got, err = f.RequestPhases(context.Background())
		require.NoError(t, err)
		return maps.Equal(want, got)
	}, 30*time.Second, 200*time.Millisecond, "got %v", got)

	ledgers, err := f.Ledgers(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []metrics.Ledger{{Provider: "sim", Pool: "main", Waiting: 4, Paused: true,
		Used: map[string]int64{"instances": 3, "cores": 12}, Limits: map[string]int64{"instances": 3}}}, ledgers)
}

func TestQuote(t *testing.T) {
	assert.Equal(t, `'nodepool'`, quote("nodepool"))
	assert.Equal(t, `'it\'s \\ odd'`, quote(`it's \ odd`))
}

func TestLimits(t *testing.T) {
	cfg, err := config.Parse("nodepool.yaml", []byte(`
zookeeper-servers:
  - host: 127.0.0.1
labels:
  - name: small
tenant-resource-limits:
  - tenant-name: tenant.one
    max-servers: 5
    max-cores: 40
  - tenant-name: unlimited
providers:
  - name: sim
    driver: sim
    max-servers: 4
    pools:
      - name: a
        labels: [{name: small}]
      - name: b
        max-servers: 6
        labels: [{name: small}]
      - name: off
        max-servers: 0
        labels: [{name: small}]
  - name: open
    driver: sim
    pools:
      - name: a
        max-servers: 3
        labels: [{name: small}]
      - name: b
        labels: [{name: small}]
`))
	require.NoError(t, err)
	assert.Equal(t, metrics.Limits{
		MaxServers: map[string]int64{"sim": 10},
		Tenants:    map[string]map[string]int64{"tenant.one": {"instances": 5, "cores": 40}},
	}, Limits(cfg))
}
