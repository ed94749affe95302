package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Signaller is the part of the Temporal client the activities use.
type Signaller interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID string, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
}

// Activities holds the activities' dependencies. Construct it with New.
type Activities struct {
	zk       *zookeeper.Client
	drivers  map[string]drivers.Driver
	settings Settings
	temporal Signaller
	logger   *slog.Logger
	now      func() time.Time

	mu         sync.Mutex
	labelQuota map[string]drivers.Resources
}

// Option changes an Activities value built by New.
type Option func(*Activities)

// WithClock replaces the clock, for tests.
func WithClock(now func() time.Time) Option { return func(a *Activities) { a.now = now } }

// New returns the activities over the given dependencies. temporal may be nil in tests
// that do not signal ledgers. Only the methods of Activities that are activities are
// exported, because workers register the whole struct.
func New(zk *zookeeper.Client, drv map[string]drivers.Driver, settings Settings, temporal Signaller, logger *slog.Logger, opts ...Option) *Activities {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Activities{
		zk: zk, drivers: drv, settings: settings, temporal: temporal, logger: logger,
		now: time.Now, labelQuota: map[string]drivers.Resources{},
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

func (a *Activities) unixNow() float64 {
	return float64(a.now().UnixNano()) / 1e9
}

func (a *Activities) driver(provider string) (drivers.Driver, error) {
	d, ok := a.drivers[provider]
	if !ok {
		return nil, invalidConfig("provider %q is not configured in this launcher", provider)
	}
	return d, nil
}

// labelNeed returns (and caches) what one node of the label in the pool consumes.
func (a *Activities) labelNeed(ctx context.Context, provider, pool, label string) (drivers.Resources, error) {
	key := provider + "\x00" + pool + "\x00" + label
	a.mu.Lock()
	need, ok := a.labelQuota[key]
	a.mu.Unlock()
	if ok {
		return need.Clone(), nil
	}
	d, err := a.driver(provider)
	if err != nil {
		return nil, err
	}
	need, err = d.LabelQuota(ctx, pool, label)
	if err != nil {
		return nil, err
	}
	if need == nil {
		need = drivers.Resources{}
	}
	if _, ok := need[drivers.ResourceInstances]; !ok {
		need[drivers.ResourceInstances] = 1
	}
	a.mu.Lock()
	a.labelQuota[key] = need.Clone()
	a.mu.Unlock()
	return need, nil
}

// PlanRequest reads a request and decides whether and where this launcher serves it.
func (a *Activities) PlanRequest(ctx context.Context, in PlanInput) (Plan, error) {
	req, err := a.zk.GetRequest(ctx, in.RequestID)
	if isNotFound(err) {
		return Plan{Decision: DecisionSkip, Reason: "request no longer exists"}, nil
	}
	if err != nil {
		return Plan{}, fmt.Errorf("reading request %s: %w", in.RequestID, err)
	}
	if req.State != zookeeper.StateRequested {
		return Plan{Decision: DecisionSkip, Reason: "request is " + string(req.State)}, nil
	}
	declined := map[string]bool{}
	for _, id := range req.DeclinedBy {
		declined[id] = true
	}
	order := OrderKey{Priority: req.Priority(), RelativePriority: req.RelativePriority, Sequence: req.Sequence()}
	info := requestInfo(req)

	type candidate struct {
		prov *ProviderSettings
		pool *PoolSettings
		idx  int
	}
	var candidates []candidate
	var open []string // our pools that have not declined yet
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
			if declined[pool.ID] {
				continue
			}
			open = append(open, pool.ID)
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
	for _, c := range candidates {
		plan := Plan{
			Decision:          DecisionLaunch,
			Provider:          c.prov.Name,
			Pool:              c.pool.Name,
			PoolID:            c.pool.ID,
			ProviderTaskQueue: c.prov.TaskQueue,
			LaunchTimeoutSec:  c.prov.LaunchTimeout.Seconds(),
			LaunchRetries:     max(c.prov.LaunchRetries, 1),
			PollIntervalSec:   a.settings.PollInterval.Seconds(),
			Limits:            c.pool.Limits.Clone(),
			Order:             order,
			Request:           info,
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
				return Plan{}, driverError("reading label quota of "+label, err)
			}
			plan.Nodes = append(plan.Nodes, NodePlan{Label: label, Need: need})
		}
		if !ok {
			continue
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
			used = used.Add(fromFloat(n.Resources))
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
		ID:               r.ID,
		Labels:           append([]string(nil), r.NodeTypes...),
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
	held, err := a.zk.EnsureLock(ctx, path, in.Owner)
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
		for _, id := range in.PoolIDs {
			if !contains(req.DeclinedBy, id) {
				req.DeclinedBy = append(req.DeclinedBy, id)
			}
		}
		pools, err := a.zk.ListPools(ctx)
		if err != nil {
			return false, fmt.Errorf("listing registered pools: %w", err)
		}
		req.State = zookeeper.StateFailed
		for _, p := range pools {
			if !contains(req.DeclinedBy, p.ID) {
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
	for {
		if req == nil {
			req, err = a.zk.GetRequest(ctx, id)
			if isNotFound(err) {
				return false, true, nil
			}
			if err != nil {
				return false, false, fmt.Errorf("reading request %s: %w", id, err)
			}
		}
		if ok, err := change(req); err != nil || !ok {
			return false, false, err
		}
		err = a.zk.UpdateRequest(ctx, req)
		switch {
		case isBadVersion(err):
			req = nil
			continue
		case isNotFound(err):
			return false, true, nil
		case err != nil:
			return false, false, fmt.Errorf("writing request %s: %w", id, err)
		}
		return true, false, nil
	}
}

// acceptProgress is AcceptRequest's heartbeat detail: the nodes created so far.
type acceptProgress struct {
	NodeIDs []string `json:"node_ids"`
}

// AcceptRequest locks the request, sets it pending and creates its nodes (init, then
// locked, then building). A retried call resumes from its heartbeat.
func (a *Activities) AcceptRequest(ctx context.Context, in AcceptInput) (AcceptResult, error) {
	var progress acceptProgress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &progress); err != nil {
			progress = acceptProgress{}
		}
	}
	reqLock := zookeeper.RequestLockPath(in.RequestID)
	held, err := a.zk.EnsureLock(ctx, reqLock, in.Owner)
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
	resumed := len(progress.NodeIDs) > 0 || req.State == zookeeper.StatePending
	if !resumed && (req.State != zookeeper.StateRequested || contains(req.DeclinedBy, in.Plan.PoolID)) {
		a.releaseQuietly(ctx, reqLock, in.Owner)
		return AcceptResult{Reason: "request is " + string(req.State) + " after locking"}, nil
	}
	if req.State != zookeeper.StatePending {
		req.State = zookeeper.StatePending
		req.StateTime = a.unixNow()
		if err := a.zk.UpdateRequest(ctx, req); err != nil {
			if isNotFound(err) {
				a.releaseQuietly(ctx, reqLock, in.Owner)
				return AcceptResult{Gone: true, Reason: "request no longer exists"}, nil
			}
			return AcceptResult{}, fmt.Errorf("writing request %s: %w", in.RequestID, err)
		}
	}
	_, pool, ok := a.settings.Pool(in.Plan.Provider, in.Plan.Pool)
	if !ok {
		return AcceptResult{}, invalidConfig("pool %s of provider %s is not configured", in.Plan.Pool, in.Plan.Provider)
	}
	// A resumed call may have created nodes whose lock or state write did not happen.
	for _, id := range progress.NodeIDs {
		if err := a.ensureBuilding(ctx, id, in.Owner); err != nil {
			return AcceptResult{}, err
		}
	}
	for i := len(progress.NodeIDs); i < len(in.Plan.Nodes); i++ {
		np := in.Plan.Nodes[i]
		now := a.unixNow()
		node := &zookeeper.Node{
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
		id, err := a.zk.CreateNode(ctx, node)
		if err != nil {
			return AcceptResult{}, fmt.Errorf("creating node for %s: %w", np.Label, err)
		}
		progress.NodeIDs = append(progress.NodeIDs, id)
		activity.RecordHeartbeat(ctx, progress)
		if err := a.lockNode(ctx, id, in.Owner); err != nil {
			return AcceptResult{}, err
		}
		node.State = zookeeper.NodeBuilding
		node.StateTime = a.unixNow()
		if err := a.zk.UpdateNode(ctx, node); err != nil {
			return AcceptResult{}, fmt.Errorf("writing node %s: %w", id, err)
		}
		a.logger.Info("created node", "request_id", in.RequestID, "node_id", id, "label", np.Label)
	}
	return AcceptResult{Accepted: true, NodeIDs: progress.NodeIDs}, nil
}

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

// lockNode re-asserts owner's lock on a node: ErrTypeNodeGone when the node is gone,
// ErrTypeLockLost when someone else holds it.
func (a *Activities) lockNode(ctx context.Context, id, owner string) error {
	held, err := a.zk.EnsureLock(ctx, zookeeper.NodeLockPath(id), owner)
	if isNotFound(err) {
		return nodeGone(id)
	}
	if err != nil {
		return fmt.Errorf("locking node %s: %w", id, err)
	}
	if !held {
		return lockLost("node " + id)
	}
	return nil
}

// updateNode reads a node, lets change modify it, and writes it with a version check,
// starting over when someone else wrote in between. change returns false to write
// nothing.
func (a *Activities) updateNode(ctx context.Context, id string, change func(*zookeeper.Node) bool) error {
	for {
		n, err := a.zk.GetNode(ctx, id)
		if isNotFound(err) {
			return nodeGone(id)
		}
		if err != nil {
			return fmt.Errorf("reading node %s: %w", id, err)
		}
		if !change(n) {
			return nil
		}
		err = a.zk.UpdateNode(ctx, n)
		if isBadVersion(err) {
			continue
		}
		if isNotFound(err) {
			return nodeGone(id)
		}
		if err != nil {
			return fmt.Errorf("writing node %s: %w", id, err)
		}
		return nil
	}
}

// CreateStep re-asserts the node lock, advances the node's create state machine by one
// step, and stores the instance's external id on the node as soon as it is known.
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
			return next, driverError("advancing create of node "+in.NodeID, err, next)
		}
		if next.ExternalID != "" && next.ExternalID != prev.ExternalID {
			if err := a.storeExternalID(ctx, in.NodeID, next.ExternalID); err != nil {
				return st, err
			}
			prev = next
		}
		st = next
		if !a.waitInStep(ctx, start, st.Complete, st.Wait) {
			return st, nil
		}
	}
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

func (a *Activities) storeExternalID(ctx context.Context, nodeID, externalID string) error {
	return a.updateNode(ctx, nodeID, func(n *zookeeper.Node) bool {
		n.ExternalID = externalIDJSON(externalID)
		return true
	})
}

// DeleteStep advances a delete state machine by one step.
func (a *Activities) DeleteStep(ctx context.Context, in DeleteStepInput) (drivers.DeleteState, error) {
	d, err := a.driver(in.Provider)
	if err != nil {
		return in.State, err
	}
	st := in.State
	start := a.now()
	for {
		next, err := d.AdvanceDelete(ctx, st)
		if err != nil {
			if drivers.KindOf(err) == drivers.KindNotFound {
				st.Complete = true
				return st, nil
			}
			return next, driverError("advancing delete of "+in.State.ExternalID, err)
		}
		st = next
		if !a.waitInStep(ctx, start, st.Complete, st.Wait) {
			return st, nil
		}
	}
}

// NodeReady stores the launched instance on the node and marks it ready. The node stays
// locked until the request is fulfilled.
func (a *Activities) NodeReady(ctx context.Context, in NodeReadyInput) error {
	if err := a.lockNode(ctx, in.NodeID, in.Owner); err != nil {
		return err
	}
	err := a.updateNode(ctx, in.NodeID, func(n *zookeeper.Node) bool {
		applyInstance(n, in.Instance, in.Need)
		n.State = zookeeper.NodeReady
		n.StateTime = a.unixNow()
		return true
	})
	if err != nil {
		return err
	}
	a.logger.Info("node ready", "node_id", in.NodeID, "external_id", in.Instance.ExternalID)
	return nil
}

func applyInstance(n *zookeeper.Node, inst drivers.Instance, need drivers.Resources) {
	n.ExternalID = externalIDJSON(inst.ExternalID)
	n.InterfaceIP = inst.InterfaceIP
	n.PublicIPv4 = optStr(inst.PublicIPv4)
	n.PrivateIPv4 = optStr(inst.PrivateIPv4)
	n.PublicIPv6 = optStr(inst.PublicIPv6)
	n.Cloud = optStr(inst.Cloud)
	n.Region = optStr(inst.Region)
	n.AZ = optStr(inst.AZ)
	n.HostID = optStr(inst.HostID)
	ctype := inst.ConnectionType
	if ctype == "" {
		ctype = "ssh"
	}
	port := inst.ConnectionPort
	if port == 0 {
		port = 22
		if ctype == "winrm" {
			port = 5986
		}
	}
	n.ConnectionType = strPtr(ctype)
	n.ConnectionPort = json.RawMessage(fmt.Sprint(port))
	n.SSHPort = port
	n.Username = optStr(inst.Username)
	python := inst.PythonPath
	if python == "" {
		python = "auto"
	}
	n.PythonPath = strPtr(python)
	n.ShellType = optStr(inst.ShellType)
	n.HostKeys = append([]string{}, inst.HostKeys...)
	if inst.ImageName != "" {
		n.ImageID = inst.ImageName
	}
	res := need
	if len(inst.Quota) > 0 {
		res = inst.Quota
	}
	n.Resources = toFloat(res)
	if len(inst.DriverData) > 0 {
		n.DriverData = inst.DriverData
	}
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
	if req.State == zookeeper.StateFulfilled && equalStrings(req.Nodes, in.NodeIDs) {
		// A retry after the write: finish the release.
		a.releaseQuietly(ctx, reqLock, in.Owner)
		return FulfillResult{}, nil
	}
	held, err := a.zk.EnsureLock(ctx, reqLock, in.Owner)
	if err != nil {
		return FulfillResult{}, fmt.Errorf("locking request %s: %w", in.RequestID, err)
	}
	if !held {
		return FulfillResult{}, lockLost("request " + in.RequestID)
	}
	for _, id := range in.NodeIDs {
		if err := a.zk.ReleaseOwned(ctx, zookeeper.NodeLockPath(id), in.Owner); err != nil && !isNotFound(err) {
			return FulfillResult{}, fmt.Errorf("unlocking node %s: %w", id, err)
		}
	}
	_, gone, err := a.updateRequest(ctx, in.RequestID, req, func(req *zookeeper.NodeRequest) (bool, error) {
		req.Nodes = append([]string{}, in.NodeIDs...)
		req.State = zookeeper.StateFulfilled
		req.StateTime = a.unixNow()
		return true, nil
	})
	if gone {
		return FulfillResult{Gone: true}, nil
	}
	if err != nil {
		return FulfillResult{}, err
	}
	a.releaseQuietly(ctx, reqLock, in.Owner)
	a.logger.Info("fulfilled node request", "request_id", in.RequestID, "nodes", strings.Join(in.NodeIDs, ","))
	return FulfillResult{}, nil
}

// ReleaseRequest releases our lock on a request.
func (a *Activities) ReleaseRequest(ctx context.Context, in RequestRefInput) error {
	if err := a.zk.ReleaseOwned(ctx, zookeeper.RequestLockPath(in.RequestID), in.Owner); err != nil && !isNotFound(err) {
		return fmt.Errorf("unlocking request %s: %w", in.RequestID, err)
	}
	return nil
}

// RemoveNode deletes a node znode (and its lock) that the owner holds or that nobody
// holds. A node locked by someone else is left alone.
func (a *Activities) RemoveNode(ctx context.Context, in NodeRefInput) error {
	held, err := a.zk.EnsureLock(ctx, zookeeper.NodeLockPath(in.NodeID), in.Owner)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("locking node %s: %w", in.NodeID, err)
	}
	if !held {
		return lockLost("node " + in.NodeID)
	}
	if err := a.zk.DeleteNode(ctx, in.NodeID); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting node %s: %w", in.NodeID, err)
	}
	a.logger.Info("deleted node", "node_id", in.NodeID)
	return nil
}

