package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Request workflow tuning.
const (
	// capacityWatchdog is how often a request waiting for capacity re-checks that its
	// request still exists and re-sends its acquire.
	capacityWatchdog = time.Minute
	// quotaBackoff is the wait after a cloud quota error before relaunching.
	quotaBackoff = 10 * time.Second
	// maxQuotaAborts bounds relaunches after cloud quota errors, which do not count as
	// attempts.
	maxQuotaAborts = 30
	// deferInterval is how often a request of a tenant at its limit is planned again,
	// and maxDeferrals how many times before the workflow continues as new.
	deferInterval = 10 * time.Second
	maxDeferrals  = 100
)

// RequestInput starts the handling of one node request.
type RequestInput struct {
	RequestID string `json:"request_id"`
	// TaskQueue is the launcher's main task queue (ledger and workflow ids derive from
	// it).
	TaskQueue string `json:"task_queue"`
	// SearchAttributes is true when the server has the Nodepool* search attributes.
	SearchAttributes bool `json:"search_attributes,omitempty"`
}

// Outcomes of a request workflow.
const (
	OutcomeFulfilled = "fulfilled"
	OutcomeDeclined  = "declined"
	OutcomeSkipped   = "skipped"
	OutcomeGone      = "request-deleted"
	OutcomeCancelled = "cancelled"
)

// RequestResult is a request workflow's result.
type RequestResult struct {
	Outcome string   `json:"outcome"`
	State   string   `json:"state,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	NodeIDs []string `json:"node_ids,omitempty"`
	// HeldNodes are nodes created to hold failed instances (see SignalHoldFailed).
	HeldNodes []string `json:"held_nodes,omitempty"`
}

// HoldFailed is the payload of SignalHoldFailed.
type HoldFailed struct {
	// Comment is stored on the held node; a default names the failure.
	Comment string `json:"comment,omitempty"`
	// HoldExpiration is the held node's hold_expiration in seconds (0 = none; the
	// launcher's max-hold-age still applies).
	HoldExpiration int `json:"hold_expiration,omitempty"`
}

// NodeStatus is one node's progress.
type NodeStatus struct {
	Index      int    `json:"index"`
	Label      string `json:"label"`
	NodeID     string `json:"node_id,omitempty"`
	Attempt    int    `json:"attempt,omitempty"`
	Step       string `json:"step,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	// State is one of waiting, building, ready, failed, deleted.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// RequestStatus is a request workflow's query result.
type RequestStatus struct {
	RequestID  string       `json:"request_id"`
	Phase      string       `json:"phase"`
	Provider   string       `json:"provider,omitempty"`
	Pool       string       `json:"pool,omitempty"`
	Nodes      []NodeStatus `json:"nodes"`
	HoldFailed bool         `json:"hold_failed"`
	HeldNodes  []string     `json:"held_nodes,omitempty"`
}

type requestRun struct {
	in     RequestInput
	id     string // workflow id, the lock owner
	plan   activities.Plan
	status RequestStatus
	gone   bool
	hold   *HoldFailed
	// cancels stop the launch coroutines when the request is deleted.
	cancels []workflow.CancelFunc
	logger  interface {
		Info(string, ...interface{})
		Warn(string, ...interface{})
	}
}

// HandleRequest handles one node request from acceptance to fulfilment (or decline),
// and cleans up everything it created when Zuul deletes the request or an operator
// cancels the workflow.
func HandleRequest(ctx workflow.Context, in RequestInput) (RequestResult, error) {
	r := &requestRun{in: in, id: workflow.GetInfo(ctx).WorkflowExecution.ID}
	if err := r.setup(ctx); err != nil {
		return RequestResult{}, err
	}
	return r.run(ctx)
}

func (r *requestRun) setup(ctx workflow.Context) error {
	r.logger = workflow.GetLogger(ctx)
	r.status = RequestStatus{RequestID: r.in.RequestID, Phase: "planning", Nodes: []NodeStatus{}}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (RequestStatus, error) {
		return r.status, nil
	}); err != nil {
		return err
	}
	holdCh := workflow.GetSignalChannel(ctx, SignalHoldFailed)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var h HoldFailed
			holdCh.Receive(gctx, &h)
			r.hold = &h
			r.status.HoldFailed = true
			r.logger.Info("holding instances of failed attempts")
		}
	})
	return nil
}

