package activities

import (
	"context"
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

// releaseBatcher sends the releases of a process's deletions, per ledger and signal.
type releaseBatcher struct{ groupCommit[string] }

// release tells ledger (by signal) that nodeID's capacity is free, in one signal with
// whatever other releases for the same ledger are waiting, and returns that signal's
// result, or ctx's error if ctx ends first (the release is still sent).
func (b *releaseBatcher) release(ctx context.Context, s releaseSender, ledger, signal, nodeID string) error {
	return b.add(ctx, ledger+"\x00"+signal, nodeID, releaseBatchMax, func(nodes []string) error {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		return s.SignalWorkflow(ctx, ledger, "", signal, LedgerRelease{NodeIDs: nodes})
	})
}
