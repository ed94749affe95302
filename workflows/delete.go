package workflows

import (
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
)

// changeLeanDelete versions the deletion workflow. In version 1 the first local
// activity (StartDelete) also deletes the instance when the provider allows inline
// steps and the cloud confirms within a few seconds, and removes the znode and
// releases the capacity itself, so a quick deletion is one workflow task and one
// marker; otherwise DeleteStep activities go on from where it stopped, and one local
// activity (FinishDelete) removes the znode and releases the capacity. The default
// version runs every step as an activity and signals the ledger from the workflow.
// (The version marker costs a run two events, the marker and the SDK's upsert of the
// TemporalChangeVersion search attribute, far less than the lean shape saves.)
const changeLeanDelete = "lean-delete"

// DeleteInput starts the deletion of one node.
type DeleteInput struct {
	NodeID    string `json:"node_id"`
	TaskQueue string `json:"task_queue"`
	// PollIntervalSec caps the timer between delete steps.
	PollIntervalSec float64 `json:"poll_interval_sec"`
	// UnlockedForSec and OrphanGraceSec carry the poller's observation of an orphaned
	// node (see lifecycle.Observation).
	UnlockedForSec   float64 `json:"unlocked_for_sec,omitempty"`
	OrphanGraceSec   float64 `json:"orphan_grace_sec,omitempty"`
	SearchAttributes bool    `json:"search_attributes,omitempty"`
}

// DeleteResult is a deletion workflow's result.
type DeleteResult struct {
	// Outcome is "deleted", "kept" (the node must not be deleted now) or "locked" (it
	// stayed locked by someone else).
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

// DeleteStatus is a deletion workflow's query result.
type DeleteStatus struct {
	NodeID     string `json:"node_id"`
	Phase      string `json:"phase"`
	Step       string `json:"step,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
}

// DeleteNode deletes one node: lock it, re-check it must go, mark it "deleting", run
// the driver's delete state machine, remove the znode, and return its capacity to the
// pool ledger.
func DeleteNode(ctx workflow.Context, in DeleteInput) (DeleteResult, error) {
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	status := DeleteStatus{NodeID: in.NodeID, Phase: "locking"}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (DeleteStatus, error) { return status, nil }); err != nil {
		return DeleteResult{}, err
	}
	lean := workflow.GetVersion(ctx, changeLeanDelete, workflow.DefaultVersion, 1) == 1
	var start activities.StartDeleteResult
	sin := activities.StartDeleteInput{
		NodeID: in.NodeID, Owner: id, UnlockedForSec: in.UnlockedForSec, OrphanGraceSec: in.OrphanGraceSec,
	}
	if lean {
		sin.Finish = &activities.FinishTarget{TaskQueue: in.TaskQueue, Signal: SignalRelease}
	}
	err := workflow.ExecuteLocalActivity(lockWaitLocal(ctx), a.StartDelete, sin).Get(ctx, &start)
	if err != nil {
		if errorType(err) == activities.ErrTypeLocked {
			return DeleteResult{Outcome: "locked", Reason: "node stayed locked by someone else"}, nil
		}
		return DeleteResult{}, err
	}
	if !start.Proceed {
		return DeleteResult{Outcome: "kept", Reason: start.Reason}, nil
	}
	if start.Deleted {
		status.Phase, status.ExternalID = "deleted", start.ExternalID
		if in.SearchAttributes {
			_ = workflow.UpsertTypedSearchAttributes(ctx, SAProvider.ValueSet(start.Provider), SAPool.ValueSet(start.Pool),
				SANodeID.ValueSet([]string{in.NodeID}), SAState.ValueSet("deleted"))
		}
		return DeleteResult{Outcome: "deleted"}, nil
	}
	if in.SearchAttributes {
		_ = workflow.UpsertTypedSearchAttributes(ctx, SAProvider.ValueSet(start.Provider), SAPool.ValueSet(start.Pool),
			SANodeID.ValueSet([]string{in.NodeID}), SAState.ValueSet("deleting"))
	}
	status.Phase, status.ExternalID = "deleting-instance", start.ExternalID
	if start.Delete != nil {
		status.Step = start.Delete.Step
	}
	err = runDeleteFrom(ctx, start.Provider, start.TaskQueue, start.ExternalID, in.NodeID, start.Delete, seconds(in.PollIntervalSec),
		func(step string) { status.Step = step })
	if err != nil {
		// Leave the node "deleting" and unlocked: the poller starts a new deletion later.
		_ = workflow.ExecuteLocalActivity(zkLocal(ctx), a.ReleaseNode, activities.NodeRefInput{NodeID: in.NodeID, Owner: id}).Get(ctx, nil)
		return DeleteResult{}, err
	}
	status.Phase = "removing-node"
	ledger := names.LedgerWorkflowID(in.TaskQueue, start.Provider, start.Pool)
	if lean {
		// One local activity removes the znode and releases the capacity.
		if err := workflow.ExecuteLocalActivity(zkLocal(ctx), a.FinishDelete, activities.FinishDeleteInput{
			NodeID: in.NodeID, Owner: id, Ledger: ledger, Signal: SignalRelease,
		}).Get(ctx, nil); err != nil {
			return DeleteResult{}, err
		}
	} else {
		if err := workflow.ExecuteLocalActivity(zkLocal(ctx), a.RemoveNode, activities.NodeRefInput{NodeID: in.NodeID, Owner: id}).Get(ctx, nil); err != nil {
			return DeleteResult{}, err
		}
		if err := workflow.SignalExternalWorkflow(ctx, ledger, "", SignalRelease, LedgerRelease{NodeIDs: []string{in.NodeID}}).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Info("no ledger to release capacity to", "ledger", ledger)
		}
	}
	status.Phase = "deleted"
	if in.SearchAttributes {
		_ = workflow.UpsertTypedSearchAttributes(ctx, SAState.ValueSet("deleted"))
	}
	return DeleteResult{Outcome: "deleted"}, nil
}
