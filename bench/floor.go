package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"
)

// The engine floor: the same number of trivial workflows as the burst's requests, each
// three no-op activities and a 1 s timer, run on the same Temporal server by a small
// worker inside npbench. Nodes per second over floor workflows per second says how much
// of the engine's throughput a launch uses.
const (
	floorTaskQueue    = "npbench-floor"
	floorWorkflowName = "NpbenchFloor"
	floorActivityName = "NpbenchNoop"
	// floorTimer is the floor workflow's timer.
	floorTimer = time.Second
	// floorWaitConcurrency bounds the workflows whose results are awaited at once.
	floorWaitConcurrency = 256
)

// FloorReport is the engine floor measured in a scenario.
type FloorReport struct {
	Workflows int `json:"workflows"`
	Completed int `json:"completed"`
	// WallSeconds is from the first start to the last completion.
	WallSeconds        float64 `json:"wall_seconds"`
	WorkflowsPerSecond float64 `json:"workflows_per_second"`
	// StartToClose is each workflow's start to completion.
	StartToClose *Summary `json:"start_to_close,omitempty"`
	// HistoryEvents is one floor workflow's history length.
	HistoryEvents int64       `json:"history_events"`
	Usage         []ProcUsage `json:"usage"`
	// NodesPerFloorWorkflow is the burst's nodes per second over WorkflowsPerSecond.
	NodesPerFloorWorkflow float64  `json:"nodes_per_second_over_floor"`
	Errors                []string `json:"errors,omitempty"`
}

// floorWorkflow is the floor's workflow: activity, activity, a 1 s timer, activity.
func floorWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	for i := range 3 {
		if i == 2 {
			if err := workflow.Sleep(ctx, floorTimer); err != nil {
				return err
			}
		}
		if err := workflow.ExecuteActivity(ctx, floorActivityName, i).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// floorActivity does nothing.
func floorActivity(_ context.Context, step int) (int, error) { return step, nil }

// runFloor runs n floor workflows at once on the server at address and measures them.
func runFloor(ctx context.Context, address string, mon *monitor, n int, logger *slog.Logger) (*FloorReport, error) {
	c, err := client.DialContext(ctx, client.Options{
		HostPort: address, Namespace: "default",
		Logger: tlog.NewStructuredLogger(logger.With("component", "temporal-client")),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to Temporal: %w", err)
	}
	defer c.Close()
	w := worker.New(c, floorTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: floorWorkflowName})
	w.RegisterActivityWithOptions(floorActivity, activity.RegisterOptions{Name: floorActivityName})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("starting the floor worker: %w", err)
	}
	defer w.Stop()

	r := &FloorReport{Workflows: n}
	var mu sync.Mutex
	var durations []time.Duration
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(r.Errors) < maxErrors {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	prefix := fmt.Sprintf("npbench-floor-%d-", time.Now().UnixNano())
	mon.mark()
	t0 := time.Now()
	starts, sctx := errgroup.WithContext(ctx)
	starts.SetLimit(submitConcurrency)
	waits := errgroup.Group{}
	waits.SetLimit(floorWaitConcurrency)
	var last time.Time
	for i := range n {
		starts.Go(func() error {
			begun := time.Now()
			run, err := c.ExecuteWorkflow(sctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s%d", prefix, i), TaskQueue: floorTaskQueue}, floorWorkflowName)
			if err != nil {
				return err
			}
			waits.Go(func() error {
				if err := run.Get(ctx, nil); err != nil {
					fail(err)
					return nil
				}
				done := time.Now()
				mu.Lock()
				durations = append(durations, done.Sub(begun))
				if done.After(last) {
					last = done
				}
				mu.Unlock()
				return nil
			})
			return nil
		})
	}
	err = starts.Wait()
	_ = waits.Wait()
	if err != nil {
		return r, fmt.Errorf("starting floor workflows: %w", err)
	}
	r.Usage, _ = mon.usage()
	r.Completed = len(durations)
	if r.Completed > 0 {
		r.WallSeconds = last.Sub(t0).Seconds()
		r.WorkflowsPerSecond = float64(r.Completed) / r.WallSeconds
		s := summarize(durations)
		r.StartToClose = &s
	}
	if d, err := c.DescribeWorkflowExecution(ctx, prefix+"0", ""); err == nil {
		r.HistoryEvents = d.GetWorkflowExecutionInfo().GetHistoryLength()
	}
	return r, nil
}