func (r *requestRun) upsert(ctx workflow.Context, updates ...temporal.SearchAttributeUpdate) {
	if !r.in.SearchAttributes {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		r.logger.Warn("upserting search attributes", "error", err)
	}
}

// setPhase records the workflow's phase for the status query. Only phases worth
// searching for are indexed (each index update is a visibility write on the server):
// launching and the final outcomes.
func (r *requestRun) setPhase(ctx workflow.Context, phase string) {
	r.status.Phase = phase
	switch phase {
	case "launching", OutcomeFulfilled, OutcomeDeclined, OutcomeSkipped, OutcomeGone, OutcomeCancelled:
		r.upsert(ctx, SAState.ValueSet(phase))
	}
}

func (r *requestRun) run(ctx workflow.Context) (RequestResult, error) {
	for deferrals := 0; ; deferrals++ {
		if err := workflow.ExecuteLocalActivity(zkLocal(ctx), a.PlanRequest, activities.PlanInput{RequestID: r.in.RequestID}).Get(ctx, &r.plan); err != nil {
			return RequestResult{}, err
		}
		if r.plan.Decision != activities.DecisionDefer {
			break
		}
		// The tenant is at its limit: the request stays "requested" (Nodepool defers,
		// it does not decline) and is planned again once nodes may have gone.
		r.status.Phase = "deferred: " + r.plan.Reason
		if deferrals >= maxDeferrals {
			// Keep the history short: a new run continues waiting.
			return RequestResult{}, workflow.NewContinueAsNewError(ctx, RequestWorkflowType, r.in)
		}
		if err := workflow.Sleep(ctx, deferInterval); err != nil {
			res, derr := r.decline(ctx, r.plan.DeclinePools, "launch cancelled by an operator")
			if derr != nil {
				return res, derr
			}
			res.Outcome = OutcomeCancelled
			return res, temporal.NewCanceledError("launch cancelled by an operator")
		}
	}
	switch r.plan.Decision {
	case activities.DecisionSkip:
		r.setPhase(ctx, OutcomeSkipped)
		return RequestResult{Outcome: OutcomeSkipped, Reason: r.plan.Reason}, nil
	case activities.DecisionDecline:
		return r.decline(ctx, r.plan.DeclinePools, r.plan.Reason)
	}
	r.status.Provider, r.status.Pool = r.plan.Provider, r.plan.Pool
	for i, n := range r.plan.Nodes {
		r.status.Nodes = append(r.status.Nodes, NodeStatus{Index: i, Label: n.Label, State: "waiting"})
	}

	// lctx is cancelled when Zuul deletes the request or an operator cancels us.
	lctx, cancelLaunch := workflow.WithCancel(ctx)
	deletedCh := workflow.GetSignalChannel(ctx, SignalRequestDeleted)
	r.cancels = append(r.cancels, cancelLaunch)
	workflow.Go(ctx, func(gctx workflow.Context) {
		deletedCh.Receive(gctx, nil)
		r.gone = true
		for _, cancel := range r.cancels {
			cancel()
		}
	})

	r.setPhase(ctx, "waiting-for-capacity")
	granted, reason := r.acquire(ctx, lctx)
	if !granted {
		r.releaseCapacity(ctx, nil)
		switch {
		case ctx.Err() != nil:
			return r.abandon(ctx, nil)
		case r.gone:
			r.setPhase(ctx, OutcomeGone)
			return RequestResult{Outcome: OutcomeGone}, nil
		case reason != "":
			return r.decline(ctx, []string{r.plan.PoolID}, reason)
		}
		r.setPhase(ctx, OutcomeSkipped)
		return RequestResult{Outcome: OutcomeSkipped, Reason: "request was taken elsewhere while waiting for capacity"}, nil
	}

	r.setPhase(ctx, "accepting")
	var acc activities.AcceptResult
	err := workflow.ExecuteActivity(zkOptions(disconnected(ctx)), a.AcceptRequest,
		activities.AcceptInput{RequestID: r.in.RequestID, Owner: r.id, Plan: r.plan}).Get(ctx, &acc)
	if err != nil {
		r.releaseCapacity(ctx, nil)
		return RequestResult{}, err
	}
	if !acc.Accepted {
		r.releaseCapacity(ctx, nil)
		r.setPhase(ctx, OutcomeSkipped)
		if acc.Gone {
			return RequestResult{Outcome: OutcomeGone, Reason: acc.Reason}, nil
		}
		return RequestResult{Outcome: OutcomeSkipped, Reason: acc.Reason}, nil
	}
	bind := LedgerBind{Holder: r.id, Nodes: map[string]drivers.Resources{}}
	for i, id := range acc.NodeIDs {
		r.status.Nodes[i].NodeID = id
		bind.Nodes[id] = r.plan.Nodes[i].Need
	}
	r.signalLedger(ctx, SignalBind, bind)

	r.status.Phase = "launching"
	r.upsert(ctx, SAProvider.ValueSet(r.plan.Provider), SAPool.ValueSet(r.plan.Pool),
		SANodeID.ValueSet(acc.NodeIDs), SAState.ValueSet("launching"))
	ok := make([]bool, len(r.plan.Nodes))
	wg := workflow.NewWaitGroup(ctx)
	for i := range r.plan.Nodes {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			// A workflow context belongs to its coroutine: each launch gets its own
			// cancellable context, cancelled with the others when the request goes.
			nctx, cancel := workflow.WithCancel(gctx)
			r.cancels = append(r.cancels, cancel)
			if r.gone {
				cancel()
			}
			ok[i] = r.launchNode(gctx, nctx, i)
		})
	}
	wg.Wait(ctx)

	if r.gone || ctx.Err() != nil {
		return r.abandon(ctx, acc.NodeIDs)
	}
	for i := range ok {
		if !ok[i] {
			r.deleteNodes(ctx, acc.NodeIDs)
			reason := fmt.Sprintf("launch of node %s (%s) failed: %s", r.status.Nodes[i].NodeID, r.status.Nodes[i].Label, r.status.Nodes[i].Error)
			return r.decline(ctx, []string{r.plan.PoolID}, reason)
		}
	}

	r.setPhase(ctx, "fulfilling")
	var ful activities.FulfillResult
	err = workflow.ExecuteLocalActivity(zkLocal(disconnected(ctx)), a.FulfillRequest,
		activities.FulfillInput{RequestID: r.in.RequestID, Owner: r.id, NodeIDs: acc.NodeIDs}).Get(ctx, &ful)
	if err != nil || ful.Gone {
		if err != nil {
			r.logger.Warn("fulfilling request", "error", err)
		}
		r.gone = r.gone || ful.Gone
		return r.abandon(ctx, acc.NodeIDs)
	}
	r.setPhase(ctx, OutcomeFulfilled)
	return RequestResult{Outcome: OutcomeFulfilled, State: "fulfilled", NodeIDs: acc.NodeIDs, HeldNodes: r.status.HeldNodes}, nil
}

