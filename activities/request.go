package activities

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// PlanRequest reads a request and decides whether and where this launcher serves it.
// With in.Acquire, a plan to launch nodes also asks the pool's ledger for them; a
// failed signal fails the activity, whose retry plans and asks again (a repeated
// acquire is answered as the first).
func (a *Activities) PlanRequest(ctx context.Context, in PlanInput) (Plan, error) {
	plan, err := a.planRequest(ctx, in)
	if err != nil || in.Acquire == nil || plan.Decision != DecisionLaunch || plan.Launches() == 0 {
		return plan, err
	}
	t := in.Acquire
	acq := plan.Acquire(t.Holder, t.Chain, in.RequestID)
	err = a.signalLedger(ctx, SignalLedgerInput{
		WorkflowID:   names.LedgerWorkflowID(t.TaskQueue, plan.Provider, plan.Pool),
		WorkflowType: t.WorkflowType,
		StartInput:   LedgerStart{Provider: plan.Provider, Pool: plan.Pool, TaskQueue: t.TaskQueue},
		Signal:       t.Signal,
		Payload:      LedgerSignal{Acquire: &acq},
	})
	if err != nil {
		return Plan{}, err
	}
	plan.Acquired = true
	return plan, nil
}

func (a *Activities) planRequest(ctx context.Context, in PlanInput) (Plan, error) {
	req, err := a.zk.GetRequest(ctx, in.RequestID)
	if isNotFound(err) {
		return Plan{Decision: DecisionSkip, Reason: "request no longer exists"}, nil
	}
	if err != nil {
		return Plan{}, fmt.Errorf("reading request %s: %w", in.RequestID, err)
	}
	resume := false
	if req.State == zookeeper.StatePending && in.Owner != "" {
		req, resume, err = a.pendingOfOurs(ctx, req, in.Owner)
		if err != nil {
			return Plan{}, err
		}
		if req == nil {
			return Plan{Decision: DecisionSkip, Reason: "request no longer exists"}, nil
		}
	}
	if req.State != zookeeper.StateRequested && !resume {
		return Plan{Decision: DecisionSkip, Reason: "request is " + string(req.State)}, nil
	}
	registered, err := a.registeredPools(ctx)
	if err != nil {
		return Plan{}, err
	}
	liveIDs := registeredIDs(registered)
	order := OrderKey{Priority: req.Priority(), RelativePriority: req.RelativePriority, Sequence: req.Sequence()}
	info := requestInfo(req)

	type candidate struct {
		prov *ProviderSettings
		pool *PoolSettings
		idx  int
	}
	var candidates []candidate
	var open []string          // our pools that have not declined yet
	lacks := map[string]bool{} // the pools of ours that lack a requested label
	reasons := map[string]string{}
	idx := 0
	for pi := range a.settings.Providers {
		prov := &a.settings.Providers[pi]
		if prov.Idle {
			continue
		}
		for qi := range prov.Pools {
			pool := &prov.Pools[qi]
			idx++
			if names.PoolDeclined(req.DeclinedBy, pool.ID, liveIDs) {
				continue
			}
			open = append(open, pool.ID)
			if !offersAll(pool, req.NodeTypes) {
				lacks[pool.ID] = true
			}
			switch {
			case pool.MaxServers == 0:
				reasons[pool.ID] = "pool is disabled by max-servers"
			case !offersAll(pool, req.NodeTypes):
				reasons[pool.ID] = fmt.Sprintf("node type(s) %v not available", missing(pool, req.NodeTypes))
			default:
				candidates = append(candidates, candidate{prov, pool, idx})
			}
		}
	}
	if len(open) == 0 {
		return Plan{Decision: DecisionSkip, Reason: "every pool of this launcher declined already"}, nil
	}
	if len(req.NodeTypes) == 0 {
		return Plan{Decision: DecisionDecline, Reason: "request has no node types", DeclinePools: open}, nil
	}
	preferred := ""
	if req.Provider != nil {
		preferred = *req.Provider
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		ci, cj := candidates[i], candidates[j]
		if (ci.prov.Name == preferred) != (cj.prov.Name == preferred) {
			return ci.prov.Name == preferred
		}
		if ci.pool.Priority != cj.pool.Priority {
			return ci.pool.Priority < cj.pool.Priority
		}
		return ci.idx < cj.idx
	})
	others, err := a.otherPools(ctx)
	if err != nil {
		return Plan{}, err
	}
	for _, c := range candidates {
		if p, ok := yieldTo(others, req, preferred, c.prov.Name, c.pool.Priority); ok {
			// Another launcher's pool goes first (the request's preferred provider, or
			// a higher priority): leave the request to it while it is online, as
			// Nodepool's pools do, instead of declining.
			return Plan{Decision: DecisionDefer, DeclinePools: []string{c.pool.ID},
				Reason: fmt.Sprintf("pool %s of another launcher goes first", p.ID)}, nil
		}
		plan := Plan{
			Decision:          DecisionLaunch,
			Provider:          c.prov.Name,
			Pool:              c.pool.Name,
			PoolID:            c.pool.ID,
			ProviderTaskQueue: c.prov.TaskQueue,
			LaunchTimeoutSec:  c.prov.LaunchTimeout.Seconds(),
			BootTimeoutSec:    c.prov.BootTimeout.Seconds(),
			LaunchRetries:     max(c.prov.LaunchRetries, 1),
			PollIntervalSec:   a.settings.PollInterval.Seconds(),
			Limits:            c.pool.Limits.Clone(),
			Order:             order,
			Request:           info,
			NoWait:            isMinReady(req),
			MaxConcurrency:    max(c.prov.MaxConcurrency, 0),
			HostKeyChecking:   a.hostKeyChecking(c.prov.Name, c.pool.Name),
			InlineSteps:       c.prov.InlineSteps,
		}
		ok := true
		for _, label := range req.NodeTypes {
			need, err := a.labelNeed(ctx, c.prov.Name, c.pool.Name, label)
			if err != nil {
				if drivers.KindOf(err) == drivers.KindPermanent {
					reasons[c.pool.ID] = fmt.Sprintf("node type %s not available: %v", label, err)
					ok = false
					break
				}
				// The provider cannot answer now (credentials, endpoint, throttling):
				// the request waits and planning is retried, as Nodepool pauses.
				a.logger.Warn("provider unavailable; planning will be retried", "request_id", in.RequestID,
					"event_id", info.EventID, "provider", c.prov.Name, "label", label, "error", err)
				return Plan{}, driverError("reading label quota of "+label, err)
			}
			plan.Nodes = append(plan.Nodes, NodePlan{Label: label, Need: need})
		}
		if !ok {
			continue
		}
		if req.Reuse {
			if err := a.markReuse(ctx, &plan); err != nil {
				return Plan{}, err
			}
		}
		if fits, over := plan.Limits.Fits(nil, plan.Need()); !fits {
			reasons[c.pool.ID] = fmt.Sprintf("it would exceed quota (%s)", strings.Join(over, ", "))
			continue
		}
		if reason, err := a.tenantAtLimit(ctx, req, plan.Need()); err != nil {
			return Plan{}, err
		} else if reason != "" {
			return Plan{Decision: DecisionDefer, Reason: reason, DeclinePools: []string{c.pool.ID}}, nil
		}
		return plan, nil
	}
	if len(lacks) > 0 {
		if p, ok := canServe(others, req); ok {
			// A pool of ours lacks a label, but another launcher's online pool offers
			// them all and has not declined: leave the request to it, as Nodepool's
			// pools do, and decline only once no such pool is left. Our pools that offer
			// every label but cannot serve the request decline it now: the other
			// launchers count them as candidates and yield to them until they do.
			var cannot []string
			for _, id := range open {
				if !lacks[id] && reasons[id] != "" {
					cannot = append(cannot, id)
				}
			}
			if len(cannot) > 0 && !resume {
				var why []string
				for _, id := range cannot {
					why = append(why, id+": "+reasons[id])
				}
				if _, err := a.DeclineRequest(ctx, DeclineInput{RequestID: in.RequestID,
					Owner: cmp.Or(in.Owner, "plan/"+in.RequestID), PoolIDs: cannot, Reason: strings.Join(why, "; ")}); err != nil {
					return Plan{}, err
				}
			}
			return Plan{Decision: DecisionDefer, DeclinePools: open,
				Reason: fmt.Sprintf("node type(s) not offered here; pool %s of another launcher can serve the request", p.ID)}, nil
		}
	}
	var parts []string
	for _, id := range open {
		if r := reasons[id]; r != "" {
			parts = append(parts, id+": "+r)
		}
	}
	return Plan{Decision: DecisionDecline, Reason: strings.Join(parts, "; "), DeclinePools: open}, nil
}

