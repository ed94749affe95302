package workflows

import (
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Ledger tuning.
const (
	// DefaultReconcileInterval is how often a ledger compares its holds with ZooKeeper.
	DefaultReconcileInterval = 30 * time.Second
	// ledgerHistoryLimit triggers continue-as-new well below Temporal's limits.
	ledgerHistoryLimit = 5000
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

// LedgerAcquire asks for a request's whole capacity.
type LedgerAcquire struct {
	// Holder is the requesting workflow's id; the grant is signalled to it.
	Holder    string              `json:"holder"`
	RequestID string              `json:"request_id"`
	Order     activities.OrderKey `json:"order"`
	Need      drivers.Resources   `json:"need"`
	// Limits are the pool's limits as the requester's plan saw them; the newest win.
	Limits drivers.Resources `json:"limits"`
}

// LedgerBind attaches the nodes created under a grant, with what each uses.
type LedgerBind struct {
	Holder string                       `json:"holder"`
	Nodes  map[string]drivers.Resources `json:"nodes"`
}

// LedgerRelease frees capacity: the listed nodes, or the holder's whole grant when
// NodeIDs is empty.
type LedgerRelease struct {
	Holder  string   `json:"holder,omitempty"`
	NodeIDs []string `json:"node_ids,omitempty"`
}

// Grant is a ledger's answer to an acquire.
type Grant struct {
	Granted bool   `json:"granted"`
	Reason  string `json:"reason,omitempty"`
}

// LedgerState is a ledger's whole state.
type LedgerState struct {
	Limits drivers.Resources `json:"limits"`
	Holds  map[string]*Hold  `json:"holds"`
	// External are nodes of the pool that no hold knows.
	External map[string]drivers.Resources `json:"external"`
	// Epoch counts reconciliations; BindEpoch records when each node was bound, so a
	// reconciliation never drops a node bound after its listing began.
	Epoch     int            `json:"epoch"`
	BindEpoch map[string]int `json:"bind_epoch"`
}

// Hold is one request's claim on the pool.
type Hold struct {
	Holder    string                       `json:"holder"`
	RequestID string                       `json:"request_id"`
	Order     activities.OrderKey          `json:"order"`
	Need      drivers.Resources            `json:"need"`
	Granted   bool                         `json:"granted"`
	Bound     bool                         `json:"bound"`
	Nodes     map[string]drivers.Resources `json:"nodes,omitempty"`
	// Resend asks for the grant to be signalled again.
	Resend bool `json:"resend,omitempty"`
}

// LedgerStatus is the ledger's query result.
type LedgerStatus struct {
	Provider string            `json:"provider"`
	Pool     string            `json:"pool"`
	Limits   drivers.Resources `json:"limits"`
	Used     drivers.Resources `json:"used"`
	// Waiting lists the request ids waiting for capacity, in grant order.
	Waiting []string `json:"waiting"`
	Granted int      `json:"granted"`
	Nodes   int      `json:"nodes"`
	// Paused is true while a request waits: the pool registers as paused.
	Paused bool `json:"paused"`
}

type ledger struct {
	in    LedgerInput
	state *LedgerState
	// released holds nodes released since the running reconciliation began.
	released map[string]bool
}

// PoolLedger is the single writer of one provider pool's capacity. Requests acquire
// their whole need; grants go strictly in Nodepool's order from the head of the queue;
// capacity returns when nodes are deleted. See docs/design.md §5.
func PoolLedger(ctx workflow.Context, in LedgerInput) error {
	l := &ledger{in: in, state: in.State, released: map[string]bool{}}
	if l.state == nil {
		l.state = &LedgerState{}
	}
	if l.state.Holds == nil {
		l.state.Holds = map[string]*Hold{}
	}
	if l.state.External == nil {
		l.state.External = map[string]drivers.Resources{}
	}
	if l.state.BindEpoch == nil {
		l.state.BindEpoch = map[string]int{}
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (LedgerStatus, error) {
		return l.status(), nil
	}); err != nil {
		return err
	}
	historyLimit := ledgerHistoryLimit
	if in.HistoryLimit > 0 {
		historyLimit = in.HistoryLimit
	}
	interval := DefaultReconcileInterval
	if in.ReconcileSec > 0 {
		interval = seconds(in.ReconcileSec)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           in.TaskQueue,
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second},
	})
	acquireCh := workflow.GetSignalChannel(ctx, SignalAcquire)
	bindCh := workflow.GetSignalChannel(ctx, SignalBind)
	releaseCh := workflow.GetSignalChannel(ctx, SignalRelease)

	var reconcile workflow.Future
	var reconcileEpoch int
	var timer workflow.Future
	startReconcile := func() {
		l.state.Epoch++
		reconcileEpoch = l.state.Epoch
		l.released = map[string]bool{}
		reconcile = workflow.ExecuteActivity(actx, a.PoolUsage, activities.PoolUsageInput{Provider: in.Provider, Pool: in.Pool})
	}
	startReconcile()

	drain := func() {
		for {
			var acq LedgerAcquire
			var b LedgerBind
			var r LedgerRelease
			switch {
			case acquireCh.ReceiveAsync(&acq):
				l.acquire(acq)
			case bindCh.ReceiveAsync(&b):
				l.bind(b)
			case releaseCh.ReceiveAsync(&r):
				l.release(r)
			default:
				return
			}
		}
	}

	// iterations bounds the history too: each loop adds at least one event.
	iterations := 0
	for {
		iterations++
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(acquireCh, func(c workflow.ReceiveChannel, _ bool) {
			var acq LedgerAcquire
			c.Receive(ctx, &acq)
			l.acquire(acq)
		})
		sel.AddReceive(bindCh, func(c workflow.ReceiveChannel, _ bool) {
			var b LedgerBind
			c.Receive(ctx, &b)
			l.bind(b)
		})
		sel.AddReceive(releaseCh, func(c workflow.ReceiveChannel, _ bool) {
			var r LedgerRelease
			c.Receive(ctx, &r)
			l.release(r)
		})
		if reconcile != nil {
			f := reconcile
			sel.AddFuture(f, func(f workflow.Future) {
				var res activities.PoolUsageResult
				if err := f.Get(ctx, &res); err != nil {
					workflow.GetLogger(ctx).Warn("reconciling pool usage", "error", err)
				} else {
					l.reconcile(res, reconcileEpoch)
				}
				reconcile = nil
				timer = workflow.NewTimer(ctx, interval)
			})
		}
		if timer != nil {
			t := timer
			sel.AddFuture(t, func(workflow.Future) {
				timer = nil
				startReconcile()
			})
		}
		sel.Select(ctx)
		drain()
		l.grant(ctx)

		if reconcile == nil && (workflow.GetInfo(ctx).GetCurrentHistoryLength() > historyLimit || iterations > historyLimit/2) {
			drain()
			l.grant(ctx)
			next := in
			next.State = l.state
			return workflow.NewContinueAsNewError(ctx, LedgerWorkflowType, next)
		}
	}
}