// acquire asks the pool's ledger for the request's capacity and waits for the answer.
// It returns granted=false with a reason when the ledger refuses, and with no reason
// when the request went away, was taken elsewhere, or the workflow was cancelled.
func (r *requestRun) acquire(ctx, lctx workflow.Context) (bool, string) {
	acq := LedgerAcquire{
		Holder: r.id, RequestID: r.in.RequestID, Order: r.plan.Order,
		Need: r.plan.Need(), Limits: r.plan.Limits,
	}
	r.signalLedger(ctx, SignalAcquire, acq)
	capCh := workflow.GetSignalChannel(ctx, SignalCapacity)
	for {
		var grant Grant
		got := false
		tctx, cancelTimer := workflow.WithCancel(lctx)
		timer := workflow.NewTimer(tctx, capacityWatchdog)
		sel := workflow.NewSelector(lctx)
		sel.AddReceive(capCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(lctx, &grant)
			got = true
		})
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.AddReceive(lctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(lctx)
		cancelTimer()
		if got {
			if !grant.Granted {
				return false, grant.Reason
			}
			return true, ""
		}
		if lctx.Err() != nil {
			return false, ""
		}
		var chk activities.CheckRequestResult
		if err := workflow.ExecuteLocalActivity(zkLocal(lctx), a.CheckRequest, r.in.RequestID).Get(lctx, &chk); err != nil {
			continue
		}
		if !chk.Exists {
			r.gone = true
			return false, ""
		}
		if chk.State != "requested" {
			return false, ""
		}
		r.signalLedger(ctx, SignalAcquire, acq)
	}
}

