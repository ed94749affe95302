package workflows

import (
	"encoding/json"
	"maps"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/names"
)

// Ledger tuning.
const (
	// DefaultReconcileInterval is how often a ledger compares its holds with ZooKeeper
	// and with the workflows that hold them.
	DefaultReconcileInterval = 30 * time.Second
	// ledgerHistoryLimit triggers continue-as-new well below Temporal's limits.
	ledgerHistoryLimit = 5000
	// chainTagLen is how much of a run chain id a hold keeps: enough to tell two chains
	// of one workflow id apart, short enough that 10,000 waiting requests stay small. Run
	// ids are UUIDs whose first characters are a timestamp (version 7): the tail is
	// random, so the tag is taken from the end.
	chainTagLen = 12
)

// LedgerInput starts (or continues) a pool ledger.
type LedgerInput struct {
	Provider  string `json:"provider"`
	Pool      string `json:"pool"`
	TaskQueue string `json:"task_queue"`
	// ReconcileSec overrides DefaultReconcileInterval.
	ReconcileSec float64 `json:"reconcile_sec,omitempty"`
	// HistoryLimit overrides the history length that triggers continue-as-new.
	HistoryLimit int `json:"history_limit,omitempty"`
	// State is carried across continue-as-new.
	State *LedgerState `json:"state,omitempty"`
}

// The ledger's signal payloads are defined beside the activity that delivers them
// when a ledger must be started (activities.SignalLedger).
type (
	LedgerAcquire = activities.LedgerAcquire
	LedgerBind    = activities.LedgerBind
	LedgerRelease = activities.LedgerRelease
	LedgerBatch   = activities.LedgerBatch
)

// Grant is a ledger's answer to an acquire (defined beside the activity that delivers
// grants in batches).
type Grant = activities.LedgerGrant

// LedgerState is a ledger's whole state. It is carried across continue-as-new, so it
// is kept compact: a waiting request costs a few dozen bytes.
type LedgerState struct {
	Limits drivers.Resources `json:"limits"`
	// Needs interns resource vectors: holds and nodes refer to them by index (most
	// requests of a pool need the same).
	Needs []drivers.Resources `json:"needs,omitempty"`
	// Holds are the requests waiting for or holding capacity, by request id.
	Holds map[string]*Hold `json:"holds"`
	// External are nodes of the pool that no hold knows (need index by node id).
	External map[string]int `json:"external"`
	// Epoch counts reconciliations; BindEpoch records when each node was bound, so a
	// reconciliation never drops a node bound after its listing began.
	Epoch     int            `json:"epoch"`
	BindEpoch map[string]int `json:"bind_epoch"`
}

// Hold is one request's claim on the pool. The holder's workflow id and the request's
// order derive from the request id.
type Hold struct {
	// Chain is the first characters of the holder's run chain id.
	Chain   string `json:"c,omitempty"`
	RelPrio int    `json:"rp,omitempty"`
	// Need indexes LedgerState.Needs.
	Need    int  `json:"n"`
	Granted bool `json:"g,omitempty"`
	// GrantEpoch is the reconciliation epoch of the grant.
	GrantEpoch int  `json:"ge,omitempty"`
	Bound      bool `json:"b,omitempty"`
	// Nodes maps bound node ids to need indexes.
	Nodes map[string]int `json:"nodes,omitempty"`
	// Resend asks for the grant to be signalled again.
	Resend bool `json:"rs,omitempty"`
	// NoWait holds are refused rather than queued when they do not fit at once.
	NoWait bool `json:"nw,omitempty"`
}

// LedgerStatus is the ledger's query result.
type LedgerStatus struct {
	Provider string            `json:"provider"`
	Pool     string            `json:"pool"`
	Limits   drivers.Resources `json:"limits"`
	Used     drivers.Resources `json:"used"`
	// Waiting lists the request ids waiting for capacity, in grant order (the first
	// hundred).
	Waiting      []string `json:"waiting"`
	WaitingCount int      `json:"waiting_count"`
	Granted      int      `json:"granted"`
	Nodes        int      `json:"nodes"`
	// Paused is true while a request waits: the pool registers as paused.
	Paused bool `json:"paused"`
}

