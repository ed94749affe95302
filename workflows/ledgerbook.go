package workflows

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// book is a pool ledger's bookkeeping: the carried state (LedgerState) plus indexes
// derived from it. It does no I/O and knows nothing of workflows, so the ledger's
// decisions can be tested and measured on their own.
//
// The indexes keep the work of each signal proportional to what it changes rather
// than to the number of holds: a pool with 10,000 requests waiting handles an acquire
// by inserting into a sorted queue and looking at the queue's head, a release by
// looking up the node's owner. A ledger replays its whole run whenever a worker picks
// it up without a cached copy, so a per-signal cost linear in the waiting requests
// becomes quadratic on replay (and a replay longer than the workflow task timeout never
// finishes).
type book struct {
	state *LedgerState
	// released holds nodes released since the running reconciliation began.
	released map[string]bool

	// queue lists the waiting holds (neither granted nor bound), in grant order.
	queue []queued
	// active are the holds that are granted or bound.
	active map[string]bool
	// owner maps each bound node to the request whose hold it is bound to.
	owner map[string]string
	// resend are the active holds whose grant is to be signalled again.
	resend map[string]bool
	// fresh are holds acquired since the last decision: the ones that may be refused
	// without waiting (over the pool's limits, or no-wait at quota).
	fresh map[string]bool
	// recheck asks the next decision to look at every waiting hold (the limits changed,
	// or the state was just loaded).
	recheck bool
}

// queued is one waiting hold in the queue, with the order key it was queued under.
type queued struct {
	key activities.OrderKey
	rid string
}

func (q queued) before(o queued) bool {
	if q.key != o.key {
		return q.key.Less(o.key)
	}
	return q.rid < o.rid
}

// answer is a decision to signal a request's holder.
type answer struct {
	rid   string
	grant Grant
}

// newBook indexes a state (nil starts an empty one).
func newBook(st *LedgerState) *book {
	if st == nil {
		st = &LedgerState{}
	}
	if st.Holds == nil {
		st.Holds = map[string]*Hold{}
	}
	if st.External == nil {
		st.External = map[string]int{}
	}
	if st.BindEpoch == nil {
		st.BindEpoch = map[string]int{}
	}
	b := &book{state: st, released: map[string]bool{}, active: map[string]bool{},
		owner: map[string]string{}, resend: map[string]bool{}, fresh: map[string]bool{}, recheck: true}
	for _, rid := range sortedKeys(st.Holds) {
		b.index(rid)
	}
	return b
}

// index enters a hold into the indexes, from its current fields.
func (b *book) index(rid string) {
	h := b.state.Holds[rid]
	if !h.Granted && !h.Bound {
		q := queued{key: orderOf(rid, h.RelPrio), rid: rid}
		i := sort.Search(len(b.queue), func(i int) bool { return !b.queue[i].before(q) })
		b.queue = slices.Insert(b.queue, i, q)
	} else {
		b.active[rid] = true
	}
	for id := range h.Nodes {
		b.owner[id] = rid
	}
	if h.Resend {
		b.resend[rid] = true
	}
}

// unindex takes a hold out of the indexes, before its fields change.
func (b *book) unindex(rid string) {
	h, ok := b.state.Holds[rid]
	if !ok {
		return
	}
	if !h.Granted && !h.Bound {
		q := queued{key: orderOf(rid, h.RelPrio), rid: rid}
		i := sort.Search(len(b.queue), func(i int) bool { return !b.queue[i].before(q) })
		if i < len(b.queue) && b.queue[i].rid == rid {
			b.queue = slices.Delete(b.queue, i, i+1)
		}
	}
	delete(b.active, rid)
	for id := range h.Nodes {
		if b.owner[id] == rid {
			delete(b.owner, id)
		}
	}
	delete(b.resend, rid)
}

// update changes a hold's fields and re-indexes it.
func (b *book) update(rid string, change func(*Hold)) {
	b.unindex(rid)
	change(b.state.Holds[rid])
	b.index(rid)
}

