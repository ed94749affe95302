package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// PoolUsage lists the nodes of a pool and what they use.
func (a *Activities) PoolUsage(ctx context.Context, in PoolUsageInput) (PoolUsageResult, error) {
	out := PoolUsageResult{Nodes: map[string]drivers.Resources{}}
	seen := 0
	err := a.forEachNode(ctx, func(n *zookeeper.Node) {
		if seen++; seen%50 == 0 {
			activity.RecordHeartbeat(ctx, seen)
		}
		if n.Provider != in.Provider || n.Pool != in.Pool {
			return
		}
		res := drivers.Resources(n.ResourceCounts())
		if len(res) == 0 {
			res = drivers.Resources{drivers.ResourceInstances: 1}
			if len(n.Type) > 0 {
				if need, err := a.labelNeed(ctx, in.Provider, in.Pool, n.Type[0]); err == nil {
					res = need
				}
			}
		}
		out.Nodes[n.ID] = res
	})
	if err != nil {
		return PoolUsageResult{}, err
	}
	for _, h := range in.Holders {
		running, err := a.chainRunning(ctx, h.WorkflowID, h.Chain)
		if err != nil {
			a.logger.Warn("checking a capacity holder", "workflow_id", h.WorkflowID, "error", err)
			continue
		}
		if !running {
			out.Ended = append(out.Ended, h.RequestID)
		}
	}
	return out, nil
}

// chainRunning reports whether the workflow runs in the run chain whose id ends with
// chain (any chain when chain is "").
func (a *Activities) chainRunning(ctx context.Context, workflowID, chain string) (bool, error) {
	if a.temporal == nil {
		return true, nil
	}
	resp, err := a.temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describing workflow %s: %w", workflowID, err)
	}
	info := resp.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, nil
	}
	return strings.HasSuffix(info.GetFirstRunId(), chain), nil
}

// forEachNode calls fn for every readable node, in the order of their ids: from the
// process's node records once they have listed the tree (fn must not change the node),
// reading only the nodes that have just appeared and are not read yet; else by reading
// each record. Nodes that vanish while listed and malformed znodes are skipped; any
// other read error ends the scan.
func (a *Activities) forEachNode(ctx context.Context, fn func(*zookeeper.Node)) error {
	if a.nodes != nil {
		recs, ok, err := zookeeper.ReadThrough(ctx, a.nodes, a.zk.GetNode)
		if err != nil {
			return err
		}
		if ok {
			for _, id := range slices.Sorted(maps.Keys(recs)) {
				fn(recs[id])
			}
			return nil
		}
	}
	ids, err := a.zk.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	for _, id := range ids {
		n, err := a.zk.GetNode(ctx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			var de *zookeeper.DecodeError
			if asDecodeError(err, &de) {
				continue
			}
			return fmt.Errorf("reading node %s: %w", id, err)
		}
		fn(n)
	}
	return nil
}

// SignalLedger delivers a signal to a pool ledger workflow, starting it if it is not
// running.
func (a *Activities) SignalLedger(ctx context.Context, in SignalLedgerInput) error {
	return a.signalLedger(ctx, in)
}

func (a *Activities) signalLedger(ctx context.Context, in SignalLedgerInput) error {
	if a.temporal == nil {
		return invalidConfig("no Temporal client configured for signalling ledgers")
	}
	// Ledgers run on a task queue of their own (a running ledger keeps the queue it
	// was started on).
	tq := activity.GetInfo(ctx).TaskQueue
	if in.StartInput.TaskQueue != "" {
		tq = names.LedgerTaskQueue(in.StartInput.TaskQueue)
	}
	return a.ledgerSignals.signal(ctx, a.temporal, tq, in)
}