// statusWaitingMax bounds the waiting list of the status query.
const statusWaitingMax = 100

// PoolLedger is the single writer of one provider pool's capacity. Requests acquire
// their whole need; grants go strictly in Nodepool's order from the head of the queue;
// capacity returns when nodes are deleted. See docs/design.md §5.
func PoolLedger(ctx workflow.Context, in LedgerInput) error {
	l := &ledger{in: in}
	if err := l.setup(ctx); err != nil {
		return err
	}
	return l.run(ctx)
}

type ledger struct {
	in LedgerInput
	id string
	b  *book

	acquireCh, bindCh, releaseCh, batchCh workflow.ReceiveChannel
	actx                                  workflow.Context
	interval                              time.Duration
	historyLimit                          int
	// batched delivers answers with the DeliverGrants local activity rather than one
	// SignalExternalWorkflow each (runs started before it keep the signals).
	batched bool
	// batches is whether this run reads batch signals (SignalBatch). A run started by
	// a build without them never does, so its history replays the same; batches sent
	// to it are lost at its continue-as-new, and their requests ask again (acquires
	// within reacquireRounds watchdog rounds, binds at the next reconciliation).
	batches bool
}

// changeBatchSignals versions the reading of SignalBatch.
const changeBatchSignals = "batch-signals"

// grantDeliveryMax bounds the answers of one DeliverGrants call.
const grantDeliveryMax = 500

func (l *ledger) setup(ctx workflow.Context) error {
	l.id = workflow.GetInfo(ctx).WorkflowExecution.ID
	l.batched = workflow.GetVersion(ctx, "batched-grants", workflow.DefaultVersion, 1) >= 1
	l.batches = workflow.GetVersion(ctx, changeBatchSignals, workflow.DefaultVersion, 1) >= 1
	l.b = newBook(l.in.State)
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (LedgerStatus, error) {
		return l.b.status(l.in.Provider, l.in.Pool), nil
	}); err != nil {
		return err
	}
	l.historyLimit = ledgerHistoryLimit
	if l.in.HistoryLimit > 0 {
		l.historyLimit = l.in.HistoryLimit
	}
	l.interval = DefaultReconcileInterval
	if l.in.ReconcileSec > 0 {
		l.interval = seconds(l.in.ReconcileSec)
	}
	l.actx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           l.in.TaskQueue,
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second},
	})
	l.acquireCh = workflow.GetSignalChannel(ctx, SignalAcquire)
	l.bindCh = workflow.GetSignalChannel(ctx, SignalBind)
	l.releaseCh = workflow.GetSignalChannel(ctx, SignalRelease)
	l.batchCh = workflow.GetSignalChannel(ctx, SignalBatch)
	return nil
}

// run serves signals, grants and reconciles until the history is long enough to
// continue as new.
func (l *ledger) run(ctx workflow.Context) error {
	var reconcile workflow.Future
	var reconcileEpoch int
	var timer workflow.Future
	startReconcile := func() {
		var holders []activities.HolderRef
		reconcileEpoch, holders = l.b.startReconcile(l.holderOf)
		reconcile = workflow.ExecuteActivity(l.actx, a.PoolUsage, activities.PoolUsageInput{
			Provider: l.in.Provider, Pool: l.in.Pool, Holders: holders,
		})
	}
	startReconcile()

	// iterations bounds the history too: each loop adds at least one event.
	for iterations := 1; ; iterations++ {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(l.acquireCh, func(c workflow.ReceiveChannel, _ bool) {
			var acq LedgerAcquire
			c.Receive(ctx, &acq)
			l.acquire(acq)
		})
		sel.AddReceive(l.bindCh, func(c workflow.ReceiveChannel, _ bool) {
			var b LedgerBind
			c.Receive(ctx, &b)
			l.bind(b)
		})
		sel.AddReceive(l.releaseCh, func(c workflow.ReceiveChannel, _ bool) {
			var r LedgerRelease
			c.Receive(ctx, &r)
			l.release(r)
		})
		if l.batches {
			sel.AddReceive(l.batchCh, func(c workflow.ReceiveChannel, _ bool) {
				var b LedgerBatch
				c.Receive(ctx, &b)
				l.handleBatch(b)
			})
		}
		if reconcile != nil {
			sel.AddFuture(reconcile, func(f workflow.Future) {
				var res activities.PoolUsageResult
				if err := f.Get(ctx, &res); err != nil {
					workflow.GetLogger(ctx).Warn("reconciling pool usage", "error", err)
				} else {
					for _, rid := range l.b.reconcile(res, reconcileEpoch) {
						workflow.GetLogger(ctx).Info("voiding the grant of an ended workflow", "request_id", rid)
					}
				}
				reconcile = nil
				timer = workflow.NewTimer(ctx, l.interval)
			})
		}
		if timer != nil {
			sel.AddFuture(timer, func(workflow.Future) {
				timer = nil
				startReconcile()
			})
		}
		sel.Select(ctx)
		l.drain()
		l.grant(ctx)

		if reconcile == nil && (workflow.GetInfo(ctx).GetCurrentHistoryLength() > l.historyLimit || iterations > l.historyLimit/2) {
			// Every signal delivered so far must be in the carried state: grant() waits
			// on signal futures, during which more signals arrive, so drain and grant
			// until a pass finds nothing new. Signals that reach the server after this
			// task started make the server reject the completion and replay the task
			// with them, so none is lost.
			for l.drain() {
				l.grant(ctx)
			}
			next := l.in
			next.State = l.b.compacted()
			return workflow.NewContinueAsNewError(ctx, LedgerWorkflowType, next)
		}
	}
}

