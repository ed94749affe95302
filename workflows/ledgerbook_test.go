package workflows

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// referenceDecide is the ledger's decision written plainly: it walks every hold on
// every pass. The book must decide exactly as it does while looking at far fewer.
func referenceDecide(st *LedgerState) []answer {
	need := func(i int) drivers.Resources { return st.Needs[i] }
	var answers []answer
	for _, rid := range sortedKeys(st.Holds) {
		if h := st.Holds[rid]; h.Resend {
			h.Resend = false
			answers = append(answers, answer{rid, Grant{Granted: true, Chain: h.Chain}})
		}
	}
	used := drivers.Resources{}
	for _, rid := range sortedKeys(st.Holds) {
		h := st.Holds[rid]
		if !h.Granted {
			continue
		}
		if h.Bound {
			for _, n := range h.Nodes {
				used = used.Add(need(n))
			}
		} else {
			used = used.Add(need(h.Need))
		}
	}
	for _, n := range st.External {
		used = used.Add(need(n))
	}
	var waiting []string
	for rid, h := range st.Holds {
		if !h.Granted && !h.Bound {
			waiting = append(waiting, rid)
		}
	}
	sort.Slice(waiting, func(i, j int) bool {
		oi, oj := orderOf(waiting[i], st.Holds[waiting[i]].RelPrio), orderOf(waiting[j], st.Holds[waiting[j]].RelPrio)
		if oi != oj {
			return oi.Less(oj)
		}
		return waiting[i] < waiting[j]
	})
	blocked := false
	for _, rid := range waiting {
		h := st.Holds[rid]
		if fits, over := st.Limits.Fits(nil, need(h.Need)); !fits {
			delete(st.Holds, rid)
			answers = append(answers, answer{rid, Grant{Reason: "request exceeds the pool's limits: " + strings.Join(over, ", "), Chain: h.Chain}})
			continue
		}
		if fits, _ := st.Limits.Fits(used, need(h.Need)); fits && !blocked {
			h.Granted, h.GrantEpoch = true, st.Epoch
			used = used.Add(need(h.Need))
			answers = append(answers, answer{rid, Grant{Granted: true, Chain: h.Chain}})
			continue
		}
		if h.NoWait {
			delete(st.Holds, rid)
			answers = append(answers, answer{rid, Grant{Reason: "the pool is at quota", Chain: h.Chain}})
			continue
		}
		blocked = true
	}
	return answers
}

// copyState returns a deep copy of a state.
func copyState(t *testing.T, st *LedgerState) *LedgerState {
	data, err := json.Marshal(st)
	require.NoError(t, err)
	var out LedgerState
	require.NoError(t, json.Unmarshal(data, &out))
	return &out
}

// requireIndexed checks the book's indexes against ones built afresh from its state.
func requireIndexed(t *testing.T, b *book, step string) {
	t.Helper()
	fresh := newBook(copyState(t, b.state))
	require.Equal(t, slices.Clip(append([]queued{}, fresh.queue...)), slices.Clip(append([]queued{}, b.queue...)), "%s: waiting queue", step)
	require.Equal(t, fresh.active, b.active, "%s: granted and bound holds", step)
	require.Equal(t, fresh.owner, b.owner, "%s: node owners", step)
	require.Equal(t, fresh.resend, b.resend, "%s: grants to resend", step)
}

