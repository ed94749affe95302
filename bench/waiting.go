package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

const (
	waitingScenario = "waiting"
	// waitingPriorities are the Zuul priorities the waiting requests cycle through, and
	// waitingRelative the number of relative priorities.
	waitingRelative = 5
	// nodeListEvery is how often the served requests are looked for while capacity frees.
	nodeListEvery = 250 * time.Millisecond
	// settleSteadyPolls and settleFraction: the requests have settled when the ledger's
	// waiting count held still for this many polls (2 s apart) at this percentage of
	// the requests or more.
	settleSteadyPolls = 8
	settleFraction    = 95
)

var waitingPriorities = []int{zuul.PriorityHigh, zuul.PriorityNormal, zuul.PriorityLow}

// WaitingReport is the outcome of the waiting scenario: N requests wait at a pool whose
// capacity is far below demand.
type WaitingReport struct {
	Requests int `json:"requests"`
	Capacity int `json:"capacity"`
	// SubmitSeconds is the time taken to write every request; SettleSeconds the time
	// until the ledger counted them all waiting.
	SubmitSeconds float64 `json:"submit_seconds"`
	SettleSeconds float64 `json:"settle_seconds"`
	// LedgerWaiting is the ledger's waiting count at the start of the window.
	LedgerWaiting int `json:"ledger_waiting"`
	// WindowSeconds is the idle measuring window: nothing changes in ZooKeeper but time.
	WindowSeconds float64 `json:"window_seconds"`
	// LauncherZKPerSecond is ZooKeeper requests per second from the launcher's sessions
	// (ZooKeeper's own per-connection counters, `cons`), pings included.
	LauncherZKPerSecond float64 `json:"launcher_zk_requests_per_second"`
	// Usage is the CPU of every component over the window.
	Usage []ProcUsage `json:"usage"`
	// Ledger figures: history length and size of its current run at the end of the
	// window, events and signals per second over the window, and its run id changes.
	LedgerEvents          int64   `json:"ledger_history_events"`
	LedgerHistoryBytes    int64   `json:"ledger_history_bytes"`
	LedgerEventsPerSecond float64 `json:"ledger_events_per_second"`
	LedgerSignalsPerSec   float64 `json:"ledger_signals_per_second"`
	// OldestRequestEvents is the history length of the request that waited longest.
	OldestRequestEvents int64 `json:"oldest_request_history_events"`
	// Served lists how the requests were served as capacity freed: Ranks[i] is how many
	// still-waiting requests came before the i-th served one in Nodepool's order
	// (priority, relative priority, creation). With capacity C, ranks below C are in
	// order (C grants may race for the slots freed at once).
	Served      int   `json:"served"`
	Ranks       []int `json:"ranks"`
	OutOfOrder  int   `json:"out_of_order"`
	ServeErrors int   `json:"serve_errors"`
}

// waitingOptions are the knobs of the waiting scenario.
type waitingOptions struct {
	Requests int
	Capacity int
	Window   time.Duration
	Serve    int
	Logger   *slog.Logger
}

