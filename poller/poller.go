package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/lifecycle"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// startConcurrency bounds the workflow starts (and node checks) the poller runs at once.
const startConcurrency = 8

// Temporal is the part of the Temporal client the poller uses; client.Client satisfies
// it.
type Temporal interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Pool describes one of the launcher's pools.
type Pool struct {
	ID       string
	Provider string
	Name     string
	Labels   []string
	Priority int
}

// Options configure a Poller.
type Options struct {
	ZK       *zookeeper.Client
	Temporal Temporal
	// TaskQueue is the launcher's main task queue.
	TaskQueue string
	Pools     []Pool
	// Hostname and Version go into the pool registrations.
	Hostname string
	Version  string
	// Policy decides which nodes to delete.
	Policy lifecycle.Policy
	// ScanInterval is how often every request and node is re-read, besides watches.
	ScanInterval time.Duration
	// PollInterval is passed to deletion workflows (timer between delete steps).
	PollInterval time.Duration
	// SearchAttributes is true when the server has the Nodepool* search attributes.
	SearchAttributes bool
	// Register controls whether the pools are registered (true for launchers).
	Register bool
	Logger   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Poller watches ZooKeeper and starts workflows.
type Poller struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu sync.Mutex
	// started remembers the request versions a workflow was started for, so watch
	// storms do not turn into start storms.
	started map[string]int32
	// known are the request ids seen in the last listing.
	known map[string]bool
	// unlockedSince tracks when each node was first seen unlocked.
	unlockedSince map[string]time.Time
	// deleting remembers node deletions started recently.
	deleting map[string]time.Time
	regs     map[string]*zookeeper.Registration
	// holders tracks which of our workflows has held a lock since when.
	holders map[string]holding
}

// New returns a Poller.
func New(opts Options) *Poller {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = 5 * time.Second
	}
	return &Poller{
		opts: opts, log: opts.Logger, now: opts.Now,
		started:       map[string]int32{},
		known:         map[string]bool{},
		unlockedSince: map[string]time.Time{},
		deleting:      map[string]time.Time{},
		regs:          map[string]*zookeeper.Registration{},
		holders:       map[string]holding{},
	}
}

// Run watches until ctx ends. It returns an error only when it cannot start.
func (p *Poller) Run(ctx context.Context) error {
	if p.opts.Register {
		if err := p.register(ctx); err != nil {
			return err
		}
		defer p.unregister()
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); p.watchRequests(ctx) }()
	go func() { defer wg.Done(); p.watchNodes(ctx) }()
	go func() { defer wg.Done(); p.syncPaused(ctx) }()
	wg.Wait()
	return nil
}

func (p *Poller) register(ctx context.Context) error {
	for _, pool := range p.opts.Pools {
		reg, err := p.opts.ZK.RegisterPool(ctx, zookeeper.PoolComponent{
			Hostname:        p.opts.Hostname,
			State:           "running",
			Kind:            "pool",
			Version:         p.opts.Version,
			ID:              pool.ID,
			Name:            pool.Name,
			ProviderName:    pool.Provider,
			SupportedLabels: append([]string{}, pool.Labels...),
			Priority:        pool.Priority,
		})
		if err != nil {
			return fmt.Errorf("registering pool %s: %w", pool.ID, err)
		}
		p.regs[pool.ID] = reg
		p.log.Info("registered pool", "pool", pool.ID, "labels", pool.Labels)
	}
	return nil
}

func (p *Poller) unregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for id, reg := range p.regs {
		if err := reg.Unregister(ctx); err != nil {
			p.log.Warn("unregistering pool", "pool", id, "error", err)
		}
	}
}

// watchRequests reacts to the request tree: new requests start workflows, removed ones
// signal theirs. A periodic scan catches requests handed back by other launchers.
func (p *Poller) watchRequests(ctx context.Context) {
	events := p.opts.ZK.WatchChildren(ctx, zookeeper.RequestsPath)
	ticker := time.NewTicker(p.opts.ScanInterval)
	defer ticker.Stop()
	var children []string
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			children = ev.Children
			p.handleRequests(ctx, children, false)
		case <-ticker.C:
			p.handleRequests(ctx, children, true)
		}
	}
}

func (p *Poller) handleRequests(ctx context.Context, children []string, full bool) {
	current := make(map[string]bool, len(children))
	for _, id := range children {
		current[id] = true
	}
	p.mu.Lock()
	var removed, added []string
	for id := range p.known {
		if !current[id] {
			removed = append(removed, id)
		}
	}
	for _, id := range children {
		if full || !p.known[id] {
			added = append(added, id)
		}
	}
	p.known = current
	for _, id := range removed {
		delete(p.started, id)
	}
	p.mu.Unlock()

	for _, id := range removed {
		wid := names.RequestWorkflowID(p.opts.TaskQueue, id)
		err := p.opts.Temporal.SignalWorkflow(ctx, wid, "", workflows.SignalRequestDeleted, nil)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			p.log.Warn("signalling request deletion", "request_id", id, "error", err)
		}
	}
	// Starting a workflow is a round trip to Temporal: a burst of new requests is
	// started a few at a time instead of one after another.
	g := errgroup.Group{}
	g.SetLimit(startConcurrency)
	for _, id := range added {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { p.considerRequest(ctx, id); return nil })
	}
	_ = g.Wait()
}

