package poller

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/go-zookeeper/zk"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Stranded requests: a request that is "requested", that our pools have not all declined
// and whose workflow is not running (an operator terminated it, or it ended after
// finding the request locked for a moment) must get a new run.
const (
	// strandedCheckAfter is how long after starting a request's workflow the poller first
	// asks Temporal whether it still runs, and the first wait between restarts of a
	// workflow that keeps ending.
	strandedCheckAfter = 5 * time.Second
	// strandedRecheck is how often a waiting request's workflow is checked again once it
	// was found running.
	strandedRecheck = 30 * time.Second
	// maxRestartBackoff caps the doubling wait between restarts of a request's
	// workflow that keeps ending.
	maxRestartBackoff = 5 * time.Minute
	// strandedChecksPerScan bounds the workflow checks of one scan, so that a backlog of
	// thousands of waiting requests costs Temporal a few calls a second.
	strandedChecksPerScan = 64
	// pendingCheckEvery is how often the lock of an unchanged pending request is read.
	pendingCheckEvery = 5 * time.Second
	// watchRetry and watchRetryMax bound the wait between attempts to read a request
	// (and arm its data watch) while ZooKeeper cannot be reached.
	watchRetry    = time.Second
	watchRetryMax = 10 * time.Second
	// defaultResyncInterval is how often every request is read again although no watch
	// reported a change.
	defaultResyncInterval = 5 * time.Minute
)

// Size budgets for what a workflow start carries besides its input.
const (
	// labelBudget bounds the bytes of the NodepoolLabel search attribute (the server
	// refuses a keyword list beyond 2 KiB).
	labelBudget = 1000
	// memoFieldBudget bounds each list or object in a request workflow's memo.
	memoFieldBudget = 1024
	// memoStringMax bounds each string in the memo.
	memoStringMax = 256
)

// reqState is what the poller remembers about one listed request.
type reqState struct {
	// state and version are the request's state and znode version when last read.
	state   zookeeper.RequestState
	version int32
	// started is set once a workflow was started for the request while "requested";
	// priority is the relative_priority that workflow knows.
	started  bool
	priority int
	// nextCheck is when to ask Temporal next whether the workflow still runs; restarts
	// counts the restarts since it was last found running.
	nextCheck time.Time
	restarts  int
	// bad and badVersion: the record at badVersion could not be decoded (logged once).
	bad        bool
	badVersion int32
	// rec is the record last read (nil when it could not be decoded).
	rec *zookeeper.NodeRequest
	// lockCheckedAt is when the lock of the pending request was last read; lostSince
	// when it was first seen pending and unlocked.
	lockCheckedAt time.Time
	lostSince     time.Time
}

// superseded reports whether a newer version of the request than req was read since
// (its reader acts on that one); p.mu must be held.
func superseded(st *reqState, req *zookeeper.NodeRequest) bool {
	return st.rec != nil && st.rec.Version > req.Version
}

// settled reports whether the request can no longer change in a way the poller acts on
// (Zuul deletes fulfilled and failed requests, nobody rewrites them).
func (s *reqState) settled() bool {
	return s.state == zookeeper.StateFulfilled || s.state == zookeeper.StateFailed
}

// request returns the state of request id, creating it; p.mu must be held.
func (p *Poller) request(id string) *reqState {
	st := p.reqs[id]
	if st == nil {
		st = &reqState{}
		p.reqs[id] = st
	}
	return st
}

// watchRequests reacts to the request tree. Each listed request has a data watch and its
// last record is kept, so a request is read when it appears and each time it changes,
// and never otherwise: new requests start workflows, changed ones are looked at again,
// removed ones signal theirs. The periodic scan works from the kept records (restarts of
// workflows that ended too early, pending requests' locks) and re-reads nothing; every
// resyncEvery scans one pass re-reads every request, as a safety net under the watches.
func (p *Poller) watchRequests(ctx context.Context) {
	events := p.opts.ZK.WatchChildren(ctx, zookeeper.RequestsPath)
	ticker := time.NewTicker(p.opts.ScanInterval)
	defer ticker.Stop()
	watches := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range watches {
			cancel()
		}
		wg.Wait()
	}()
	resyncEvery := max(1, int(p.opts.ResyncInterval/p.opts.ScanInterval))
	sinceResync := 0
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
			p.handleRequests(ctx, children, watches, &wg)
		case <-ticker.C:
			sinceResync++
			resync := sinceResync >= resyncEvery
			if resync {
				sinceResync = 0
			}
			p.scanRequests(ctx, children, resync)
		}
	}
}

