package activities

import (
	"context"
	"fmt"
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

// ledgerBatcher sends a process's ledger signals, per ledger.
type ledgerBatcher struct {
	groupCommit[queuedLedgerSignal]
}

type queuedLedgerSignal struct {
	in        SignalLedgerInput
	taskQueue string
}

// signal delivers in to its ledger (starting the ledger on taskQueue when it is not
// running), in one signal with whatever other signals for the same ledger are
// waiting, and returns that signal's result, or ctx's error if ctx ends first (the
// signal is still sent).
func (b *ledgerBatcher) signal(ctx context.Context, s Signaller, taskQueue string, in SignalLedgerInput) error {
	ledger := in.WorkflowID
	return b.add(ctx, ledger, queuedLedgerSignal{in: in, taskQueue: taskQueue}, ledgerBatchMax, func(items []queuedLedgerSignal) error {
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
		defer cancel()
		_, err := s.SignalWithStartWorkflow(ctx, ledger, name, arg,
			client.StartWorkflowOptions{ID: ledger, TaskQueue: first.taskQueue},
			first.in.WorkflowType, first.in.StartInput)
		if err != nil {
			return fmt.Errorf("signalling ledger %s: %w", ledger, err)
		}
		return nil
	})
}
