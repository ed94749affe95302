package workflows

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/names"
)

func TestDeleteNode(t *testing.T) {
	const node = "0000000042"
	proceed := activities.StartDeleteResult{Proceed: true, ExternalID: "i-42", Provider: "sim", Pool: "main", TaskQueue: testTQ + "-provider-sim", State: "deleting"}
	with := func(f func(*activities.StartDeleteResult)) activities.StartDeleteResult {
		r := proceed
		f(&r)
		return r
	}
	cases := []struct {
		name  string
		start activities.StartDeleteResult
		// startErr fails StartDelete; finishFails fails FinishDelete that many times
		// (retryably); stepErr fails every DeleteStep.
		startErr    error
		finishFails int
		stepErr     error
		wantOutcome string
		wantErr     bool
		// wantSteps are the states DeleteStep starts from; wantFinish how often
		// FinishDelete runs; wantReleased whether the node was unlocked for a later try.
		wantSteps    []string
		wantFinish   int
		wantReleased bool
	}{
		{name: "deleted by the first local activity", start: with(func(r *activities.StartDeleteResult) { r.Deleted = true }),
			wantOutcome: "deleted"},
		{name: "inline deletion goes on in steps",
			start: with(func(r *activities.StartDeleteResult) {
				r.Delete = &drivers.DeleteState{ExternalID: "i-42", NodeID: node, Step: "deleting instance", Wait: 2 * time.Second}
			}),
			wantOutcome: "deleted", wantSteps: []string{"deleting instance"}, wantFinish: 1},
		{name: "provider without inline steps", start: proceed,
			wantOutcome: "deleted", wantSteps: []string{"", "deleting instance"}, wantFinish: 1},
		{name: "finish retried", start: proceed, finishFails: 2,
			wantOutcome: "deleted", wantSteps: []string{"", "deleting instance"}, wantFinish: 3},
		{name: "failing cloud leaves the node for a later deletion", start: proceed,
			stepErr: temporal.NewNonRetryableApplicationError("cloud says no", activities.ErrTypePermanent, nil),
			wantErr: true, wantSteps: []string{""}, wantReleased: true},
		{name: "locked by someone else", startErr: temporal.NewNonRetryableApplicationError("locked", activities.ErrTypeLocked, nil),
			wantOutcome: "locked"},
		{name: "kept", start: activities.StartDeleteResult{Reason: "node is hold and must be kept"}, wantOutcome: "kept"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			s.SetLogger(quietLogger{})
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(DeleteNode)
			env.RegisterActivity(&activities.Activities{})
			var mu sync.Mutex
			var startIn activities.StartDeleteInput
			var steps []string
			finishes, released := 0, false
			env.OnActivity(a.StartDelete, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.StartDeleteInput) (activities.StartDeleteResult, error) {
					startIn = in
					return tc.start, tc.startErr
				})
			env.OnActivity(a.DeleteStep, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.DeleteStepInput) (drivers.DeleteState, error) {
					mu.Lock()
					defer mu.Unlock()
					steps = append(steps, in.State.Step)
					if tc.stepErr != nil {
						return in.State, tc.stepErr
					}
					st := in.State
					if st.Step == "" {
						st.Step, st.Wait = "deleting instance", time.Second
					} else {
						st.Complete = true
					}
					return st, nil
				})
			env.OnActivity(a.FinishDelete, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.FinishDeleteInput) error {
					mu.Lock()
					defer mu.Unlock()
					require.Equal(t, activities.FinishDeleteInput{NodeID: node, Owner: names.DeleteWorkflowID(testTQ, node),
						Ledger: names.LedgerWorkflowID(testTQ, "sim", "main"), Signal: SignalRelease}, in)
					finishes++
					if finishes <= tc.finishFails {
						return errors.New("zookeeper unavailable")
					}
					return nil
				})
			env.OnActivity(a.ReleaseNode, mock.Anything, mock.Anything).Return(
				func(context.Context, activities.NodeRefInput) error { released = true; return nil })
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: names.DeleteWorkflowID(testTQ, node)})
			env.ExecuteWorkflow(DeleteNode, DeleteInput{NodeID: node, TaskQueue: testTQ, PollIntervalSec: 1})

			require.True(t, env.IsWorkflowCompleted())
			require.Equal(t, &activities.FinishTarget{TaskQueue: testTQ, Signal: SignalRelease}, startIn.Finish,
				"the first local activity may finish the deletion")
			if tc.wantErr {
				require.Error(t, env.GetWorkflowError())
			} else {
				require.NoError(t, env.GetWorkflowError())
				var res DeleteResult
				require.NoError(t, env.GetWorkflowResult(&res))
				require.Equal(t, tc.wantOutcome, res.Outcome)
			}
			require.Equal(t, tc.wantSteps, steps)
			require.Equal(t, tc.wantFinish, finishes)
			require.Equal(t, tc.wantReleased, released)
		})
	}
}