// TestBookDecidesAsTheReferenceOverRandomHistories drives the book through random
// sequences of acquires (revised priorities, new run chains, no-wait requests,
// changing limits), binds, releases and reconciliations, and checks after every step
// that its indexes match its state and that every decision equals the plain one.
func TestBookDecidesAsTheReferenceOverRandomHistories(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			b := newBook(nil)
			limits := drivers.Resources{"instances": 4, "cores": 12}
			nextNode := 0
			rid := func() string {
				return fmt.Sprintf("%d-%010d", 100*(1+rng.IntN(3)), rng.IntN(25))
			}
			for step := range 300 {
				var what string
				switch op := rng.IntN(10); {
				case op < 4:
					r := rid()
					n := int64(1 + rng.IntN(3))
					if rng.IntN(12) == 0 {
						n = 5 // over the instance limit
					}
					if rng.IntN(15) == 0 {
						limits = drivers.Resources{"instances": int64(2 + rng.IntN(4)), "cores": 12}
					}
					acq := LedgerAcquire{RequestID: r, Chain: fmt.Sprintf("chain-%d", rng.IntN(2)),
						Order:  activities.OrderKey{RelativePriority: rng.IntN(3)},
						Need:   drivers.Resources{"instances": n, "cores": 2 * n},
						Limits: limits, NoWait: rng.IntN(6) == 0}
					what = fmt.Sprintf("acquire %s %+v", r, acq)
					b.acquire(acq, r)
				case op < 6:
					// Bind a granted hold (or, now and then, one that is not).
					var cands []string
					for _, r := range sortedKeys(b.state.Holds) {
						if h := b.state.Holds[r]; h.Granted && !h.Bound || rng.IntN(20) == 0 {
							cands = append(cands, r)
						}
					}
					if len(cands) == 0 {
						continue
					}
					r := cands[rng.IntN(len(cands))]
					nodes := map[string]drivers.Resources{}
					for range 1 + rng.IntN(2) {
						nextNode++
						nodes[fmt.Sprintf("%010d", nextNode)] = drivers.Resources{"instances": 1, "cores": 2}
					}
					what = fmt.Sprintf("bind %s %v", r, slices.Sorted(maps.Keys(nodes)))
					b.bind(LedgerBind{RequestID: r, Nodes: nodes}, r)
				case op < 8:
					if rng.IntN(3) == 0 {
						r := rid()
						what = "release request " + r
						b.release(LedgerRelease{RequestID: r}, r)
						break
					}
					owned := sortedKeys(b.owner)
					ext := sortedKeys(b.state.External)
					all := append(owned, ext...)
					if len(all) == 0 {
						continue
					}
					id := all[rng.IntN(len(all))]
					what = "release node " + id
					b.release(LedgerRelease{NodeIDs: []string{id}}, "")
				case op < 9:
					// A listing that has some of the nodes, plus one nobody knows.
					epoch, _ := b.startReconcile(func(r string) string { return r })
					res := activities.PoolUsageResult{Nodes: map[string]drivers.Resources{}}
					for id := range b.owner {
						if rng.IntN(4) > 0 {
							res.Nodes[id] = drivers.Resources{"instances": 1, "cores": 2}
						}
					}
					nextNode++
					res.Nodes[fmt.Sprintf("%010d", nextNode)] = drivers.Resources{"instances": 1}
					if active := sortedKeys(b.active); len(active) > 0 && rng.IntN(3) == 0 {
						res.Ended = []string{active[rng.IntN(len(active))]}
					}
					what = fmt.Sprintf("reconcile epoch %d", epoch)
					b.reconcile(res, epoch)
				default:
					ref := copyState(t, b.state)
					want := referenceDecide(ref)
					got := b.decide()
					what = "decide"
					require.Equal(t, want, got, "step %d: decisions", step)
					require.Equal(t, ref.Holds, copyState(t, b.state).Holds, "step %d: holds after deciding", step)
				}
				requireIndexed(t, b, fmt.Sprintf("step %d (%s)", step, what))
			}
		})
	}
}

// bookWithWaiting returns a book whose pool is full, with n requests waiting.
func bookWithWaiting(n int) *book {
	b := newBook(nil)
	limits := drivers.Resources{"instances": 2}
	for i := range 2 {
		r := fmt.Sprintf("100-%010d", i)
		b.acquire(LedgerAcquire{Need: drivers.Resources{"instances": 1}, Limits: limits}, r)
	}
	for i := range n {
		r := fmt.Sprintf("%d-%010d", 100*(1+i%3), 2+i)
		b.acquire(LedgerAcquire{Need: drivers.Resources{"instances": 1}, Limits: limits,
			Order: activities.OrderKey{RelativePriority: i % 5}}, r)
	}
	b.decide()
	return b
}

// bytesPerSignal returns the bytes allocated per acquire-and-decide on a book with n
// requests waiting (the allocation counter is exact, unlike a clock).
func bytesPerSignal(n int) uint64 {
	b := bookWithWaiting(n)
	const signals = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range signals {
		r := fmt.Sprintf("200-%010d", 1_000_000+i)
		b.acquire(LedgerAcquire{Need: drivers.Resources{"instances": 1}, Limits: drivers.Resources{"instances": 2}}, r)
		b.decide()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / signals
}

// TestBookWorkPerSignalDoesNotGrowWithTheQueue: a ledger replays every signal of its
// run whenever a worker loads it, so what a signal costs must not grow with the
// number of waiting requests (at 10,000 waiting, a cost linear in the queue made a
// replay outlast the workflow task timeout, and the ledger stopped answering). The
// queue is a sorted slice, so an insert moves part of it; that copy is the only
// per-signal work that grows, and it allocates nothing.
func TestBookWorkPerSignalDoesNotGrowWithTheQueue(t *testing.T) {
	small, large := bytesPerSignal(100), bytesPerSignal(10_000)
	t.Logf("bytes allocated per signal: %d with 100 waiting, %d with 10,000", small, large)
	require.Less(t, large, 4*small+4096, "allocation per signal grows with the waiting queue")
}

// BenchmarkBookSignal measures one acquire and decision with 10,000 requests waiting.
func BenchmarkBookSignal(b *testing.B) {
	bk := bookWithWaiting(10_000)
	limits := drivers.Resources{"instances": 2}
	for i := 0; b.Loop(); i++ {
		r := fmt.Sprintf("200-%010d", 1_000_000+i)
		bk.acquire(LedgerAcquire{Need: drivers.Resources{"instances": 1}, Limits: limits}, r)
		bk.decide()
	}
}
