package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"go.temporal.io/sdk/temporal"
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
	status := DeleteStatus{NodeID: in.NodeID, Phase: "locking"}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (DeleteStatus, error) { return status, nil }); err != nil {
		return DeleteResult{}, err
	}
	lean := workflow.GetVersion(ctx, changeLeanDelete, workflow.DefaultVersion, 1) == 1
	d := deletion{
		owner: workflow.GetInfo(ctx).WorkflowExecution.ID, taskQueue: in.TaskQueue, poll: seconds(in.PollIntervalSec),
		orphanGraceSec: in.OrphanGraceSec, lean: lean,
	}
	if in.SearchAttributes {
		d.indexed = func(start activities.StartDeleteResult, state string) {
			if start.Provider != "" {
				_ = workflow.UpsertTypedSearchAttributes(ctx, SAProvider.ValueSet(start.Provider), SAPool.ValueSet(start.Pool),
					SANodeID.ValueSet([]string{in.NodeID}), SAState.ValueSet(state))
				return
			}
			_ = workflow.UpsertTypedSearchAttributes(ctx, SAState.ValueSet(state))
		}
	}
	return d.run(ctx, DeleteTarget{NodeID: in.NodeID, UnlockedForSec: in.UnlockedForSec}, &status)
}

// DeleteTarget is one node of a deletion and the poller's observation of it.
type DeleteTarget struct {
	NodeID string `json:"node_id"`
	// UnlockedForSec is how long the poller had seen the node unlocked (see
	// lifecycle.Observation).
	UnlockedForSec float64 `json:"unlocked_for_sec,omitempty"`
}

// DeleteNodesInput starts the deletion of several nodes in one workflow: the poller
// gathers the nodes that must go while its previous start is under way (a job set
// returned at once, a burst of jobs ending), so that many deletions cost the server one
// workflow instead of one each.
type DeleteNodesInput struct {
	Nodes            []DeleteTarget `json:"nodes"`
	TaskQueue        string         `json:"task_queue"`
	PollIntervalSec  float64        `json:"poll_interval_sec"`
	OrphanGraceSec   float64        `json:"orphan_grace_sec,omitempty"`
	SearchAttributes bool           `json:"search_attributes,omitempty"`
}

// DeleteNodesResult is the result of a batch deletion: each node's, in input order.
type DeleteNodesResult struct {
	Nodes []NodeDeleteResult `json:"nodes"`
}

// NodeDeleteResult is one node's result in a batch deletion.
type NodeDeleteResult struct {
	NodeID string `json:"node_id"`
	DeleteResult
	Error string `json:"error,omitempty"`
}

// DeleteNodesStatus is a batch deletion's query result.
type DeleteNodesStatus struct {
	Nodes []DeleteStatus `json:"nodes"`
}

// DeleteNodes deletes several nodes at once, each exactly as DeleteNode does (the lean
// shape: one local activity locks, marks, deletes and releases; slow deletions go on
// in steps), concurrently. It lock-owns every node under its own workflow id. A node
// whose deletion fails is left "deleting" and unlocked for the poller to start again;
// the workflow then fails naming those nodes, after every other node is done.
func DeleteNodes(ctx workflow.Context, in DeleteNodesInput) (DeleteNodesResult, error) {
	status := DeleteNodesStatus{Nodes: make([]DeleteStatus, len(in.Nodes))}
	for i, n := range in.Nodes {
		status.Nodes[i] = DeleteStatus{NodeID: n.NodeID, Phase: "locking"}
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (DeleteNodesStatus, error) { return status, nil }); err != nil {
		return DeleteNodesResult{}, err
	}
	if in.SearchAttributes {
		_ = workflow.UpsertTypedSearchAttributes(ctx, SANodeID.ValueSet(indexedNodeIDs(targetIDs(in.Nodes))), SAState.ValueSet("deleting"))
	}
	d := deletion{
		owner: workflow.GetInfo(ctx).WorkflowExecution.ID, taskQueue: in.TaskQueue, poll: seconds(in.PollIntervalSec),
		orphanGraceSec: in.OrphanGraceSec, lean: true,
	}
	res := DeleteNodesResult{Nodes: make([]NodeDeleteResult, len(in.Nodes))}
	wg := workflow.NewWaitGroup(ctx)
	for i, n := range in.Nodes {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			r, err := d.run(gctx, n, &status.Nodes[i])
			res.Nodes[i] = NodeDeleteResult{NodeID: n.NodeID, DeleteResult: r}
			if err != nil {
				res.Nodes[i].Error = err.Error()
			}
		})
	}
	wg.Wait(ctx)
	var failed []string
	for _, r := range res.Nodes {
		if r.Error != "" {
			failed = append(failed, r.NodeID+": "+r.Error)
		}
	}
	if in.SearchAttributes {
		state := "deleted"
		if len(failed) > 0 {
			state = "failed"
		}
		_ = workflow.UpsertTypedSearchAttributes(ctx, SAState.ValueSet(state))
	}
	if len(failed) > 0 {
		return res, temporal.NewApplicationError(
			fmt.Sprintf("deleting %d of %d nodes failed (the poller starts them again): %s",
				len(failed), len(in.Nodes), strings.Join(failed, "; ")), "DeleteFailed", res)
	}
	return res, nil
}

