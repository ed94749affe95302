package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/lifecycle"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// signal is one signal the fake Temporal received.
type signal struct {
	name string
	arg  any
}

// fakeRun is one workflow id's latest run.
type fakeRun struct {
	runID, firstRunID string
	running           bool
}

// fakeTemporal records starts and signals. A started workflow runs until terminate
// ends it; starting a workflow id whose run ended begins a new run (chain).
type fakeTemporal struct {
	mu        sync.Mutex
	starts    map[string]int // ExecuteWorkflow calls per workflow id
	runs      map[string]int // runs begun per workflow id
	inputs    map[string]any
	memos     map[string]map[string]any
	signals   map[string][]signal
	describes map[string]int
	latest    map[string]*fakeRun
	// endAtOnce makes every started workflow end right away (a run that skips).
	endAtOnce bool
	// gate, when set, holds every start until it is closed or sent to.
	gate chan struct{}
	// batches are the inputs of the DeleteNodes workflows started.
	batches []workflows.DeleteNodesInput
	seq     int
}

func newFakeTemporal() *fakeTemporal {
	return &fakeTemporal{
		starts: map[string]int{}, runs: map[string]int{}, inputs: map[string]any{},
		memos: map[string]map[string]any{}, signals: map[string][]signal{},
		describes: map[string]int{}, latest: map[string]*fakeRun{},
	}
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gate != nil {
		f.mu.Unlock()
		<-f.gate
		f.mu.Lock()
	}
	if in, ok := args[0].(workflows.DeleteNodesInput); ok {
		// A batch's id is its own: it never attaches to another batch.
		if o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL || f.starts[o.ID] > 0 {
			panic("a batch deletion's id must be new")
		}
		f.batches = append(f.batches, in)
	} else if o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING {
		panic("starts must attach to a running workflow")
	}
	if o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE {
		panic("a finished workflow must be startable again")
	}
	f.starts[o.ID]++
	f.inputs[o.ID] = args[0]
	f.memos[o.ID] = o.Memo
	if r := f.latest[o.ID]; r == nil || !r.running {
		f.seq++
		id := fmt.Sprintf("run-%d", f.seq)
		f.latest[o.ID] = &fakeRun{runID: id, firstRunID: id, running: !f.endAtOnce}
		f.runs[o.ID]++
	}
	return nil, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, _, name string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.latest[id]; r == nil || !r.running {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	f.signals[id] = append(f.signals[id], signal{name, arg})
	return nil
}

func (f *fakeTemporal) QueryWorkflow(context.Context, string, string, string, ...any) (converter.EncodedValue, error) {
	return nil, serviceerror.NewNotFound("no ledger")
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes[id]++
	r := f.latest[id]
	if r == nil {
		return nil, serviceerror.NewNotFound("no such workflow")
	}
	status := enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	if r.running {
		status = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Status: status, FirstRunId: r.firstRunID,
	}}, nil
}

// terminate ends a workflow's run, as `temporal workflow terminate` does.
func (f *fakeTemporal) terminate(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.latest[id]; r != nil {
		r.running = false
	}
}

// run marks id as running under run chain chain (a workflow started elsewhere).
func (f *fakeTemporal) run(id, chain string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latest[id] = &fakeRun{runID: chain, firstRunID: chain, running: true}
}

// deletions returns how many deletions were started for node id, alone or in a batch.
func (f *fakeTemporal) deletions(taskQueue, id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.starts[names.DeleteWorkflowID(taskQueue, id)]
	for _, b := range f.batches {
		for _, t := range b.Nodes {
			if t.NodeID == id {
				n++
			}
		}
	}
	return n
}

func (f *fakeTemporal) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[id]
}

func (f *fakeTemporal) runCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

func (f *fakeTemporal) signalsOf(id string) []signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]signal(nil), f.signals[id]...)
}

const testPoolID = "np-PoolWorker.sim-main"

// env is a running poller on a fresh ZooKeeper chroot with a fake Temporal.
type env struct {
	addr, chroot string
	zk           *zookeeper.Client
	ft           *fakeTemporal
	p            *Poller
	clock        *testenv.ManualClock
	logs         *testenv.SyncBuffer
	stop         func()
}

// connect opens a client on the chroot.
func connect(t *testing.T, addr, chroot string) *zookeeper.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(zk.Close)
	return zk
}