// HoldInstance records a failed launch's instance as its own node in state "hold", so it
// can be inspected and is deleted by the normal hold expiry.
func (a *Activities) HoldInstance(ctx context.Context, in HoldInstanceInput) (HoldInstanceResult, error) {
	now := a.unixNow()
	node := &zookeeper.Node{
		State:          zookeeper.NodeHold,
		StateTime:      now,
		CreatedTime:    now,
		Type:           zookeeper.Labels{in.Label},
		Provider:       in.Provider,
		Pool:           in.Pool,
		Launcher:       in.PoolID,
		ExternalID:     externalIDJSON(in.ExternalID),
		Comment:        strPtr(in.Comment),
		HoldExpiration: in.HoldExpiration,
		TenantName:     optStr(in.TenantName),
		Requestor:      optStr(in.Requestor),
		HostKeys:       []string{},
	}
	id, err := a.zk.CreateNode(ctx, node)
	if err != nil {
		return HoldInstanceResult{}, fmt.Errorf("creating held node: %w", err)
	}
	a.logger.Info("holding failed instance", "node_id", id, "external_id", in.ExternalID)
	return HoldInstanceResult{NodeID: id}, nil
}

// PoolUsage lists the nodes of a pool and what they use.
func (a *Activities) PoolUsage(ctx context.Context, in PoolUsageInput) (PoolUsageResult, error) {
	out := PoolUsageResult{Nodes: map[string]drivers.Resources{}}
	seen := 0
	err := a.forEachNode(ctx, func(n *zookeeper.Node) {
		if seen++; seen%50 == 0 {
			activity.RecordHeartbeat(ctx, seen)
		}
		if n.Provider != in.Provider || n.Pool != in.Pool {
			return
		}
		res := fromFloat(n.Resources)
		if len(res) == 0 {
			res = drivers.Resources{drivers.ResourceInstances: 1}
			if len(n.Type) > 0 {
				if need, err := a.labelNeed(ctx, in.Provider, in.Pool, n.Type[0]); err == nil {
					res = need
				}
			}
		}
		out.Nodes[n.ID] = res
	})
	if err != nil {
		return PoolUsageResult{}, err
	}
	return out, nil
}