// tenantAtLimit reports why the request's tenant cannot take need more resources now,
// or "" if it can. Usage is the resources of every node of the tenant, in any state and
// provider, as Nodepool counts it. Like Nodepool's, the check is best effort: two
// requests of one tenant planned at the same moment may both pass.
func (a *Activities) tenantAtLimit(ctx context.Context, req *zookeeper.NodeRequest, need drivers.Resources) (string, error) {
	if req.TenantName == nil {
		return "", nil
	}
	limits, ok := a.settings.TenantLimits[*req.TenantName]
	if !ok || len(limits) == 0 {
		return "", nil
	}
	used := drivers.Resources{}
	err := a.forEachNode(ctx, func(n *zookeeper.Node) {
		if n.TenantName != nil && *n.TenantName == *req.TenantName {
			used = used.Add(drivers.Resources(n.ResourceCounts()))
		}
	})
	if err != nil {
		return "", err
	}
	if fits, over := limits.Fits(used, need); !fits {
		return fmt.Sprintf("tenant %s is at its resource limit (%s)", *req.TenantName, strings.Join(over, ", ")), nil
	}
	return "", nil
}

func offersAll(pool *PoolSettings, labels []string) bool {
	return len(missing(pool, labels)) == 0
}

func missing(pool *PoolSettings, labels []string) []string {
	var out []string
	for _, l := range labels {
		if !pool.offers(l) {
			out = append(out, l)
		}
	}
	return out
}

