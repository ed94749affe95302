package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/names"
)

// Request workflow tuning.
const (
	// capacityWatchdog is how often a request waiting for capacity checks that its
	// request still exists, in case the poller's request-deleted signal was missed (the
	// poller watches every request and re-reads them every few minutes, so this is a
	// second safety net). Every waiting request wakes once per period: with 10,000
	// waiting, five minutes cost the server about 33 workflow tasks a second.
	capacityWatchdog = 5 * time.Minute
	// reacquireRounds is how many watchdog rounds pass between repeated acquires (15
	// minutes), in case a ledger lost its state (an operator reset it): rare enough
	// that 10,000 waiting requests cost the ledger about ten signals a second.
	reacquireRounds = 3
	// waitRounds is how many watchdog rounds a waiting run lasts (two hours) before it
	// continues as new, which keeps the history of a request that waits for days short.
	waitRounds = 24
	// quotaBackoff is the wait after a cloud quota error before relaunching.
	quotaBackoff = 10 * time.Second
	// maxQuotaAborts bounds relaunches after cloud quota errors, which do not count as
	// attempts.
	maxQuotaAborts = 30
	// capacityBackoffMin and capacityBackoffMax bound the wait after a cloud capacity
	// error (doubling from the minimum, or the cloud's hint); maxCapacityRetries bounds
	// such relaunches, which do not count as attempts either.
	capacityBackoffMin = 5 * time.Second
	capacityBackoffMax = 2 * time.Minute
	maxCapacityRetries = 20
	// deferInterval is how often a request of a tenant at its limit is planned again,
	// and maxDeferrals how many times before the workflow continues as new.
	deferInterval = 10 * time.Second
	maxDeferrals  = 100
	// saBudget bounds the bytes of node ids indexed in the NodepoolNodeID search
	// attribute (the server refuses more than 2 KiB per keyword list).
	saBudget = 1024
)

// changeLeanRequest versions the request workflow's bookkeeping. In version 1 planning
// sends the acquire to the ledger itself (PlanInput.Acquire), a request of at most
// acceptLocalMax nodes is accepted in a local activity (one batch of node creations,
// so no heartbeats are needed), the acceptance binds the nodes to the grant itself
// (AcceptInput.Bind), the create steps of a provider without a rate run as local
// activities (Plan.InlineSteps), and the step that completes a launch writes the node
// ready when no scan follows (CreateStepInput.MarkReady): each saves the workflow a
// signal, an activity's or a marker's events, or a workflow task. The default version
// signals acquire and bind from the workflow, runs AcceptRequest and every create step
// as ordinary activities, and writes the node ready in a local activity of its own.
const changeLeanRequest = "lean-request"

// acceptLocalMax is the largest request accepted in a local activity: node ids are
// recorded in the request after every batch of this many creations, so a smaller
// request is accepted in one batch.
const acceptLocalMax = 50

// Phases of a request workflow, as the status query and the NodepoolState search
// attribute show them.
const (
	PhasePlanning  = "planning"
	PhaseDeferred  = "deferred"
	PhaseWaiting   = "waiting-for-capacity"
	PhaseAccepting = "accepting"
	// PhaseWaitingForLaunchSlots: the provider's max-concurrency is reached.
	PhaseWaitingForLaunchSlots = "waiting-for-launch-slots"
	PhaseLaunching             = "launching"
	PhaseFulfilling            = "fulfilling"
	PhaseCleaningUp            = "cleaning-up"
)

// Outcomes of a request workflow (also its final phase).
const (
	OutcomeFulfilled = "fulfilled"
	OutcomeDeclined  = "declined"
	OutcomeSkipped   = "skipped"
	OutcomeGone      = "request-deleted"
	OutcomeCancelled = "cancelled"
)

// Node states of the status query.
const (
	NodeWaiting  = "waiting"
	NodeBuilding = "building"
	NodeReady    = "ready"
	NodeFailed   = "failed"
	NodeDeleted  = "deleted"
)

// RequestInput starts the handling of one node request.
type RequestInput struct {
	RequestID string `json:"request_id"`
	// TaskQueue is the launcher's main task queue (ledger and workflow ids derive from
	// it).
	TaskQueue string `json:"task_queue"`
	// SearchAttributes is true when the server has the Nodepool* search attributes.
	SearchAttributes bool `json:"search_attributes,omitempty"`
	// Hold carries a hold-failed request across continue-as-new.
	Hold *HoldFailed `json:"hold,omitempty"`
}

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
	// State is one of NodeWaiting, NodeBuilding, NodeReady, NodeFailed, NodeDeleted.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// RequestStatus is a request workflow's query result.
type RequestStatus struct {
	RequestID  string       `json:"request_id"`
	Phase      string       `json:"phase"`
	Reason     string       `json:"reason,omitempty"`
	Provider   string       `json:"provider,omitempty"`
	Pool       string       `json:"pool,omitempty"`
	Nodes      []NodeStatus `json:"nodes"`
	HoldFailed bool         `json:"hold_failed"`
	HeldNodes  []string     `json:"held_nodes,omitempty"`
}

