package poller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

// Deletions are started in batches. When Zuul returns many nodes at once (a job set
// ends, a burst of jobs finishes), one workflow per node would cost the server a
// workflow start, a workflow task and a completion each, and the deletions would queue
// behind each other on its CPU. Instead, the first deletions start at once, one
// DeleteNode workflow per node (so a node returned alone is deleted as soon as before),
// and the nodes that must go while those starts are under way are gathered into the
// next start: one DeleteNodes workflow for all of them (group commit). No deletion
// waits longer than a start's round trip, and N nodes returned together cost a few
// workflows.
const (
	// deleteStartsInFlight bounds the deletion starts under way at once.
	deleteStartsInFlight = 2
	// deleteBatchMax bounds the nodes of one DeleteNodes workflow.
	deleteBatchMax = 100
)

// deleteQueue holds the deletions waiting to be started. The zero value is ready.
type deleteQueue struct {
	mu       sync.Mutex
	pending  []workflows.DeleteTarget
	inflight int
	seq      uint64
	// instance keeps batch workflow ids unique across processes.
	instance string
	wg       sync.WaitGroup
}

// startDelete queues node id's deletion; it is started at once when fewer than
// deleteStartsInFlight starts are under way, with the next batch otherwise.
func (p *Poller) startDelete(ctx context.Context, id string, unlockedFor float64) {
	q := &p.deletes
	q.mu.Lock()
	q.pending = append(q.pending, workflows.DeleteTarget{NodeID: id, UnlockedForSec: unlockedFor})
	spawn := q.inflight < deleteStartsInFlight
	if spawn {
		q.inflight++
		q.wg.Add(1)
	}
	q.mu.Unlock()
	if spawn {
		go p.sendDeletes(ctx)
	}
}

// sendDeletes starts the queued deletions, a batch at a time, until none are left.
func (p *Poller) sendDeletes(ctx context.Context) {
	q := &p.deletes
	defer q.wg.Done()
	for {
		q.mu.Lock()
		if len(q.pending) == 0 || ctx.Err() != nil {
			q.pending = q.pending[:0]
			q.inflight--
			q.mu.Unlock()
			return
		}
		n := min(len(q.pending), deleteBatchMax)
		batch := append([]workflows.DeleteTarget(nil), q.pending[:n]...)
		q.pending = append(q.pending[:0], q.pending[n:]...)
		q.seq++
		seq := q.seq
		if q.instance == "" {
			q.instance = p.opts.Instance
			if q.instance == "" {
				q.instance = randomHex(16)
			}
		}
		instance := q.instance
		q.mu.Unlock()
		id, err := p.startDeleteWorkflow(ctx, batch, instance, seq)
		if err != nil {
			p.mu.Lock()
			for _, n := range batch {
				if ns := p.nodes[n.NodeID]; ns != nil {
					ns.deleting = time.Time{}
				}
			}
			p.mu.Unlock()
			p.log.Warn("starting node deletion", "nodes", nodeIDs(batch), "error", err)
			continue
		}
		p.log.Info("started node deletion", "nodes", nodeIDs(batch), "workflow_id", id)
	}
}

// startDeleteWorkflow starts the deletion of batch: a DeleteNode workflow for a single
// node (its id names the node, so starting it twice is harmless), a DeleteNodes
// workflow for more.
func (p *Poller) startDeleteWorkflow(ctx context.Context, batch []workflows.DeleteTarget, instance string, seq uint64) (string, error) {
	opts := client.StartWorkflowOptions{
		TaskQueue:             p.opts.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		EnableEagerStart:      true,
	}
	if len(batch) == 1 {
		opts.ID = names.DeleteWorkflowID(p.opts.TaskQueue, batch[0].NodeID)
		opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
		_, err := p.opts.Temporal.ExecuteWorkflow(ctx, opts, workflows.DeleteWorkflowType, workflows.DeleteInput{
			NodeID:           batch[0].NodeID,
			TaskQueue:        p.opts.TaskQueue,
			PollIntervalSec:  p.opts.PollInterval.Seconds(),
			UnlockedForSec:   batch[0].UnlockedForSec,
			OrphanGraceSec:   p.opts.Policy.OrphanGrace.Seconds(),
			SearchAttributes: p.opts.SearchAttributes,
		})
		return opts.ID, err
	}
	opts.ID = names.DeleteBatchWorkflowID(p.opts.TaskQueue, batch[0].NodeID, len(batch), instance, seq)
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL
	_, err := p.opts.Temporal.ExecuteWorkflow(ctx, opts, workflows.DeleteBatchWorkflowType, workflows.DeleteNodesInput{
		Nodes:            batch,
		TaskQueue:        p.opts.TaskQueue,
		PollIntervalSec:  p.opts.PollInterval.Seconds(),
		OrphanGraceSec:   p.opts.Policy.OrphanGrace.Seconds(),
		SearchAttributes: p.opts.SearchAttributes,
	})
	return opts.ID, err
}

func nodeIDs(batch []workflows.DeleteTarget) []string {
	ids := make([]string, len(batch))
	for i, n := range batch {
		ids[i] = n.NodeID
	}
	return ids
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
