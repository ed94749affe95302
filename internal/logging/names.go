package logging

import (
	"context"
	"log/slog"
	"slices"
	"strings"
)

// Logger names, as upstream Nodepool names the threads that do the same work.
const (
	// NodePool is the launcher's main loop: start-up, configuration, the poller.
	NodePool = "nodepool.NodePool"
	// NodeRequestHandler handles one node request: planning, acceptance, fulfilment.
	NodeRequestHandler = "nodepool.driver.NodeRequestHandler"
	// NodeLauncher launches one node.
	NodeLauncher = "nodepool.NodeLauncher"
	// DeletedNodeWorker deletes nodes.
	DeletedNodeWorker = "nodepool.DeletedNodeWorker"
	// CleanupWorker finds and deletes leaked cloud resources.
	CleanupWorker = "nodepool.CleanupWorker"
	// Temporal is the Temporal client's own logging.
	Temporal = "nodepool.Temporal"
	// ZooKeeper is the ZooKeeper client's.
	ZooKeeper = "nodepool.zk.ZooKeeper"
)

// driverName names a record of a provider's driver: its node deleter or launcher
// for records about a node, else the provider.
func driverName(provider string, node bool, msg string) string {
	lower := strings.ToLower(msg)
	switch {
	case node && strings.Contains(lower, "delet"):
		return "nodepool.StateMachineNodeDeleter." + provider
	case node:
		return "nodepool.StateMachineNodeLauncher." + provider
	}
	return "nodepool.StateMachineProvider." + provider
}

// PoolWorker returns the logger name of a provider pool,
// "nodepool.PoolWorker.<provider>-<pool>".
func PoolWorker(provider, pool string) string {
	return "nodepool.PoolWorker." + provider + "-" + pool
}

// Named returns l with its logger name set.
func Named(l *slog.Logger, name string) *slog.Logger {
	return l.With(KeyLogger, name)
}

// typeNames maps workflow and activity types to logger names; "" means "it depends
// on the node": NodeLauncher for records about a node, NodeRequestHandler otherwise.
var typeNames = map[string]string{
	"HandleRequest":  "",
	"PlanRequest":    NodeRequestHandler,
	"CheckRequest":   NodeRequestHandler,
	"AcceptRequest":  NodeRequestHandler,
	"FulfillRequest": NodeRequestHandler,
	"DeclineRequest": NodeRequestHandler,
	"ReleaseRequest": NodeRequestHandler,
	"ReturnNode":     NodeRequestHandler,
	"ReleaseNode":    NodeRequestHandler,
	"CreateStep":     NodeLauncher,
	"NodeReady":      NodeLauncher,
	"NodeInstance":   NodeLauncher,
	"HoldInstance":   NodeLauncher,
	"DeleteNode":     DeletedNodeWorker,
	"StartDelete":    DeletedNodeWorker,
	"DeleteStep":     DeletedNodeWorker,
	"RemoveNode":     DeletedNodeWorker,
	"LeakSweep":      CleanupWorker,
	"SweepLeaks":     CleanupWorker,
	"MinReadyPass":   NodePool,
}

