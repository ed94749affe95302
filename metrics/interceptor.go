package metrics

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
)

// ActivityInterceptor returns a worker interceptor that reports every activity
// execution (local ones included) to rec: its type, attempt and whether it failed.
// Add it to the Temporal workers' options.
func ActivityInterceptor(rec Recorder) interceptor.WorkerInterceptor {
	return &workerInterceptor{rec: rec}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	rec Recorder
}

func (w *workerInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &activityInbound{rec: w.rec}
	i.Next = next
	return i
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	rec Recorder
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := a.Next.ExecuteActivity(ctx, in)
	info := activity.GetInfo(ctx)
	a.rec.Activity(info.ActivityType.Name, info.Attempt, err != nil)
	return res, err
}
