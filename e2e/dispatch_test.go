package e2e

import (
	"context"
	"strings"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

// firstEvent returns the first event of workflowID's latest run.
func (c *cluster) firstEvent(workflowID string) *historypb.HistoryEvent {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := c.temporal.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	require.True(c.t, it.HasNext(), "history of %s", workflowID)
	ev, err := it.Next()
	require.NoError(c.t, err)
	return ev
}

// requireEagerStart checks that the poller's start of workflowID handed its first
// workflow task straight to the worker in the launcher's process (eager start), as it
// does when it starts through the workers' own client.
func (c *cluster) requireEagerStart(workflowID string) {
	c.t.Helper()
	attrs := c.firstEvent(workflowID).GetWorkflowExecutionStartedEventAttributes()
	require.NotNil(c.t, attrs, "%s starts with its started event", workflowID)
	require.True(c.t, attrs.GetEagerExecutionAccepted(), "%s: first workflow task not dispatched eagerly", workflowID)
}

// deletions returns which workflow deleted each of nodes: its own DeleteNode workflow
// or a DeleteNodes batch (by batch workflow id).
func (c *cluster) deletions(nodes []string) (singles []string, batches map[string][]string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]bool{}
	for _, id := range nodes {
		want[id] = true
		if _, err := c.temporal.DescribeWorkflowExecution(ctx, names.DeleteWorkflowID(c.taskQueue, id), ""); err == nil {
			singles = append(singles, id)
		}
	}
	batches = map[string][]string{}
	var token []byte
	for {
		resp, err := c.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = '" + workflows.DeleteBatchWorkflowType + "'", NextPageToken: token,
		})
		require.NoError(c.t, err)
		for _, e := range resp.GetExecutions() {
			wid := e.GetExecution().GetWorkflowId()
			if !strings.HasPrefix(wid, c.taskQueue+"/delete-batch/") {
				continue
			}
			var in workflows.DeleteNodesInput
			require.NoError(c.t, converter.GetDefaultDataConverter().FromPayloads(
				c.firstEvent(wid).GetWorkflowExecutionStartedEventAttributes().GetInput(), &in))
			for _, n := range in.Nodes {
				if want[n.NodeID] {
					batches[wid] = append(batches[wid], n.NodeID)
				}
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return singles, batches
		}
	}
}
