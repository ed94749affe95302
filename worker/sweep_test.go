package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

// sweepCall is one signal-with-start of a leak sweep.
type sweepCall struct {
	id, signal, taskQueue, workflowType string
	config                              workflows.SweepConfig
	input                               workflows.SweepInput
}

// fakeSweepStarter records signal-with-start calls and fails the first failFirst of
// them.
type fakeSweepStarter struct {
	mu        sync.Mutex
	failFirst int
	calls     []sweepCall
}

func (f *fakeSweepStarter) SignalWithStartWorkflow(_ context.Context, workflowID string, signalName string, signalArg any,
	options client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := sweepCall{id: workflowID, signal: signalName, taskQueue: options.TaskQueue}
	c.workflowType, _ = wf.(string)
	c.config, _ = signalArg.(workflows.SweepConfig)
	if len(args) == 1 {
		c.input, _ = args[0].(workflows.SweepInput)
	}
	f.calls = append(f.calls, c)
	if options.ID != workflowID {
		return nil, errors.New("start options name another workflow id")
	}
	if len(f.calls) <= f.failFirst {
		return nil, errors.New("frontend unavailable")
	}
	return nil, nil
}

func TestStartSweepsOncePerProviderWithTheCleanupInterval(t *testing.T) {
	cfg, err := launchconfig.Load("../examples/nodepool.yaml", "")
	require.NoError(t, err)
	require.Len(t, cfg.Providers, 2)
	cfg.Launcher.CleanupInterval = config.Seconds(90)
	// The same provider twice still gets one sweep.
	cfg.Providers = append(cfg.Providers, cfg.Providers[0])
	sweepRetryFirst = 10 * time.Millisecond
	t.Cleanup(func() { sweepRetryFirst = time.Second })

	fake := &fakeSweepStarter{failFirst: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	startSweeps(ctx, fake, cfg, "tq", slog.New(slog.DiscardHandler))

	first, second := cfg.Providers[0].Name, cfg.Providers[1].Name
	require.Len(t, fake.calls, 3, "the failed start is retried; the duplicate provider is not started")
	want := []string{"tq/sweep/" + first, "tq/sweep/" + second, "tq/sweep/" + first}
	for i, c := range fake.calls {
		require.Equal(t, want[i], c.id)
		require.Equal(t, workflows.SignalSweepConfig, c.signal)
		require.Equal(t, workflows.SweepWorkflowType, c.workflowType)
		require.Equal(t, "tq", c.taskQueue, "sweeps run on the main task queue")
		require.InDelta(t, 90, c.config.IntervalSec, 1e-9)
		require.InDelta(t, 90, c.input.IntervalSec, 1e-9)
		require.Equal(t, "tq", c.input.TaskQueue)
		require.Equal(t, want[i], "tq/sweep/"+c.input.Provider)
	}
}

func TestStartSweepsStopsWithItsContext(t *testing.T) {
	cfg, err := launchconfig.Load("../examples/nodepool.yaml", "")
	require.NoError(t, err)
	fake := &fakeSweepStarter{failFirst: 1 << 30}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		startSweeps(ctx, fake, cfg, "tq", slog.New(slog.DiscardHandler))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("startSweeps kept retrying after its context ended")
	}
}