// deletion is how one workflow deletes nodes: what DeleteNode and DeleteNodes share.
type deletion struct {
	// owner is the lock owner: the workflow's id.
	owner          string
	taskQueue      string
	poll           time.Duration
	orphanGraceSec float64
	// lean is version 1 of changeLeanDelete (always, for DeleteNodes).
	lean bool
	// indexed, when set, updates the search attributes as the deletion goes ("deleting",
	// "deleted").
	indexed func(start activities.StartDeleteResult, state string)
}

// run deletes one node, keeping status current.
func (d deletion) run(ctx workflow.Context, n DeleteTarget, status *DeleteStatus) (DeleteResult, error) {
	var start activities.StartDeleteResult
	sin := activities.StartDeleteInput{
		NodeID: n.NodeID, Owner: d.owner, UnlockedForSec: n.UnlockedForSec, OrphanGraceSec: d.orphanGraceSec,
	}
	if d.lean {
		sin.Finish = &activities.FinishTarget{TaskQueue: d.taskQueue, Signal: SignalRelease}
	}
	err := workflow.ExecuteLocalActivity(lockWaitLocal(ctx), a.StartDelete, sin).Get(ctx, &start)
	if err != nil {
		if errorType(err) == activities.ErrTypeLocked {
			status.Phase = "locked"
			return DeleteResult{Outcome: "locked", Reason: "node stayed locked by someone else"}, nil
		}
		return DeleteResult{}, err
	}
	if !start.Proceed {
		status.Phase = "kept"
		return DeleteResult{Outcome: "kept", Reason: start.Reason}, nil
	}
	if start.Deleted {
		status.Phase, status.ExternalID = "deleted", start.ExternalID
		if d.indexed != nil {
			d.indexed(start, "deleted")
		}
		return DeleteResult{Outcome: "deleted"}, nil
	}
	if d.indexed != nil {
		d.indexed(start, "deleting")
	}
	status.Phase, status.ExternalID = "deleting-instance", start.ExternalID
	if start.Delete != nil {
		status.Step = start.Delete.Step
	}
	err = runDeleteFrom(ctx, start.Provider, start.TaskQueue, start.ExternalID, n.NodeID, start.Delete, d.poll,
		func(step string) { status.Step = step })
	if err != nil {
		// Leave the node "deleting" and unlocked: the poller starts a new deletion later.
		status.Phase = "failed"
		_ = workflow.ExecuteLocalActivity(zkLocal(ctx), a.ReleaseNode, activities.NodeRefInput{NodeID: n.NodeID, Owner: d.owner}).Get(ctx, nil)
		return DeleteResult{}, err
	}
	status.Phase = "removing-node"
	ledger := names.LedgerWorkflowID(d.taskQueue, start.Provider, start.Pool)
	if d.lean {
		// One local activity removes the znode and releases the capacity.
		if err := workflow.ExecuteLocalActivity(zkLocal(ctx), a.FinishDelete, activities.FinishDeleteInput{
			NodeID: n.NodeID, Owner: d.owner, Contender: start.Contender, Ledger: ledger, Signal: SignalRelease,
		}).Get(ctx, nil); err != nil {
			return DeleteResult{}, err
		}
	} else {
		if err := workflow.ExecuteLocalActivity(zkLocal(ctx), a.RemoveNode, activities.NodeRefInput{NodeID: n.NodeID, Owner: d.owner}).Get(ctx, nil); err != nil {
			return DeleteResult{}, err
		}
		if err := workflow.SignalExternalWorkflow(ctx, ledger, "", SignalRelease, LedgerRelease{NodeIDs: []string{n.NodeID}}).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Info("no ledger to release capacity to", "ledger", ledger)
		}
	}
	status.Phase = "deleted"
	if d.indexed != nil {
		d.indexed(activities.StartDeleteResult{}, "deleted")
	}
	return DeleteResult{Outcome: "deleted"}, nil
}

// targetIDs returns the node ids of nodes.
func targetIDs(nodes []DeleteTarget) []string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.NodeID
	}
	return ids
}
