package metrics

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

// launchingWorkflow records two launch attempts as a request workflow does, with a
// durable timer between them.
func launchingWorkflow(ctx workflow.Context) error {
	record := func(az, errType string, d time.Duration) {
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{
			TagProvider: "sim", TagAZ: az, TagRequestor: "zuul", TagErrorType: errType,
		}).Timer(LaunchTimer).Record(d)
	}
	record("", "Quota", 2*time.Second)
	if err := workflow.Sleep(ctx, 100*time.Millisecond); err != nil {
		return err
	}
	record("az-1", "", 30*time.Second)
	workflow.GetMetricsHandler(ctx).Counter("other").Inc(1)
	return nil
}

// Launches recorded by a workflow reach the Recorder once each, although the worker
// replays the workflow's history from the start on every workflow task.
func TestSDKHandlerRecordsLaunchesOnce(t *testing.T) {
	worker.SetStickyWorkflowCacheSize(0) // every workflow task replays the history
	t.Cleanup(func() { worker.SetStickyWorkflowCacheSize(10000) })
	rec := &fakeRecorder{}
	c, err := client.Dial(client.Options{HostPort: testenv.Temporal(t), Namespace: "default",
		MetricsHandler: SDKHandler(rec), Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	queue := "metrics-" + uuid.NewString()
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(launchingWorkflow, workflow.RegisterOptions{Name: "Launching"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "Launching")
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	assert.Equal(t, []string{
		"launch sim  zuul error.quota 2s",
		"launch sim az-1 zuul ready 30s",
	}, rec.events())
}

func TestSDKHandlerTags(t *testing.T) {
	rec := &fakeRecorder{}
	h := SDKHandler(rec).WithTags(map[string]string{TagProvider: "aws", TagAZ: "a"})
	h.WithTags(map[string]string{TagAZ: "b", TagErrorType: "Timeout"}).Timer(LaunchTimer).Record(time.Second)
	h.Timer(LaunchTimer).Record(time.Minute)
	h.Timer("temporal_activity_execution_latency").Record(time.Second)
	h.Counter(LaunchTimer).Inc(1)
	h.Gauge(LaunchTimer).Update(1)
	assert.Equal(t, []string{
		"launch aws b  error.servercreatetimeout 1s",
		"launch aws a  ready 1m0s",
	}, rec.events())
}