// put adds (or replaces) a hold.
func (b *book) put(rid string, h *Hold) {
	b.unindex(rid)
	b.state.Holds[rid] = h
	b.index(rid)
}

// drop removes a hold.
func (b *book) drop(rid string) {
	b.unindex(rid)
	delete(b.state.Holds, rid)
	delete(b.fresh, rid)
}

func (b *book) need(i int) drivers.Resources {
	if i < 0 || i >= len(b.state.Needs) {
		return drivers.Resources{}
	}
	return b.state.Needs[i]
}

func (b *book) acquire(acq LedgerAcquire, rid string) {
	if len(acq.Limits) > 0 || b.state.Limits == nil {
		if !maps.Equal(b.state.Limits, acq.Limits) {
			b.recheck = true
		}
		b.state.Limits = acq.Limits.Clone()
	}
	tag := chainTag(acq.Chain)
	if h, ok := b.state.Holds[rid]; ok {
		if tag != "" && h.Chain != "" && h.Chain != tag {
			// A new run chain of the request's workflow: the old chain was terminated,
			// so its grant is void. Nodes it created stay counted until they are
			// removed.
			b.retire(rid)
		} else {
			b.update(rid, func(h *Hold) {
				if !h.Granted && !h.Bound {
					// A revised relative priority moves a waiting request.
					h.RelPrio = acq.Order.RelativePriority
				}
				if h.Granted && !h.Bound {
					h.Resend = true
				}
				if h.Chain == "" {
					h.Chain = tag
				}
			})
			return
		}
	}
	b.put(rid, &Hold{Chain: tag, RelPrio: acq.Order.RelativePriority, Need: b.state.intern(acq.Need), NoWait: acq.NoWait})
	b.fresh[rid] = true
}

// retire drops a hold; the nodes bound to it count as the pool's external usage until
// they are removed.
func (b *book) retire(rid string) {
	h, ok := b.state.Holds[rid]
	if !ok {
		return
	}
	for id, need := range h.Nodes {
		b.state.External[id] = need
	}
	b.drop(rid)
}

func (b *book) bind(bd LedgerBind, rid string) {
	h, ok := b.state.Holds[rid]
	if ok {
		b.unindex(rid)
	} else {
		// The grant was released meanwhile; the nodes still use capacity.
		h = &Hold{Granted: true, GrantEpoch: b.state.Epoch}
		b.state.Holds[rid] = h
	}
	h.Bound = true
	h.Resend = false
	h.Nodes = map[string]int{}
	for _, id := range sortedKeys(bd.Nodes) {
		h.Nodes[id] = b.state.intern(bd.Nodes[id])
		b.state.BindEpoch[id] = b.state.Epoch
		delete(b.state.External, id)
		if prev, ok := b.owner[id]; ok && prev != rid {
			// A node moves between holds only if a retried bind names it again.
			b.update(prev, func(p *Hold) { delete(p.Nodes, id) })
		}
	}
	b.index(rid)
	delete(b.fresh, rid)
}

func (b *book) release(r LedgerRelease, rid string) {
	if len(r.NodeIDs) == 0 {
		if h, ok := b.state.Holds[rid]; ok && !h.Bound {
			b.drop(rid)
		}
		return
	}
	for _, id := range r.NodeIDs {
		b.released[id] = true
		delete(b.state.External, id)
		delete(b.state.BindEpoch, id)
		orid, ok := b.owner[id]
		if !ok {
			continue
		}
		b.update(orid, func(h *Hold) { delete(h.Nodes, id) })
		if h := b.state.Holds[orid]; h.Bound && len(h.Nodes) == 0 {
			b.drop(orid)
		}
	}
}

// startReconcile begins a reconciliation epoch and returns the holders of unbound
// grants given before it, for the reconciliation to check that their workflows still
// run.
func (b *book) startReconcile(holderOf func(string) string) (int, []activities.HolderRef) {
	b.state.Epoch++
	b.released = map[string]bool{}
	var out []activities.HolderRef
	for _, rid := range sortedKeys(b.active) {
		h := b.state.Holds[rid]
		if h.Granted && !h.Bound && h.GrantEpoch < b.state.Epoch {
			out = append(out, activities.HolderRef{RequestID: rid, WorkflowID: holderOf(rid), Chain: h.Chain})
		}
	}
	return b.state.Epoch, out
}

