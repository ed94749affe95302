package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Bounds of the waits in a scenario.
const (
	// requestTimeout bounds one request's wait for fulfilment beyond the boot time.
	requestTimeout = 2 * time.Minute
	// deleteTimeout bounds one node's wait for deletion.
	deleteTimeout = 2 * time.Minute
	// submitConcurrency is how many requests of a burst are submitted in parallel.
	submitConcurrency = 8
	// returnConcurrency is how many requests of a burst are returned in parallel.
	returnConcurrency = 32
	// maxErrors bounds the error messages kept per phase.
	maxErrors = 5
)

// PhaseReport is the outcome of one phase of a scenario.
type PhaseReport struct {
	Name string `json:"name"`
	// Requests is the number of single-node requests the phase handled.
	Requests int `json:"requests"`
	// Completed counts requests fulfilled (launch) or nodes deleted (return).
	Completed int `json:"completed"`
	// Failed counts requests that ended failed, timed out or errored.
	Failed int      `json:"failed"`
	Errors []string `json:"errors,omitempty"`
	// WallSeconds is the phase's duration.
	WallSeconds float64 `json:"wall_seconds"`
	// Launch is submit-to-fulfilled; Overhead is Launch minus the cloud's boot time.
	Launch   *Summary `json:"submit_to_fulfilled,omitempty"`
	Overhead *Summary `json:"overhead,omitempty"`
	// Return is used-to-deleted (the node's znode gone).
	Return *Summary `json:"used_to_deleted,omitempty"`
	// NodesPerSecond is the phase's throughput: completed nodes over the time from the
	// first submit (or "used") to the last fulfilment (or deletion).
	NodesPerSecond float64 `json:"nodes_per_second,omitempty"`
	// CloudCalls are the cloud API calls made during the phase, by operation, and
	// CallsPerNode the same per completed node.
	CloudCalls        map[string]int64   `json:"cloud_calls"`
	CallsPerNode      map[string]float64 `json:"cloud_calls_per_node"`
	CallsPerNodeTotal float64            `json:"cloud_calls_per_node_total"`
	Usage             []ProcUsage        `json:"usage"`
	Machine           MachineUsage       `json:"machine"`
	// ZKWrites is the number of ZooKeeper transactions (writes, session changes) during
	// the phase, from every client; ZKWritesPerNode the same per completed node.
	ZKWrites        int64   `json:"zookeeper_writes"`
	ZKWritesPerNode float64 `json:"zookeeper_writes_per_node"`
}

// ScenarioReport is the outcome of one scenario.
type ScenarioReport struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Driver      string `json:"driver"`
	// BootSteps are the cloud's boot step latencies; BootSeconds is their sum.
	BootSteps     []float64     `json:"boot_steps"`
	BootSeconds   float64       `json:"boot_seconds"`
	DeleteLatency float64       `json:"delete_latency_seconds"`
	MaxServers    int           `json:"max_servers"`
	Phases        []PhaseReport `json:"phases"`
	// Launched counts the nodes launched during the scenario, the warm-up included.
	Launched int `json:"launched"`
	// CloudCalls are every cloud API call of the scenario, from the launcher's start
	// to the end (one-time lookups and the warm-up included), and CallsPerNode the
	// same per launched node.
	CloudCalls        map[string]int64   `json:"cloud_calls"`
	CallsPerNode      map[string]float64 `json:"cloud_calls_per_node"`
	CallsPerNodeTotal float64            `json:"cloud_calls_per_node_total"`
	Workflows         *WorkflowCosts     `json:"workflows,omitempty"`
	// Waiting holds the figures of the waiting scenario.
	Waiting *WaitingReport `json:"waiting,omitempty"`
	// Floor is the engine floor measured after the burst on the same server.
	Floor *FloorReport `json:"engine_floor,omitempty"`
	// Costs are the cost scenario's figures, one row per burst size.
	Costs []CostRow `json:"costs,omitempty"`
	// Reuse holds the figures of the reuse scenario, and MinReady the label's
	// min-ready it ran with.
	Reuse    *ReuseReport `json:"reuse,omitempty"`
	MinReady int          `json:"min_ready,omitempty"`
	// NoCloudAPI is set for the static driver, which calls no cloud: its cloud call
	// figures are empty because there is nothing to count, not because none were
	// measured.
	NoCloudAPI bool `json:"no_cloud_api,omitempty"`
	// StaticHosts is the static driver's number of hosts, and StaticConnections the
	// connections their listeners accepted (host checks).
	StaticHosts       int   `json:"static_hosts,omitempty"`
	StaticConnections int64 `json:"static_connections,omitempty"`
	// Error is set when the scenario stopped early.
	Error string `json:"error,omitempty"`
}

