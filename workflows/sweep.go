package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/names"
)

// Leak sweep names and tuning.
const (
	// SweepWorkflowType is the registered name of LeakSweep.
	SweepWorkflowType = "LeakSweep"
	// SignalSweepConfig carries a sweep's current settings (SweepConfig); the worker
	// sends it with signal-with-start, so a running sweep picks up a changed
	// cleanup-interval.
	SignalSweepConfig = "sweep-config"
	// DefaultSweepInterval is the time between passes when none is configured
	// (Nodepool's cleanup-interval default).
	DefaultSweepInterval = 60 * time.Second
	// sweepPassesPerRun is the number of passes after which a sweep continues as new.
	sweepPassesPerRun = 100
	// sweepHistoryLimit and sweepHistoryBytes also trigger continue-as-new, well below
	// Temporal's limits, should signals or large suspect lists grow the history faster.
	sweepHistoryLimit = 2000
	sweepHistoryBytes = 2 << 20
)

// SweepInput starts (or continues) a provider's leak sweep.
type SweepInput struct {
	Provider string `json:"provider"`
	// TaskQueue is the main task queue; passes run on the provider's queue.
	TaskQueue string `json:"task_queue"`
	// IntervalSec is the time between passes (cleanup-interval); 0 means
	// DefaultSweepInterval.
	IntervalSec float64 `json:"interval_sec,omitempty"`
	// PassesPerRun overrides the number of passes after which the sweep continues as
	// new.
	PassesPerRun int `json:"passes_per_run,omitempty"`
	// State is carried across continue-as-new.
	State *SweepState `json:"state,omitempty"`
}

// SweepConfig is the payload of SignalSweepConfig.
type SweepConfig struct {
	// IntervalSec is the time between passes; 0 leaves it unchanged.
	IntervalSec float64 `json:"interval_sec"`
}