// HandleRequest handles one node request from acceptance to fulfilment (or decline),
// and cleans up everything it created when Zuul deletes the request or an operator
// cancels the workflow.
func HandleRequest(ctx workflow.Context, in RequestInput) (RequestResult, error) {
	r := &requestRun{in: in}
	if err := r.setup(ctx); err != nil {
		return RequestResult{}, err
	}
	return r.run(ctx)
}

type requestRun struct {
	in RequestInput
	// owner identifies this run chain as the owner of ZooKeeper locks and ledger holds.
	owner, chain string
	plan         activities.Plan
	status       RequestStatus
	gone         bool
	hold         *HoldFailed
	// acquired is true while the request holds (or waits for) capacity in the ledger.
	acquired bool
	// reused marks the nodes (by position) that are ready nodes taken over, not
	// launched: they are given back, not deleted, when the request ends without them.
	reused []bool
	// cancels stop the launch coroutines when the request is deleted.
	cancels []workflow.CancelFunc
	logger  log.Logger
	// eventTagged is true once the logger carries the request's event id.
	eventTagged bool
	// lean is true for runs of version 1 of changeLeanRequest.
	lean bool
}

func (r *requestRun) setup(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	r.chain = info.FirstRunID
	r.owner = names.LockOwner(info.WorkflowExecution.ID, r.chain)
	r.logger = log.With(workflow.GetLogger(ctx), "request_id", r.in.RequestID)
	r.hold = r.in.Hold
	r.status = RequestStatus{RequestID: r.in.RequestID, Phase: PhasePlanning, Nodes: []NodeStatus{}, HoldFailed: r.hold != nil}
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

// run goes through the phases of a request: plan, wait for capacity, accept, launch,
// fulfil. Each phase returns done=true with the workflow's result when the request
// ends there.
func (r *requestRun) run(ctx workflow.Context) (RequestResult, error) {
	// lctx is cancelled when Zuul deletes the request or an operator cancels us.
	var lctx workflow.Context
	var nodeIDs []string
	r.lean = workflow.GetVersion(ctx, changeLeanRequest, workflow.DefaultVersion, 1) == 1
	for {
		if res, done, err := r.planPhase(ctx); done {
			return res, err
		}
		if lctx == nil {
			lctx = r.watchDeleted(ctx)
		}
		if res, done, err := r.waitForCapacity(ctx, lctx); done {
			return res, err
		}
		var res RequestResult
		var done, replan bool
		var err error
		nodeIDs, res, done, replan, err = r.accept(ctx)
		if done {
			return res, err
		}
		if !replan {
			break
		}
	}
	if res, done, err := r.launch(ctx, lctx, nodeIDs); done {
		return res, err
	}
	return r.fulfil(ctx, nodeIDs)
}

func (r *requestRun) upsert(ctx workflow.Context, updates ...temporal.SearchAttributeUpdate) {
	if !r.in.SearchAttributes {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		r.logger.Warn("upserting search attributes", "error", err)
	}
}

// setPhase records the workflow's phase for the status query and logs the change.
// Only phases worth searching for are indexed (each index update is a visibility write
// on the server): launching and the final outcomes.
func (r *requestRun) setPhase(ctx workflow.Context, phase string) {
	if r.status.Phase != phase {
		r.logger.Info("phase", "phase", phase)
	}
	r.status.Phase = phase
	switch phase {
	case OutcomeFulfilled, OutcomeDeclined, OutcomeSkipped, OutcomeGone, OutcomeCancelled:
		r.upsert(ctx, SAState.ValueSet(phase))
	}
}

// planPhase plans the request, waiting while its tenant is at its limit.
func (r *requestRun) planPhase(ctx workflow.Context) (RequestResult, bool, error) {
	for deferrals := 0; ; deferrals++ {
		in := activities.PlanInput{RequestID: r.in.RequestID, Owner: r.owner}
		if r.lean {
			in.Acquire = &activities.AcquireTarget{
				TaskQueue: r.in.TaskQueue, WorkflowType: LedgerWorkflowType, Signal: SignalAcquire,
				Holder: workflow.GetInfo(ctx).WorkflowExecution.ID, Chain: r.chain,
			}
		}
		err := workflow.ExecuteLocalActivity(zkLocal(ctx), a.PlanRequest, in).Get(ctx, &r.plan)
		if err != nil {
			return RequestResult{}, true, err
		}
		if r.plan.Decision != activities.DecisionDefer {
			break
		}
		// The tenant is at its limit: the request stays "requested" (Nodepool defers,
		// it does not decline) and is planned again once nodes may have gone.
		r.setPhase(ctx, PhaseDeferred)
		r.status.Reason = r.plan.Reason
		if deferrals >= maxDeferrals {
			// Keep the history short: a new run continues waiting.
			return RequestResult{}, true, workflow.NewContinueAsNewError(ctx, RequestWorkflowType, r.nextInput())
		}
		if err := workflow.Sleep(ctx, deferInterval); err != nil {
			res, derr := r.decline(ctx, r.plan.DeclinePools, "launch cancelled by an operator")
			if derr != nil {
				return res, true, derr
			}
			res.Outcome = OutcomeCancelled
			return res, true, temporal.NewCanceledError("launch cancelled by an operator")
		}
	}
	r.status.Reason = r.plan.Reason
	switch r.plan.Decision {
	case activities.DecisionSkip:
		r.setPhase(ctx, OutcomeSkipped)
		return RequestResult{Outcome: OutcomeSkipped, Reason: r.plan.Reason}, true, nil
	case activities.DecisionDecline:
		res, err := r.decline(ctx, r.plan.DeclinePools, r.plan.Reason)
		return res, true, err
	}
	if r.plan.Request.EventID != "" && !r.eventTagged {
		r.logger = log.With(r.logger, "event_id", r.plan.Request.EventID)
		r.eventTagged = true
	}
	r.status.Provider, r.status.Pool = r.plan.Provider, r.plan.Pool
	r.status.Nodes = r.status.Nodes[:0]
	for i, n := range r.plan.Nodes {
		r.status.Nodes = append(r.status.Nodes, NodeStatus{Index: i, Label: n.Label, State: NodeWaiting})
	}
	return RequestResult{}, false, nil
}

func (r *requestRun) nextInput() RequestInput {
	next := r.in
	next.Hold = r.hold
	return next
}

// watchDeleted returns a context that is cancelled when Zuul deletes the request (the
// poller signals it) or an operator cancels the workflow.
func (r *requestRun) watchDeleted(ctx workflow.Context) workflow.Context {
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
	return lctx
}

// waitForCapacity asks the pool's ledger for the request's capacity and waits for the
// grant.
func (r *requestRun) waitForCapacity(ctx, lctx workflow.Context) (RequestResult, bool, error) {
	if r.plan.Launches() == 0 {
		// Ready nodes serve the whole request: no new capacity is needed.
		return RequestResult{}, false, nil
	}
	r.setPhase(ctx, PhaseWaiting)
	r.acquired = true
	granted, reason, err := r.acquire(ctx, lctx)
	if err != nil {
		// Continue as new: the next run plans again and keeps its place in the queue.
		return RequestResult{}, true, err
	}
	if granted {
		return RequestResult{}, false, nil
	}
	r.releaseCapacity(ctx, nil)
	switch {
	case ctx.Err() != nil:
		res, err := r.abandon(ctx, nil)
		return res, true, err
	case r.gone:
		r.setPhase(ctx, OutcomeGone)
		return RequestResult{Outcome: OutcomeGone}, true, nil
	case reason != "":
		res, err := r.decline(ctx, []string{r.plan.PoolID}, reason)
		return res, true, err
	}
	r.setPhase(ctx, OutcomeSkipped)
	return RequestResult{Outcome: OutcomeSkipped, Reason: "request was taken elsewhere while waiting for capacity"}, true, nil
}

// acquire asks the pool's ledger for the request's capacity and waits for the answer.
// It returns granted=false with a reason when the ledger refuses, and with no reason
// when the request went away, was taken elsewhere, or the workflow was cancelled; a
// continue-as-new error when the run has waited long enough.
func (r *requestRun) acquire(ctx, lctx workflow.Context) (bool, string, error) {
	acq := r.plan.Acquire(workflow.GetInfo(ctx).WorkflowExecution.ID, r.chain, r.in.RequestID)
	if !r.plan.Acquired {
		r.signalLedger(ctx, SignalAcquire, acq)
	}
	capCh := workflow.GetSignalChannel(ctx, SignalCapacity)
	updCh := workflow.GetSignalChannel(ctx, SignalRequestUpdated)
	var grant Grant
	// mine reports whether an answer is for this run chain (not an earlier, ended one).
	poolLedger := names.LedgerWorkflowID(r.in.TaskQueue, r.plan.Provider, r.plan.Pool)
	mine := func(g Grant) bool {
		return (g.Chain == "" || g.Chain == chainTag(r.chain)) && (g.Ledger == "" || g.Ledger == poolLedger)
	}
	receiveGrant := func() bool {
		for {
			grant = Grant{}
			if !capCh.ReceiveAsync(&grant) {
				return false
			}
			if mine(grant) {
				return true
			}
		}
	}
	for round := 1; ; round++ {
		got, fired := false, false
		tctx, cancelTimer := workflow.WithCancel(lctx)
		timer := workflow.NewTimer(tctx, capacityWatchdog)
		sel := workflow.NewSelector(lctx)
		sel.AddReceive(capCh, func(c workflow.ReceiveChannel, _ bool) {
			grant = Grant{}
			c.Receive(lctx, &grant)
			got = mine(grant) || receiveGrant()
		})
		sel.AddReceive(updCh, func(c workflow.ReceiveChannel, _ bool) {
			var upd RequestUpdated
			c.Receive(lctx, &upd)
			if upd.RelativePriority != acq.Order.RelativePriority {
				r.logger.Info("relative priority revised", "relative_priority", upd.RelativePriority)
				acq.Order.RelativePriority = upd.RelativePriority
				r.plan.Order.RelativePriority = upd.RelativePriority
				r.signalLedger(ctx, SignalAcquire, acq)
			}
		})
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.AddReceive(lctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(lctx)
		cancelTimer()
		if got {
			return grant.Granted, grant.Reason, nil
		}
		if lctx.Err() != nil {
			return false, "", nil
		}
		if !fired {
			continue
		}
		var chk activities.CheckRequestResult
		if err := workflow.ExecuteLocalActivity(zkLocal(lctx), a.CheckRequest, r.in.RequestID).Get(lctx, &chk); err != nil {
			continue
		}
		if !chk.Exists {
			r.gone = true
			return false, "", nil
		}
		if chk.State != "requested" {
			return false, "", nil
		}
		if round%waitRounds == 0 {
			if receiveGrant() {
				return grant.Granted, grant.Reason, nil
			}
			if r.quiet(updCh) {
				return false, "", workflow.NewContinueAsNewError(ctx, RequestWorkflowType, r.nextInput())
			}
		}
		if round%reacquireRounds == 0 {
			r.signalLedger(ctx, SignalAcquire, acq)
		}
	}
}

// quiet reports whether no signal waits in ch (so continuing as new loses nothing).
func (r *requestRun) quiet(ch workflow.ReceiveChannel) bool { return ch.Len() == 0 }

// signalLedger signals the pool's ledger, starting it through an activity when it is
// not running.
func (r *requestRun) signalLedger(ctx workflow.Context, name string, payload any) {
	r.signalLedgerOf(ctx, names.LedgerWorkflowID(r.in.TaskQueue, r.plan.Provider, r.plan.Pool), r.plan.Pool, name, payload)
}

// signalLedgerOf signals ledger id (of pool, or of the provider's launches when pool
// is ""), starting it through an activity when it is not running.
func (r *requestRun) signalLedgerOf(ctx workflow.Context, id, pool, name string, payload any) {
	ctx = disconnected(ctx)
	if err := workflow.SignalExternalWorkflow(ctx, id, "", name, payload).Get(ctx, nil); err == nil {
		return
	}
	in := r.ledgerSignal(id, pool, name)
	switch p := payload.(type) {
	case LedgerAcquire:
		in.Payload.Acquire = &p
	case LedgerBind:
		in.Payload.Bind = &p
	case LedgerRelease:
		in.Payload.Release = &p
	}
	err := workflow.ExecuteActivity(zkOptions(ctx), a.SignalLedger, in).Get(ctx, nil)
	if err != nil {
		r.logger.Warn("signalling ledger", "signal", name, "error", err)
	}
}

// ledgerSignal is the signal name to ledger id (of pool, or of the provider's
// launches when pool is ""), without its payload, for an activity that starts the
// ledger when it is not running.
func (r *requestRun) ledgerSignal(id, pool, name string) activities.SignalLedgerInput {
	return activities.SignalLedgerInput{
		WorkflowID:   id,
		WorkflowType: LedgerWorkflowType,
		StartInput:   activities.LedgerStart{Provider: r.plan.Provider, Pool: pool, TaskQueue: r.in.TaskQueue},
		Signal:       name,
	}
}

// releaseCapacity returns capacity to the ledger: the listed nodes, or the whole
// unbound grant when nodeIDs is empty.
func (r *requestRun) releaseCapacity(ctx workflow.Context, nodeIDs []string) {
	if r.plan.Provider == "" || (len(nodeIDs) == 0 && !r.acquired) {
		return
	}
	if len(nodeIDs) == 0 {
		r.acquired = false
	}
	ctx = disconnected(ctx)
	id := names.LedgerWorkflowID(r.in.TaskQueue, r.plan.Provider, r.plan.Pool)
	rel := LedgerRelease{Holder: workflow.GetInfo(ctx).WorkflowExecution.ID, RequestID: r.in.RequestID, NodeIDs: nodeIDs}
	if err := workflow.SignalExternalWorkflow(ctx, id, "", SignalRelease, rel).Get(ctx, nil); err != nil {
		r.logger.Warn("releasing capacity", "error", err)
	}
}

// accept locks the request, sets it pending and creates its nodes (taking ready nodes
// over where the plan counts on them), then binds the created nodes to the grant.
// replan is true when the ready nodes the plan counted on went to another request.
func (r *requestRun) accept(ctx workflow.Context) (nodeIDs []string, res RequestResult, done, replan bool, err error) {
	r.setPhase(ctx, PhaseAccepting)
	holder := workflow.GetInfo(ctx).WorkflowExecution.ID
	in := activities.AcceptInput{RequestID: r.in.RequestID, Owner: r.owner, Plan: r.plan}
	if r.lean && r.acquired {
		ledger := names.LedgerWorkflowID(r.in.TaskQueue, r.plan.Provider, r.plan.Pool)
		in.Bind = &activities.BindTarget{Holder: holder, Ledger: r.ledgerSignal(ledger, r.plan.Pool, SignalBind)}
	}
	var acc activities.AcceptResult
	dctx := disconnected(ctx)
	if r.lean && len(r.plan.Nodes) <= acceptLocalMax {
		err = workflow.ExecuteLocalActivity(acceptLocal(dctx, len(r.plan.Nodes)), a.AcceptRequest, in).Get(ctx, &acc)
	} else {
		err = workflow.ExecuteActivity(acceptOptions(dctx, len(r.plan.Nodes)), a.AcceptRequest, in).Get(ctx, &acc)
	}
	if err != nil {
		r.releaseCapacity(ctx, nil)
		return nil, RequestResult{}, true, false, err
	}
	if acc.Replan {
		r.logger.Info("ready nodes went elsewhere; planning again")
		r.releaseCapacity(ctx, nil)
		return nil, RequestResult{}, false, true, nil
	}
	if !acc.Accepted {
		if len(acc.NodeIDs) > 0 {
			// The request vanished while its nodes were being created.
			r.deleteNodes(ctx, acc.NodeIDs)
		}
		r.releaseCapacity(ctx, nil)
		if acc.Gone {
			r.setPhase(ctx, OutcomeGone)
			return nil, RequestResult{Outcome: OutcomeGone, Reason: acc.Reason}, true, false, nil
		}
		r.setPhase(ctx, OutcomeSkipped)
		return nil, RequestResult{Outcome: OutcomeSkipped, Reason: acc.Reason}, true, false, nil
	}
	r.reused = make([]bool, len(acc.NodeIDs))
	copy(r.reused, acc.Reused)
	bind := LedgerBind{Holder: holder, RequestID: r.in.RequestID, Nodes: map[string]drivers.Resources{}}
	for i, id := range acc.NodeIDs {
		r.status.Nodes[i].NodeID = id
		if !r.reused[i] {
			bind.Nodes[id] = r.plan.Nodes[i].Need
		}
	}
	if r.acquired && in.Bind == nil {
		r.signalLedger(ctx, SignalBind, bind)
	}
	return acc.NodeIDs, RequestResult{}, false, false, nil
}

// launchSlots waits for n launch slots from the provider's concurrency ledger. It
// returns false with no reason when the request went away or the workflow was
// cancelled meanwhile, and with the ledger's reason when it refused.
func (r *requestRun) launchSlots(ctx, lctx workflow.Context, n int) (bool, string) {
	id := names.ConcurrencyWorkflowID(r.in.TaskQueue, r.plan.Provider)
	acq := LedgerAcquire{
		Holder: workflow.GetInfo(ctx).WorkflowExecution.ID, Chain: r.chain, RequestID: r.in.RequestID, Order: r.plan.Order,
		Need: drivers.Resources{"launches": int64(n)}, Limits: drivers.Resources{"launches": int64(r.plan.MaxConcurrency)},
	}
	r.status.Phase = PhaseWaitingForLaunchSlots
	r.signalLedgerOf(ctx, id, "", SignalAcquire, acq)
	capCh := workflow.GetSignalChannel(ctx, SignalCapacity)
	for {
		var g Grant
		timedOut := false
		tctx, cancelTimer := workflow.WithCancel(lctx)
		sel := workflow.NewSelector(lctx)
		sel.AddReceive(capCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(lctx, &g) })
		sel.AddFuture(workflow.NewTimer(tctx, reacquireRounds*capacityWatchdog), func(workflow.Future) { timedOut = true })
		sel.AddReceive(lctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(lctx)
		cancelTimer()
		switch {
		case lctx.Err() != nil:
			r.releaseLaunchSlots(ctx)
			return false, ""
		case timedOut:
			r.signalLedgerOf(ctx, id, "", SignalAcquire, acq)
		case g.Ledger == id && (g.Chain == "" || g.Chain == chainTag(r.chain)):
			r.status.Phase = PhaseLaunching
			return g.Granted, g.Reason
		}
	}
}

// releaseLaunchSlots gives the request's launch slots back.
func (r *requestRun) releaseLaunchSlots(ctx workflow.Context) {
	ctx = disconnected(ctx)
	id := names.ConcurrencyWorkflowID(r.in.TaskQueue, r.plan.Provider)
	rel := LedgerRelease{Holder: workflow.GetInfo(ctx).WorkflowExecution.ID, RequestID: r.in.RequestID}
	if err := workflow.SignalExternalWorkflow(ctx, id, "", SignalRelease, rel).Get(ctx, nil); err != nil {
		r.logger.Warn("releasing launch slots", "error", err)
	}
}

// readyInStep reports whether the create step that completes a launch also writes
// the node ready (nodes that need no scan, in version 1 of changeLeanRequest).
func (r *requestRun) readyInStep() bool { return r.lean && !r.plan.HostKeyChecking }

func (r *requestRun) isReused(i int) bool { return i < len(r.reused) && r.reused[i] }

// indexedNodeIDs returns the node ids that fit the search attribute budget.
func indexedNodeIDs(ids []string) []string {
	size := 0
	for i, id := range ids {
		size += len(id) + 3
		if size > saBudget {
			return ids[:i]
		}
	}
	return ids
}

// launch runs every node's launch in parallel.
func (r *requestRun) launch(ctx, lctx workflow.Context, nodeIDs []string) (RequestResult, bool, error) {
	r.setPhase(ctx, PhaseLaunching)
	r.upsert(ctx, SAProvider.ValueSet(r.plan.Provider), SAPool.ValueSet(r.plan.Pool),
		SANodeID.ValueSet(indexedNodeIDs(nodeIDs)), SAState.ValueSet(PhaseLaunching))
	ok := make([]bool, len(r.plan.Nodes))
	launches := 0
	for i := range r.plan.Nodes {
		if r.isReused(i) {
			r.status.Nodes[i].State = NodeReady
			ok[i] = true
		} else {
			launches++
		}
	}
	// With max-concurrency, the request takes launch slots from its provider's ledger
	// (all at once, so requests never deadlock holding part of what they need) and
	// runs at most that many launches at a time.
	slots := launches
	if r.plan.MaxConcurrency > 0 && launches > 0 {
		slots = min(launches, r.plan.MaxConcurrency)
		if granted, reason := r.launchSlots(ctx, lctx, slots); !granted {
			if reason == "" {
				res, err := r.abandon(ctx, nodeIDs)
				return res, true, err
			}
			r.deleteNodes(ctx, nodeIDs)
			res, err := r.decline(ctx, []string{r.plan.PoolID}, reason)
			return res, true, err
		}
		defer r.releaseLaunchSlots(ctx)
	}
	sem := workflow.NewSemaphore(ctx, int64(max(slots, 1)))
	wg := workflow.NewWaitGroup(ctx)
	for i := range r.plan.Nodes {
		if r.isReused(i) {
			continue
		}
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
			if err := sem.Acquire(nctx, 1); err != nil {
				return
			}
			defer sem.Release(1)
			ok[i] = r.launchNode(gctx, nctx, i)
		})
	}
	wg.Wait(ctx)

	if r.gone || ctx.Err() != nil {
		res, err := r.abandon(ctx, nodeIDs)
		return res, true, err
	}
	for i := range ok {
		if !ok[i] {
			r.deleteNodes(ctx, nodeIDs)
			ns := r.status.Nodes[i]
			res, err := r.decline(ctx, []string{r.plan.PoolID},
				fmt.Sprintf("launch of node %s (%s) failed: %s", ns.NodeID, ns.Label, ns.Error))
			return res, true, err
		}
	}
	return RequestResult{}, false, nil
}