// drain handles every signal already delivered, without blocking. It reports whether
// it handled any.
func (l *ledger) drain() bool {
	handled := false
	for {
		var acq LedgerAcquire
		var b LedgerBind
		var r LedgerRelease
		var batch LedgerBatch
		switch {
		case l.batches && l.batchCh.ReceiveAsync(&batch):
			l.handleBatch(batch)
		case l.acquireCh.ReceiveAsync(&acq):
			l.acquire(acq)
		case l.bindCh.ReceiveAsync(&b):
			l.bind(b)
		case l.releaseCh.ReceiveAsync(&r):
			l.release(r)
		default:
			return handled
		}
		handled = true
	}
}

func (l *ledger) acquire(acq LedgerAcquire) { l.b.acquire(acq, requestOf(acq.RequestID, acq.Holder)) }
func (l *ledger) bind(b LedgerBind)         { l.b.bind(b, requestOf(b.RequestID, b.Holder)) }
func (l *ledger) release(r LedgerRelease)   { l.b.release(r, requestOf(r.RequestID, r.Holder)) }

// handleBatch handles a batch signal's inputs in order, as if each had come alone.
func (l *ledger) handleBatch(b LedgerBatch) {
	for _, s := range b.Signals {
		switch {
		case s.Acquire != nil:
			l.acquire(*s.Acquire)
		case s.Bind != nil:
			l.bind(*s.Bind)
		case s.Release != nil:
			l.release(*s.Release)
		}
	}
}

// grant signals the book's decisions to the requests' workflows.
func (l *ledger) grant(ctx workflow.Context) {
	answers := l.b.decide()
	if l.batched {
		l.deliver(ctx, answers)
		return
	}
	futures := make([]workflow.Future, len(answers))
	for i, ans := range answers {
		ans.grant.Ledger = l.id
		futures[i] = workflow.SignalExternalWorkflow(ctx, l.holderOf(ans.rid), "", SignalCapacity, ans.grant)
	}
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			// The holder is gone; its grant is void unless it bound nodes.
			l.b.holderGone(answers[i].rid)
		}
	}
}

// deliver sends answers through the DeliverGrants local activity, in batches.
func (l *ledger) deliver(ctx workflow.Context, answers []answer) {
	for len(answers) > 0 {
		n := min(len(answers), grantDeliveryMax)
		in := activities.DeliverGrantsInput{Signal: SignalCapacity}
		for _, ans := range answers[:n] {
			g := ans.grant
			g.Ledger = l.id
			in.Deliveries = append(in.Deliveries, activities.GrantDelivery{RequestID: ans.rid, WorkflowID: l.holderOf(ans.rid), Grant: g})
		}
		answers = answers[n:]
		var res activities.DeliverGrantsResult
		if err := workflow.ExecuteLocalActivity(zkLocal(ctx), a.DeliverGrants, in).Get(ctx, &res); err != nil {
			// Undelivered answers are not lost for good: a waiting request re-sends its
			// acquire, and a repeated acquire of a granted hold is answered again.
			workflow.GetLogger(ctx).Warn("delivering grants", "answers", n, "error", err)
			continue
		}
		for _, rid := range res.Gone {
			// The holder is gone; its grant is void unless it bound nodes.
			l.b.holderGone(rid)
		}
	}
}