// phase measures one phase: cloud calls and resource usage between begin and end.
type phase struct {
	st     *stack
	mon    *monitor
	report PhaseReport
	calls  map[string]int64
	zxid   int64
	start  time.Time
	mu     sync.Mutex
}

func beginPhase(ctx context.Context, st *stack, mon *monitor, name string) *phase {
	p := &phase{st: st, mon: mon, report: PhaseReport{Name: name}}
	p.calls, _ = cloudCalls(ctx, st.opts.Driver, st.cloudURL)
	p.zxid, _ = zkZxid(ctx, st.zkAddr)
	mon.mark()
	p.start = time.Now()
	return p
}

// fail records a failed request or node.
func (p *phase) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report.Failed++
	if len(p.report.Errors) < maxErrors {
		p.report.Errors = append(p.report.Errors, err.Error())
	}
}

// end finishes the phase; completed is the number of nodes the calls are divided by.
func (p *phase) end(ctx context.Context) PhaseReport {
	r := p.report
	r.WallSeconds = time.Since(p.start).Seconds()
	r.Usage, r.Machine = p.mon.usage()
	if after, err := cloudCalls(ctx, p.st.opts.Driver, p.st.cloudURL); err == nil && p.calls != nil {
		r.CloudCalls = diffCalls(p.calls, after)
	} else {
		r.CloudCalls = map[string]int64{}
	}
	r.CallsPerNode, r.CallsPerNodeTotal = perNode(r.CloudCalls, r.Completed)
	if z, err := zkZxid(ctx, p.st.zkAddr); err == nil && p.zxid > 0 && z>>32 == p.zxid>>32 {
		r.ZKWrites = z - p.zxid
		if r.Completed > 0 {
			r.ZKWritesPerNode = float64(r.ZKWrites) / float64(r.Completed)
		}
	}
	return r
}

// scenarioOptions are the knobs of a scenario run.
type scenarioOptions struct {
	Requests int
	Logger   *slog.Logger
	// Floor runs the engine floor after the burst.
	Floor bool
}

// warmUp runs one request through launch and return, so that the measured requests do
// not pay for starting the pool's ledger and the first task queue polls.
func warmUp(ctx context.Context, z *zuulClient, boot time.Duration) error {
	id, _, err := z.submit(ctx, []string{benchLabel})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, requestTimeout+boot)
	defer cancel()
	req, _, err := z.waitDone(wctx, id)
	if err != nil {
		return fmt.Errorf("warm-up request: %w", err)
	}
	if req.State != zookeeper.StateFulfilled {
		return fmt.Errorf("warm-up request %s ended %s", id, req.State)
	}
	if _, err := z.useAndReturn(wctx, req); err != nil {
		return fmt.Errorf("returning warm-up node: %w", err)
	}
	for _, n := range req.Nodes {
		if _, err := z.waitGone(wctx, n); err != nil {
			return fmt.Errorf("warm-up node: %w", err)
		}
	}
	return nil
}

// warmedClient returns the scenario's Zuul client once a warm-up request has been
// through launch and return (counted as launched).
func warmedClient(ctx context.Context, st *stack, logger *slog.Logger, rep *ScenarioReport) (*zuulClient, error) {
	z, err := newZuulClient(st.zk)
	if err != nil {
		return nil, err
	}
	logger.Info("warming up")
	if err := warmUp(ctx, z, seconds(rep.BootSeconds)); err != nil {
		return nil, err
	}
	rep.Launched++
	return z, nil
}

// cycle is one request of a sequential scenario, played through as Zuul does.
type cycle struct {
	id                   string
	submitted, fulfilled time.Time
	req                  *zookeeper.NodeRequest
	// used is when each node was marked used (nil when returning failed); deleted when
	// each node's znode was seen gone.
	used, deleted map[string]time.Time
}

// latency is the time from submission to fulfilment.
func (c *cycle) latency() time.Duration { return c.fulfilled.Sub(c.submitted) }