// fulfil hands the ready nodes to Zuul.
func (r *requestRun) fulfil(ctx workflow.Context, nodeIDs []string) (RequestResult, error) {
	r.setPhase(ctx, PhaseFulfilling)
	var ful activities.FulfillResult
	err := workflow.ExecuteLocalActivity(zkLocal(disconnected(ctx)), a.FulfillRequest,
		activities.FulfillInput{RequestID: r.in.RequestID, Owner: r.owner, NodeIDs: nodeIDs}).Get(ctx, &ful)
	if err != nil || ful.Gone {
		if err != nil {
			r.logger.Warn("fulfilling request", "error", err)
		}
		r.gone = r.gone || ful.Gone
		return r.abandon(ctx, nodeIDs)
	}
	r.setPhase(ctx, OutcomeFulfilled)
	return RequestResult{Outcome: OutcomeFulfilled, State: "fulfilled", NodeIDs: nodeIDs, HeldNodes: r.status.HeldNodes}, nil
}

// launchNode applies the attempt policy to node i: each attempt runs the create state
// machine; a failed attempt's instance is disposed of before the next; quota and
// capacity errors are retried after a wait without using an attempt. It returns true
// when the node is ready.
func (r *requestRun) launchNode(ctx, lctx workflow.Context, i int) bool {
	ns := &r.status.Nodes[i]
	np := r.plan.Nodes[i]
	dctx := disconnected(ctx)
	quotaAborts, capacityRetries := 0, 0
	var from *drivers.CreateState
	for attempt := 1; attempt <= r.plan.LaunchRetries; {
		if lctx.Err() != nil {
			return false
		}
		ns.Attempt, ns.State, ns.Step, ns.Error = attempt, NodeBuilding, "", ""
		attemptStarted := workflow.Now(ctx)
		st, err := r.runCreate(ctx, lctx, i, attempt, from)
		from = nil
		if lctx.Err() != nil {
			return false
		}
		if err == nil && r.plan.HostKeyChecking {
			err = r.scan(dctx, ns, st.Instance)
		}
		if err == nil && !r.readyInStep() {
			err = workflow.ExecuteLocalActivity(zkLocal(dctx), a.NodeReady, activities.NodeReadyInput{
				NodeID: ns.NodeID, Owner: r.owner, Instance: *st.Instance, Need: np.Need,
			}).Get(dctx, nil)
		}
		if err == nil {
			ns.State = NodeReady
			r.recordLaunch(ctx, st.Instance.AZ, "", attemptStarted)
			return true
		}
		ns.Error = err.Error()
		kind := errorType(err)
		r.recordLaunch(ctx, "", kind, attemptStarted)
		r.logger.Warn("launch attempt failed", "node_id", ns.NodeID, "attempt", attempt, "error", err)
		if kind == activities.ErrTypeLockLost || kind == activities.ErrTypeNodeGone {
			ns.State = NodeFailed
			return false
		}
		if f, ok := stepFailure(err); ok && kind == activities.ErrTypeCapacity && f.RetryAfterSec > 0 && f.State != nil &&
			capacityRetries < maxCapacityRetries {
			// No capacity anywhere the driver may try, and nothing was created: the
			// attempt goes on from where the driver stands once the cloud may have
			// capacity again.
			wait := capacityBackoff(capacityRetries, seconds(f.RetryAfterSec))
			capacityRetries++
			r.logger.Info("no cloud capacity; waiting", "node_id", ns.NodeID, "wait", wait)
			from = f.State
			_ = workflow.Sleep(lctx, wait)
			continue
		}
		r.disposeInstance(ctx, i, attempt, err)
		switch {
		case kind == activities.ErrTypeQuota && quotaAborts < maxQuotaAborts:
			quotaAborts++
			_ = workflow.Sleep(lctx, quotaBackoff)
			continue
		case kind == activities.ErrTypeCapacity && capacityRetries < maxCapacityRetries:
			// The instance was lost to a capacity shortage (a spot instance reclaimed
			// while booting, say): the attempt is over, but it is not counted.
			wait := capacityBackoff(capacityRetries, 0)
			capacityRetries++
			r.logger.Info("instance lost to a capacity shortage; relaunching", "node_id", ns.NodeID, "wait", wait)
			_ = workflow.Sleep(lctx, wait)
			continue
		case kind == activities.ErrTypePermanent:
			ns.State = NodeFailed
			return false
		}
		attempt++
	}
	ns.State = NodeFailed
	return false
}