// signalLedger signals the pool's ledger, starting it through an activity when it is
// not running.
func (r *requestRun) signalLedger(ctx workflow.Context, name string, payload any) {
	ctx = disconnected(ctx)
	id := names.LedgerWorkflowID(r.in.TaskQueue, r.plan.Provider, r.plan.Pool)
	if err := workflow.SignalExternalWorkflow(ctx, id, "", name, payload).Get(ctx, nil); err == nil {
		return
	}
	err := workflow.ExecuteActivity(zkOptions(ctx), a.SignalLedger, activities.SignalLedgerInput{
		WorkflowID:   id,
		WorkflowType: LedgerWorkflowType,
		StartInput:   LedgerInput{Provider: r.plan.Provider, Pool: r.plan.Pool, TaskQueue: r.in.TaskQueue},
		Signal:       name,
		Payload:      payload,
	}).Get(ctx, nil)
	if err != nil {
		r.logger.Warn("signalling ledger", "signal", name, "error", err)
	}
}

// releaseCapacity returns capacity to the ledger: the listed nodes, or the whole
// unbound grant when nodeIDs is empty.
func (r *requestRun) releaseCapacity(ctx workflow.Context, nodeIDs []string) {
	if r.plan.Provider == "" {
		return
	}
	ctx = disconnected(ctx)
	id := names.LedgerWorkflowID(r.in.TaskQueue, r.plan.Provider, r.plan.Pool)
	rel := LedgerRelease{Holder: r.id, NodeIDs: nodeIDs}
	if err := workflow.SignalExternalWorkflow(ctx, id, "", SignalRelease, rel).Get(ctx, nil); err != nil {
		r.logger.Warn("releasing capacity", "error", err)
	}
}