// requestCycle submits one single-node request and waits for it; once it is
// fulfilled, uses and returns its nodes and waits until they are deleted. Failures are
// counted on p, and the cycle is nil when the request was not fulfilled; the error is
// a failed submission or the end of ctx.
func requestCycle(ctx context.Context, z *zuulClient, p *phase, boot time.Duration) (*cycle, error) {
	id, t0, err := z.submit(ctx, []string{benchLabel})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout+boot)
	defer cancel()
	req, t1, err := z.waitDone(rctx, id)
	if err == nil && req.State != zookeeper.StateFulfilled {
		err = z.dropFailed(ctx, req)
	}
	if err != nil {
		p.fail(err)
		return nil, ctx.Err()
	}
	c := &cycle{id: id, submitted: t0, fulfilled: t1, req: req, deleted: map[string]time.Time{}}
	if c.used, err = z.useAndReturn(rctx, req); err != nil {
		p.fail(err)
		return c, nil
	}
	dctx, cancelDelete := context.WithTimeout(ctx, deleteTimeout)
	defer cancelDelete()
	for _, n := range req.Nodes {
		gone, err := z.waitGone(dctx, n)
		if err != nil {
			p.fail(err)
			continue
		}
		c.deleted[n] = gone
		p.report.Completed++
	}
	return c, nil
}

// returns appends the used-to-deleted time of each of the cycle's deleted nodes to
// ret, and sets sample from its first one when it is not set yet.
func (c *cycle) returns(ret []time.Duration, sample *workflowSample) []time.Duration {
	for _, n := range c.req.Nodes {
		gone, ok := c.deleted[n]
		if !ok {
			continue
		}
		ret = append(ret, gone.Sub(c.used[n]))
		if sample.RequestID == "" {
			*sample = workflowSample{RequestID: c.id, Submitted: c.submitted, NodeID: n, Used: c.used[n]}
		}
	}
	return ret
}

// runLatency submits single-node requests one after another; each node is returned
// and deleted before the next request.
func runLatency(ctx context.Context, st *stack, mon *monitor, o scenarioOptions, rep *ScenarioReport) error {
	z, err := warmedClient(ctx, st, o.Logger, rep)
	if err != nil {
		return err
	}
	boot := seconds(rep.BootSeconds)
	o.Logger.Info("latency: sequential requests", "requests", o.Requests)
	p := beginPhase(ctx, st, mon, phaseLatencyCycle)
	p.report.Requests = o.Requests
	var launch, overhead, ret []time.Duration
	var sample workflowSample
	for i := range o.Requests {
		if err := st.checkAlive(); err != nil {
			return err
		}
		c, err := requestCycle(ctx, z, p, boot)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		rep.Launched++
		launch = append(launch, c.latency())
		overhead = append(overhead, c.latency()-boot)
		ret = c.returns(ret, &sample)
		o.Logger.Debug("request done", "i", i, "request_id", c.id, "latency", c.latency())
	}
	r := p.end(ctx)
	r.Launch, r.Overhead, r.Return = summaryOrNil(launch), summaryOrNil(overhead), summaryOrNil(ret)
	rep.Phases = append(rep.Phases, r)
	wc := workflowCosts(ctx, st.temporalAddr, st.opts.Driver, sample, o.Logger)
	rep.Workflows = &wc
	return st.checkAlive()
}

// burstResult is one request of a burst.
type burstResult struct {
	id        string
	submitted time.Time
	done      time.Time
	req       *zookeeper.NodeRequest
}