func requestInfo(r *zookeeper.NodeRequest) drivers.RequestInfo {
	info := drivers.RequestInfo{
		ID: r.ID,
		// Distinct labels: a request for a thousand nodes of one label must not put a
		// thousand names into every node's launch.
		Labels:           distinct(r.NodeTypes),
		RequestorData:    r.RequestorData,
		RelativePriority: r.RelativePriority,
	}
	if r.Requestor != nil {
		info.Requestor = *r.Requestor
	}
	if r.EventID != nil {
		info.EventID = *r.EventID
	}
	if r.CreatedTime != nil {
		info.CreatedTime = *r.CreatedTime
	}
	if r.TenantName != nil {
		info.TenantName = *r.TenantName
	}
	return info
}

// CheckRequest reports whether a request still exists.
func (a *Activities) CheckRequest(ctx context.Context, requestID string) (CheckRequestResult, error) {
	req, err := a.zk.GetRequest(ctx, requestID)
	if isNotFound(err) {
		return CheckRequestResult{}, nil
	}
	if err != nil {
		return CheckRequestResult{}, fmt.Errorf("reading request %s: %w", requestID, err)
	}
	return CheckRequestResult{Exists: true, State: string(req.State)}, nil
}

// DeclineRequest adds our pool ids to declined_by and hands the request back
// ("requested"), or fails it when every registered pool has declined it.
func (a *Activities) DeclineRequest(ctx context.Context, in DeclineInput) (DeclineResult, error) {
	path := zookeeper.RequestLockPath(in.RequestID)
	held, err := a.ensureLock(ctx, path, in.Owner)
	if err != nil {
		return DeclineResult{}, fmt.Errorf("locking request %s: %w", in.RequestID, err)
	}
	if !held {
		return DeclineResult{}, lockedRetry("request " + in.RequestID)
	}
	defer a.releaseQuietly(ctx, path, in.Owner)
	var state zookeeper.RequestState
	written, _, err := a.updateRequest(ctx, in.RequestID, nil, func(req *zookeeper.NodeRequest) (bool, error) {
		if req.State != zookeeper.StateRequested && req.State != zookeeper.StatePending {
			return false, nil
		}
		pools, err := a.zk.ListPools(ctx)
		if err != nil {
			return false, fmt.Errorf("listing registered pools: %w", err)
		}
		// Each pool declines under the ids its processes registered (Nodepool's
		// per-process ids), so that the registrations below are all matched.
		for _, pool := range in.PoolIDs {
			for _, id := range names.PoolDeclineIDs(pool, registeredIDs(pools)) {
				if !slices.Contains(req.DeclinedBy, id) {
					req.DeclinedBy = append(req.DeclinedBy, id)
				}
			}
		}
		req.State = zookeeper.StateFailed
		for _, p := range pools {
			if !slices.Contains(req.DeclinedBy, p.ID) {
				req.State = zookeeper.StateRequested
				break
			}
		}
		req.Nodes = []string{}
		req.StateTime = a.unixNow()
		state = req.State
		return true, nil
	})
	if err != nil || !written {
		return DeclineResult{}, err
	}
	a.logger.Info("declined node request", "request_id", in.RequestID, "state", state, "reason", in.Reason)
	return DeclineResult{State: string(state)}, nil
}