// launchNode runs the create state machine of node i through its attempts. It returns
// true when the node is ready.
func (r *requestRun) launchNode(ctx, lctx workflow.Context, i int) bool {
	ns := &r.status.Nodes[i]
	np := r.plan.Nodes[i]
	timeout := seconds(r.plan.LaunchTimeoutSec)
	poll := seconds(r.plan.PollIntervalSec)
	// Steps are not interrupted by a cancel: a step in flight may be creating the
	// instance, and its result is needed to delete it.
	dctx := disconnected(ctx)
	sctx := stepOptions(dctx, r.plan.ProviderTaskQueue, timeout)
	aborts := 0
	for attempt := 1; attempt <= r.plan.LaunchRetries; {
		if lctx.Err() != nil {
			return false
		}
		ns.Attempt, ns.State, ns.Step, ns.Error = attempt, "building", "", ""
		st := drivers.CreateState{Request: r.createRequest(i, attempt)}
		deadline := workflow.Now(ctx).Add(timeout)
		var err error
		for {
			var next drivers.CreateState
			err = workflow.ExecuteActivity(sctx, a.CreateStep, activities.CreateStepInput{
				NodeID: ns.NodeID, Owner: r.id, Provider: r.plan.Provider, State: st,
			}).Get(dctx, &next)
			if err != nil {
				// A failed step carries the state it reached, so an instance the cloud
				// already assigned can still be cleaned up.
				var appErr *temporal.ApplicationError
				if errors.As(err, &appErr) && appErr.HasDetails() {
					var partial drivers.CreateState
					if appErr.Details(&partial) == nil && partial.ExternalID != "" {
						st.ExternalID = partial.ExternalID
					}
				}
			} else {
				st = next
			}
			ns.Step, ns.ExternalID = st.Step, st.ExternalID
			if err != nil || st.Complete || lctx.Err() != nil {
				break
			}
			if timeout > 0 && workflow.Now(ctx).After(deadline) {
				err = temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("launch attempt %d timed out after %s", attempt, timeout), ErrTypeTimeout, nil)
				break
			}
			if w := clampWait(st.Wait, poll); w > 0 {
				_ = workflow.Sleep(lctx, w)
			}
		}
		if lctx.Err() != nil {
			return false
		}
		if err == nil && st.Complete && st.Instance != nil {
			err = workflow.ExecuteLocalActivity(zkLocal(dctx), a.NodeReady, activities.NodeReadyInput{
				NodeID: ns.NodeID, Owner: r.id, Instance: *st.Instance, Need: np.Need,
			}).Get(dctx, nil)
			if err == nil {
				ns.State = "ready"
				return true
			}
		} else if err == nil {
			err = errors.New("driver completed without an instance")
		}
		ns.Error = err.Error()
		kind := errorType(err)
		r.logger.Warn("launch attempt failed", "node_id", ns.NodeID, "attempt", attempt, "error", err)
		if kind == activities.ErrTypeLockLost || kind == activities.ErrTypeNodeGone {
			ns.State = "failed"
			return false
		}
		r.disposeInstance(ctx, i, attempt, err)
		if kind == activities.ErrTypeQuota && aborts < maxQuotaAborts {
			aborts++
			_ = workflow.Sleep(lctx, quotaBackoff)
			continue
		}
		if kind == activities.ErrTypePermanent {
			break
		}
		attempt++
	}
	ns.State = "failed"
	return false
}

func (r *requestRun) createRequest(i, attempt int) drivers.CreateRequest {
	ns := r.status.Nodes[i]
	return drivers.CreateRequest{
		NodeID:   ns.NodeID,
		Attempt:  attempt,
		Hostname: "np" + ns.NodeID,
		Pool:     r.plan.Pool,
		Label:    ns.Label,
		Metadata: map[string]string{
			drivers.MetaProviderName: r.plan.Provider,
			drivers.MetaPoolName:     r.plan.Pool,
			drivers.MetaNodeID:       ns.NodeID,
		},
		Request: r.plan.Request,
	}
}

// disposeInstance deletes the instance of a failed attempt of node i, or records it as
// a held node when an operator asked to hold failed instances.
func (r *requestRun) disposeInstance(ctx workflow.Context, i, attempt int, cause error) {
	ns := &r.status.Nodes[i]
	if ns.ExternalID == "" {
		return
	}
	dctx := disconnected(ctx)
	if r.hold != nil {
		comment := r.hold.Comment
		if comment == "" {
			comment = fmt.Sprintf("held failed launch of node %s attempt %d: %v", ns.NodeID, attempt, cause)
		}
		var res activities.HoldInstanceResult
		err := workflow.ExecuteActivity(zkOptions(dctx), a.HoldInstance, activities.HoldInstanceInput{
			Provider: r.plan.Provider, Pool: r.plan.Pool, PoolID: r.plan.PoolID, Label: ns.Label,
			ExternalID: ns.ExternalID, Comment: comment, HoldExpiration: r.hold.HoldExpiration,
			TenantName: r.plan.Request.TenantName, Requestor: r.plan.Request.Requestor,
		}).Get(dctx, &res)
		if err == nil {
			r.status.HeldNodes = append(r.status.HeldNodes, res.NodeID)
			ns.ExternalID = ""
			return
		}
		r.logger.Warn("holding failed instance", "error", err)
	}
	poll := seconds(r.plan.PollIntervalSec)
	err := runDelete(dctx, r.plan.Provider, r.plan.ProviderTaskQueue, ns.ExternalID, ns.NodeID, poll, func(step string) { ns.Step = step })
	if err != nil {
		r.logger.Warn("deleting instance of failed attempt", "node_id", ns.NodeID, "error", err)
		return
	}
	ns.ExternalID = ""
}

