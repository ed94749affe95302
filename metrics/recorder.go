package metrics

import (
	"strings"
	"time"
)

// Recorder receives the events a launcher counts as they happen: launch outcomes,
// leaked cloud resources deleted, activity executions. Implementations are safe for
// concurrent use and never block on the network for long; a metrics backend that is
// down loses samples, not launches.
type Recorder interface {
	// Launch records the outcome of one launch attempt of a node on provider, in
	// availability zone az ("" when unknown), for requestor ("" when the request names
	// none). result is "ready" or an upstream "error.<kind>" (see LaunchResult); d is
	// the attempt's duration.
	Launch(provider, az, requestor, result string, d time.Duration)
	// Leaked records one cloud resource of provider that the leak sweep deleted.
	// resourceType is the driver's singular type ("instance", "volume").
	Leaked(provider, resourceType string)
	// Activity records one execution of a Temporal activity: its type name, its
	// attempt (1 for the first) and whether it returned an error.
	Activity(activityType string, attempt int32, failed bool)
}

// Launch results, as upstream Nodepool names them in its statsd keys.
const (
	ResultReady              = "ready"
	ResultErrorZKSession     = "error.zksession"
	ResultErrorQuota         = "error.quota"
	ResultErrorCapacity      = "error.capacity"
	ResultErrorUnknown       = "error.unknown"
	ResultErrorNodepool      = "error.nodepool"
	ResultErrorCreateTimeout = "error.servercreatetimeout"
	ResultErrorKeyscan       = "error.keyscan"
)

// LaunchResult maps the Temporal application error type that ended a launch attempt
// to upstream's result name: "" (no error) is "ready", a quota error "error.quota", a
// capacity error "error.capacity", a timeout (launch-timeout or boot-timeout)
// "error.servercreatetimeout", host keys that could not be scanned "error.keyscan", a
// lost lock "error.zksession" (upstream's name for a
// launch whose ZooKeeper session, and with it the node lock, went away), a node
// record that vanished "error.nodepool", anything else "error.unknown".
func LaunchResult(errType string) string {
	switch errType {
	case "":
		return ResultReady
	case "Quota":
		return ResultErrorQuota
	case "Capacity":
		return ResultErrorCapacity
	case "Timeout":
		return ResultErrorCreateTimeout
	case "Nodescan":
		return ResultErrorKeyscan
	case "LockLost":
		return ResultErrorZKSession
	case "NodeGone":
		return ResultErrorNodepool
	}
	return ResultErrorUnknown
}

// PluralType returns the plural of a resource type as upstream's leaked-resource
// counters spell it: "instance" becomes "instances"; a type already ending in "s" is
// kept.
func PluralType(resourceType string) string {
	if resourceType == "" || strings.HasSuffix(resourceType, "s") {
		return resourceType
	}
	return resourceType + "s"
}

// NormalizeName makes a name part that comes from user input (a requestor, a tenant,
// a resource limit) safe inside a statsd key, as upstream does: '.' (Graphite's
// hierarchy separator) and ':' (statsd's value separator) become '_'.
func NormalizeName(s string) string {
	return strings.NewReplacer(".", "_", ":", "_").Replace(s)
}

// Nop is a Recorder that records nothing.
type Nop struct{}

// Launch implements Recorder.
func (Nop) Launch(string, string, string, string, time.Duration) {}

// Leaked implements Recorder.
func (Nop) Leaked(string, string) {}

// Activity implements Recorder.
func (Nop) Activity(string, int32, bool) {}

// Multi returns a Recorder that passes every event to each of recs; nil entries are
// skipped. With no recorder it returns Nop.
func Multi(recs ...Recorder) Recorder {
	var out multi
	for _, r := range recs {
		if r != nil {
			out = append(out, r)
		}
	}
	switch len(out) {
	case 0:
		return Nop{}
	case 1:
		return out[0]
	}
	return out
}

type multi []Recorder

func (m multi) Launch(provider, az, requestor, result string, d time.Duration) {
	for _, r := range m {
		r.Launch(provider, az, requestor, result, d)
	}
}

func (m multi) Leaked(provider, resourceType string) {
	for _, r := range m {
		r.Leaked(provider, resourceType)
	}
}

func (m multi) Activity(activityType string, attempt int32, failed bool) {
	for _, r := range m {
		r.Activity(activityType, attempt, failed)
	}
}