func (l *ledger) acquire(acq LedgerAcquire) {
	if len(acq.Limits) > 0 || l.state.Limits == nil {
		l.state.Limits = acq.Limits.Clone()
	}
	if h, ok := l.state.Holds[acq.Holder]; ok {
		// A repeated acquire (watchdog, retry): a granted holder is answered again; a
		// waiting one keeps its place.
		if h.Granted && !h.Bound {
			h.Resend = true
		}
		return
	}
	l.state.Holds[acq.Holder] = &Hold{
		Holder: acq.Holder, RequestID: acq.RequestID, Order: acq.Order, Need: acq.Need.Clone(),
	}
}

func (l *ledger) bind(b LedgerBind) {
	h, ok := l.state.Holds[b.Holder]
	if !ok {
		// The grant was released meanwhile; the nodes still use capacity.
		h = &Hold{Holder: b.Holder, Granted: true}
		l.state.Holds[b.Holder] = h
	}
	h.Bound = true
	h.Nodes = map[string]drivers.Resources{}
	for id, res := range b.Nodes {
		h.Nodes[id] = res.Clone()
		l.state.BindEpoch[id] = l.state.Epoch
		delete(l.state.External, id)
	}
}

func (l *ledger) release(r LedgerRelease) {
	if len(r.NodeIDs) == 0 {
		if h, ok := l.state.Holds[r.Holder]; ok && !h.Bound {
			delete(l.state.Holds, r.Holder)
		}
		return
	}
	for _, id := range r.NodeIDs {
		l.released[id] = true
		delete(l.state.External, id)
		delete(l.state.BindEpoch, id)
		for _, holder := range l.sortedHolders() {
			h := l.state.Holds[holder]
			if _, ok := h.Nodes[id]; ok {
				delete(h.Nodes, id)
				if h.Bound && len(h.Nodes) == 0 {
					delete(l.state.Holds, holder)
				}
			}
		}
	}
}