// SweepState is a sweep's whole state. It stays small: counters and the suspects of
// the last pass, which activities.MaxSweepSuspects bounds.
type SweepState struct {
	// Passes counts the passes run, failed ones included.
	Passes   int       `json:"passes"`
	LastPass time.Time `json:"last_pass,omitzero"`
	// Suspects are the resource keys the last successful pass found leaked, sorted;
	// the next pass deletes those it finds leaked again.
	Suspects []string `json:"suspects,omitempty"`
	// Deleted counts the resources deleted by every pass.
	Deleted int `json:"deleted"`
	// LastResources, LastLeaked and LastDeleted describe the last successful pass.
	LastResources int `json:"last_resources"`
	LastLeaked    int `json:"last_leaked"`
	LastDeleted   int `json:"last_deleted"`
	// Failures counts the passes that failed.
	Failures int `json:"failures"`
	// LastError is the most recent error: a failed pass, or a deletion that failed.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// SweepStatus is a sweep's query result.
type SweepStatus struct {
	Provider      string    `json:"provider"`
	IntervalSec   float64   `json:"interval_sec"`
	Passes        int       `json:"passes"`
	LastPass      time.Time `json:"last_pass,omitzero"`
	Suspects      int       `json:"suspects"`
	Deleted       int       `json:"deleted"`
	LastResources int       `json:"last_resources"`
	LastLeaked    int       `json:"last_leaked"`
	LastDeleted   int       `json:"last_deleted"`
	Failures      int       `json:"failures"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// LeakSweep deletes a provider's leaked cloud resources: every interval it runs a
// SweepLeaks pass on the provider's task queue, handing it the suspects of the
// previous pass, and keeps the suspects the pass returns for the next one. A resource
// is therefore deleted only when two consecutive passes found it without a node
// record. One sweep runs per provider (workflow id names.SweepWorkflowID), whatever
// the number of launcher processes. See docs/design.md, "Leak sweep".
func LeakSweep(ctx workflow.Context, in SweepInput) error {
	st := SweepState{}
	if in.State != nil {
		st = *in.State
	}
	interval := func() time.Duration {
		if in.IntervalSec > 0 {
			return seconds(in.IntervalSec)
		}
		return DefaultSweepInterval
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (SweepStatus, error) {
		return SweepStatus{
			Provider: in.Provider, IntervalSec: interval().Seconds(),
			Passes: st.Passes, LastPass: st.LastPass, Suspects: len(st.Suspects), Deleted: st.Deleted,
			LastResources: st.LastResources, LastLeaked: st.LastLeaked, LastDeleted: st.LastDeleted,
			Failures: st.Failures, LastError: st.LastError, LastErrorTime: st.LastErrorTime,
		}, nil
	}); err != nil {
		return err
	}
	configCh := workflow.GetSignalChannel(ctx, SignalSweepConfig)
	configure := func(c SweepConfig) {
		if c.IntervalSec > 0 {
			in.IntervalSec = c.IntervalSec
		}
	}
	passesPerRun := sweepPassesPerRun
	if in.PassesPerRun > 0 {
		passesPerRun = in.PassesPerRun
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: names.ProviderTaskQueue(in.TaskQueue, in.Provider),
		// No worker of this provider (it was removed from the configuration): the
		// pass fails and the sweep tries again next time.
		ScheduleToStartTimeout: 5 * time.Minute,
		StartToCloseTimeout:    10 * time.Minute,
		HeartbeatTimeout:       2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})

	for passes := 0; ; {
		// Wait until an interval after the last pass; a new interval applies at once.
		for !st.LastPass.IsZero() {
			wait := st.LastPass.Add(interval()).Sub(workflow.Now(ctx))
			if wait <= 0 {
				break
			}
			tctx, cancelTimer := workflow.WithCancel(ctx)
			fired := false
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(workflow.NewTimer(tctx, wait), func(workflow.Future) { fired = true })
			sel.AddReceive(configCh, func(c workflow.ReceiveChannel, _ bool) {
				var cfg SweepConfig
				c.Receive(ctx, &cfg)
				configure(cfg)
			})
			sel.Select(ctx)
			cancelTimer()
			if err := ctx.Err(); err != nil {
				return err
			}
			if fired {
				break
			}
		}

		var res activities.SweepLeaksResult
		err := workflow.ExecuteActivity(actx, a.SweepLeaks, activities.SweepLeaksInput{
			Provider: in.Provider, Suspects: st.Suspects,
		}).Get(ctx, &res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := workflow.Now(ctx)
		st.Passes++
		st.LastPass = now
		passes++
		if err != nil {
			// The suspects stay: the next pass that succeeds decides on them.
			st.Failures++
			st.LastError, st.LastErrorTime = err.Error(), now
			workflow.GetLogger(ctx).Warn("leak sweep pass failed", "provider", in.Provider, "error", err)
		} else {
			st.Suspects = res.Suspects
			st.Deleted += len(res.Deleted)
			st.LastResources, st.LastLeaked, st.LastDeleted = res.Resources, res.Leaked, len(res.Deleted)
			if len(res.Errors) > 0 {
				st.LastError, st.LastErrorTime = strings.Join(res.Errors, "; "), now
			}
			if len(res.Deleted) > 0 || len(res.Errors) > 0 {
				workflow.GetLogger(ctx).Warn("leak sweep deleted leaked resources", "provider", in.Provider,
					"deleted", res.Deleted, "errors", res.Errors)
			}
		}

		info := workflow.GetInfo(ctx)
		if passes >= passesPerRun || info.GetCurrentHistoryLength() > sweepHistoryLimit ||
			info.GetCurrentHistorySize() > sweepHistoryBytes || info.GetContinueAsNewSuggested() {
			for {
				var cfg SweepConfig
				if !configCh.ReceiveAsync(&cfg) {
					break
				}
				configure(cfg)
			}
			next := in
			next.State = &st
			return workflow.NewContinueAsNewError(ctx, SweepWorkflowType, next)
		}
	}
}