// deleteNodes deletes the instances and znodes of the listed nodes and returns their
// capacity. A node whose instance cannot be deleted is unlocked and left for the
// deletion workflow, so nothing leaks.
func (r *requestRun) deleteNodes(ctx workflow.Context, nodeIDs []string) {
	dctx := disconnected(ctx)
	poll := seconds(r.plan.PollIntervalSec)
	var removed []string
	for i, id := range nodeIDs {
		ns := &r.status.Nodes[i]
		if err := runDelete(dctx, r.plan.Provider, r.plan.ProviderTaskQueue, ns.ExternalID, id, poll, func(step string) { ns.Step = step }); err != nil {
			r.logger.Warn("deleting instance", "node_id", id, "error", err)
			_ = workflow.ExecuteLocalActivity(zkLocal(dctx), a.ReleaseNode, activities.NodeRefInput{NodeID: id, Owner: r.id}).Get(dctx, nil)
			continue
		}
		ns.ExternalID = ""
		if err := workflow.ExecuteLocalActivity(zkLocal(dctx), a.RemoveNode, activities.NodeRefInput{NodeID: id, Owner: r.id}).Get(dctx, nil); err != nil {
			r.logger.Warn("removing node", "node_id", id, "error", err)
			continue
		}
		ns.State = "deleted"
		removed = append(removed, id)
	}
	if len(removed) > 0 {
		r.releaseCapacity(ctx, removed)
	}
	// Nodes that remain (rare) are released by the ledger's reconciliation once the
	// deletion workflow removed them.
}

// abandon cleans up after Zuul deleted the request or an operator cancelled the
// workflow: every instance and node is deleted and the request lock released. A
// cancelled request is then declined, so Zuul learns about it.
func (r *requestRun) abandon(ctx workflow.Context, nodeIDs []string) (RequestResult, error) {
	dctx := disconnected(ctx)
	r.setPhase(dctx, "cleaning-up")
	if len(nodeIDs) > 0 {
		r.deleteNodes(dctx, nodeIDs)
	}
	cancelled := ctx.Err() != nil && !r.gone
	if cancelled {
		res, err := r.decline(dctx, []string{r.plan.PoolID}, "launch cancelled by an operator")
		if err != nil {
			return res, err
		}
		res.Outcome = OutcomeCancelled
		r.setPhase(dctx, OutcomeCancelled)
		return res, temporal.NewCanceledError("launch cancelled by an operator")
	}
	_ = workflow.ExecuteLocalActivity(zkLocal(dctx), a.ReleaseRequest, activities.RequestRefInput{RequestID: r.in.RequestID, Owner: r.id}).Get(dctx, nil)
	r.setPhase(dctx, OutcomeGone)
	return RequestResult{Outcome: OutcomeGone, HeldNodes: r.status.HeldNodes}, nil
}

func (r *requestRun) decline(ctx workflow.Context, pools []string, reason string) (RequestResult, error) {
	dctx := disconnected(ctx)
	var res activities.DeclineResult
	err := workflow.ExecuteLocalActivity(lockWaitLocal(dctx), a.DeclineRequest, activities.DeclineInput{
		RequestID: r.in.RequestID, Owner: r.id, PoolIDs: pools, Reason: reason,
	}).Get(dctx, &res)
	if err != nil {
		return RequestResult{}, err
	}
	r.setPhase(dctx, OutcomeDeclined)
	return RequestResult{Outcome: OutcomeDeclined, State: res.State, Reason: reason, HeldNodes: r.status.HeldNodes}, nil
}
