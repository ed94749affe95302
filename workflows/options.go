package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
)

// a names the activities; method values on a nil pointer are enough for the SDK.
var a *activities.Activities

// zkRetry retries ZooKeeper bookkeeping until ZooKeeper answers.
func zkRetry() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        200 * time.Millisecond,
		BackoffCoefficient:     2,
		MaximumInterval:        10 * time.Second,
		NonRetryableErrorTypes: activities.NonRetryable,
	}
}

// lockWaitRetry retries an activity that finds a lock held by someone else for about
// half a minute (Zuul unlocks a node right after writing "used").
func lockWaitRetry() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        200 * time.Millisecond,
		BackoffCoefficient:     1.5,
		MaximumInterval:        2 * time.Second,
		MaximumAttempts:        25,
		NonRetryableErrorTypes: activities.NonRetryable,
	}
}

// zkOptions are the options of ZooKeeper bookkeeping activities.
func zkOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         zkRetry(),
	})
}

// Short ZooKeeper bookkeeping runs as local activities: in the worker that runs the
// workflow task, recorded as one marker event, without a round trip through the
// server's task queues. Activities that heartbeat (AcceptRequest), that must be rate
// limited (driver steps) or that may run long stay ordinary activities.

// zkLocalDeadline bounds the retries of a local ZooKeeper activity. A local activity
// without a schedule-to-close timeout gets its start-to-close timeout as one, so its
// retries would end (and fail the workflow) after 30 s of an overloaded or unreachable
// ZooKeeper or Temporal server. Past this deadline the workflow fails and the poller
// starts a new run for the request or node that still needs one.
const zkLocalDeadline = time.Hour

// zkLocal are the options of local ZooKeeper activities.
func zkLocal(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: zkLocalDeadline,
		RetryPolicy:            zkRetry(),
	})
}

// lockWaitLocal are the options of local activities that wait for a lock.
func lockWaitLocal(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// The retry policy's attempts bound the wait, not the first attempt's timeout.
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy:            lockWaitRetry(),
	})
}

// acceptOptions are the options of AcceptRequest, which creates a request's nodes and
// heartbeats after every batch: its deadline grows with the number of nodes, and a
// worker that dies mid-way is noticed within the heartbeat timeout.
func acceptOptions(ctx workflow.Context, nodes int) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30*time.Second + time.Duration(nodes)*100*time.Millisecond,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         zkRetry(),
	})
}

// acceptLocal are the options of an acceptance run as a local activity (at most
// acceptLocalMax nodes): it needs no heartbeat, and is retried like other ZooKeeper
// bookkeeping.
func acceptLocal(ctx workflow.Context, nodes int) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    30*time.Second + time.Duration(nodes)*100*time.Millisecond,
		ScheduleToCloseTimeout: zkLocalDeadline,
		RetryPolicy:            zkRetry(),
	})
}

// scanOptions are the options of a node scan: it may take the whole boot-timeout, and
// runs on the main task queue (not the provider's rate-limited one: it makes no cloud
// call).
func scanOptions(ctx workflow.Context, bootTimeout time.Duration) workflow.Context {
	if bootTimeout <= 0 {
		bootTimeout = 3 * time.Minute
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: bootTimeout + 30*time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}

// stepTimeout bounds one driver step.
const stepTimeout = 30 * time.Second

// stepOptions are the options of driver steps: on the provider's rate-limited task
// queue, retried on transient errors until the deadline.
func stepOptions(ctx workflow.Context, taskQueue string, deadline time.Duration) workflow.Context {
	if deadline <= 0 {
		deadline = time.Hour
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: taskQueue,
		// Steps are short by contract; a step whose worker died is retried elsewhere
		// after this long.
		StartToCloseTimeout:    stepTimeout,
		ScheduleToCloseTimeout: deadline,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}

// stepLocal are the options of driver steps run as local activities (providers without
// a rate): retried as stepOptions retries them, until the deadline.
func stepLocal(ctx workflow.Context, deadline time.Duration) workflow.Context {
	if deadline <= 0 {
		deadline = time.Hour
	}
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    stepTimeout,
		ScheduleToCloseTimeout: deadline,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}

// errorType returns the application error type of err, or "" if it has none.
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// clampWait bounds a driver's wait hint by the poll interval.
func clampWait(wait, poll time.Duration) time.Duration {
	if wait < 0 {
		return 0
	}
	if poll > 0 && wait > poll {
		return poll
	}
	return wait
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// disconnected returns a context that an operator's cancel does not reach, for clean-up
// work that must finish.
func disconnected(ctx workflow.Context) workflow.Context {
	d, _ := workflow.NewDisconnectedContext(ctx)
	return d
}
