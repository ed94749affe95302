package metrics

import (
	"maps"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"go.temporal.io/sdk/client"
)

// Names a workflow uses to record a launch attempt through the Temporal SDK's metrics
// handler (workflow.GetMetricsHandler), which SDKHandler turns into Recorder.Launch.
// The SDK drops what a workflow records while it replays history, so every attempt is
// recorded once, by the worker that ran it, at no cost in history events:
//
//	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{
//		"provider": provider, "az": az, "requestor": requestor, "error_type": errType,
//	}).Timer("nodepool_launch").Record(workflow.Now(ctx).Sub(attemptStarted))
const (
	// LaunchTimer is the timer of one launch attempt; its value is the duration.
	LaunchTimer = names.LaunchTimer
	// Tags of LaunchTimer. TagErrorType is the Temporal application error type that
	// ended the attempt, empty for a node that became ready (see LaunchResult).
	TagProvider  = names.TagProvider
	TagAZ        = names.TagAZ
	TagRequestor = names.TagRequestor
	TagErrorType = names.TagErrorType
)

// SDKHandler returns a Temporal SDK metrics handler (client.Options.MetricsHandler)
// that passes LaunchTimer to rec.Launch and ignores every other metric.
func SDKHandler(rec Recorder) client.MetricsHandler {
	return sdkHandler{rec: rec}
}

type sdkHandler struct {
	rec  Recorder
	tags map[string]string
}

func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	maps.Copy(merged, tags)
	return sdkHandler{rec: h.rec, tags: merged}
}

func (h sdkHandler) Counter(string) client.MetricsCounter {
	return client.MetricsNopHandler.Counter("")
}

func (h sdkHandler) Gauge(string) client.MetricsGauge {
	return client.MetricsNopHandler.Gauge("")
}

func (h sdkHandler) Timer(name string) client.MetricsTimer {
	if name != LaunchTimer {
		return client.MetricsNopHandler.Timer("")
	}
	return launchTimer(h)
}

type launchTimer sdkHandler

func (t launchTimer) Record(d time.Duration) {
	t.rec.Launch(t.tags[TagProvider], t.tags[TagAZ], t.tags[TagRequestor], LaunchResult(t.tags[TagErrorType]), d)
}