func (l *ledger) reconcile(res activities.PoolUsageResult, epoch int) {
	known := map[string]bool{}
	for _, holder := range l.sortedHolders() {
		h := l.state.Holds[holder]
		for id := range h.Nodes {
			if _, present := res.Nodes[id]; !present && l.state.BindEpoch[id] < epoch {
				delete(h.Nodes, id)
				delete(l.state.BindEpoch, id)
				continue
			}
			known[id] = true
		}
		if h.Bound && len(h.Nodes) == 0 {
			delete(l.state.Holds, holder)
		}
	}
	external := map[string]drivers.Resources{}
	for id, r := range res.Nodes {
		if !known[id] && !l.released[id] {
			external[id] = r
		}
	}
	l.state.External = external
}

func (l *ledger) used() drivers.Resources {
	used := drivers.Resources{}
	for _, h := range l.state.Holds {
		if !h.Granted {
			continue
		}
		if h.Bound {
			for _, r := range h.Nodes {
				used = used.Add(r)
			}
		} else {
			used = used.Add(h.Need)
		}
	}
	for _, r := range l.state.External {
		used = used.Add(r)
	}
	return used
}

// waiting returns the holders waiting for a grant, in Nodepool's order.
func (l *ledger) waiting() []*Hold {
	var w []*Hold
	for _, holder := range l.sortedHolders() {
		if h := l.state.Holds[holder]; !h.Granted && !h.Bound {
			w = append(w, h)
		}
	}
	sort.SliceStable(w, func(i, j int) bool {
		if w[i].Order != w[j].Order {
			return w[i].Order.Less(w[j].Order)
		}
		return w[i].Holder < w[j].Holder
	})
	return w
}

func (l *ledger) grant(ctx workflow.Context) {
	used := l.used()
	type answer struct {
		holder string
		grant  Grant
	}
	var answers []answer
	for _, holder := range l.sortedHolders() {
		if h := l.state.Holds[holder]; h.Resend {
			h.Resend = false
			answers = append(answers, answer{holder, Grant{Granted: true}})
		}
	}
	for _, h := range l.waiting() {
		if fits, _ := l.state.Limits.Fits(used, h.Need); fits {
			h.Granted = true
			used = used.Add(h.Need)
			answers = append(answers, answer{h.Holder, Grant{Granted: true}})
			continue
		}
		if fits, over := l.state.Limits.Fits(nil, h.Need); !fits {
			delete(l.state.Holds, h.Holder)
			answers = append(answers, answer{h.Holder, Grant{Reason: "request exceeds the pool's limits: " + joinNames(over)}})
			continue
		}
		// The head does not fit yet: nothing behind it may overtake it.
		break
	}
	futures := make([]workflow.Future, len(answers))
	for i, ans := range answers {
		futures[i] = workflow.SignalExternalWorkflow(ctx, ans.holder, "", SignalCapacity, ans.grant)
	}
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			// The holder is gone; its grant is void unless it bound nodes.
			if h, ok := l.state.Holds[answers[i].holder]; ok && !h.Bound {
				delete(l.state.Holds, answers[i].holder)
			}
		}
	}
}

func (l *ledger) status() LedgerStatus {
	st := LedgerStatus{
		Provider: l.in.Provider, Pool: l.in.Pool,
		Limits: l.state.Limits.Clone(), Used: l.used(),
	}
	for _, h := range l.waiting() {
		st.Waiting = append(st.Waiting, h.RequestID)
	}
	for _, h := range l.state.Holds {
		if h.Granted {
			st.Granted++
		}
		st.Nodes += len(h.Nodes)
	}
	st.Nodes += len(l.state.External)
	st.Paused = len(st.Waiting) > 0
	return st
}

func (l *ledger) sortedHolders() []string {
	keys := make([]string, 0, len(l.state.Holds))
	for k := range l.state.Holds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}
