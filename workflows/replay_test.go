package workflows

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs (see
// e2e/record_test.go) against the current workflow code. A failure means a change is
// not deterministic for workflows already running: gate it with workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(HandleRequest, workflow.RegisterOptions{Name: RequestWorkflowType})
			r.RegisterWorkflowWithOptions(DeleteNode, workflow.RegisterOptions{Name: DeleteWorkflowType})
			r.RegisterWorkflowWithOptions(PoolLedger, workflow.RegisterOptions{Name: LedgerWorkflowType})
			fh, err := os.Open(f)
			require.NoError(t, err)
			defer fh.Close()
			hist, err := client.HistoryFromJSON(fh, client.HistoryJSONOptions{})
			require.NoError(t, err)
			require.NoError(t, r.ReplayWorkflowHistory(nil, hist))
		})
	}
}
