package activities

import (
	"context"
	"sync"
	"time"
)

// Releases of deleted nodes' capacity are batched per ledger. When many nodes are
// deleted at once (Zuul returns a large node set, a burst of jobs ends), each deletion
// would otherwise send a signal of its own to the same ledger workflow; the server
// handles signals to one workflow one at a time, so the deletions would queue behind
// each other and the ledger's history would grow by one event per node. Instead, the
// first release for a ledger is sent at once, and releases that arrive while it is in
// flight are sent together in the next signal (group commit): no release waits longer
// than one signal's round trip, and a burst of N releases costs a handful of signals.

const (
	// releaseBatchMax bounds the node ids of one release signal.
	releaseBatchMax = 500
	// releaseTimeout bounds one release signal.
	releaseTimeout = 10 * time.Second
)

// releaseSender is the part of the Temporal client that sends releases.
type releaseSender interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// releaseBatcher sends the releases of a process's deletions. The zero value is ready.
type releaseBatcher struct {
	mu      sync.Mutex
	batches map[releaseKey]*releaseBatch
}

type releaseKey struct{ ledger, signal string }

type releaseBatch struct {
	sending bool
	nodes   []string
	waiters []chan error
}

// release tells ledger (by signal) that nodeID's capacity is free, in one signal with
// whatever other releases for the same ledger are waiting, and returns that signal's
// result, or ctx's error if ctx ends first (the release is still sent).
func (b *releaseBatcher) release(ctx context.Context, s releaseSender, ledger, signal, nodeID string) error {
	done := make(chan error, 1)
	key := releaseKey{ledger, signal}
	b.mu.Lock()
	if b.batches == nil {
		b.batches = map[releaseKey]*releaseBatch{}
	}
	batch := b.batches[key]
	if batch == nil {
		batch = &releaseBatch{}
		b.batches[key] = batch
	}
	batch.nodes = append(batch.nodes, nodeID)
	batch.waiters = append(batch.waiters, done)
	start := !batch.sending
	batch.sending = true
	b.mu.Unlock()
	if start {
		go b.send(s, key, batch)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends the waiting releases of a ledger until none are left.
func (b *releaseBatcher) send(s releaseSender, key releaseKey, batch *releaseBatch) {
	for {
		b.mu.Lock()
		if len(batch.nodes) == 0 {
			batch.sending = false
			delete(b.batches, key)
			b.mu.Unlock()
			return
		}
		n := min(len(batch.nodes), releaseBatchMax)
		nodes, waiters := batch.nodes[:n:n], batch.waiters[:n:n]
		batch.nodes, batch.waiters = batch.nodes[n:], batch.waiters[n:]
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		err := s.SignalWorkflow(ctx, key.ledger, "", key.signal, LedgerRelease{NodeIDs: nodes})
		cancel()
		for _, w := range waiters {
			w <- err
		}
	}
}