// reconcile applies a listing of the pool's nodes taken in epoch. It returns the
// requests whose unbound grants it voided because their workflows ended.
func (b *book) reconcile(res activities.PoolUsageResult, epoch int) (voided []string) {
	// Unbound grants of workflows that ended (terminated between grant and bind) are
	// void; their nodes, if any, are counted below by their presence.
	for _, rid := range res.Ended {
		if h, ok := b.state.Holds[rid]; ok && h.Granted && !h.Bound {
			voided = append(voided, rid)
			b.drop(rid)
		}
	}
	for _, rid := range sortedKeys(b.active) {
		var gone []string
		for id := range b.state.Holds[rid].Nodes {
			if _, present := res.Nodes[id]; !present && b.state.BindEpoch[id] < epoch {
				gone = append(gone, id)
			}
		}
		if len(gone) > 0 {
			b.update(rid, func(h *Hold) {
				for _, id := range gone {
					delete(h.Nodes, id)
					delete(b.state.BindEpoch, id)
				}
			})
		}
		if h := b.state.Holds[rid]; h.Bound && len(h.Nodes) == 0 {
			b.drop(rid)
		}
	}
	external := map[string]int{}
	for _, id := range sortedKeys(res.Nodes) {
		if _, known := b.owner[id]; !known && !b.released[id] {
			external[id] = b.state.intern(res.Nodes[id])
		}
	}
	b.state.External = external
	return voided
}

// used sums what granted and bound holds and external nodes use. Addition does not
// depend on the order, so the maps are not sorted.
func (b *book) used() drivers.Resources {
	used := drivers.Resources{}
	add := func(r drivers.Resources) {
		for k, v := range r {
			used[k] += v
		}
	}
	for rid := range b.active {
		h := b.state.Holds[rid]
		if !h.Granted {
			continue
		}
		if h.Bound {
			for _, n := range h.Nodes {
				add(b.need(n))
			}
		} else {
			add(b.need(h.Need))
		}
	}
	for _, n := range b.state.External {
		add(b.need(n))
	}
	return used
}

// orderOf returns a request's order: its priority prefix and sequence come from its
// id, its relative priority from the newest acquire.
func orderOf(rid string, relPrio int) activities.OrderKey {
	prio, seq := "", rid
	if i := strings.Index(rid, "-"); i >= 0 {
		prio, seq = rid[:i], rid[i+1:]
	}
	return activities.OrderKey{Priority: prio, RelativePriority: relPrio, Sequence: seq}
}

// waiting returns the requests waiting for a grant, in Nodepool's order: priority,
// then relative priority, then first come first served (at most max of them, all when
// max is negative).
func (b *book) waiting(max int) []string {
	n := len(b.queue)
	if max >= 0 {
		n = min(n, max)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = b.queue[i].rid
	}
	return out
}

