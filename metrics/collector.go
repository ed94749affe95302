package metrics

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// ElectionPath is the lock directory of the stats election, upstream's
// /nodepool/elections/stats: one reporter per ZooKeeper, whether upstream launchers
// or this one win it.
const ElectionPath = "/nodepool/elections/stats"

// Defaults of CollectorOptions.
const (
	DefaultInterval      = 5 * time.Second
	DefaultFactsInterval = 15 * time.Second
	// readTimeout bounds one snapshot or one round of Temporal questions.
	readTimeout = 30 * time.Second
	// electionRetry is the wait after a failed attempt at the election.
	electionRetry = 5 * time.Second
)

// CollectorOptions configure a Collector.
type CollectorOptions struct {
	ZK *zookeeper.Client
	// Requests and Nodes, when set, are the process's copies of the request and node
	// records (the poller's); when nil the reporter mirrors the trees itself while it
	// reports.
	Requests zookeeper.RecordSource[*zookeeper.NodeRequest]
	Nodes    zookeeper.RecordSource[*zookeeper.Node]
	// Statsd and Prometheus are the sinks; either may be nil.
	Statsd     *Statsd
	Prometheus *Prometheus
	// Facts answers the Temporal questions for Prometheus; nil for none.
	Facts Facts
	// Limits are the configured limits, reported by every collector.
	Limits Limits
	// Identifier is this process's contender data in the election, as upstream's
	// "<hostname>-<pid>".
	Identifier string
	// Interval is how often the gauges are computed and sent (DefaultInterval when
	// zero); FactsInterval how often Temporal is asked (DefaultFactsInterval).
	Interval      time.Duration
	FactsInterval time.Duration
	Logger        *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Collector publishes the deployment's gauges. Every collector sends the configured
// limits (as each upstream launcher does for its providers); the deployment-wide
// gauges (nodes, requests, workflows, ledgers) come from the one collector that
// holds the stats election, so that they are counted once however many launcher
// processes run. The election is a kazoo lock at ElectionPath, shared with upstream
// launchers: while an upstream launcher reports, this one does not.
type Collector struct {
	opts CollectorOptions
	log  *slog.Logger
	// mirrored holds the reporter's own mirrors while this process reports with them.
	mirrored atomic.Pointer[ownMirrors]
}

// NewCollector returns a Collector.
func NewCollector(opts CollectorOptions) *Collector {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.FactsInterval <= 0 {
		opts.FactsInterval = DefaultFactsInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Collector{opts: opts, log: opts.Logger}
}

// Run publishes until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	if c.opts.Prometheus != nil {
		c.opts.Prometheus.setLimits(c.opts.Limits)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.sendLimits(ctx)
	}()
	defer func() { <-done }()
	for ctx.Err() == nil {
		lock := c.opts.ZK.NewLock(ElectionPath, c.opts.Identifier)
		if err := lock.Acquire(ctx, 0); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("joining the stats election", "error", err)
			sleep(ctx, electionRetry)
			continue
		}
		c.log.Info("won the stats election; reporting node and request gauges")
		c.report(ctx, lock)
		c.setReporter(false)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := lock.Release(rctx); err != nil {
			c.log.Warn("leaving the stats election", "error", err)
		}
		cancel()
	}
}

