package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// grantSignals records the grants signalled, by workflow id; gone workflows answer
// NotFound and flaky ones fail their first tries.
type grantSignals struct {
	mu    sync.Mutex
	got   map[string][]LedgerGrant
	gone  map[string]bool
	flaky map[string]int
}

func (g *grantSignals) SignalWithStartWorkflow(context.Context, string, string, any, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return nil, errors.New("not in this test")
}

func (g *grantSignals) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return nil, errors.New("not in this test")
}

func (g *grantSignals) SignalWorkflow(_ context.Context, id, _, signal string, arg any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone[id] {
		return serviceerror.NewNotFound("workflow not found")
	}
	if g.flaky[id] > 0 {
		g.flaky[id]--
		return serviceerror.NewUnavailable("try again")
	}
	if signal != "capacity" {
		return fmt.Errorf("unexpected signal %q", signal)
	}
	g.got[id] = append(g.got[id], arg.(LedgerGrant))
	return nil
}

func TestDeliverGrants(t *testing.T) {
	tests := []struct {
		name     string
		gone     []string
		flaky    map[string]int
		wantGone []string
		wantErr  bool
	}{
		{name: "all delivered"},
		{name: "a holder that ended is reported", gone: []string{"wf-2"}, wantGone: []string{"r-2"}},
		{name: "a transient failure is tried again", flaky: map[string]int{"wf-1": deliverAttempts - 1}},
		{name: "a lasting failure fails the delivery", flaky: map[string]int{"wf-1": deliverAttempts}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := &grantSignals{got: map[string][]LedgerGrant{}, gone: map[string]bool{}, flaky: map[string]int{}}
			for _, id := range tt.gone {
				sig.gone[id] = true
			}
			for id, n := range tt.flaky {
				sig.flaky[id] = n
			}
			a := New(nil, nil, Settings{}, sig, nil)
			in := DeliverGrantsInput{Signal: "capacity"}
			for i := range 3 {
				in.Deliveries = append(in.Deliveries, GrantDelivery{RequestID: fmt.Sprintf("r-%d", i),
					WorkflowID: fmt.Sprintf("wf-%d", i), Grant: LedgerGrant{Granted: i != 1, Chain: "c", Ledger: "l"}})
			}
			res, err := a.DeliverGrants(context.Background(), in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantGone, res.Gone)
			for _, d := range in.Deliveries {
				if sig.gone[d.WorkflowID] {
					continue
				}
				require.Equal(t, []LedgerGrant{d.Grant}, sig.got[d.WorkflowID], "delivered once: %s", d.WorkflowID)
			}
		})
	}
}