// handleRequests takes a new listing of the request tree: a data watch begins for each
// new request (its first read acts on it) and the workflows of removed ones are told.
func (p *Poller) handleRequests(ctx context.Context, children []string, watches map[string]context.CancelFunc, wg *sync.WaitGroup) {
	current := make(map[string]bool, len(children))
	for _, id := range children {
		current[id] = true
	}
	p.mu.Lock()
	var removed []string
	for id := range p.known {
		if current[id] {
			continue
		}
		// A workflow runs only for requests last seen requested or pending (or never
		// read); the others need no signal.
		if st := p.reqs[id]; st == nil || (!st.settled() && !st.bad) {
			removed = append(removed, id)
		}
		p.forgetRequest(id)
	}
	p.known, p.requestsListed = current, true
	p.mu.Unlock()

	for id, cancel := range watches {
		if !current[id] {
			cancel()
			delete(watches, id)
		}
	}
	for _, id := range children {
		if _, ok := watches[id]; ok || !zookeeper.IsNodepoolRequestID(id) {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		watches[id] = cancel
		wg.Add(1)
		go func() { defer wg.Done(); p.watchRequest(wctx, id) }()
	}

	// Each signal is a round trip to Temporal: a burst of deleted requests is handled a
	// few at a time instead of one after another.
	g := errgroup.Group{}
	g.SetLimit(startConcurrency)
	for _, id := range removed {
		g.Go(func() error { p.signalDeleted(ctx, id); return nil })
	}
	_ = g.Wait()
}

// watchRequest reads request id, acts on it, and does so again each time its data watch
// fires, until the request is deleted or ctx ends (it is no longer listed).
func (p *Poller) watchRequest(ctx context.Context, id string) {
	retry := watchRetry
	for ctx.Err() == nil {
		if !p.takeSlot(ctx) {
			return
		}
		req, watch, err := p.opts.ZK.GetRequestW(ctx, id)
		p.requestReads.Add(1)
		if ctx.Err() != nil {
			p.freeSlot()
			return
		}
		p.actOnRequest(ctx, id, req, err, false)
		p.freeSlot()
		if errors.Is(err, zookeeper.ErrNotFound) {
			return // the next listing forgets it
		}
		if watch == nil {
			// ZooKeeper unreachable: try again; the data watch is armed by the read
			// that succeeds.
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			retry = min(2*retry, watchRetryMax)
			continue
		}
		retry = watchRetry
		select {
		case <-ctx.Done():
			return
		case ev := <-watch:
			if ev.Type == zk.EventNodeDeleted {
				return
			}
			// Changed, or the watch was lost with the session: read it again.
		}
	}
}

// takeSlot takes one of startConcurrency slots for reading and acting on a request, so a
// burst of thousands of new requests is read and started a few at a time.
func (p *Poller) takeSlot(ctx context.Context) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Poller) freeSlot() { <-p.slots }

