package activities

import (
	"context"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// CreateStep re-asserts the node lock, advances the node's create state machine by one
// step, and stores the instance's external id on the node as soon as it is known. With
// in.MarkReady, the step that completes the state machine also writes the node ready.
func (a *Activities) CreateStep(ctx context.Context, in CreateStepInput) (drivers.CreateState, error) {
	if err := a.lockNode(ctx, in.NodeID, in.Owner); err != nil {
		return in.State, err
	}
	d, err := a.driver(in.Provider)
	if err != nil {
		return in.State, err
	}
	prev, st := in.State, in.State
	start := a.now()
	for {
		next, err := d.AdvanceCreate(ctx, st)
		if err != nil {
			// Keep an external id the driver learned before failing: the workflow must
			// be able to clean the instance up.
			if next.ExternalID == "" {
				next.ExternalID = st.ExternalID
			}
			if next.ExternalID != "" && next.ExternalID != prev.ExternalID {
				_ = a.storeExternalID(ctx, in.NodeID, next.ExternalID)
			}
			failure := StepFailure{ExternalID: next.ExternalID, Step: next.Step}
			if after := retryAfterOf(err); after > 0 {
				failure.RetryAfterSec = after.Seconds()
				failure.State = &next
			}
			return next, driverError("advancing create of node "+in.NodeID, err, failure)
		}
		if next.ExternalID != "" && next.ExternalID != prev.ExternalID {
			if err := a.storeExternalID(ctx, in.NodeID, next.ExternalID); err != nil {
				return st, err
			}
			prev = next
		}
		st = next
		if !a.waitInStep(ctx, start, st.Complete, st.Wait) {
			break
		}
	}
	if in.MarkReady && st.Complete && st.Instance != nil {
		if err := a.NodeReady(ctx, NodeReadyInput{NodeID: in.NodeID, Owner: in.Owner, Instance: *st.Instance, Need: in.Need}); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Short waits between state-machine steps run inside the step activity: a workflow
// timer cannot fire sooner than the server's timer resolution (about a second on a
// default server), and each timer costs history events. Waits longer than stepWaitMax,
// or that would run the activity past stepBudget, go back to the workflow, which
// sleeps on a durable timer.
const (
	stepWaitMax = time.Second
	stepBudget  = 3 * time.Second
)

// waitInStep sleeps for a short wait and reports whether the activity should advance
// the state machine again.

func (a *Activities) waitInStep(ctx context.Context, start time.Time, complete bool, wait time.Duration) bool {
	if complete || wait > stepWaitMax || a.now().Sub(start)+wait > stepBudget {
		return false
	}
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// DeleteStep advances a delete state machine by one step.
func (a *Activities) DeleteStep(ctx context.Context, in DeleteStepInput) (drivers.DeleteState, error) {
	return a.advanceDelete(ctx, in.Provider, in.State)
}

// advanceDelete advances a delete state machine, taking short waits in place (see
// waitInStep); an instance the cloud no longer knows is deleted.
func (a *Activities) advanceDelete(ctx context.Context, provider string, from drivers.DeleteState) (drivers.DeleteState, error) {
	d, err := a.driver(provider)
	if err != nil {
		return from, err
	}
	st := from
	start := a.now()
	for {
		next, err := d.AdvanceDelete(ctx, st)
		if err != nil {
			if drivers.KindOf(err) == drivers.KindNotFound {
				st.Complete = true
				return st, nil
			}
			return next, driverError("advancing delete of "+from.ExternalID, err)
		}
		st = next
		if !a.waitInStep(ctx, start, st.Complete, st.Wait) {
			return st, nil
		}
	}
}
