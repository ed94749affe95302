package poller

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

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
	// Idle pools (their provider has max-concurrency 0) are registered but neither take
	// nor decline requests, as in Nodepool.
	Idle bool
}

// Options configure a Poller.
type Options struct {
	ZK       *zookeeper.Client
	Temporal Temporal
	// TaskQueue is the launcher's main task queue.
	TaskQueue string
	Pools     []Pool
	// Instance is this process's pool id suffix (32 hexadecimal digits, new at every
	// start): each pool registers as names.PoolInstanceID(pool.ID, Instance), as
	// Nodepool's launchers do, so that declines are revisited after a restart. Empty
	// registers the plain pool ids.
	Instance string
	// Hostname and Version go into the pool registrations.
	Hostname string
	Version  string
	// Policy decides which nodes to delete.
	Policy lifecycle.Policy
	// ScanInterval is the period of the scan that acts on what changed with time rather
	// than in ZooKeeper (workflows that ended too early, lost requests, locks of ended
	// runs, nodes' ages). Cleanup of stale request lock directories runs every
	// cleanupEvery scans.
	ScanInterval time.Duration
	// ResyncInterval is how often every request is read again although its data watch
	// reported no change (5 minutes when zero).
	ResyncInterval time.Duration
	// StrandedChecksPerScan bounds how many waiting requests' workflows one scan asks
	// Temporal about (0: strandedChecksPerScan).
	StrandedChecksPerScan int
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
//
// What it remembers is keyed by the requests, nodes and lock directories that exist, and
// an entry is dropped as soon as its object is gone, so its memory follows the live
// objects in ZooKeeper, not their history.
type Poller struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	// lockID identifies the poller's own short-lived locks (kazoo's identifier).
	lockID string

	mu sync.Mutex
	// known are the request ids seen in the last listing.
	known map[string]bool
	// reqs tracks each listed request (see reqState).
	reqs map[string]*reqState
	// checkBudget is what is left of this scan's stranded-request checks.
	checkBudget int
	// nodes tracks each listed node (see nodeState); nodeListing is the last listing of
	// the node tree (nil until the first).
	nodes       map[string]*nodeState
	nodeListing map[string]bool
	// requestsListed is set once the request tree has been listed.
	requestsListed bool
	// holders tracks, per lock directory, which of our workflows has held it since when.
	holders map[string]holding
	// running remembers the workflows and lock owners recently found running.
	running map[string]time.Time
	// lockDirs caches the creation time of request lock directories whose request is
	// gone, until they are old enough to remove.
	lockDirs map[string]time.Time
	// regs are the pool registrations, by pool id.
	regs map[string]*zookeeper.Registration
	// live are the ids of every registered pool (every launcher's, every process's),
	// as last listed.
	live atomic.Pointer[[]string]
	// liveNames are the registrations last listed, by znode name (see refreshLive).
	liveMu    sync.Mutex
	liveNames map[string]string
	// launcherReg is this process's launcher component registration.
	launcherReg *zookeeper.Registration

	// slots bounds the requests read and acted on at once.
	slots chan struct{}
	// requestReads, nodeReads and scans are the counters of Stats.
	requestReads, nodeReads, scans atomic.Int64
	// resyncMu guards resyncs and resyncReads, which a resync pass adds to requestReads
	// only when it ends, so that a Stats snapshot never holds half a pass.
	resyncMu             sync.Mutex
	resyncs, resyncReads int64
	// deletes are the deletions waiting to be started (see deleteQueue).
	deletes deleteQueue
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
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = defaultResyncInterval
	}
	if opts.StrandedChecksPerScan <= 0 {
		opts.StrandedChecksPerScan = strandedChecksPerScan
	}
	return &Poller{
		opts: opts, log: opts.Logger, now: opts.Now,
		lockID:   "nodepool-temporal poller " + opts.Hostname,
		known:    map[string]bool{},
		reqs:     map[string]*reqState{},
		nodes:    map[string]*nodeState{},
		holders:  map[string]holding{},
		running:  map[string]time.Time{},
		lockDirs: map[string]time.Time{},
		regs:     map[string]*zookeeper.Registration{},
		slots:    make(chan struct{}, startConcurrency),
	}
}

// Stats are the poller's ZooKeeper reads and scans since it started.
type Stats struct {
	// RequestReads counts reads of request znodes: one when a request appears, one per
	// change, one per request and resync, one per malformed version.
	RequestReads int64
	// NodeReads counts reads of node znodes and node locks.
	NodeReads int64
	// Scans counts the periodic request scans.
	Scans int64
	// Resyncs counts the completed resync passes, and ResyncReads the request reads they
	// made (included in RequestReads).
	Resyncs, ResyncReads int64
}