// runWaiting writes N requests at a pool of tiny capacity, measures the launcher while
// they wait, then frees capacity and checks the order they are served in.
func runWaiting(ctx context.Context, st *stack, mon *monitor, o waitingOptions, rep *ScenarioReport) error {
	w := &WaitingReport{Requests: o.Requests, Capacity: o.Capacity}
	rep.Waiting = w
	z, err := warmedClient(ctx, st, o.Logger, rep)
	if err != nil {
		return err
	}
	tc, err := client.DialContext(ctx, client.Options{
		HostPort: st.temporalAddr, Namespace: "default",
		Logger: tlog.NewStructuredLogger(o.Logger.With("component", "temporal-client")),
	})
	if err != nil {
		return fmt.Errorf("connecting to Temporal: %w", err)
	}
	defer tc.Close()
	ledgerID := names.LedgerWorkflowID(benchTaskQueue, providerName(st.opts.Driver), benchPool)

	o.Logger.Info("waiting: writing requests", "requests", o.Requests, "capacity", o.Capacity)
	t0 := time.Now()
	reqs := make([]*zookeeper.NodeRequest, o.Requests)
	var written atomic.Int64
	pctx, stopProgress := context.WithCancel(ctx)
	go progress(pctx, o.Logger, "written", o.Requests, &written)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(submitConcurrency)
	for i := range o.Requests {
		g.Go(func() error {
			r, err := z.submitWith(gctx, waitingPriorities[i%len(waitingPriorities)], (i/len(waitingPriorities))%waitingRelative)
			if err != nil {
				return err
			}
			reqs[i] = r
			written.Add(1)
			return nil
		})
	}
	err = g.Wait()
	stopProgress()
	if err != nil {
		return err
	}
	w.SubmitSeconds = time.Since(t0).Seconds()

	// Settled once every request but those being served counts as waiting.
	o.Logger.Info("waiting: until the ledger counts every request")
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute+time.Duration(o.Requests)*200*time.Millisecond)
	defer cancel()
	last, steady := -1, 0
	for {
		n, err := ledgerWaiting(sctx, tc, ledgerID)
		if err == nil && n == last {
			steady++
		} else {
			steady = 0
		}
		last = n
		// Every request but those served waits; a few may be between runs of their
		// workflow, so a count that holds still near the total will do too.
		if err == nil && (n >= o.Requests-o.Capacity || (steady >= settleSteadyPolls && n >= o.Requests*settleFraction/100)) {
			w.LedgerWaiting = n
			break
		}
		if err := st.checkAlive(); err != nil {
			return err
		}
		select {
		case <-sctx.Done():
			return fmt.Errorf("the ledger counts %d of %d requests waiting after %.0f s (last error: %v)", n, o.Requests, time.Since(t0).Seconds(), err)
		case <-time.After(2 * time.Second):
		}
	}
	w.SettleSeconds = time.Since(t0).Seconds() - w.SubmitSeconds

	o.Logger.Info("waiting: measuring the idle launcher", "window", o.Window)
	before, err := zkSessionCounts(ctx, st.zkAddrs)
	if err != nil {
		return err
	}
	d0, err := tc.DescribeWorkflowExecution(ctx, ledgerID, "")
	if err != nil {
		return fmt.Errorf("describing the ledger: %w", err)
	}
	mon.mark()
	w0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.Window):
	}
	after, err := zkSessionCounts(ctx, st.zkAddrs)
	if err != nil {
		return err
	}
	w.Usage, _ = mon.usage()
	w1 := time.Now()
	w.WindowSeconds = w1.Sub(w0).Seconds()
	w.LauncherZKPerSecond = float64(sessionDelta(before, after, st.zk.SessionID())) / w.WindowSeconds
	d1, err := tc.DescribeWorkflowExecution(ctx, ledgerID, "")
	if err != nil {
		return fmt.Errorf("describing the ledger: %w", err)
	}
	info0, info1 := d0.GetWorkflowExecutionInfo(), d1.GetWorkflowExecutionInfo()
	w.LedgerEvents, w.LedgerHistoryBytes = info1.GetHistoryLength(), info1.GetHistorySizeBytes()
	if info0.GetExecution().GetRunId() == info1.GetExecution().GetRunId() {
		w.LedgerEventsPerSecond = float64(info1.GetHistoryLength()-info0.GetHistoryLength()) / w.WindowSeconds
	}
	if n, err := signalsBetween(ctx, tc, ledgerID, w0, w1); err == nil {
		w.LedgerSignalsPerSec = float64(n) / w.WindowSeconds
	} else {
		o.Logger.Warn("reading the ledger's history", "error", err)
	}
	oldest := slices.MinFunc(reqs, func(a, b *zookeeper.NodeRequest) int { return cmpSequence(a.ID, b.ID) })
	if d, err := tc.DescribeWorkflowExecution(ctx, names.RequestWorkflowID(benchTaskQueue, oldest.ID), ""); err == nil {
		w.OldestRequestEvents = d.GetWorkflowExecutionInfo().GetHistoryLength()
	}

	o.Logger.Info("waiting: freeing capacity", "serve", o.Serve)
	taken, err := serveInOrder(ctx, st, z, reqs, o, w)
	rep.Launched += taken
	return err
}

