package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Names of the reuse scenario.
const (
	reuseScenario = "reuse"
	phaseReuse    = "ready-node reuse"
	// goalReuseP95 is the target: a request is fulfilled from a ready node
	// within a second.
	goalReuseP95 = 1.0
	// readyPollInterval is how often the ready nodes are listed while waiting for them
	// (each listing reads every node record, so this is ZooKeeper load of its own).
	readyPollInterval = 500 * time.Millisecond
	// replenishSlack bounds the wait for min-ready to be restored beyond the
	// coordinator's pass interval and the boot.
	replenishSlack = 90 * time.Second
)

// ReuseReport holds the reuse scenario's figures: single-node requests that allow
// reuse, each submitted while min-ready ready nodes exist.
type ReuseReport struct {
	MinReady int `json:"min_ready"`
	Requests int `json:"requests"`
	// FromReady counts the requests fulfilled with a node that was ready and
	// unallocated before the request was submitted; FromReadyShare is that over the
	// fulfilled requests.
	Fulfilled      int     `json:"fulfilled"`
	FromReady      int     `json:"from_ready"`
	FromReadyShare float64 `json:"from_ready_share"`
	// Launch is submit-to-fulfilled of every fulfilled request; ReadyLaunch of those
	// served from a ready node.
	Launch      *Summary `json:"submit_to_fulfilled,omitempty"`
	ReadyLaunch *Summary `json:"ready_submit_to_fulfilled,omitempty"`
	// Replenish runs from a request's fulfilment to min-ready ready nodes existing
	// again (its node returned and deleted meanwhile).
	Replenish *Summary `json:"replenish,omitempty"`
	// InitialReadySeconds is the time from the launcher's start to the first
	// min-ready ready nodes.
	InitialReadySeconds float64 `json:"initial_ready_seconds"`
}

// readyNodes returns the ids of the nodes of benchLabel that are ready and allocated
// to no request, and adds every node id it sees to seen.
func readyNodes(ctx context.Context, zk *zookeeper.Client, seen map[string]bool) ([]string, error) {
	ids, err := zk.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		seen[id] = true
		n, err := zk.GetNode(ctx, id)
		if errors.Is(err, zookeeper.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n.State == zookeeper.NodeReady && (n.AllocatedTo == nil || *n.AllocatedTo == "") && slices.Contains(n.Type, benchLabel) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

// waitReady waits until at least n ready unallocated nodes exist and returns them.
func waitReady(ctx context.Context, st *stack, n int, timeout time.Duration, seen map[string]bool) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(readyPollInterval)
	defer t.Stop()
	for {
		ready, err := readyNodes(ctx, st.zk, seen)
		if err == nil && len(ready) >= n {
			return ready, nil
		}
		if aerr := st.checkAlive(); aerr != nil {
			return nil, aerr
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d ready nodes (have %d, last error %v): %w", n, len(ready), err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// runReuse measures the ready-node fulfilment latency: with min-ready M on the label,
// it waits until M ready unallocated nodes exist, then submits single-node requests
// that allow reuse one after another, each once the previous one's node is returned
// and deleted and min-ready is restored.
func runReuse(ctx context.Context, st *stack, mon *monitor, o scenarioOptions, minReady int, rep *ScenarioReport) error {
	z, err := newZuulClient(st.zk)
	if err != nil {
		return err
	}
	boot := seconds(rep.BootSeconds)
	// The coordinator fills min-ready in passes; a pass may just have run.
	replenishTimeout := 2*workflows.DefaultMinReadyInterval + boot + replenishSlack
	seen := map[string]bool{}
	rr := &ReuseReport{MinReady: minReady, Requests: o.Requests}
	rep.Reuse = rr
	start := time.Now()
	o.Logger.Info("reuse: waiting for min-ready nodes", "min_ready", minReady)
	if _, err := waitReady(ctx, st, minReady, replenishTimeout, seen); err != nil {
		return err
	}
	rr.InitialReadySeconds = time.Since(start).Seconds()
	o.Logger.Info("warming up")
	if err := warmUp(ctx, z, boot); err != nil {
		return err
	}

	o.Logger.Info("reuse: sequential requests", "requests", o.Requests)
	p := beginPhase(ctx, st, mon, phaseReuse)
	p.report.Requests = o.Requests
	var launch, fromReady, ret, replenish []time.Duration
	var sample workflowSample
	// stopped is set when min-ready is not restored: the scenario ends early.
	var stopped error
	for i := range o.Requests {
		ready, err := waitReady(ctx, st, minReady, replenishTimeout, seen)
		if err != nil {
			p.fail(err)
			stopped = err
			break
		}
		c, err := requestCycle(ctx, z, p, boot)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		launch = append(launch, c.latency())
		rr.Fulfilled++
		served := len(c.req.Nodes) == 1 && slices.Contains(ready, c.req.Nodes[0])
		if served {
			rr.FromReady++
			fromReady = append(fromReady, c.latency())
		}
		for _, n := range c.req.Nodes {
			seen[n] = true
		}
		ret = c.returns(ret, &sample)
		if _, err := waitReady(ctx, st, minReady, replenishTimeout, seen); err != nil {
			p.fail(err)
			stopped = err
			break
		}
		replenish = append(replenish, time.Since(c.fulfilled))
		o.Logger.Debug("request done", "i", i, "request_id", c.id, "latency", c.latency(), "from_ready", served)
	}
	r := p.end(ctx)
	r.Launch, r.Return = summaryOrNil(launch), summaryOrNil(ret)
	rep.Phases = append(rep.Phases, r)
	rr.Launch, rr.ReadyLaunch, rr.Replenish = summaryOrNil(launch), summaryOrNil(fromReady), summaryOrNil(replenish)
	if rr.Fulfilled > 0 {
		rr.FromReadyShare = float64(rr.FromReady) / float64(rr.Fulfilled)
	}
	// Every node launched shows up in a listing: the min-ready nodes and their
	// replacements while they are ready, the others as a request's node.
	if ids, err := st.zk.ListNodes(ctx); err == nil {
		for _, id := range ids {
			seen[id] = true
		}
	}
	rep.Launched = len(seen)
	if sample.RequestID != "" {
		wc := workflowCosts(ctx, st.temporalAddr, st.opts.Driver, sample, o.Logger)
		rep.Workflows = &wc
	}
	return errors.Join(stopped, st.checkAlive())
}