// Stats returns the poller's counters.
func (p *Poller) Stats() Stats {
	p.resyncMu.Lock()
	defer p.resyncMu.Unlock()
	return Stats{RequestReads: p.requestReads.Load(), NodeReads: p.nodeReads.Load(), Scans: p.scans.Load(),
		Resyncs: p.resyncs, ResyncReads: p.resyncReads}
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
	wg.Add(4)
	go func() { defer wg.Done(); p.watchRequests(ctx) }()
	go func() { defer wg.Done(); p.watchNodes(ctx) }()
	go func() { defer wg.Done(); p.syncPaused(ctx) }()
	go func() { defer wg.Done(); p.cleanupLoop(ctx) }()
	wg.Wait()
	p.deletes.wg.Wait()
	return nil
}

func (p *Poller) register(ctx context.Context) error {
	reg, err := p.opts.ZK.RegisterLauncher(ctx, p.opts.Hostname, p.opts.Version)
	if err != nil {
		return fmt.Errorf("registering launcher: %w", err)
	}
	p.launcherReg = reg
	var live []string
	for _, pool := range p.opts.Pools {
		reg, err := p.opts.ZK.RegisterPool(ctx, zookeeper.PoolComponent{
			Hostname:        p.opts.Hostname,
			State:           "running",
			Kind:            "pool",
			Version:         p.opts.Version,
			ID:              p.registrationID(pool),
			Name:            pool.Name,
			ProviderName:    pool.Provider,
			SupportedLabels: append([]string{}, pool.Labels...),
			Priority:        pool.Priority,
		})
		if err != nil {
			return fmt.Errorf("registering pool %s: %w", pool.ID, err)
		}
		p.regs[pool.ID] = reg
		live = append(live, p.registrationID(pool))
		p.log.Info("registered pool", "pool", p.registrationID(pool), "labels", pool.Labels)
	}
	p.live.Store(&live)
	p.refreshLive(ctx)
	return nil
}

// registrationID returns the id this process registers pool under.
func (p *Poller) registrationID(pool Pool) string {
	if p.opts.Instance == "" {
		return pool.ID
	}
	return names.PoolInstanceID(pool.ID, p.opts.Instance)
}

// refreshLive lists the registered pools' ids for allDeclined: one listing, plus a
// read of each registration not seen before. A failed listing keeps the previous one.
func (p *Poller) refreshLive(ctx context.Context) {
	p.liveMu.Lock()
	defer p.liveMu.Unlock()
	regs, err := p.opts.ZK.PoolIDs(ctx, p.liveNames)
	if err != nil {
		p.log.Debug("listing registered pools", "error", err)
		return
	}
	p.liveNames = regs
	ids := make([]string, 0, len(regs))
	for _, name := range slices.Sorted(maps.Keys(regs)) {
		if regs[name] != "" {
			ids = append(ids, regs[name])
		}
	}
	p.live.Store(&ids)
}

func (p *Poller) unregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for id, reg := range p.regs {
		if err := reg.Unregister(ctx); err != nil {
			p.log.Warn("unregistering pool", "pool", id, "error", err)
		}
	}
	if p.launcherReg != nil {
		if err := p.launcherReg.Unregister(ctx); err != nil {
			p.log.Warn("unregistering launcher", "error", err)
		}
	}
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
		p.refreshLive(ctx)
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
					p.log.Warn("updating pool registration", "pool", p.registrationID(pool), "error", err)
				} else {
					p.log.Info("pool paused state changed", "pool", p.registrationID(pool), "paused", paused)
				}
			}
		}
	}
}

// NodeRecords returns the node records the poller's watches keep, as last read: the
// record source of the process's other readers (activities that look at every node,
// the stats), so that a change of a node is read once in the process.
func (p *Poller) NodeRecords() zookeeper.RecordSource[*zookeeper.Node] { return nodeRecords{p} }

// RequestRecords returns the request records the poller's watches keep, as last read
// (a request whose newest version cannot be decoded keeps its last readable one).
func (p *Poller) RequestRecords() zookeeper.RecordSource[*zookeeper.NodeRequest] {
	return requestRecords{p}
}

type nodeRecords struct{ p *Poller }

func (v nodeRecords) Records() (map[string]*zookeeper.Node, []string, bool) {
	p := v.p
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]*zookeeper.Node, len(p.nodeListing))
	var unread []string
	for id := range p.nodeListing {
		ns := p.nodes[id]
		switch {
		case ns == nil || (ns.rec == nil && ns.decodeErr == nil):
			unread = append(unread, id)
		case ns.rec != nil:
			out[id] = ns.rec
		}
	}
	return out, unread, p.nodeListing != nil
}

type requestRecords struct{ p *Poller }

func (v requestRecords) Records() (map[string]*zookeeper.NodeRequest, []string, bool) {
	p := v.p
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]*zookeeper.NodeRequest, len(p.known))
	var unread []string
	for id := range p.known {
		if !zookeeper.IsNodepoolRequestID(id) {
			continue // never watched
		}
		st := p.reqs[id]
		switch {
		case st == nil || (st.rec == nil && !st.bad):
			unread = append(unread, id)
		case st.rec != nil:
			out[id] = st.rec
		}
	}
	return out, unread, p.requestsListed
}