// Name chooses the logger name of a record from its attributes (lookup returns ""
// for an absent one) and message, first match wins:
//
//  1. the "logger" attribute;
//  2. the Temporal workflow or activity type the record comes from ("WorkflowType",
//     "ActivityType"): request handling is nodepool.driver.NodeRequestHandler (a
//     node's launch within it nodepool.NodeLauncher), deletion
//     nodepool.DeletedNodeWorker, the leak sweep nodepool.CleanupWorker, a pool's
//     capacity ledger its pool worker;
//  3. a provider pool ("provider" and "pool"): nodepool.PoolWorker.<provider>-<pool>;
//  4. the component: none, for a driver's records about a provider
//     ("provider"): nodepool.StateMachineNodeLauncher.<provider> or
//     nodepool.StateMachineNodeDeleter.<provider> about a node,
//     nodepool.StateMachineProvider.<provider> otherwise; the poller is
//     nodepool.NodePool, the Temporal client nodepool.Temporal, the ZooKeeper
//     client nodepool.zk.ZooKeeper; for the activities, records about a request are
//     nodepool.driver.NodeRequestHandler, about leaked resources
//     nodepool.CleanupWorker, about deleting a node nodepool.DeletedNodeWorker and
//     about any other node nodepool.NodeLauncher; another component is
//     "nodepool.<component>";
//  5. nodepool.NodePool.
func Name(lookup func(key string) string, msg string) string {
	if n := lookup(KeyLogger); n != "" {
		return n
	}
	provider, pool := lookup("provider"), lookup("pool")
	for _, key := range []string{"ActivityType", "WorkflowType"} {
		t := lookup(key)
		if t == "" {
			continue
		}
		if t == "PoolLedger" || t == "PoolUsage" || t == "SignalLedger" {
			if provider != "" && pool != "" {
				return PoolWorker(provider, pool)
			}
			return NodePool
		}
		if n, ok := typeNames[t]; ok {
			if n != "" {
				return n
			}
			if lookup(KeyNodeID) != "" {
				return NodeLauncher
			}
			return NodeRequestHandler
		}
	}
	if provider != "" && pool != "" {
		return PoolWorker(provider, pool)
	}
	switch c := lookup(KeyComponent); c {
	case "":
		if provider != "" {
			return driverName(provider, lookup(KeyNodeID) != "", msg)
		}
		return NodePool
	case "poller":
		return NodePool
	case "temporal":
		return Temporal
	case "zookeeper":
		return ZooKeeper
	case "activities":
		lower := strings.ToLower(msg)
		switch {
		case strings.Contains(lower, "leak"):
			return CleanupWorker
		case lookup(KeyRequestID) != "":
			return NodeRequestHandler
		case lookup(KeyNodeID) != "" && (strings.Contains(lower, "delet") || strings.Contains(lower, "remov")):
			return DeletedNodeWorker
		case lookup(KeyNodeID) != "":
			return NodeLauncher
		}
		return NodePool
	default:
		return "nodepool." + c
	}
}

// Adapt returns h so that its records carry a "logger" attribute chosen by Name,
// and *string values as the strings they point to. A Handler of this package is
// returned unchanged: it does both itself.
func Adapt(h slog.Handler) slog.Handler {
	if _, ok := h.(*Handler); ok {
		return h
	}
	if _, ok := h.(*adapter); ok {
		return h
	}
	return &adapter{inner: h}
}

// adapter names the records of another handler.
type adapter struct {
	inner slog.Handler
	// attrs are the attributes added so far, flattened, for naming.
	attrs  []slog.Attr
	prefix string
}

func (a *adapter) Enabled(ctx context.Context, l slog.Level) bool { return a.inner.Enabled(ctx, l) }

func (a *adapter) WithAttrs(attrs []slog.Attr) slog.Handler {
	attrs = derefAll(attrs)
	return &adapter{inner: a.inner.WithAttrs(attrs), attrs: flatten(slices.Clip(a.attrs), a.prefix, attrs), prefix: a.prefix}
}

// deref turns a *string value into the string it points to (nil into an empty
// string), so that optional record fields log as text with any handler.
func deref(a slog.Attr) slog.Attr {
	if p, ok := a.Value.Any().(*string); ok && a.Value.Kind() == slog.KindAny {
		if p == nil {
			return slog.String(a.Key, "")
		}
		return slog.String(a.Key, *p)
	}
	return a
}

func derefAll(attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = deref(a)
	}
	return out
}

func (a *adapter) WithGroup(name string) slog.Handler {
	if name == "" {
		return a
	}
	return &adapter{inner: a.inner.WithGroup(name), attrs: a.attrs, prefix: a.prefix + name + "."}
}

func (a *adapter) Handle(ctx context.Context, r slog.Record) error {
	attrs := slices.Clone(a.attrs)
	r.Attrs(func(at slog.Attr) bool {
		attrs = flatten(attrs, a.prefix, []slog.Attr{at})
		return true
	})
	f := collect(attrs, r.Message)
	named := slices.ContainsFunc(attrs, func(at slog.Attr) bool { return at.Key == KeyLogger })
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(at slog.Attr) bool {
		out.AddAttrs(deref(at))
		return true
	})
	if !named {
		out.AddAttrs(slog.String(KeyLogger, f.name))
	}
	return a.inner.Handle(ctx, out)
}