// updateRequest applies change to a request and writes it with a version check,
// re-reading and re-applying when someone else wrote in between. req, when not nil, is
// the request as just read. change returns false to write nothing. written reports a
// write, gone that the request no longer exists.
func (a *Activities) updateRequest(ctx context.Context, id string, req *zookeeper.NodeRequest,
	change func(*zookeeper.NodeRequest) (bool, error)) (written, gone bool, err error) {
	_, written, err = a.zk.ModifyRequest(ctx, id, req, change)
	if isNotFound(err) {
		return false, true, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("updating request %s: %w", id, err)
	}
	return written, false, nil
}

// acceptBatch is how many nodes AcceptRequest creates before it records their ids in
// the request. A crash inside a batch leaves at most this many unrecorded, unlocked
// "init" nodes, which the poller's clean-up deletes.
const acceptBatch = 50

// AcceptRequest locks the request, sets it pending and creates its nodes (init, then
// locked, then building, in Nodepool's order). Node ids are recorded in the request's
// nodes as they are created (Zuul reads nodes only once the request is fulfilled), so
// a retried or resumed acceptance adopts the nodes that exist instead of creating more.
func (a *Activities) AcceptRequest(ctx context.Context, in AcceptInput) (AcceptResult, error) {
	res, err := a.acceptRequest(ctx, in)
	if err != nil || in.Bind == nil || !res.Accepted {
		return res, err
	}
	// The grant learns its nodes before the launch starts, as when the workflow sends
	// the bind. A failed signal fails the activity: its retry adopts the same nodes and
	// binds them again (binding is idempotent).
	bind := LedgerBind{Holder: in.Bind.Holder, RequestID: in.RequestID, Nodes: map[string]drivers.Resources{}}
	for i, id := range res.NodeIDs {
		if (i < len(res.Reused) && res.Reused[i]) || i >= len(in.Plan.Nodes) {
			continue
		}
		bind.Nodes[id] = in.Plan.Nodes[i].Need
	}
	sig := in.Bind.Ledger
	sig.Payload = LedgerSignal{Bind: &bind}
	if err := a.signalLedger(ctx, sig); err != nil {
		return AcceptResult{}, err
	}
	return res, nil
}

