package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// retryWindow is how long the SDK keeps retrying a local activity with these options:
// without a schedule-to-close timeout it takes the start-to-close timeout as one.
func retryWindow(o workflow.LocalActivityOptions) time.Duration {
	if o.ScheduleToCloseTimeout > 0 {
		return o.ScheduleToCloseTimeout
	}
	return o.StartToCloseTimeout
}

// policyDuration is the sum of the backoffs of a retry policy with a bounded number of
// attempts.
func policyDuration(o workflow.LocalActivityOptions) time.Duration {
	p := o.RetryPolicy
	total, backoff := time.Duration(0), p.InitialInterval
	for range p.MaximumAttempts - 1 {
		total += backoff
		backoff = min(time.Duration(float64(backoff)*p.BackoffCoefficient), p.MaximumInterval)
	}
	return total
}

// TestLocalActivitiesRetryAsTheirPoliciesSay: ZooKeeper bookkeeping run as local
// activities is retried through an overloaded or unreachable server for far longer than
// one attempt's timeout (a burst of 10,000 requests failed hundreds of workflows whose
// ledger signal had been retried for only 30 s), and a lock wait gets all its attempts.
func TestLocalActivitiesRetryAsTheirPoliciesSay(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	got := map[string]workflow.LocalActivityOptions{}
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		got["zkLocal"] = workflow.GetLocalActivityOptions(zkLocal(ctx))
		got["acceptLocal"] = workflow.GetLocalActivityOptions(acceptLocal(ctx, 50))
		got["lockWaitLocal"] = workflow.GetLocalActivityOptions(lockWaitLocal(ctx))
		got["stepLocal"] = workflow.GetLocalActivityOptions(stepLocal(ctx, 20*time.Minute))
		return nil
	})
	require.NoError(t, env.GetWorkflowError())
	tests := []struct {
		name      string
		minWindow time.Duration
	}{
		{"zkLocal", 30 * time.Minute},
		{"acceptLocal", 30 * time.Minute},
		{"lockWaitLocal", policyDuration(got["lockWaitLocal"]) + got["lockWaitLocal"].StartToCloseTimeout},
		{"stepLocal", 20 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := got[tt.name]
			require.GreaterOrEqual(t, retryWindow(o), tt.minWindow, "retries of %s end after %s", tt.name, retryWindow(o))
		})
	}
}