// scan reads the node's SSH host keys into inst (or checks its port) within the
// provider's boot-timeout. A node that does not answer fails the attempt.
func (r *requestRun) scan(ctx workflow.Context, ns *NodeStatus, inst *drivers.Instance) error {
	ns.Step = "scanning host keys"
	var res activities.ScanNodeResult
	err := workflow.ExecuteActivity(scanOptions(ctx, seconds(r.plan.BootTimeoutSec)), a.ScanNode, activities.ScanNodeInput{
		NodeID: ns.NodeID, Host: inst.InterfaceIP, Port: inst.ConnectionPort, ConnectionType: inst.ConnectionType,
		TimeoutSec: r.plan.BootTimeoutSec,
	}).Get(ctx, &res)
	if err != nil {
		return err
	}
	inst.HostKeys = res.HostKeys
	return nil
}

// recordLaunch reports a launch attempt's result and duration to the worker's metrics
// (statsd and Prometheus; see package metrics). errType is empty for a ready node.
func (r *requestRun) recordLaunch(ctx workflow.Context, az, errType string, started time.Time) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{
		names.TagProvider: r.plan.Provider, names.TagAZ: az, names.TagRequestor: r.plan.Request.Requestor,
		names.TagErrorType: errType,
	}).Timer(names.LaunchTimer).Record(workflow.Now(ctx).Sub(started))
}