// holderOf returns the workflow id that holds a request's capacity.
func (l *ledger) holderOf(requestID string) string {
	return names.RequestWorkflowID(l.in.TaskQueue, requestID)
}

// requestOf returns the request id of a signal: its RequestID, or the id inside the
// holder's workflow id.
func requestOf(requestID, holder string) string {
	if requestID != "" {
		return requestID
	}
	if i := strings.LastIndex(holder, "/"); i >= 0 {
		return holder[i+1:]
	}
	return holder
}

func chainTag(chain string) string {
	if len(chain) > chainTagLen {
		return chain[len(chain)-chainTagLen:]
	}
	return chain
}

// intern returns the index of r in the needs table, adding it when new.
func (s *LedgerState) intern(r drivers.Resources) int {
	for i, n := range s.Needs {
		if maps.Equal(n, r) {
			return i
		}
	}
	s.Needs = append(s.Needs, r.Clone())
	return len(s.Needs) - 1
}

// legacyLedgerState is the state format of earlier releases (holds keyed by holder
// workflow id, resources inline), still accepted when a ledger continues as new across
// an upgrade.
type legacyLedgerState struct {
	Limits drivers.Resources `json:"limits"`
	Holds  map[string]*struct {
		Holder    string                       `json:"holder"`
		RequestID string                       `json:"request_id"`
		Order     activities.OrderKey          `json:"order"`
		Need      drivers.Resources            `json:"need"`
		Granted   bool                         `json:"granted"`
		Bound     bool                         `json:"bound"`
		Nodes     map[string]drivers.Resources `json:"nodes,omitempty"`
		Resend    bool                         `json:"resend,omitempty"`
	} `json:"holds"`
	External  map[string]drivers.Resources `json:"external"`
	Epoch     int                          `json:"epoch"`
	BindEpoch map[string]int               `json:"bind_epoch"`
}

// UnmarshalJSON reads the current state format and the earlier one.
func (s *LedgerState) UnmarshalJSON(data []byte) error {
	type current LedgerState
	var cur current
	errCur := json.Unmarshal(data, &cur)
	if errCur == nil && !legacyState(data) {
		*s = LedgerState(cur)
		return nil
	}
	var old legacyLedgerState
	if err := json.Unmarshal(data, &old); err != nil {
		if errCur != nil {
			return errCur
		}
		return err
	}
	*s = LedgerState{Limits: old.Limits, Holds: map[string]*Hold{}, External: map[string]int{},
		Epoch: old.Epoch, BindEpoch: old.BindEpoch}
	for _, holder := range sortedKeys(old.Holds) {
		h := old.Holds[holder]
		rid := h.RequestID
		if rid == "" {
			rid = holder[strings.LastIndex(holder, "/")+1:]
		}
		nh := &Hold{RelPrio: h.Order.RelativePriority, Need: s.intern(h.Need), Granted: h.Granted,
			Bound: h.Bound, Resend: h.Resend}
		if len(h.Nodes) > 0 {
			nh.Nodes = map[string]int{}
			for _, id := range sortedKeys(h.Nodes) {
				nh.Nodes[id] = s.intern(h.Nodes[id])
			}
		}
		s.Holds[rid] = nh
	}
	for _, id := range sortedKeys(old.External) {
		s.External[id] = s.intern(old.External[id])
	}
	return nil
}

// legacyState reports whether data holds the earlier state format.
func legacyState(data []byte) bool {
	var probe struct {
		Holds map[string]map[string]json.RawMessage `json:"holds"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return true
	}
	for _, h := range probe.Holds {
		if _, ok := h["holder"]; ok {
			return true
		}
		if _, ok := h["need"]; ok {
			return true
		}
	}
	return false
}