func (a *Activities) acceptRequest(ctx context.Context, in AcceptInput) (AcceptResult, error) {
	reqLock := zookeeper.RequestLockPath(in.RequestID)
	held, err := a.ensureLock(ctx, reqLock, in.Owner)
	if err != nil {
		return AcceptResult{}, fmt.Errorf("locking request %s: %w", in.RequestID, err)
	}
	if !held {
		return AcceptResult{Reason: "request is locked by someone else"}, nil
	}
	req, err := a.zk.GetRequest(ctx, in.RequestID)
	if isNotFound(err) {
		a.releaseQuietly(ctx, reqLock, in.Owner)
		return AcceptResult{Gone: true, Reason: "request no longer exists"}, nil
	}
	if err != nil {
		return AcceptResult{}, fmt.Errorf("reading request %s: %w", in.RequestID, err)
	}
	// Under our lock, a pending request is ours: accepted by an earlier try.
	declined := false
	if req.State == zookeeper.StateRequested {
		registered, err := a.registeredPools(ctx)
		if err != nil {
			a.releaseQuietly(ctx, reqLock, in.Owner)
			return AcceptResult{}, err
		}
		declined = names.PoolDeclined(req.DeclinedBy, in.Plan.PoolID, registeredIDs(registered))
	}
	if req.State != zookeeper.StatePending && (req.State != zookeeper.StateRequested || declined) {
		a.releaseQuietly(ctx, reqLock, in.Owner)
		return AcceptResult{Reason: "request is " + string(req.State) + " after locking"}, nil
	}
	_, pool, ok := a.settings.Pool(in.Plan.Provider, in.Plan.Pool)
	if !ok {
		return AcceptResult{}, invalidConfig("pool %s of provider %s is not configured", in.Plan.Pool, in.Plan.Provider)
	}
	// Ready nodes the plan counts on are taken over before the request changes, so that
	// a request whose ready nodes went to someone else is planned again untouched.
	claimed := make([]string, len(in.Plan.Nodes))
	var cands map[string][]string
	if in.Plan.Launches() < len(in.Plan.Nodes) {
		if cands, err = a.readyCandidates(ctx, in); err != nil {
			return AcceptResult{}, err
		}
	}
	if req.State != zookeeper.StatePending {
		for i, np := range in.Plan.Nodes {
			if !np.Reuse {
				continue
			}
			id, err := a.claimReady(ctx, in, cands, np.Label, claimed)
			if err != nil {
				return AcceptResult{}, err
			}
			if id == "" {
				for _, c := range claimed {
					if c != "" {
						if err := a.ReturnNode(ctx, ReturnNodeInput{NodeID: c, Owner: in.Owner, RequestID: in.RequestID}); err != nil {
							return AcceptResult{}, err
						}
					}
				}
				a.releaseQuietly(ctx, reqLock, in.Owner)
				return AcceptResult{Replan: true, Reason: "ready nodes were taken by another request"}, nil
			}
			claimed[i] = id
		}
	}
	if req.State != zookeeper.StatePending {
		_, gone, err := a.updateRequest(ctx, in.RequestID, req, func(r *zookeeper.NodeRequest) (bool, error) {
			r.State = zookeeper.StatePending
			r.StateTime = a.unixNow()
			r.Nodes = []string{}
			return true, nil
		})
		if gone {
			a.releaseQuietly(ctx, reqLock, in.Owner)
			return AcceptResult{Gone: true, Reason: "request no longer exists"}, nil
		}
		if err != nil {
			return AcceptResult{}, err
		}
	}
	nodes := slices.Clone(req.Nodes)
	if len(nodes) > len(in.Plan.Nodes) {
		return AcceptResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("request %s records %d nodes for %d node types", in.RequestID, len(nodes), len(in.Plan.Nodes)), ErrTypePermanent, nil)
	}
	newNode := func(i int) *zookeeper.Node {
		np := in.Plan.Nodes[i]
		now := a.unixNow()
		return &zookeeper.Node{
			State:       zookeeper.NodeInit,
			StateTime:   now,
			CreatedTime: now,
			Type:        zookeeper.Labels{np.Label},
			Provider:    in.Plan.Provider,
			Pool:        in.Plan.Pool,
			Launcher:    in.Plan.PoolID,
			AllocatedTo: strPtr(in.RequestID),
			Attributes:  pool.NodeAttributes,
			Resources:   toFloat(np.Need),
			TenantName:  req.TenantName,
			Requestor:   req.Requestor,
			HostKeys:    []string{},
		}
	}
	record := func() (bool, error) {
		_, gone, err := a.updateRequest(ctx, in.RequestID, nil, func(r *zookeeper.NodeRequest) (bool, error) {
			if r.State != zookeeper.StatePending {
				return false, fmt.Errorf("request %s became %s while accepting", in.RequestID, r.State)
			}
			r.Nodes = slices.Clone(nodes)
			return true, nil
		})
		return gone, err
	}
	// Nodes recorded by an earlier try: re-assert them; one that vanished meanwhile
	// (removed by an operator) is replaced.
	replaced := false
	for i, id := range nodes {
		err := a.ensureBuilding(ctx, id, in.Owner)
		if isNodeGone(err) {
			if nodes[i], err = a.zk.CreateNode(ctx, newNode(i)); err != nil {
				return AcceptResult{}, fmt.Errorf("creating node for %s: %w", in.Plan.Nodes[i].Label, err)
			}
			replaced = true
			err = a.ensureBuilding(ctx, nodes[i], in.Owner)
		}
		if err != nil {
			return AcceptResult{}, err
		}
	}
	if replaced {
		if gone, err := record(); gone || err != nil {
			return AcceptResult{Gone: gone, NodeIDs: nodes, Reason: "request no longer exists"}, err
		}
	}
	for len(nodes) < len(in.Plan.Nodes) {
		first := len(nodes)
		for i := first; i < min(first+acceptBatch, len(in.Plan.Nodes)); i++ {
			if claimed[i] == "" && in.Plan.Nodes[i].Reuse {
				// A resumed acceptance: the node it took over before is found again.
				id, err := a.claimReady(ctx, in, cands, in.Plan.Nodes[i].Label, append(slices.Clone(nodes), claimed...))
				if err != nil {
					return AcceptResult{}, err
				}
				claimed[i] = id
			}
			if claimed[i] != "" {
				nodes = append(nodes, claimed[i])
				continue
			}
			id, err := a.zk.CreateNode(ctx, newNode(i))
			if err != nil {
				return AcceptResult{}, fmt.Errorf("creating node for %s: %w", in.Plan.Nodes[i].Label, err)
			}
			nodes = append(nodes, id)
		}
		if gone, err := record(); gone || err != nil {
			if gone {
				a.releaseQuietly(ctx, reqLock, in.Owner)
				return AcceptResult{Gone: true, NodeIDs: nodes[:first], Reason: "request no longer exists"}, nil
			}
			return AcceptResult{}, err
		}
		for _, id := range nodes[first:] {
			if err := a.ensureBuilding(ctx, id, in.Owner); err != nil {
				return AcceptResult{}, err
			}
		}
		activity.RecordHeartbeat(ctx, len(nodes))
		a.logger.Info("created nodes", "request_id", in.RequestID, "event_id", in.Plan.Request.EventID, "nodes", len(nodes), "of", len(in.Plan.Nodes))
	}
	res := AcceptResult{Accepted: true, NodeIDs: nodes}
	for i, np := range in.Plan.Nodes {
		if !np.Reuse {
			continue
		}
		n, err := a.zk.GetNode(ctx, nodes[i])
		if err != nil {
			return AcceptResult{}, fmt.Errorf("reading node %s: %w", nodes[i], err)
		}
		if n.State == zookeeper.NodeReady {
			if res.Reused == nil {
				res.Reused = make([]bool, len(nodes))
			}
			res.Reused[i] = true
		}
	}
	return res, nil
}

