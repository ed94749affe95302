package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// TestChaos runs every scenario of the mode, each on a fresh deployment, and writes
// the report when NODEPOOL_CHAOS_REPORT names a file.
func TestChaos(t *testing.T) {
	m := currentMode()
	run := &runReport{Mode: m, Started: time.Now()}
	path := os.Getenv("NODEPOOL_CHAOS_REPORT")
	for _, sc := range scenarios {
		if !sc.in(m) {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			rep := runScenario(t, m, sc)
			run.add(rep)
			for _, v := range rep.Violations {
				t.Errorf("%s", v)
			}
			if rep.Dir != "" {
				t.Logf("configuration and logs kept in %s", rep.Dir)
			}
		})
		// The report is rewritten after every scenario, so that a run cut short still
		// leaves the figures of the scenarios it finished.
		run.Finished = time.Now()
		if path != "" {
			if err := os.WriteFile(path, []byte(run.markdown()), 0o644); err != nil {
				t.Errorf("writing the report: %v", err)
			}
		}
	}
	if path != "" {
		t.Logf("report written to %s", path)
	}
}

// faultLog records what a scenario injected and when, relative to the burst's start.
type faultLog struct {
	mu     sync.Mutex
	start  time.Time
	first  time.Time
	events []string
}

func (f *faultLog) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.first.IsZero() {
		f.first = now
	}
	f.events = append(f.events, fmt.Sprintf("at %.1f s: %s", now.Sub(f.start).Seconds(), fmt.Sprintf(format, args...)))
}

// burst is a set of requests Zuul serves: each goroutine waits for its request,
// accepts, uses and returns the nodes.
type burst struct {
	c   *cluster
	l   *ledger
	ctx context.Context

	mu      sync.Mutex
	results []*result
	wg      sync.WaitGroup
}

// submit submits requests for sets and starts serving them.
func (b *burst) submit(sets [][]string) error {
	rs, err := b.c.submit(b.ctx, sets)
	for _, r := range rs {
		if r == nil {
			continue
		}
		b.mu.Lock()
		b.results = append(b.results, r)
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.c.serve(b.ctx, r, b.l, nil)
		}()
	}
	return err
}

func (b *burst) all() []*result {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*result(nil), b.results...)
}