// capacityBackoff is the wait before retrying after the n-th capacity error (from 0):
// the cloud's hint when it gave one, else doubling from capacityBackoffMin.
func capacityBackoff(n int, hint time.Duration) time.Duration {
	if hint > 0 {
		return min(hint, capacityBackoffMax)
	}
	d := capacityBackoffMin
	for range n {
		d *= 2
		if d >= capacityBackoffMax {
			return capacityBackoffMax
		}
	}
	return d
}

// stepFailure returns the details a failed step attached.
func stepFailure(err error) (activities.StepFailure, bool) {
	var appErr *temporal.ApplicationError
	var f activities.StepFailure
	if errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&f) == nil {
		return f, true
	}
	return f, false
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
// a held node when an operator asked to hold failed instances. An instance whose
// deletion fails is never forgotten: it gets a node record of its own in state
// "failed", which the deletion workflow retries until the cloud confirms.
func (r *requestRun) disposeInstance(ctx workflow.Context, i, attempt int, cause error) {
	ns := &r.status.Nodes[i]
	dctx := disconnected(ctx)
	if ns.ExternalID == "" {
		// The step may have failed after the cloud assigned an id that the workflow
		// never saw (a retried step starts from its original input): the node record
		// has it.
		var rec activities.NodeInstanceResult
		if err := workflow.ExecuteLocalActivity(zkLocal(dctx), a.NodeInstance,
			activities.NodeRefInput{NodeID: ns.NodeID, Owner: r.owner}).Get(dctx, &rec); err == nil {
			ns.ExternalID = rec.ExternalID
		}
	}
	if ns.ExternalID == "" {
		return
	}
	record := func(state, comment string, expiration int) (string, error) {
		var res activities.HoldInstanceResult
		err := workflow.ExecuteActivity(zkOptions(dctx), a.HoldInstance, activities.HoldInstanceInput{
			Provider: r.plan.Provider, Pool: r.plan.Pool, PoolID: r.plan.PoolID, Label: ns.Label,
			ExternalID: ns.ExternalID, Comment: comment, HoldExpiration: expiration,
			TenantName: r.plan.Request.TenantName, Requestor: r.plan.Request.Requestor, State: state,
		}).Get(dctx, &res)
		return res.NodeID, err
	}
	if r.hold != nil {
		comment := r.hold.Comment
		if comment == "" {
			comment = fmt.Sprintf("held failed launch of node %s attempt %d: %v", ns.NodeID, attempt, cause)
		}
		id, err := record(activities.InstanceHeld, comment, r.hold.HoldExpiration)
		if err == nil {
			r.status.HeldNodes = append(r.status.HeldNodes, id)
			ns.ExternalID = ""
			return
		}
		r.logger.Warn("holding failed instance", "error", err)
	}
	poll := seconds(r.plan.PollIntervalSec)
	err := runDelete(dctx, r.plan.Provider, r.plan.ProviderTaskQueue, ns.ExternalID, ns.NodeID, poll, func(step string) { ns.Step = step })
	if err != nil {
		r.logger.Warn("deleting instance of failed attempt", "node_id", ns.NodeID, "error", err)
		comment := fmt.Sprintf("instance of failed launch of node %s attempt %d; deleting it failed: %v", ns.NodeID, attempt, err)
		if _, rerr := record(activities.InstanceFailed, comment, 0); rerr != nil {
			// Still on the node record; the leak sweep is the last resort.
			r.logger.Error("recording undeleted instance", "external_id", ns.ExternalID, "error", rerr)
		}
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
		if r.isReused(i) {
			// A ready node taken over for the request goes back to the pool.
			if err := workflow.ExecuteLocalActivity(zkLocal(dctx), a.ReturnNode, activities.ReturnNodeInput{
				NodeID: id, Owner: r.owner, RequestID: r.in.RequestID,
			}).Get(dctx, nil); err != nil {
				r.logger.Warn("returning ready node", "node_id", id, "error", err)
			}
			continue
		}
		if err := runDelete(dctx, r.plan.Provider, r.plan.ProviderTaskQueue, ns.ExternalID, id, poll, func(step string) { ns.Step = step }); err != nil {
			r.logger.Warn("deleting instance", "node_id", id, "error", err)
			_ = workflow.ExecuteLocalActivity(zkLocal(dctx), a.ReleaseNode, activities.NodeRefInput{NodeID: id, Owner: r.owner}).Get(dctx, nil)
			continue
		}
		ns.ExternalID = ""
		if err := workflow.ExecuteLocalActivity(zkLocal(dctx), a.RemoveNode, activities.NodeRefInput{NodeID: id, Owner: r.owner}).Get(dctx, nil); err != nil {
			r.logger.Warn("removing node", "node_id", id, "error", err)
			continue
		}
		ns.State = NodeDeleted
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
	r.setPhase(dctx, PhaseCleaningUp)
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
	_ = workflow.ExecuteLocalActivity(zkLocal(dctx), a.ReleaseRequest, activities.RequestRefInput{RequestID: r.in.RequestID, Owner: r.owner}).Get(dctx, nil)
	r.setPhase(dctx, OutcomeGone)
	return RequestResult{Outcome: OutcomeGone, HeldNodes: r.status.HeldNodes}, nil
}

func (r *requestRun) decline(ctx workflow.Context, pools []string, reason string) (RequestResult, error) {
	dctx := disconnected(ctx)
	var res activities.DeclineResult
	err := workflow.ExecuteLocalActivity(lockWaitLocal(dctx), a.DeclineRequest, activities.DeclineInput{
		RequestID: r.in.RequestID, Owner: r.owner, PoolIDs: pools, Reason: reason,
	}).Get(dctx, &res)
	if err != nil {
		return RequestResult{}, err
	}
	r.status.Reason = reason
	r.setPhase(dctx, OutcomeDeclined)
	return RequestResult{Outcome: OutcomeDeclined, State: res.State, Reason: reason, HeldNodes: r.status.HeldNodes}, nil
}