// scanRequests is the periodic pass. It works from the kept records: requests whose
// workflow is due for a check (or whose start failed) and pending requests, whose lock
// must be held by someone alive. With resync, every unsettled request is read again
// instead, in case a watch missed a change.
func (p *Poller) scanRequests(ctx context.Context, children []string, resync bool) {
	before := p.requestReads.Load()
	now := p.now()
	p.mu.Lock()
	// Entries of requests that vanished between listings (a read under way when its
	// request was removed may have recorded it again).
	for id := range p.reqs {
		if !p.known[id] {
			p.forgetRequest(id)
		}
	}
	for path := range p.holders {
		if id, ok := strings.CutPrefix(path, zookeeper.RequestLockRoot+"/"); ok && !p.known[id] {
			delete(p.holders, path)
		}
	}
	p.checkBudget = p.opts.StrandedChecksPerScan
	p.pruneRunning(now)
	var reread []string
	var due []*zookeeper.NodeRequest
	if resync {
		for _, id := range children {
			if st := p.reqs[id]; p.known[id] && (st == nil || !st.settled()) {
				reread = append(reread, id)
			}
		}
	} else {
		// Requests whose workflow is due for a check, most overdue first: with thousands
		// waiting, the budget goes round all of them instead of to the same first ids.
		type check struct {
			req  *zookeeper.NodeRequest
			next time.Time
		}
		var checks []check
		for _, id := range children {
			st := p.reqs[id]
			if st == nil || st.rec == nil || st.bad {
				continue
			}
			switch st.rec.State {
			case zookeeper.StatePending:
				if now.Sub(st.lockCheckedAt) >= pendingCheckEvery || st.version != st.rec.Version {
					due = append(due, st.rec)
				}
			case zookeeper.StateRequested:
				if p.allDeclined(st.rec) {
					continue
				}
				switch {
				case !st.started || st.version != st.rec.Version:
					due = append(due, st.rec)
				case !now.Before(st.nextCheck):
					checks = append(checks, check{st.rec, st.nextCheck})
				}
			}
		}
		slices.SortStableFunc(checks, func(a, b check) int { return a.next.Compare(b.next) })
		for _, c := range checks[:min(len(checks), p.checkBudget)] {
			due = append(due, c.req)
		}
	}
	p.mu.Unlock()

	g := errgroup.Group{}
	g.SetLimit(startConcurrency)
	var resyncReads atomic.Int64
	for _, id := range reread {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			req, err := p.opts.ZK.GetRequest(ctx, id)
			resyncReads.Add(1)
			p.actOnRequest(ctx, id, req, err, true)
			return nil
		})
	}
	for _, req := range due {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { p.actOnRequest(ctx, req.ID, req, nil, true); return nil })
	}
	_ = g.Wait()
	if resync {
		p.resyncMu.Lock()
		p.requestReads.Add(resyncReads.Load())
		p.resyncs++
		p.resyncReads += resyncReads.Load()
		p.resyncMu.Unlock()
	}
	p.scans.Add(1)
	reads := p.requestReads.Load() - before
	if resync {
		p.log.Info("re-read every request", "requests", len(reread), "listed", len(children), "reads", reads)
	} else {
		p.log.Debug("request scan", "listed", len(children), "acted_on", len(due), "reads", reads)
	}
}

// forgetRequest drops what the poller remembers about request id; p.mu must be held.
func (p *Poller) forgetRequest(id string) {
	delete(p.reqs, id)
	delete(p.holders, zookeeper.RequestLockPath(id))
}

func (p *Poller) signalDeleted(ctx context.Context, id string) {
	wid := names.RequestWorkflowID(p.opts.TaskQueue, id)
	err := p.opts.Temporal.SignalWorkflow(ctx, wid, "", workflows.SignalRequestDeleted, nil)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		p.log.Warn("signalling request deletion", "request_id", id, "error", err)
	}
}

// actOnRequest acts on request id as just read (req and err from the read; full is true
// on periodic scans) and keeps its record.
func (p *Poller) actOnRequest(ctx context.Context, id string, req *zookeeper.NodeRequest, err error, full bool) {
	if errors.Is(err, zookeeper.ErrNotFound) {
		return // the next listing forgets it
	}
	var de *zookeeper.DecodeError
	if errors.As(err, &de) {
		p.malformedRequest(ctx, id, err)
		return
	}
	if err != nil {
		// Every request fails alike while ZooKeeper is unreachable: not worth a warning
		// per request and scan.
		p.log.Debug("skipping unreadable node request", "request_id", id, "error", err)
		return
	}
	p.mu.Lock()
	st := p.request(id)
	if st.rec != nil && st.rec.Version > req.Version {
		// A newer version was read meanwhile and is acted on by its reader.
		p.mu.Unlock()
		return
	}
	st.rec = req
	p.mu.Unlock()
	switch {
	case req.State == zookeeper.StatePending:
		p.considerPending(ctx, req)
	case req.State == zookeeper.StateRequested && !p.allDeclined(req):
		p.considerRequested(ctx, req, full)
	default:
		p.mu.Lock()
		st := p.request(id)
		st.state, st.version, st.bad = req.State, req.Version, false
		st.started, st.lostSince = false, time.Time{}
		p.mu.Unlock()
	}
}

