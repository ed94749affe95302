package activities

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/metrics"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Signaller is the part of the Temporal client the activities use: starting and
// signalling ledgers (planning acquires, acceptance binds, deletion releases, each
// from the activity that makes the fact true), and checking that the workflows
// holding capacity still run.
type Signaller interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID string, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// Activities holds the activities' dependencies. Construct it with New.
type Activities struct {
	zk       *zookeeper.Client
	drivers  map[string]drivers.Driver
	settings Settings
	temporal Signaller
	logger   *slog.Logger
	now      func() time.Time

	mu         sync.Mutex
	labelQuota map[string]drivers.Resources
	// recorder receives the counts package metrics reports (leaked resources).
	recorder metrics.Recorder
	// ready is the last listing of ready, unallocated nodes (see readyNodes).
	ready *readyListing
	// pools and poolsAt are the last listing of the registered pools (registeredPools).
	pools   []zookeeper.PoolComponent
	poolsAt time.Time
	// releases batches the ledger releases of deletions that finish together.
	releases releaseBatcher
	// ledgerSignals batches the acquires and binds sent to a ledger at once.
	ledgerSignals ledgerBatcher
	// nodes, when set, keeps the node records from watches: activities that look at
	// every node (planning's ready nodes, pool usage, min-ready, tenant limits) read it
	// instead of every record.
	nodes zookeeper.RecordSource[*zookeeper.Node]
}

// Option changes an Activities value built by New.
type Option func(*Activities)

// WithRecorder sends counts (leaked resources deleted) to a metrics recorder.
func WithRecorder(r metrics.Recorder) Option { return func(a *Activities) { a.recorder = r } }

// WithNodeRecords makes the activities read the node records from src (a Mirror, or
// the poller's records in a process that runs one), once src has read every node,
// rather than reading every record each time they need them all.
func WithNodeRecords(src zookeeper.RecordSource[*zookeeper.Node]) Option {
	return func(a *Activities) { a.nodes = src }
}

// WithClock replaces the clock, for tests.
func WithClock(now func() time.Time) Option { return func(a *Activities) { a.now = now } }

// New returns the activities over the given dependencies. temporal may be nil in tests
// that do not signal ledgers. Only the methods of Activities that are activities are
// exported, because workers register the whole struct.
func New(zk *zookeeper.Client, drv map[string]drivers.Driver, settings Settings, temporal Signaller, logger *slog.Logger, opts ...Option) *Activities {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Activities{
		zk: zk, drivers: drv, settings: settings, temporal: temporal, logger: logger,
		now: time.Now, labelQuota: map[string]drivers.Resources{}, recorder: metrics.Nop{},
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

func (a *Activities) unixNow() float64 {
	return zookeeper.Timestamp(a.now())
}

func (a *Activities) driver(provider string) (drivers.Driver, error) {
	d, ok := a.drivers[provider]
	if !ok {
		return nil, invalidConfig("provider %q is not configured in this launcher", provider)
	}
	return d, nil
}

// labelNeed returns (and caches) what one node of the label in the pool consumes.
func (a *Activities) labelNeed(ctx context.Context, provider, pool, label string) (drivers.Resources, error) {
	key := provider + "\x00" + pool + "\x00" + label
	a.mu.Lock()
	need, ok := a.labelQuota[key]
	a.mu.Unlock()
	if ok {
		return need.Clone(), nil
	}
	d, err := a.driver(provider)
	if err != nil {
		return nil, err
	}
	need, err = d.LabelQuota(ctx, pool, label)
	if err != nil {
		return nil, err
	}
	if need == nil {
		need = drivers.Resources{}
	}
	if _, ok := need[drivers.ResourceInstances]; !ok {
		need[drivers.ResourceInstances] = 1
	}
	a.mu.Lock()
	a.labelQuota[key] = need.Clone()
	a.mu.Unlock()
	return need, nil
}
