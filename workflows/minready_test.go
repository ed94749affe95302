package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
)

func TestMinReadyPassesAndFollowsConfiguration(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(MinReady, workflow.RegisterOptions{Name: MinReadyWorkflowType})
	env.RegisterActivity(&activities.Activities{})
	var mu sync.Mutex
	var seen [][]activities.LabelCount
	env.OnActivity(a.MinReadyPass, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.MinReadyInput) (activities.MinReadyResult, error) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, in.Labels)
			return activities.MinReadyResult{}, nil
		})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalMinReadyConfig, MinReadyConfig{Labels: []activities.LabelCount{{Label: "large", Count: 1}}})
	}, 20*time.Second)
	env.ExecuteWorkflow(MinReady, MinReadyInput{TaskQueue: testTQ, MinReadyConfig: MinReadyConfig{
		Labels: []activities.LabelCount{{Label: "small", Count: 2}}, IntervalSec: 10,
	}})
	require.True(t, env.IsWorkflowCompleted())
	var cont *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &cont), "the coordinator continues as new: %v", env.GetWorkflowError())
	require.Greater(t, len(seen), 3)
	require.Equal(t, "small", seen[0][0].Label)
	require.Equal(t, "large", seen[len(seen)-1][0].Label, "a new configuration applies")
}
