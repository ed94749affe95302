package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// dialTemporal connects to the shared Temporal dev server.
func dialTemporal(t *testing.T) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: testenv.Temporal(t), Namespace: "default"})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func repeat(label string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = label
	}
	return out
}

// A request of any size starts: Temporal refuses a keyword list search attribute beyond
// 2 KiB, and a request's node types repeat the same few labels.
func TestRequestStartFitsTemporalLimits(t *testing.T) {
	tc := dialTemporal(t)
	ctx := context.Background()
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("label-with-a-long-name-%03d", i)
	}
	tests := []struct {
		name      string
		types     []string
		data      string
		wantLabel []string // nil: only check the size
	}{
		{name: "300 nodes", types: repeat("ubuntu-jammy", 300), wantLabel: []string{"ubuntu-jammy"}},
		{name: "1000 nodes of two labels", types: append(repeat("small", 500), repeat("large", 500)...), wantLabel: []string{"large", "small"}},
		{name: "300 distinct labels", types: many},
		{name: "large requestor data", types: repeat("small", 1000), data: `{"blob": "` + strings.Repeat("x", 100_000) + `"}`},
	}
	for _, tc2 := range tests {
		t.Run(tc2.name, func(t *testing.T) {
			queue := "poller-sa-" + uuid.NewString()
			p := New(Options{Temporal: tc, TaskQueue: queue, SearchAttributes: true})
			req := &zookeeper.NodeRequest{ID: "200-0000000001", State: zookeeper.StateRequested, NodeTypes: tc2.types,
				Requestor: strp("zuul"), TenantName: strp("tenant"), RelativePriority: 2}
			if tc2.data != "" {
				req.RequestorData = json.RawMessage(tc2.data)
			}
			require.NoError(t, p.startRequest(ctx, req))
			wid := names.RequestWorkflowID(queue, req.ID)
			t.Cleanup(func() { _ = tc.TerminateWorkflow(context.Background(), wid, "", "test over") })
			desc, err := tc.DescribeWorkflowExecution(ctx, wid, "")
			require.NoError(t, err)
			info := desc.GetWorkflowExecutionInfo()
			require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, info.GetStatus())

			var labels []string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(
				info.GetSearchAttributes().GetIndexedFields()[workflows.SALabel.GetName()], &labels))
			size := 0
			for _, l := range labels {
				size += len(l) + 3
			}
			require.LessOrEqual(t, size, labelBudget)
			require.NotEmpty(t, labels)
			require.IsIncreasing(t, labels)
			if tc2.wantLabel != nil {
				require.Equal(t, tc2.wantLabel, labels)
			}
			memo := 0
			for _, p := range info.GetMemo().GetFields() {
				memo += len(p.GetData())
			}
			require.Less(t, memo, 4096, "memo stays small")
		})
	}
}

// An operator terminates a request workflow while the request waits: the poller starts a
// new run promptly.
func TestPollerRestartsTerminatedWorkflow(t *testing.T) {
	tc := dialTemporal(t)
	queue := "poller-restart-" + uuid.NewString()
	e := start(t, func(o *Options) {
		o.Temporal = tc
		o.TaskQueue = queue
		o.SearchAttributes = true
		o.Now = nil
	})
	ctx := context.Background()
	id := submit(t, e.zk, zookeeper.StateRequested)
	wid := names.RequestWorkflowID(queue, id)
	var first string
	eventually(t, func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, wid, "")
		if err != nil {
			return false
		}
		first = d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		return true
	}, "no workflow started")
	require.NoError(t, tc.TerminateWorkflow(ctx, wid, first, "operator"))

	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := tc.DescribeWorkflowExecution(ctx, wid, "")
		require.NoError(t, err)
		info := d.GetWorkflowExecutionInfo()
		if info.GetExecution().GetRunId() != first && info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			break
		}
		require.True(t, time.Now().Before(deadline), "terminated request workflow not restarted")
		time.Sleep(200 * time.Millisecond)
	}
	_ = tc.TerminateWorkflow(ctx, wid, "", "test over")
}