// runScenario runs one scenario on a fresh deployment and returns its report.
func runScenario(t *testing.T, m mode, sc scenario) *scenarioReport {
	rep := &scenarioReport{Name: sc.name, What: sc.what}
	violate := func(format string, args ...any) {
		rep.Violations = append(rep.Violations, fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.burstTimeout+4*m.cleanTimeout+5*time.Minute)
	defer cancel()

	t0 := time.Now()
	c, err := newCluster(ctx, t, m, sc.name, sc.spec)
	if err != nil {
		violate("starting the deployment: %v", err)
		return rep
	}
	rep.Startup = time.Since(t0)
	defer func() {
		c.stop()
		if len(rep.Violations) > 0 || os.Getenv("NODEPOOL_CHAOS_KEEP") != "" {
			rep.Dir = c.dir
		} else {
			_ = os.RemoveAll(c.dir)
		}
	}()
	rep.MaxServers = c.maxServers
	log := &faultLog{}

	// The burst, with the fault injected while it runs.
	if sc.before != nil {
		log.start = time.Now()
		if err := sc.before(ctx, c, log); err != nil {
			violate("injecting the fault: %v", err)
			return rep
		}
	}
	bctx, bcancel := context.WithTimeout(ctx, m.burstTimeout)
	defer bcancel()
	l := newLedger()
	b := &burst{c: c, l: l, ctx: bctx}
	start := time.Now()
	log.start = start
	sets := c.requestSets(m.burst)
	if sc.sets != nil {
		sets = sc.sets(c)
	}
	if err := b.submit(sets); err != nil {
		violate("%v", err)
	}
	if sc.during != nil {
		if err := sc.during(bctx, c, b, log); err != nil {
			violate("injecting the fault: %v", err)
		}
	}
	b.wg.Wait()
	results := b.all()
	var last time.Time
	for _, r := range results {
		if r.done.After(last) {
			last = r.done
		}
	}
	rep.Burst = last.Sub(start)
	if !log.first.IsZero() && last.After(log.first) {
		rep.Recovery = last.Sub(log.first)
	}
	if sc.after != nil {
		if err := sc.after(ctx, c, log); err != nil {
			violate("ending the fault: %v", err)
		}
	}
	rep.Injected = log.events
	rep.CloudErrors = c.cloudErrors(ctx)

	// What Zuul saw.
	var notEnded []string
	for _, r := range results {
		rep.Requests++
		if len(r.labels) > 1 {
			rep.Multi++
		}
		switch {
		case r.err != nil:
			notEnded = append(notEnded, r.id)
			// Zuul gives up on it and deletes it.
			_ = c.zuul.Cancel(ctx, r.id)
		case r.state == zookeeper.StateFulfilled:
			rep.Fulfilled++
			rep.Nodes += len(r.nodes)
		case r.state == zookeeper.StateFailed:
			rep.Failed++
		}
		if r.zuulErr != nil {
			if errors.Is(r.zuulErr, zookeeper.ErrNotFound) && r.state == "" {
				violate("request %s vanished before it ended: %v", r.id, r.zuulErr)
			} else if errors.Is(r.zuulErr, zuul.ErrNotAllocated) {
				violate("request %s: %v", r.id, r.zuulErr)
			} else {
				rep.ZuulProblems = append(rep.ZuulProblems, r.zuulErr.Error())
			}
		}
	}
	if rep.Failed > 0 && !sc.declines {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d of %d requests were declined although the fault is one a "+
			"launch should ride out (see the failed launch attempts below)", rep.Failed, rep.Requests))
	}
	if len(notEnded) > 0 {
		violate("%d of %d requests did not end within %s (left pending or requested): %s",
			len(notEnded), len(results), m.burstTimeout, sample(notEnded))
	}
	for _, d := range l.duplicates {
		violate("a node was in two fulfilled requests: %s", d)
	}

	// Everything returned is deleted: no node, no request, no instance left.
	cleanStart := time.Now()
	nodes, requests, instances, err := c.waitClean(ctx, m.cleanTimeout)
	rep.Clean = time.Since(cleanStart)
	switch {
	case err != nil:
		violate("checking what is left: %v", err)
	default:
		if len(nodes) > 0 {
			violate("%d node(s) left in ZooKeeper %s after the burst: %s", len(nodes), m.cleanTimeout, sample(nodes))
		}
		if len(requests) > 0 {
			violate("%d request(s) left in ZooKeeper after the burst: %s", len(requests), sample(requests))
		}
		if len(instances) > 0 {
			violate("%d cloud instance(s) left %s after the burst: %s", len(instances), m.cleanTimeout, sample(instances))
		}
	}

	// The pool's whole capacity is available again.
	c.followUp(ctx, rep, violate)

	rep.Created = c.created(ctx)
	twice, most, err := c.creationProblems(ctx)
	rep.MostPerNode = most
	switch {
	case err != nil:
		violate("reading the cloud's creations: %v", err)
	case len(twice) > 0:
		violate("%d node id(s) had more than one instance at once: %s", len(twice), sample(twice))
	}
	rep.Warnings = c.warnings.Load()
	rep.AttemptFailures = c.attemptFailures()
	rep.Passed = len(rep.Violations) == 0
	return rep
}

// followUp submits max-servers single-node requests and holds every node until all are
// fulfilled: that only happens when no capacity leaked. Then it returns them and waits
// until everything is deleted.
func (c *cluster) followUp(ctx context.Context, rep *scenarioReport, violate func(string, ...any)) {
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, c.m.cleanTimeout)
	defer cancel()
	sets := make([][]string, c.maxServers)
	for i := range sets {
		sets[i] = []string{c.labels[0]}
	}
	rep.FollowUpSize = len(sets)
	results, err := c.submit(fctx, sets)
	if err != nil {
		violate("follow-up burst: %v", err)
	}
	l := newLedger()
	hold := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range results {
		if r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve(fctx, r, l, hold)
		}()
	}
	// Wait until every request ended, while the fulfilled ones hold their nodes.
	for int(l.ended.Load()) < len(results) && fctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	rep.FollowUpFulfilled = int(l.fulfilled.Load())
	rep.FollowUp = time.Since(start)
	close(hold)
	wg.Wait()
	if rep.FollowUpFulfilled < len(sets) {
		violate("capacity not fully available again: %d of %d follow-up requests (max-servers) fulfilled at once, %d failed",
			rep.FollowUpFulfilled, len(sets), l.failed.Load())
	}
	for _, r := range results {
		if r != nil && r.err != nil {
			_ = c.zuul.Cancel(ctx, r.id)
		}
	}
	for _, d := range l.duplicates {
		violate("follow-up burst: a node was in two fulfilled requests: %s", d)
	}
	nodes, requests, instances, err := c.waitClean(ctx, c.m.cleanTimeout)
	switch {
	case err != nil:
		violate("follow-up burst: checking what is left: %v", err)
	case len(nodes)+len(requests)+len(instances) > 0:
		violate("follow-up burst: left after %s: nodes %s, requests %s, instances %s",
			c.m.cleanTimeout, sample(nodes), sample(requests), sample(instances))
	}
}

// sample returns the first few items of a list, and how many there are.
func sample(items []string) string {
	const n = 8
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s, … (%d in all)", strings.Join(items[:n], ", "), len(items))
}