// decide grants what fits, strictly in order from the head of the queue, refuses what
// can never fit or must not wait, and returns the answers to signal, in the order the
// ledger has always sent them: grants to resend, then the queue's decisions in queue
// order.
func (b *book) decide() []answer {
	var answers []answer
	for _, rid := range sortedKeys(b.resend) {
		b.update(rid, func(h *Hold) { h.Resend = false })
		answers = append(answers, answer{rid, Grant{Granted: true, Chain: b.state.Holds[rid].Chain}})
	}
	refuse := func(rid, reason string) {
		answers = append(answers, answer{rid, Grant{Reason: reason, Chain: b.state.Holds[rid].Chain}})
		b.drop(rid)
	}
	overLimits := func(rid string) bool {
		fits, over := b.state.Limits.Fits(nil, b.need(b.state.Holds[rid].Need))
		if !fits {
			refuse(rid, "request exceeds the pool's limits: "+strings.Join(over, ", "))
		}
		return !fits
	}
	// Holds that may be refused wherever they are in the queue: the ones acquired
	// since the last decision, or all of them when the limits changed. Any other
	// waiting hold was already found to fit the limits and to be allowed to wait.
	var candidates []queued
	if b.recheck {
		candidates = slices.Clone(b.queue)
	} else {
		for rid := range b.fresh {
			if h, ok := b.state.Holds[rid]; ok && !h.Granted && !h.Bound {
				candidates = append(candidates, queued{key: orderOf(rid, h.RelPrio), rid: rid})
			}
		}
		slices.SortFunc(candidates, func(x, y queued) int {
			if x.before(y) {
				return -1
			}
			return 1
		})
	}
	// Grants go from the head; a head that does not fit yet blocks everything behind it.
	used := b.used()
	blocked := ""
	for len(b.queue) > 0 {
		rid := b.queue[0].rid
		h := b.state.Holds[rid]
		if overLimits(rid) {
			continue
		}
		need := b.need(h.Need)
		if fits, _ := b.state.Limits.Fits(used, need); fits {
			epoch := b.state.Epoch
			b.update(rid, func(h *Hold) { h.Granted, h.GrantEpoch = true, epoch })
			used = used.Add(need)
			answers = append(answers, answer{rid, Grant{Granted: true, Chain: h.Chain}})
			continue
		}
		if !h.NoWait {
			blocked = rid
			break
		}
		// A min-ready request is declined at quota rather than paused.
		refuse(rid, "the pool is at quota")
	}
	// Behind the blocked head, nothing is granted; only what would be refused anyway is
	// answered.
	for _, c := range candidates {
		h, ok := b.state.Holds[c.rid]
		if !ok || h.Granted || h.Bound || c.rid == blocked {
			continue
		}
		if overLimits(c.rid) {
			continue
		}
		if h.NoWait {
			refuse(c.rid, "the pool is at quota")
		}
	}
	b.fresh = map[string]bool{}
	b.recheck = false
	return answers
}

// holderGone voids the unbound hold of a request whose holder could not be signalled.
func (b *book) holderGone(rid string) {
	if h, ok := b.state.Holds[rid]; ok && !h.Bound {
		b.drop(rid)
	}
}

// compacted returns the state to carry to the next run, with the needs table reduced
// to the entries still referenced.
func (b *book) compacted() *LedgerState {
	st := *b.state
	st.Needs = nil
	st.Holds = make(map[string]*Hold, len(b.state.Holds))
	st.External = map[string]int{}
	remap := map[int]int{}
	keep := func(i int) int {
		if j, ok := remap[i]; ok {
			return j
		}
		st.Needs = append(st.Needs, b.need(i).Clone())
		remap[i] = len(st.Needs) - 1
		return remap[i]
	}
	for _, rid := range sortedKeys(b.state.Holds) {
		h := *b.state.Holds[rid]
		h.Need = keep(h.Need)
		if len(h.Nodes) > 0 {
			nodes := map[string]int{}
			for _, id := range sortedKeys(h.Nodes) {
				nodes[id] = keep(h.Nodes[id])
			}
			h.Nodes = nodes
		}
		st.Holds[rid] = &h
	}
	for _, id := range sortedKeys(b.state.External) {
		st.External[id] = keep(b.state.External[id])
	}
	return &st
}

// status summarises the book for the ledger's query.
func (b *book) status(provider, pool string) LedgerStatus {
	st := LedgerStatus{
		Provider: provider, Pool: pool,
		Limits: b.state.Limits.Clone(), Used: b.used(),
		Waiting:      b.waiting(statusWaitingMax),
		WaitingCount: len(b.queue),
		Paused:       len(b.queue) > 0,
	}
	for rid := range b.active {
		h := b.state.Holds[rid]
		if h.Granted {
			st.Granted++
		}
		st.Nodes += len(h.Nodes)
	}
	st.Nodes += len(b.state.External)
	return st
}

// sortedKeys returns a map's keys in order: workflow code must not depend on Go's map
// iteration order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