// ensureBuilding locks a node of ours and moves it from init to building.
func (a *Activities) ensureBuilding(ctx context.Context, id, owner string) error {
	if err := a.lockNode(ctx, id, owner); err != nil {
		return err
	}
	return a.updateNode(ctx, id, func(n *zookeeper.Node) bool {
		if n.State != zookeeper.NodeInit {
			return false
		}
		n.State = zookeeper.NodeBuilding
		n.StateTime = a.unixNow()
		return true
	})
}

// FulfillRequest releases the node locks, then writes the request "fulfilled" with its
// nodes in node_types order, then releases the request lock. If the request vanished it
// reports Gone and leaves the nodes locked for the caller to clean up.
func (a *Activities) FulfillRequest(ctx context.Context, in FulfillInput) (FulfillResult, error) {
	reqLock := zookeeper.RequestLockPath(in.RequestID)
	req, err := a.zk.GetRequest(ctx, in.RequestID)
	if isNotFound(err) {
		return FulfillResult{Gone: true}, nil
	}
	if err != nil {
		return FulfillResult{}, fmt.Errorf("reading request %s: %w", in.RequestID, err)
	}
	if req.State == zookeeper.StateFulfilled && slices.Equal(req.Nodes, in.NodeIDs) {
		// A retry after the write: finish the release.
		a.releaseQuietly(ctx, reqLock, in.Owner)
		return FulfillResult{}, nil
	}
	held, err := a.ensureLock(ctx, reqLock, in.Owner)
	if err != nil {
		return FulfillResult{}, fmt.Errorf("locking request %s: %w", in.RequestID, err)
	}
	if !held {
		return FulfillResult{}, lockLost("request " + in.RequestID)
	}
	if req.State != zookeeper.StatePending {
		a.logger.Warn("request is no longer pending; not fulfilling it", "request_id", in.RequestID, "event_id", req.EventID, "state", req.State)
		return FulfillResult{Gone: true}, nil
	}
	for _, id := range in.NodeIDs {
		if err := a.zk.ReleaseOwned(ctx, zookeeper.NodeLockPath(id), in.Owner); err != nil && !isNotFound(err) {
			return FulfillResult{}, fmt.Errorf("unlocking node %s: %w", id, err)
		}
	}
	lost := false
	_, gone, err := a.updateRequest(ctx, in.RequestID, req, func(req *zookeeper.NodeRequest) (bool, error) {
		if req.State != zookeeper.StatePending {
			// Someone reset or failed the request while we launched (an operator, or
			// a clean-up that took it for lost): its nodes are no longer wanted.
			lost = true
			return false, nil
		}
		req.Nodes = append([]string{}, in.NodeIDs...)
		req.State = zookeeper.StateFulfilled
		req.StateTime = a.unixNow()
		return true, nil
	})
	if gone || lost {
		if lost {
			a.logger.Warn("request is no longer pending; not fulfilling it", "request_id", in.RequestID, "event_id", req.EventID)
		}
		return FulfillResult{Gone: true}, nil
	}
	if err != nil {
		return FulfillResult{}, err
	}
	a.releaseQuietly(ctx, reqLock, in.Owner)
	a.logger.Info("fulfilled node request", "request_id", in.RequestID, "event_id", req.EventID, "nodes", strings.Join(in.NodeIDs, ","))
	return FulfillResult{}, nil
}