// sendLimits sends the configured limits to statsd every interval.
func (c *Collector) sendLimits(ctx context.Context) {
	if c.opts.Statsd == nil {
		return
	}
	lines := statsdLimits(c.opts.Limits)
	if len(lines) == 0 {
		return
	}
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		c.opts.Statsd.Send(lines...)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// report publishes the deployment-wide gauges while lock is held and ctx lasts.
func (c *Collector) report(ctx context.Context, lock *zookeeper.Lock) {
	c.setReporter(true)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	// The records come from watches: the process's own copies, or mirrors kept while
	// this process reports. Each is read when it changes, not every interval.
	m := mirrors{requests: c.opts.Requests, nodes: c.opts.Nodes}
	if m.requests == nil || m.nodes == nil {
		mctx, stopMirrors := context.WithCancel(ctx)
		defer stopMirrors()
		reqs, nodes := c.opts.ZK.MirrorRequests(mctx), c.opts.ZK.MirrorNodes(mctx)
		m = mirrors{requests: reqs, nodes: nodes}
		c.mirrored.Store(&ownMirrors{requests: reqs, nodes: nodes})
		defer c.mirrored.Store(nil)
	}
	var lastFacts time.Time
	for {
		c.publishSnapshot(ctx, m)
		if c.opts.Prometheus != nil && c.opts.Facts != nil && !c.opts.Now().Before(lastFacts.Add(c.opts.FactsInterval)) {
			c.publishFacts(ctx)
			lastFacts = c.opts.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := lock.Held(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("checking the stats election", "error", err)
			continue
		}
		if !held {
			if ctx.Err() == nil {
				c.log.Info("lost the stats election")
			}
			return
		}
	}
}

func (c *Collector) setReporter(on bool) {
	if c.opts.Prometheus != nil {
		c.opts.Prometheus.setReporter(on)
	}
}

// recordReads returns how many request and node records the reporter has read.
func (c *Collector) recordReads() int64 {
	m := c.mirrored.Load()
	if m == nil {
		return 0
	}
	return m.requests.Reads() + m.nodes.Reads()
}

// mirrors are the watched copies of the request and node trees the reporter uses.
type mirrors struct {
	requests zookeeper.RecordSource[*zookeeper.NodeRequest]
	nodes    zookeeper.RecordSource[*zookeeper.Node]
}

// ownMirrors are the mirrors the reporter keeps when the process has no copies.
type ownMirrors struct {
	requests *zookeeper.Mirror[*zookeeper.NodeRequest]
	nodes    *zookeeper.Mirror[*zookeeper.Node]
}

// snapshot computes the gauges from the mirrors once they have listed their trees
// (reading the records that have just appeared), and reads every record until then.
func (m mirrors) snapshot(ctx context.Context, zk *zookeeper.Client, now time.Time) (*Snapshot, error) {
	reqs, rok, err := zookeeper.ReadThrough(ctx, m.requests, zk.GetRequest)
	if err != nil {
		return nil, err
	}
	nodes, nok, err := zookeeper.ReadThrough(ctx, m.nodes, zk.GetNode)
	if err != nil {
		return nil, err
	}
	if !rok || !nok {
		return TakeSnapshot(ctx, zk, now)
	}
	pools, err := zk.ListPools(ctx)
	if err != nil {
		return nil, err
	}
	return Compute(now, pools, sortedValues(nodes), sortedValues(reqs)), nil
}

// sortedValues returns the records of m in the order of their ids.
func sortedValues[T any](m map[string]T) []T {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]T, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}

// publishSnapshot computes the node and request gauges and sends them.
func (c *Collector) publishSnapshot(ctx context.Context, m mirrors) {
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	snap, err := m.snapshot(rctx, c.opts.ZK, c.opts.Now())
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("reading ZooKeeper for stats", "error", err)
			if c.opts.Prometheus != nil {
				c.opts.Prometheus.readFailed("zookeeper")
			}
		}
		return
	}
	if c.opts.Statsd != nil {
		c.opts.Statsd.Send(statsdGauges(snap)...)
	}
	if c.opts.Prometheus != nil {
		c.opts.Prometheus.setSnapshot(snap)
	}
}

// publishFacts asks Temporal about request workflows and ledgers. What a failed
// question could still answer is published; phase counts that failed altogether keep
// their previous values, ledgers that could not be queried are dropped until they
// answer again.
func (c *Collector) publishFacts(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	// A partial answer (per-phase counts failed, the total did not) is used.
	phases, err := c.opts.Facts.RequestPhases(rctx)
	if err != nil {
		c.factsFailed(ctx, "counting request workflows", err)
	}
	ledgers, err := c.opts.Facts.Ledgers(rctx)
	if err != nil {
		c.factsFailed(ctx, "querying ledgers", err)
	}
	if ledgers == nil {
		ledgers = []Ledger{}
	}
	c.opts.Prometheus.setFacts(phases, ledgers)
}

func (c *Collector) factsFailed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	c.log.Warn(what+" for stats", "error", err)
	c.opts.Prometheus.readFailed("temporal")
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
