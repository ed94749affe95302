package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
)

// Min-ready coordinator names and tuning.
const (
	// MinReadyWorkflowType is the registered name of MinReady.
	MinReadyWorkflowType = "MinReady"
	// SignalMinReadyConfig carries the current min-ready settings (MinReadyConfig);
	// the worker sends it with signal-with-start, so a running coordinator picks up a
	// changed configuration.
	SignalMinReadyConfig = "min-ready-config"
	// DefaultMinReadyInterval is the time between passes.
	DefaultMinReadyInterval = 15 * time.Second
	// minReadyPassesPerRun bounds a run's history.
	minReadyPassesPerRun = 200
)

// MinReadyInput starts (or continues) a deployment's min-ready coordinator.
type MinReadyInput struct {
	TaskQueue string `json:"task_queue"`
	MinReadyConfig
	// Passes is carried across continue-as-new.
	Passes int `json:"passes,omitempty"`
}

// MinReadyConfig is what the coordinator keeps ready.
type MinReadyConfig struct {
	// Labels lists each label with min-ready > 0 that a pool of this deployment
	// offers, sorted by label.
	Labels []activities.LabelCount `json:"labels"`
	// IntervalSec is the time between passes (0 = DefaultMinReadyInterval).
	IntervalSec float64 `json:"interval_sec,omitempty"`
}

// MinReadyStatus is the coordinator's query result.
type MinReadyStatus struct {
	Labels    []activities.LabelCount   `json:"labels"`
	Passes    int                       `json:"passes"`
	LastPass  time.Time                 `json:"last_pass,omitzero"`
	Last      activities.MinReadyResult `json:"last"`
	LastError string                    `json:"last_error,omitempty"`
}

// MinReady keeps each label's min-ready count of ready, unallocated nodes: each pass
// cleans up finished min-ready requests and submits new ones for what is missing. One
// coordinator serves the whole deployment (all launcher processes), so a shortage is
// never requested twice.
func MinReady(ctx workflow.Context, in MinReadyInput) error {
	status := MinReadyStatus{Labels: in.Labels, Passes: in.Passes}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (MinReadyStatus, error) { return status, nil }); err != nil {
		return err
	}
	cfgCh := workflow.GetSignalChannel(ctx, SignalMinReadyConfig)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           in.TaskQueue,
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second},
	})
	owner := workflow.GetInfo(ctx).WorkflowExecution.ID
	applyConfig := func(c MinReadyConfig) {
		in.MinReadyConfig = c
		status.Labels = c.Labels
	}
	for run := 0; run < minReadyPassesPerRun; run++ {
		for {
			var c MinReadyConfig
			if !cfgCh.ReceiveAsync(&c) {
				break
			}
			applyConfig(c)
		}
		if len(in.Labels) > 0 {
			var res activities.MinReadyResult
			err := workflow.ExecuteActivity(actx, a.MinReadyPass, activities.MinReadyInput{Labels: in.Labels, Owner: owner}).Get(ctx, &res)
			status.Passes++
			status.LastPass = workflow.Now(ctx)
			if err != nil {
				status.LastError = err.Error()
				workflow.GetLogger(ctx).Warn("min-ready pass failed", "error", err)
			} else {
				status.Last, status.LastError = res, ""
			}
		}
		interval := DefaultMinReadyInterval
		if in.IntervalSec > 0 {
			interval = seconds(in.IntervalSec)
		}
		// Wait for the next pass, or a new configuration (which applies at once).
		tctx, cancelTimer := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(workflow.NewTimer(tctx, interval), func(workflow.Future) {})
		sel.AddReceive(cfgCh, func(c workflow.ReceiveChannel, _ bool) {
			var cfg MinReadyConfig
			c.Receive(ctx, &cfg)
			applyConfig(cfg)
		})
		sel.Select(ctx)
		cancelTimer()
	}
	for {
		var c MinReadyConfig
		if !cfgCh.ReceiveAsync(&c) {
			break
		}
		applyConfig(c)
	}
	in.Passes = status.Passes
	return workflow.NewContinueAsNewError(ctx, MinReadyWorkflowType, in)
}
