package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// deleteTimeout bounds a delete state machine, as Nodepool's.
const deleteTimeout = 10 * time.Minute

// ErrTypeTimeout is the error type of a state machine that ran out of time.
const ErrTypeTimeout = "Timeout"

// runDelete drives a delete state machine to completion: one activity per step on the
// provider's task queue, with a workflow timer between steps. onStep reports progress.
func runDelete(ctx workflow.Context, provider, taskQueue, externalID, nodeID string, poll time.Duration, onStep func(step string)) error {
	return runDeleteFrom(ctx, provider, taskQueue, externalID, nodeID, nil, poll, onStep)
}

// runDeleteFrom is runDelete going on from state from (where an inline deletion
// stopped), or from the start when from is nil.
func runDeleteFrom(ctx workflow.Context, provider, taskQueue, externalID, nodeID string, from *drivers.DeleteState,
	poll time.Duration, onStep func(step string)) error {
	if externalID == "" {
		return nil
	}
	sctx := stepOptions(ctx, taskQueue, deleteTimeout)
	st := drivers.DeleteState{ExternalID: externalID, NodeID: nodeID}
	if from != nil {
		if from.Complete {
			return nil
		}
		st = *from
		if w := clampWait(st.Wait, poll); w > 0 {
			if err := workflow.Sleep(ctx, w); err != nil {
				return err
			}
		}
	}
	deadline := workflow.Now(ctx).Add(deleteTimeout)
	for {
		var next drivers.DeleteState
		err := workflow.ExecuteActivity(sctx, a.DeleteStep, activities.DeleteStepInput{Provider: provider, State: st}).Get(ctx, &next)
		if err != nil {
			return fmt.Errorf("deleting instance %s: %w", externalID, err)
		}
		st = next
		if onStep != nil {
			onStep(st.Step)
		}
		if st.Complete {
			return nil
		}
		if workflow.Now(ctx).After(deadline) {
			return temporal.NewNonRetryableApplicationError("deleting instance "+externalID+" timed out", ErrTypeTimeout, nil)
		}
		if w := clampWait(st.Wait, poll); w > 0 {
			if err := workflow.Sleep(ctx, w); err != nil {
				return err
			}
		}
	}
}

// runCreate drives node i's create state machine for one attempt: one activity per
// step on the provider's task queue, with a workflow timer between steps, bounded by
// launch-timeout (the whole attempt) and boot-timeout (from the instance's creation to
// ready). The node's external id is recorded in the status as soon as it is known. from,
// when set, is the state to go on from (after a capacity error that created nothing).
func (r *requestRun) runCreate(ctx, lctx workflow.Context, i, attempt int, from *drivers.CreateState) (drivers.CreateState, error) {
	ns := &r.status.Nodes[i]
	timeout := seconds(r.plan.LaunchTimeoutSec)
	bootTimeout := seconds(r.plan.BootTimeoutSec)
	poll := seconds(r.plan.PollIntervalSec)
	// Steps are not interrupted by a cancel: a step in flight may be creating the
	// instance, and its result is needed to delete it.
	dctx := disconnected(ctx)
	sctx := stepOptions(dctx, r.plan.ProviderTaskQueue, timeout)
	// A provider without a rate to enforce may have its create steps run as local
	// activities, in the worker that runs this workflow: a launch whose instance boots
	// within a step's budget then costs one marker instead of an activity's three
	// events and a workflow task.
	inline := r.lean && r.plan.InlineSteps
	if inline {
		sctx = stepLocal(dctx, timeout)
	}
	st := drivers.CreateState{Request: r.createRequest(i, attempt)}
	if from != nil {
		st = *from
	}
	deadline := workflow.Now(ctx).Add(timeout)
	var bootDeadline time.Time
	for {
		var next drivers.CreateState
		in := activities.CreateStepInput{NodeID: ns.NodeID, Owner: r.owner, Provider: r.plan.Provider, State: st}
		if r.readyInStep() {
			in.MarkReady, in.Need = true, r.plan.Nodes[i].Need
		}
		var step workflow.Future
		if inline {
			step = workflow.ExecuteLocalActivity(sctx, a.CreateStep, in)
		} else {
			step = workflow.ExecuteActivity(sctx, a.CreateStep, in)
		}
		err := step.Get(dctx, &next)
		if err != nil {
			// A failed step carries the state it reached, so an instance the cloud
			// already assigned can still be cleaned up.
			if f, ok := stepFailure(err); ok && f.ExternalID != "" {
				st.ExternalID = f.ExternalID
			}
		} else {
			st = next
		}
		ns.Step = st.Step
		if st.ExternalID != "" {
			ns.ExternalID = st.ExternalID
			// Once the instance exists, the request's details are no longer needed by
			// the driver; dropping them keeps each step's input small.
			st.Request.Request = drivers.RequestInfo{ID: st.Request.Request.ID}
			if bootDeadline.IsZero() {
				bootDeadline = workflow.Now(ctx).Add(bootTimeout)
			}
		}
		if err != nil {
			return st, err
		}
		if st.Complete {
			if st.Instance == nil {
				return st, errors.New("driver completed without an instance")
			}
			return st, nil
		}
		if lctx.Err() != nil {
			return st, lctx.Err()
		}
		now := workflow.Now(ctx)
		if timeout > 0 && now.After(deadline) {
			return st, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("launch attempt %d timed out after %s", attempt, timeout), ErrTypeTimeout, nil)
		}
		if bootTimeout > 0 && !bootDeadline.IsZero() && now.After(bootDeadline) {
			return st, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("instance %s did not boot within %s", st.ExternalID, bootTimeout), ErrTypeTimeout, nil)
		}
		if w := clampWait(st.Wait, poll); w > 0 {
			_ = workflow.Sleep(lctx, w)
		}
	}
}