// serveInOrder returns every served request's nodes as soon as it is fulfilled, so that
// capacity keeps freeing, and records the order in which the waiting requests are taken
// (the order their nodes are created) until o.Serve have been.
// It returns the number of requests taken.
func serveInOrder(ctx context.Context, st *stack, z *zuulClient, reqs []*zookeeper.NodeRequest, o waitingOptions, w *WaitingReport) (int, error) {
	remaining := map[string]*zookeeper.NodeRequest{}
	for _, r := range reqs {
		remaining[r.ID] = r
	}
	seenNodes := map[string]bool{}
	taken := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	serve := func(id string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			req, _, err := z.waitDone(rctx, id)
			if err == nil && req.State == zookeeper.StateFulfilled {
				_, err = z.useAndReturn(rctx, req)
			} else if err == nil {
				err = errors.New("request " + id + " ended " + string(req.State))
			}
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				w.ServeErrors++
				mu.Unlock()
				o.Logger.Warn("serving a request", "request_id", id, "error", err)
			}
		}()
	}
	first := true
	deadline := time.Now().Add(time.Duration(o.Serve+o.Capacity)*requestTimeout/2 + time.Minute)
	for w.Served < o.Serve {
		if time.Now().After(deadline) {
			return len(taken), fmt.Errorf("only %d of %d requests served before the deadline", w.Served, o.Serve)
		}
		if err := st.checkAlive(); err != nil {
			return len(taken), err
		}
		ids, err := st.zk.Children(ctx, zookeeper.NodesPath)
		if err != nil && !errors.Is(err, zookeeper.ErrNotFound) {
			return len(taken), err
		}
		// Node ids are sequential: their order is the order requests were taken.
		for _, nid := range ids {
			if seenNodes[nid] {
				continue
			}
			n, err := st.zk.GetNode(ctx, nid)
			if errors.Is(err, zookeeper.ErrNotFound) {
				seenNodes[nid] = true
				continue
			}
			if err != nil {
				return len(taken), err
			}
			seenNodes[nid] = true
			if n.AllocatedTo == nil || taken[*n.AllocatedTo] {
				continue
			}
			rid := *n.AllocatedTo
			r, ours := remaining[rid]
			if !ours {
				continue // the warm-up's
			}
			taken[rid] = true
			delete(remaining, rid)
			if !first {
				// The requests taken before capacity freed were taken while the others
				// were still being written: only later ones are ranked.
				rank := rankAmong(r, remaining)
				w.Ranks = append(w.Ranks, rank)
				if rank >= o.Capacity {
					w.OutOfOrder++
				}
				w.Served++
			}
			serve(rid)
		}
		first = false
		select {
		case <-ctx.Done():
			return len(taken), ctx.Err()
		case <-time.After(nodeListEvery):
		}
	}
	return len(taken), nil
}

// rankAmong counts the requests of others that Nodepool serves before r.
func rankAmong(r *zookeeper.NodeRequest, others map[string]*zookeeper.NodeRequest) int {
	n := 0
	for _, o := range others {
		if zookeeper.RequestLess(o, r) {
			n++
		}
	}
	return n
}

// cmpSequence orders request ids by their sequence number (the part after the dash).
func cmpSequence(a, b string) int {
	ra, rb := &zookeeper.NodeRequest{ID: a}, &zookeeper.NodeRequest{ID: b}
	switch sa, sb := ra.Sequence(), rb.Sequence(); {
	case sa < sb:
		return -1
	case sa > sb:
		return 1
	}
	return 0
}

// ledgerWaiting asks a pool ledger how many requests wait for capacity.
func ledgerWaiting(ctx context.Context, tc client.Client, ledgerID string) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := tc.QueryWorkflow(qctx, ledgerID, "", workflows.QueryStatus)
	if err != nil {
		return 0, err
	}
	var status struct {
		WaitingCount int `json:"waiting_count"`
	}
	if err := v.Get(&status); err != nil {
		return 0, err
	}
	return status.WaitingCount, nil
}

// signalsBetween counts the signals the workflow's latest run received between from
// and to.
func signalsBetween(ctx context.Context, tc client.Client, workflowID string, from, to time.Time) (int, error) {
	n := 0
	it := tc.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return n, err
		}
		at := ev.GetEventTime().AsTime()
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED && !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n, nil
}

// zkSessionCounts asks every ZooKeeper member (four-letter word `cons`) how many
// requests each session connected to it has sent.
func zkSessionCounts(ctx context.Context, addrs []string) (map[int64]int64, error) {
	all := map[int64]int64{}
	for _, addr := range addrs {
		counts, err := devstack.ZooKeeperSessionRequests(ctx, addr)
		if err != nil {
			return nil, err
		}
		for sid, n := range counts {
			all[sid] += n
		}
	}
	return all, nil
}

// zkZxid asks ZooKeeper (four-letter word `srvr`) for its last transaction id: within
// one epoch, the difference of two readings is the number of writes in between.
func zkZxid(ctx context.Context, addr string) (int64, error) {
	out, err := devstack.FourLetterWord(ctx, addr, "srvr")
	if err != nil {
		return 0, err
	}
	return parseZxid(out)
}

// parseZxid reads the Zxid line of `srvr` output.
func parseZxid(out string) (int64, error) {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Zxid:"); ok {
			z, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(v), "0x"), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %q: %w", strings.TrimSpace(line), err)
			}
			return z, nil
		}
	}
	return 0, errors.New("no Zxid in srvr output")
}

// sessionDelta sums the requests sent between two `cons` readings by every session but
// skip's (the benchmark's own). A session that appeared in between counts from zero.
func sessionDelta(before, after map[int64]int64, skip int64) int64 {
	var n int64
	for sid, c := range after {
		if sid == skip {
			continue
		}
		n += max(0, c-before[sid])
	}
	return n
}