// ReleaseRequest releases our lock on a request.
func (a *Activities) ReleaseRequest(ctx context.Context, in RequestRefInput) error {
	if err := a.zk.ReleaseOwned(ctx, zookeeper.RequestLockPath(in.RequestID), in.Owner); err != nil && !isNotFound(err) {
		return fmt.Errorf("unlocking request %s: %w", in.RequestID, err)
	}
	return nil
}

// pendingOfOurs looks at a pending request on behalf of owner. A request locked by
// owner itself (a run reset to before its acceptance) is resumed. A request locked by
// an ended run chain of owner's workflow (an operator terminated it) is recovered: the
// nodes that run created are marked failed and unlocked, so that the deletion workflow
// deletes them and their instances, and the request is handed back to "requested". Any
// other pending request is returned unchanged. A nil request means it is gone.
func (a *Activities) pendingOfOurs(ctx context.Context, req *zookeeper.NodeRequest, owner string) (*zookeeper.NodeRequest, bool, error) {
	path := zookeeper.RequestLockPath(req.ID)
	locked, holder, err := a.zk.LockHolder(ctx, path)
	if err != nil {
		return nil, false, fmt.Errorf("reading lock of request %s: %w", req.ID, err)
	}
	if locked && holder == owner {
		return req, true, nil
	}
	if !locked || !predecessor(holder, owner) {
		return req, false, nil
	}
	held, err := a.ensureLock(ctx, path, owner)
	if err != nil {
		return nil, false, fmt.Errorf("locking request %s: %w", req.ID, err)
	}
	if !held {
		return req, false, nil
	}
	defer a.releaseQuietly(ctx, path, owner)
	for _, id := range req.Nodes {
		if err := a.failNodeOf(ctx, id, owner); err != nil {
			return nil, false, err
		}
	}
	var out *zookeeper.NodeRequest
	_, gone, err := a.updateRequest(ctx, req.ID, nil, func(r *zookeeper.NodeRequest) (bool, error) {
		out = r
		if r.State != zookeeper.StatePending {
			return false, nil
		}
		r.State = zookeeper.StateRequested
		r.Nodes = []string{}
		r.StateTime = a.unixNow()
		return true, nil
	})
	if gone {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	a.logger.Info("recovered a request from an ended run", "request_id", req.ID, "event_id", req.EventID, "previous_owner", holder, "nodes", len(req.Nodes))
	return out, false, nil
}

// failNodeOf takes a node of an ended run over, marks it failed (it keeps its external
// id, so its instance is deleted with it) and unlocks it for the deletion workflow.
func (a *Activities) failNodeOf(ctx context.Context, id, owner string) error {
	path := zookeeper.NodeLockPath(id)
	held, err := a.ensureLock(ctx, path, owner)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("locking node %s: %w", id, err)
	}
	if !held {
		// Someone else (Zuul, an operator) holds it now: not ours to change.
		return nil
	}
	defer a.releaseQuietly(ctx, path, owner)
	err = a.updateNode(ctx, id, func(n *zookeeper.Node) bool {
		switch n.State {
		case zookeeper.NodeInit, zookeeper.NodeBuilding, zookeeper.NodeReady, zookeeper.NodeTesting:
			n.State = zookeeper.NodeFailed
			n.StateTime = a.unixNow()
			return true
		}
		return false
	})
	if err != nil && !isNodeGone(err) {
		return err
	}
	return nil
}

