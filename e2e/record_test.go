package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// TestRecordHistories records real workflow histories for the replay test in
// workflows/. It runs only when NODEPOOL_RECORD_HISTORIES names the output directory:
//
//	NODEPOOL_RECORD_HISTORIES=$PWD/workflows/testdata go test ./e2e -run TestRecordHistories
//
// Record new histories whenever a workflow changes shape (and gate the change with
// workflow.GetVersion so the old ones still replay).
func TestRecordHistories(t *testing.T) {
	out := os.Getenv("NODEPOOL_RECORD_HISTORIES")
	if out == "" {
		t.Skip("set NODEPOOL_RECORD_HISTORIES to record workflow histories")
	}
	cl := simCloud(5, "small", "large")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")
	ctx := c.ctx(2 * time.Minute)

	id := c.submit("100", "small", "large")
	req := c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFulfilled))
	held := c.accept(req)
	c.giveBack(held)
	c.waitNoNodes(30 * time.Second)

	failed := c.submit("100", "unknown-label")
	c.waitRequest(failed, 60*time.Second, stateIs(zookeeper.StateFailed))

	// A queue at the pool's limit: seven requests for five servers, served as
	// capacity returns.
	var queued []string
	for range 7 {
		queued = append(queued, c.submit("100", "small"))
	}
	for len(queued) > 0 {
		var next []string
		for _, qid := range queued {
			r, err := c.zk.GetRequest(ctx, qid)
			require.NoError(t, err)
			if r.State != zookeeper.StateFulfilled {
				next = append(next, qid)
				continue
			}
			c.giveBack(c.accept(r))
		}
		queued = next
		time.Sleep(200 * time.Millisecond)
	}
	c.waitNoNodes(30 * time.Second)

	save := func(name, workflowID string, running bool) {
		if !running {
			var res any
			require.NoError(t, c.temporal.GetWorkflow(ctx, workflowID, "").Get(ctx, &res))
		}
		iter := c.temporal.GetWorkflowHistory(ctx, workflowID, "", false, 0)
		hist := &historypb.History{}
		for iter.HasNext() {
			ev, err := iter.Next()
			require.NoError(t, err)
			hist.Events = append(hist.Events, ev)
		}
		data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(out, name), data, 0o644))
	}
	save("handle-request-fulfilled.json", names.RequestWorkflowID(c.taskQueue, id), false)
	save("handle-request-declined.json", names.RequestWorkflowID(c.taskQueue, failed), false)
	save("delete-node.json", names.DeleteWorkflowID(c.taskQueue, req.Nodes[0]), false)
	// The ledger runs on; its history so far replays up to its last workflow task.
	save("pool-ledger-batch-signals.json", names.LedgerWorkflowID(c.taskQueue, "sim", "main"), true)
}