// forEachNode calls fn for every readable node. Nodes that vanish while listed and
// malformed znodes are skipped; any other read error ends the scan.
func (a *Activities) forEachNode(ctx context.Context, fn func(*zookeeper.Node)) error {
	ids, err := a.zk.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	for _, id := range ids {
		n, err := a.zk.GetNode(ctx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			var de *zookeeper.DecodeError
			if asDecodeError(err, &de) {
				continue
			}
			return fmt.Errorf("reading node %s: %w", id, err)
		}
		fn(n)
	}
	return nil
}

// SignalLedger delivers a signal to a pool ledger workflow, starting it if it is not
// running.
func (a *Activities) SignalLedger(ctx context.Context, in SignalLedgerInput) error {
	if a.temporal == nil {
		return invalidConfig("no Temporal client configured for signalling ledgers")
	}
	info := activity.GetInfo(ctx)
	_, err := a.temporal.SignalWithStartWorkflow(ctx, in.WorkflowID, in.Signal, in.Payload,
		client.StartWorkflowOptions{ID: in.WorkflowID, TaskQueue: info.TaskQueue},
		in.WorkflowType, in.StartInput)
	if err != nil {
		return fmt.Errorf("signalling ledger %s: %w", in.WorkflowID, err)
	}
	return nil
}

func (a *Activities) releaseQuietly(ctx context.Context, path, owner string) {
	if err := a.zk.ReleaseOwned(ctx, path, owner); err != nil && !isNotFound(err) {
		a.logger.Warn("releasing lock", "path", path, "error", err)
	}
}

// ReleaseNode releases our lock on a node, leaving the node for the deletion workflow.
func (a *Activities) ReleaseNode(ctx context.Context, in NodeRefInput) error {
	if err := a.zk.ReleaseOwned(ctx, zookeeper.NodeLockPath(in.NodeID), in.Owner); err != nil && !isNotFound(err) {
		return fmt.Errorf("unlocking node %s: %w", in.NodeID, err)
	}
	return nil
}