// malformedRequest handles a request whose record cannot be decoded: an empty body, or
// one that is not a JSON object with the fields Nodepool writes. It is left alone, as
// Zuul skips it: declining it would mean overwriting a record nobody can read, maybe
// while its writer is still filling it in. It is logged once per version, then
// ignored until it changes (or is deleted by its requestor).
func (p *Poller) malformedRequest(ctx context.Context, id string, err error) {
	version := int32(-1)
	_, stat, gerr := p.opts.ZK.Get(ctx, zookeeper.RequestPath(id))
	p.requestReads.Add(1)
	if gerr == nil {
		version = stat.Version
	}
	p.mu.Lock()
	st := p.request(id)
	st.rec = nil
	fresh := !st.bad || st.badVersion != version
	st.state, st.started, st.bad, st.badVersion = "", false, true, version
	p.mu.Unlock()
	if fresh {
		p.log.Warn("ignoring node request with an unreadable record", "request_id", id, "version", version, "error", err)
	}
}

// allDeclined reports whether every pool of ours that takes requests has declined req,
// by the ids registered now (names.PoolDeclined): after a restart the pools register
// new ids, and requests they declined before are looked at again.
func (p *Poller) allDeclined(req *zookeeper.NodeRequest) bool {
	var live []string
	if l := p.live.Load(); l != nil {
		live = *l
	}
	for _, pool := range p.opts.Pools {
		if !pool.Idle && !names.PoolDeclined(req.DeclinedBy, pool.ID, live) {
			return false
		}
	}
	return true
}

// Actions on a requested request.
type requestAction int

const (
	actNone   requestAction = iota
	actStart                // start (or attach to) its workflow
	actSignal               // tell its workflow the new relative priority
	actCheck                // ask Temporal whether its workflow still runs
)

// considerRequested makes sure a request we may serve has a running workflow that knows
// its current relative priority.
func (p *Poller) considerRequested(ctx context.Context, req *zookeeper.NodeRequest, full bool) {
	now := p.now()
	p.mu.Lock()
	st := p.request(req.ID)
	if superseded(st, req) {
		p.mu.Unlock()
		return
	}
	act := actNone
	switch {
	case !st.started || st.state != zookeeper.StateRequested:
		act = actStart
	case st.version != req.Version && st.priority != req.RelativePriority:
		// Zuul revised the priority while the request waits.
		act = actSignal
	case st.version != req.Version:
		// Changed otherwise (handed back by another launcher, declined by one of our
		// pools): the start attaches to a running workflow or begins a new run.
		act = actStart
	case full && !now.Before(st.nextCheck) && p.checkBudget > 0:
		p.checkBudget--
		act = actCheck
	}
	if act != actStart {
		st.state = zookeeper.StateRequested
	}
	st.bad, st.lostSince = false, time.Time{}
	if act == actStart {
		// Claimed before the round trip, so that a watch event meanwhile does not start
		// it twice.
		p.markStarted(st, req, now, 0)
	}
	p.mu.Unlock()

	switch act {
	case actStart:
		p.start(ctx, req, "")
	case actSignal:
		p.signalPriority(ctx, req)
	case actCheck:
		p.checkRunning(ctx, req)
	}
}

// markStarted records a start for req's current version; p.mu must be held.
func (p *Poller) markStarted(st *reqState, req *zookeeper.NodeRequest, now time.Time, restarts int) {
	st.state, st.version, st.started, st.priority = zookeeper.StateRequested, req.Version, true, req.RelativePriority
	st.restarts = restarts
	st.nextCheck = now.Add(restartBackoff(restarts))
}

// restartBackoff is the wait before checking a workflow that was (re)started restarts
// times in a row without being found running.
func restartBackoff(restarts int) time.Duration {
	d := strandedCheckAfter
	for range restarts {
		d *= 2
		if d >= maxRestartBackoff {
			return maxRestartBackoff
		}
	}
	return d
}

// start starts req's workflow; why, when not empty, says why it is a restart.
func (p *Poller) start(ctx context.Context, req *zookeeper.NodeRequest, why string) {
	wid := names.RequestWorkflowID(p.opts.TaskQueue, req.ID)
	p.mu.Lock()
	delete(p.running, wid)
	p.mu.Unlock()
	if err := p.startRequest(ctx, req); err != nil {
		p.mu.Lock()
		if st := p.reqs[req.ID]; st != nil && st.version == req.Version {
			st.started = false
		}
		p.mu.Unlock()
		p.log.Warn("starting request workflow", "request_id", req.ID, "error", err)
		return
	}
	if why != "" {
		p.log.Info("started a new run of a request workflow", "request_id", req.ID, "reason", why)
	}
}