func (p *Poller) considerRequest(ctx context.Context, id string) {
	if !zookeeper.IsNodepoolRequestID(id) {
		return
	}
	req, err := p.opts.ZK.GetRequest(ctx, id)
	if errors.Is(err, zookeeper.ErrNotFound) {
		return
	}
	if err != nil {
		p.log.Warn("skipping unreadable node request", "request_id", id, "error", err)
		return
	}
	if req.State == zookeeper.StatePending {
		p.recoverRequest(ctx, req)
		return
	}
	if req.State != zookeeper.StateRequested || p.allDeclined(req) {
		return
	}
	p.mu.Lock()
	if v, ok := p.started[id]; ok && v == req.Version {
		p.mu.Unlock()
		return
	}
	p.started[id] = req.Version
	p.mu.Unlock()
	if err := p.startRequest(ctx, req); err != nil {
		p.mu.Lock()
		delete(p.started, id)
		p.mu.Unlock()
		p.log.Warn("starting request workflow", "request_id", id, "error", err)
	}
}

func (p *Poller) allDeclined(req *zookeeper.NodeRequest) bool {
	declined := map[string]bool{}
	for _, d := range req.DeclinedBy {
		declined[d] = true
	}
	for _, pool := range p.opts.Pools {
		if !declined[pool.ID] {
			return false
		}
	}
	return true
}

func (p *Poller) startRequest(ctx context.Context, req *zookeeper.NodeRequest) error {
	opts := client.StartWorkflowOptions{
		ID:                       names.RequestWorkflowID(p.opts.TaskQueue, req.ID),
		TaskQueue:                p.opts.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		Memo:                     requestMemo(req),
		// When this process also runs the workers, the first workflow task is handed
		// to them directly instead of through the server's task queue.
		EnableEagerStart: true,
	}
	if p.opts.SearchAttributes {
		updates := []temporal.SearchAttributeUpdate{
			workflows.SARequestID.ValueSet(req.ID),
			workflows.SALabel.ValueSet(req.NodeTypes),
			workflows.SAState.ValueSet("planning"),
		}
		if req.TenantName != nil && *req.TenantName != "" {
			updates = append(updates, workflows.SATenant.ValueSet(*req.TenantName))
		}
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(updates...)
	}
	_, err := p.opts.Temporal.ExecuteWorkflow(ctx, opts, workflows.RequestWorkflowType, workflows.RequestInput{
		RequestID:        req.ID,
		TaskQueue:        p.opts.TaskQueue,
		SearchAttributes: p.opts.SearchAttributes,
	})
	if err != nil {
		return err
	}
	p.log.Debug("started request workflow", "request_id", req.ID)
	return nil
}

func requestMemo(req *zookeeper.NodeRequest) map[string]any {
	m := map[string]any{"node_types": req.NodeTypes, "relative_priority": req.RelativePriority}
	if req.Requestor != nil {
		m["requestor"] = *req.Requestor
	}
	if req.EventID != nil {
		m["event_id"] = *req.EventID
	}
	if req.TenantName != nil {
		m["tenant_name"] = *req.TenantName
	}
	if len(req.RequestorData) > 0 {
		var v any
		if json.Unmarshal(req.RequestorData, &v) == nil {
			m["requestor_data"] = v
		}
	}
	return m
}

// syncPaused keeps each pool registration's "paused" flag equal to whether the pool's
// ledger has requests waiting for capacity.
func (p *Poller) syncPaused(ctx context.Context) {
	if len(p.regs) == 0 {
		return
	}
	interval := min(p.opts.ScanInterval, 2*time.Second)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		for _, pool := range p.opts.Pools {
			reg := p.regs[pool.ID]
			if reg == nil {
				continue
			}
			paused := false
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			v, err := p.opts.Temporal.QueryWorkflow(qctx, names.LedgerWorkflowID(p.opts.TaskQueue, pool.Provider, pool.Name), "", workflows.QueryStatus)
			cancel()
			if err == nil {
				var st workflows.LedgerStatus
				if v.Get(&st) == nil {
					paused = st.Paused
				}
			}
			if reg.Component().Paused != paused {
				if err := reg.SetPaused(ctx, paused); err != nil {
					p.log.Warn("updating pool registration", "pool", pool.ID, "error", err)
				} else {
					p.log.Info("pool paused state changed", "pool", pool.ID, "paused", paused)
				}
			}
		}
	}
}
