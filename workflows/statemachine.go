package workflows

import (
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
	if externalID == "" {
		return nil
	}
	sctx := stepOptions(ctx, taskQueue, deleteTimeout)
	st := drivers.DeleteState{ExternalID: externalID, NodeID: nodeID}
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