// signalPriority tells req's workflow its new relative priority. A workflow that no
// longer runs gets a new run, which reads the priority itself.
func (p *Poller) signalPriority(ctx context.Context, req *zookeeper.NodeRequest) {
	wid := names.RequestWorkflowID(p.opts.TaskQueue, req.ID)
	err := p.opts.Temporal.SignalWorkflow(ctx, wid, "", workflows.SignalRequestUpdated,
		workflows.RequestUpdated{RelativePriority: req.RelativePriority})
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		p.mu.Lock()
		if st := p.reqs[req.ID]; st != nil {
			st.version, st.priority = req.Version, req.RelativePriority
		}
		p.mu.Unlock()
		p.log.Debug("signalled revised relative priority", "request_id", req.ID, "relative_priority", req.RelativePriority)
	case errors.As(err, &nf):
		p.mu.Lock()
		if st := p.reqs[req.ID]; st != nil {
			p.markStarted(st, req, p.now(), 0)
		}
		p.mu.Unlock()
		p.start(ctx, req, "its run had ended")
	default:
		// Tried again on the next scan.
		p.log.Warn("signalling revised relative priority", "request_id", req.ID, "error", err)
	}
}

// checkRunning starts a new run of req's workflow when it no longer runs. A workflow
// that keeps ending is restarted less and less often.
func (p *Poller) checkRunning(ctx context.Context, req *zookeeper.NodeRequest) {
	status, _, known := p.describe(ctx, names.RequestWorkflowID(p.opts.TaskQueue, req.ID))
	now := p.now()
	p.mu.Lock()
	st := p.reqs[req.ID]
	if st == nil || st.version != req.Version {
		p.mu.Unlock()
		return
	}
	if !known || status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		st.restarts = 0
		st.nextCheck = now.Add(strandedRecheck)
		p.mu.Unlock()
		return
	}
	p.markStarted(st, req, now, st.restarts+1)
	p.mu.Unlock()
	p.start(ctx, req, "the request is still requested and its run ended ("+status.String()+")")
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
			workflows.SALabel.ValueSet(indexedLabels(req.NodeTypes)),
			workflows.SAState.ValueSet("planning"),
		}
		if req.TenantName != nil && *req.TenantName != "" {
			updates = append(updates, workflows.SATenant.ValueSet(truncate(*req.TenantName)))
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

// indexedLabels returns the distinct labels of a request, sorted, as many as fit
// labelBudget (a request for 1,000 nodes names the same few labels over and over).
func indexedLabels(nodeTypes []string) []string {
	labels := slices.Clone(nodeTypes)
	slices.Sort(labels)
	labels = slices.Compact(labels)
	size := 0
	for i, l := range labels {
		size += len(l) + 3 // quotes and separator, as the server measures it
		if size > labelBudget {
			return labels[:i]
		}
	}
	return labels
}

// requestMemo describes the request in the workflow's memo, for people looking at the
// workflow. Each part is bounded, so a request's size never stops its start.
func requestMemo(req *zookeeper.NodeRequest) map[string]any {
	m := map[string]any{"relative_priority": req.RelativePriority, "node_count": len(req.NodeTypes)}
	if b, err := json.Marshal(req.NodeTypes); err == nil && len(b) <= memoFieldBudget {
		m["node_types"] = req.NodeTypes
	} else {
		m["labels"] = indexedLabels(req.NodeTypes)
	}
	if req.Requestor != nil {
		m["requestor"] = truncate(*req.Requestor)
	}
	if req.EventID != nil {
		m["event_id"] = truncate(*req.EventID)
	}
	if req.TenantName != nil {
		m["tenant_name"] = truncate(*req.TenantName)
	}
	if n := len(req.RequestorData); n > 0 && n <= memoFieldBudget {
		var v any
		if json.Unmarshal(req.RequestorData, &v) == nil {
			m["requestor_data"] = v
		}
	}
	return m
}

// truncate bounds a string from a request to memoStringMax bytes, cutting at a
// character boundary.
func truncate(s string) string {
	if len(s) <= memoStringMax {
		return s
	}
	cut := memoStringMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