// distinct returns the distinct strings of list, sorted.
func distinct(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}

// poolsCacheTTL is how long a listing of the registered pools serves plans.
const poolsCacheTTL = 2 * time.Second

// registeredPools returns every registered pool, from a listing at most poolsCacheTTL
// old.
func (a *Activities) registeredPools(ctx context.Context) ([]zookeeper.PoolComponent, error) {
	a.mu.Lock()
	cached, at := a.pools, a.poolsAt
	a.mu.Unlock()
	if cached != nil && a.now().Sub(at) <= poolsCacheTTL {
		return cached, nil
	}
	all, err := a.zk.ListPools(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing registered pools: %w", err)
	}
	if all == nil {
		all = []zookeeper.PoolComponent{}
	}
	a.mu.Lock()
	a.pools, a.poolsAt = all, a.now()
	a.mu.Unlock()
	return all, nil
}

// otherPools returns the pools other launchers registered (every process's
// registration of our pools excluded).
func (a *Activities) otherPools(ctx context.Context) ([]zookeeper.PoolComponent, error) {
	all, err := a.registeredPools(ctx)
	if err != nil {
		return nil, err
	}
	ours := a.settings.PoolIDs()
	others := []zookeeper.PoolComponent{}
	for _, p := range all {
		if !slices.ContainsFunc(ours, func(id string) bool { return names.IsPoolInstance(p.ID, id) }) {
			others = append(others, p)
		}
	}
	return others, nil
}

// registeredIDs returns the ids of the registered pools.
func registeredIDs(pools []zookeeper.PoolComponent) []string {
	ids := make([]string, len(pools))
	for i, p := range pools {
		ids[i] = p.ID
	}
	return ids
}

// yieldTo returns a pool of another launcher that should serve the request before our
// pool (of provider and priority) does: one that is online and not paused, has not
// declined the request, offers every requested label, and either belongs to the
// request's preferred provider (when ours does not) or has a higher priority (a lower
// number) within the same preference.
func yieldTo(others []zookeeper.PoolComponent, req *zookeeper.NodeRequest, preferred, provider string, priority int) (zookeeper.PoolComponent, bool) {
	for _, p := range others {
		if p.Paused || !mayServe(p, req) {
			continue
		}
		theirsPreferred, oursPreferred := preferred != "" && p.ProviderName == preferred, preferred != "" && provider == preferred
		switch {
		case theirsPreferred && !oursPreferred:
			return p, true
		case theirsPreferred == oursPreferred && p.Priority < priority:
			return p, true
		}
	}
	return zookeeper.PoolComponent{}, false
}

// canServe returns a pool of another launcher that may still serve the request: it
// offers every requested label and has not declined. Paused pools count, as in
// Nodepool: they serve the request once they have quota again.
func canServe(others []zookeeper.PoolComponent, req *zookeeper.NodeRequest) (zookeeper.PoolComponent, bool) {
	for _, p := range others {
		if mayServe(p, req) {
			return p, true
		}
	}
	return zookeeper.PoolComponent{}, false
}

// mayServe reports whether pool p offers every label of req and has not declined it.
func mayServe(p zookeeper.PoolComponent, req *zookeeper.NodeRequest) bool {
	if slices.Contains(req.DeclinedBy, p.ID) {
		return false
	}
	for _, l := range req.NodeTypes {
		if !slices.Contains(p.SupportedLabels, l) {
			return false
		}
	}
	return true
}