// runBurst submits o.Requests single-node requests at once, waits for all of them, then
// returns every node at once and waits for all deletions.
func runBurst(ctx context.Context, st *stack, mon *monitor, o scenarioOptions, rep *ScenarioReport) error {
	z, err := warmedClient(ctx, st, o.Logger, rep)
	if err != nil {
		return err
	}
	boot := seconds(rep.BootSeconds)

	o.Logger.Info("burst: submitting", "requests", o.Requests)
	p := beginPhase(ctx, st, mon, phaseBurstLaunch)
	p.report.Requests = o.Requests
	bctx, cancel := context.WithTimeout(ctx, requestTimeout+boot+time.Duration(o.Requests)*time.Second)
	defer cancel()
	results := make([]burstResult, o.Requests)
	var (
		wg         sync.WaitGroup
		nFulfilled atomic.Int64
	)
	sem := make(chan struct{}, submitConcurrency)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			id, t0, err := z.submit(bctx, []string{benchLabel})
			<-sem
			if err != nil {
				p.fail(err)
				return
			}
			results[i].id, results[i].submitted = id, t0
			req, t1, err := z.waitDone(bctx, id)
			if err == nil && req.State != zookeeper.StateFulfilled {
				err = z.dropFailed(bctx, req)
			}
			if err != nil {
				p.fail(err)
				return
			}
			results[i].req, results[i].done = req, t1
			nFulfilled.Add(1)
		}()
	}
	go progress(bctx, o.Logger, "fulfilled", o.Requests, &nFulfilled)
	wg.Wait()
	cancel()

	var launch, overhead []time.Duration
	var first, last time.Time
	var (
		fulfilled []*zookeeper.NodeRequest
		sample    workflowSample
		median    []burstResult
	)
	for _, r := range results {
		if r.id == "" {
			continue
		}
		if first.IsZero() || r.submitted.Before(first) {
			first = r.submitted
		}
		if r.req == nil {
			continue
		}
		fulfilled = append(fulfilled, r.req)
		median = append(median, r)
		d := r.done.Sub(r.submitted)
		launch = append(launch, d)
		overhead = append(overhead, d-boot)
		if r.done.After(last) {
			last = r.done
		}
	}
	p.report.Completed = len(fulfilled)
	rep.Launched += len(fulfilled)
	if len(median) > 0 {
		// The request of median latency stands for the burst in the workflow costs.
		slices.SortFunc(median, func(a, b burstResult) int {
			return cmp.Compare(a.done.Sub(a.submitted), b.done.Sub(b.submitted))
		})
		m := median[len(median)/2]
		sample = workflowSample{RequestID: m.id, Submitted: m.submitted, NodeID: m.req.Nodes[0]}
	}
	r := p.end(ctx)
	r.Launch, r.Overhead = summaryOrNil(launch), summaryOrNil(overhead)
	if len(fulfilled) > 0 && last.After(first) {
		r.NodesPerSecond = float64(len(fulfilled)) / last.Sub(first).Seconds()
	}
	rep.Phases = append(rep.Phases, r)
	if err := st.checkAlive(); err != nil {
		return err
	}

	o.Logger.Info("burst: returning nodes", "nodes", len(fulfilled))
	p = beginPhase(ctx, st, mon, phaseBurstReturn)
	p.report.Requests = len(fulfilled)
	rctx, cancel := context.WithTimeout(ctx, deleteTimeout+time.Duration(len(fulfilled))*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		nDeleted atomic.Int64
		ret      []time.Duration
		firstUse time.Time
		lastGone time.Time
	)
	sem = make(chan struct{}, returnConcurrency)
	for _, req := range fulfilled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			used, err := z.useAndReturn(rctx, req)
			<-sem
			if err != nil {
				p.fail(err)
				return
			}
			for _, n := range req.Nodes {
				gone, err := z.waitGone(rctx, n)
				if err != nil {
					p.fail(err)
					continue
				}
				mu.Lock()
				if n == sample.NodeID {
					sample.Used = used[n]
				}
				ret = append(ret, gone.Sub(used[n]))
				if firstUse.IsZero() || used[n].Before(firstUse) {
					firstUse = used[n]
				}
				if gone.After(lastGone) {
					lastGone = gone
				}
				mu.Unlock()
				nDeleted.Add(1)
			}
		}()
	}
	go progress(rctx, o.Logger, "deleted", len(fulfilled), &nDeleted)
	wg.Wait()
	cancel()
	p.report.Completed = len(ret)
	r = p.end(ctx)
	r.Return = summaryOrNil(ret)
	if len(ret) > 0 && lastGone.After(firstUse) {
		r.NodesPerSecond = float64(len(ret)) / lastGone.Sub(firstUse).Seconds()
	}
	rep.Phases = append(rep.Phases, r)

	if sample.RequestID != "" {
		wc := workflowCosts(ctx, st.temporalAddr, st.opts.Driver, sample, o.Logger)
		rep.Workflows = &wc
	}
	if err := st.checkAlive(); err != nil || !o.Floor {
		return err
	}
	o.Logger.Info("engine floor: trivial workflows on the same server", "workflows", o.Requests)
	fl, err := runFloor(ctx, st.temporalAddr, mon, o.Requests, o.Logger)
	rep.Floor = fl
	if err != nil {
		return err
	}
	if len(rep.Phases) > 0 && fl.WorkflowsPerSecond > 0 {
		for _, ph := range rep.Phases {
			if ph.Name == phaseBurstLaunch {
				fl.NodesPerFloorWorkflow = ph.NodesPerSecond / fl.WorkflowsPerSecond
			}
		}
	}
	return st.checkAlive()
}

// progress logs a count every few seconds until ctx ends or the count reaches total.
func progress(ctx context.Context, logger *slog.Logger, what string, total int, count *atomic.Int64) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := count.Load()
		logger.Info("progress", what, n, "of", total)
		if n >= int64(total) {
			return
		}
	}
}

func summaryOrNil(xs []time.Duration) *Summary {
	if len(xs) == 0 {
		return nil
	}
	s := summarize(xs)
	return &s
}