// A batch deletes each node as DeleteNode does, concurrently, under the batch's own
// workflow id; a node whose deletion fails is released for a later try and named in
// the workflow's error, after every other node is done.
func TestDeleteNodes(t *testing.T) {
	const batchID = testTQ + "/delete-batch/0000000001+3/abc-1"
	proceed := func(id string) activities.StartDeleteResult {
		return activities.StartDeleteResult{Proceed: true, ExternalID: "i-" + id, Provider: "sim", Pool: "main", TaskQueue: testTQ + "-provider-sim", State: "deleting"}
	}
	type behaviour struct {
		start    func(id string) activities.StartDeleteResult
		startErr error
		stepErr  error
	}
	deleted := behaviour{start: func(id string) activities.StartDeleteResult {
		r := proceed(id)
		r.Deleted = true
		return r
	}}
	inSteps := behaviour{start: proceed}
	failing := behaviour{start: proceed, stepErr: temporal.NewNonRetryableApplicationError("cloud says no", activities.ErrTypePermanent, nil)}
	kept := behaviour{start: func(string) activities.StartDeleteResult {
		return activities.StartDeleteResult{Reason: "node is hold and must be kept"}
	}}
	cases := []struct {
		name  string
		nodes map[string]behaviour
		// want are the outcomes by node ("error" for a failed one); wantFinished the
		// nodes FinishDelete ran for, wantReleased those unlocked for a later try.
		want         map[string]string
		wantFinished []string
		wantReleased []string
	}{
		{name: "every node deleted by its first local activity",
			nodes: map[string]behaviour{"0000000001": deleted, "0000000002": deleted, "0000000003": deleted},
			want:  map[string]string{"0000000001": "deleted", "0000000002": "deleted", "0000000003": "deleted"}},
		{name: "slow and quick deletions together",
			nodes:        map[string]behaviour{"0000000001": deleted, "0000000002": inSteps, "0000000003": kept},
			want:         map[string]string{"0000000001": "deleted", "0000000002": "deleted", "0000000003": "kept"},
			wantFinished: []string{"0000000002"}},
		{name: "a failing node does not hold back the others",
			nodes:        map[string]behaviour{"0000000001": failing, "0000000002": inSteps, "0000000003": deleted},
			want:         map[string]string{"0000000001": "error", "0000000002": "deleted", "0000000003": "deleted"},
			wantFinished: []string{"0000000002"}, wantReleased: []string{"0000000001"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			s.SetLogger(quietLogger{})
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(DeleteNodes)
			env.RegisterActivity(&activities.Activities{})
			var mu sync.Mutex
			var finished, released []string
			env.OnActivity(a.StartDelete, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.StartDeleteInput) (activities.StartDeleteResult, error) {
					require.Equal(t, batchID, in.Owner, "the batch owns every node's lock")
					require.Equal(t, &activities.FinishTarget{TaskQueue: testTQ, Signal: SignalRelease}, in.Finish)
					b := tc.nodes[in.NodeID]
					return b.start(in.NodeID), b.startErr
				})
			env.OnActivity(a.DeleteStep, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.DeleteStepInput) (drivers.DeleteState, error) {
					if err := tc.nodes[in.State.NodeID].stepErr; err != nil {
						return in.State, err
					}
					st := in.State
					st.Complete = true
					return st, nil
				})
			env.OnActivity(a.FinishDelete, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.FinishDeleteInput) error {
					mu.Lock()
					defer mu.Unlock()
					require.Equal(t, batchID, in.Owner)
					finished = append(finished, in.NodeID)
					return nil
				})
			env.OnActivity(a.ReleaseNode, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.NodeRefInput) error {
					mu.Lock()
					defer mu.Unlock()
					released = append(released, in.NodeID)
					return nil
				})
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: batchID})
			var in DeleteNodesInput
			for _, id := range slices.Sorted(maps.Keys(tc.nodes)) {
				in.Nodes = append(in.Nodes, DeleteTarget{NodeID: id})
			}
			in.TaskQueue, in.PollIntervalSec = testTQ, 1
			env.ExecuteWorkflow(DeleteNodes, in)

			require.True(t, env.IsWorkflowCompleted())
			failed := false
			for _, want := range tc.want {
				failed = failed || want == "error"
			}
			var res DeleteNodesResult
			if failed {
				err := env.GetWorkflowError()
				require.Error(t, err)
				for id, want := range tc.want {
					if want == "error" {
						require.Contains(t, err.Error(), id)
					}
				}
			} else {
				require.NoError(t, env.GetWorkflowError())
				require.NoError(t, env.GetWorkflowResult(&res))
				got := map[string]string{}
				for _, r := range res.Nodes {
					got[r.NodeID] = r.Outcome
				}
				require.Equal(t, tc.want, got)
			}
			slices.Sort(finished)
			slices.Sort(released)
			require.Equal(t, tc.wantFinished, finished)
			require.Equal(t, tc.wantReleased, released)
		})
	}
}