// start runs a poller for task queue "tq" with one pool serving "small". edit may change
// the options; the clock is a manual clock starting now.
func start(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	addr, chroot := testenv.ZooKeeperChroot(t)
	zk := connect(t, addr, chroot)
	ft := newFakeTemporal()
	clock := testenv.NewManualClock(time.Now())
	logs := &testenv.SyncBuffer{}
	opts := Options{
		ZK: zk, Temporal: ft, TaskQueue: "tq", Register: true, Hostname: "host", Version: "test",
		Pools:        []Pool{{ID: testPoolID, Provider: "sim", Name: "main", Labels: []string{"small"}, Priority: 100}},
		Policy:       lifecycle.Policy{Providers: map[string]bool{"sim": true}, PoolIDs: map[string]bool{testPoolID: true}, OrphanGrace: time.Hour},
		ScanInterval: 100 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:          clock.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	p := New(opts)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(rctx) }()
	var once sync.Once
	e := &env{addr: addr, chroot: chroot, zk: zk, ft: ft, p: p, clock: clock, logs: logs, stop: func() { once.Do(func() { stop(); <-done }) }}
	t.Cleanup(e.stop)
	return e
}

// set overwrites the body of the znode at p (relative to the chroot), as a writer
// outside Nodepool's schema would.
func (e *env) set(t *testing.T, p string, data []byte) {
	t.Helper()
	conn, _, err := zk.Connect([]string{e.addr}, 10*time.Second, zk.WithLogInfo(false))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Set(e.chroot+p, data, -1)
	require.NoError(t, err)
}

// setup is start with the real clock and default options.
func setup(t *testing.T) (*zookeeper.Client, *fakeTemporal, func()) {
	e := start(t, func(o *Options) { o.Now = nil })
	return e.zk, e.ft, e.stop
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scans lets the poller run a few scans (of 100 ms each).
func scans() { time.Sleep(600 * time.Millisecond) }

func submit(t *testing.T, zk *zookeeper.Client, state zookeeper.RequestState, declinedBy ...string) string {
	req := &zookeeper.NodeRequest{State: state, NodeTypes: []string{"small"}, DeclinedBy: declinedBy, Reuse: true}
	id, err := zk.SubmitRequest(context.Background(), req, "100", false)
	require.NoError(t, err)
	return id
}

func TestPollerStartsOneWorkflowPerRequestAndSignalsDeletion(t *testing.T) {
	zk, ft, stop := setup(t)
	defer stop()

	id := submit(t, zk, zookeeper.StateRequested)
	wid := names.RequestWorkflowID("tq", id)
	eventually(t, func() bool { return ft.count(wid) == 1 }, "no workflow started")
	// Rescans and watch events do not start it again while the request is unchanged.
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 1, ft.count(wid))
	ft.mu.Lock()
	in := ft.inputs[wid].(workflows.RequestInput)
	ft.mu.Unlock()
	require.Equal(t, id, in.RequestID)
	require.Equal(t, "tq", in.TaskQueue)

	// Requests that are not ours to take are ignored.
	declined := submit(t, zk, zookeeper.StateRequested, testPoolID)
	fulfilled := submit(t, zk, zookeeper.StateFulfilled)
	time.Sleep(500 * time.Millisecond)
	require.Zero(t, ft.count(names.RequestWorkflowID("tq", declined)))
	require.Zero(t, ft.count(names.RequestWorkflowID("tq", fulfilled)))

	require.NoError(t, zk.DeleteRequest(context.Background(), id))
	eventually(t, func() bool {
		s := ft.signalsOf(wid)
		return len(s) == 1 && s[0].name == workflows.SignalRequestDeleted
	}, "deletion not signalled")
}

func TestPollerRegistersPools(t *testing.T) {
	zk, _, stop := setup(t)
	eventually(t, func() bool {
		pools, err := zk.ListPools(context.Background())
		return err == nil && len(pools) == 1 && pools[0].ID == testPoolID &&
			pools[0].SupportedLabels[0] == "small" && !pools[0].Paused
	}, "pool not registered")
	launchers := func() []string {
		names, err := zk.Children(context.Background(), zookeeper.LauncherComponentsPath)
		if errors.Is(err, zookeeper.ErrNotFound) {
			return nil
		}
		require.NoError(t, err)
		return names
	}
	require.Len(t, launchers(), 1, "the launcher process registers as upstream's do")
	data, _, err := zk.Get(context.Background(), zookeeper.LauncherComponentsPath+"/"+launchers()[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"hostname":"host","kind":"launcher","model_api":0,"state":"running","version":"test"}`, string(data))
	stop()
	pools, err := zk.ListPools(context.Background())
	require.NoError(t, err)
	require.Empty(t, pools, "registration removed on stop")
	require.Empty(t, launchers())
}
