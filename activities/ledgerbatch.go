package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
)

// Ledger signals sent by activities (a plan's acquire, an acceptance's bind) are
// batched per ledger, as releases are (release.go). In a burst, every request's first
// workflow task plans and acquires; each acquire is a signal-with-start, and the
// server applies signals to one workflow one at a time, so a thousand requests
// planned at once queue behind each other on the ledger, and each adds an event to
// its history. Instead, the first signal for a ledger is sent at once, and the
// signals that arrive while it is in flight are sent together in the next one
// (LedgerBatchSignal): no signal waits longer than one round trip, and a burst of N
// costs a handful of transactions on the ledger.

// LedgerBatchSignal is the signal that carries several ledger signals at once.
const LedgerBatchSignal = "batch"

// LedgerBatch is LedgerBatchSignal's payload: signals in the order they were sent,
// each as if sent on its own.
type LedgerBatch struct {
	Signals []LedgerSignal `json:"signals"`
}

const (
	// ledgerBatchMax bounds the signals of one batch (a batch of acquires is about
	// 200 bytes each, far from Temporal's payload limits).
	ledgerBatchMax = 200
	// ledgerSignalTimeout bounds one signal-with-start.
	ledgerSignalTimeout = 10 * time.Second
)

// ledgerBatcher sends a process's ledger signals. The zero value is ready.
type ledgerBatcher struct {
	mu     sync.Mutex
	queues map[string]*ledgerQueue
}

type ledgerQueue struct {
	sending bool
	items   []queuedLedgerSignal
}

type queuedLedgerSignal struct {
	in        SignalLedgerInput
	taskQueue string
	done      chan error
}

// signal delivers in to its ledger (starting the ledger on taskQueue when it is not
// running), in one signal with whatever other signals for the same ledger are
// waiting, and returns that signal's result, or ctx's error if ctx ends first (the
// signal is still sent).
func (b *ledgerBatcher) signal(ctx context.Context, s Signaller, taskQueue string, in SignalLedgerInput) error {
	done := make(chan error, 1)
	b.mu.Lock()
	if b.queues == nil {
		b.queues = map[string]*ledgerQueue{}
	}
	q := b.queues[in.WorkflowID]
	if q == nil {
		q = &ledgerQueue{}
		b.queues[in.WorkflowID] = q
	}
	q.items = append(q.items, queuedLedgerSignal{in: in, taskQueue: taskQueue, done: done})
	start := !q.sending
	q.sending = true
	b.mu.Unlock()
	if start {
		go b.send(s, in.WorkflowID, q)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends the waiting signals of a ledger until none are left.
func (b *ledgerBatcher) send(s Signaller, ledger string, q *ledgerQueue) {
	for {
		b.mu.Lock()
		if len(q.items) == 0 {
			q.sending = false
			delete(b.queues, ledger)
			b.mu.Unlock()
			return
		}
		n := min(len(q.items), ledgerBatchMax)
		items := q.items[:n:n]
		q.items = q.items[n:]
		b.mu.Unlock()
		first := items[0]
		name, arg := first.in.Signal, first.in.Payload.arg()
		if len(items) > 1 {
			batch := LedgerBatch{Signals: make([]LedgerSignal, len(items))}
			for i, it := range items {
				batch.Signals[i] = it.in.Payload
			}
			name, arg = LedgerBatchSignal, batch
		}
		ctx, cancel := context.WithTimeout(context.Background(), ledgerSignalTimeout)
		_, err := s.SignalWithStartWorkflow(ctx, ledger, name, arg,
			client.StartWorkflowOptions{ID: ledger, TaskQueue: first.taskQueue},
			first.in.WorkflowType, first.in.StartInput)
		cancel()
		if err != nil {
			err = fmt.Errorf("signalling ledger %s: %w", ledger, err)
		}
		for _, it := range items {
			it.done <- err
		}
	}
}
