package zuul

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul/zuultest"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recorder collects what an Observer is told.
type recorder struct {
	mu       sync.Mutex
	states   []zookeeper.RequestState
	declined [][]string
	locking  []string
	warnings []error
}

func (r *recorder) observer() Observer {
	return Observer{
		RequestRead: func(req *zookeeper.NodeRequest) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.states = append(r.states, req.State)
			r.declined = append(r.declined, req.DeclinedBy)
		},
		Locking: func(id, label string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.locking = append(r.locking, id+" "+label)
		},
		Warning: func(err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.warnings = append(r.warnings, err)
		},
	}
}

// fixture is a test's ZooKeeper chroot, a client for checks and a Zuul client.
type fixture struct {
	t    *testing.T
	zk   *zookeeper.Client
	zuul *Client
	rec  *recorder
}

func newFixture(t *testing.T, mods ...func(*Options)) *fixture {
	t.Helper()
	addr, chroot := testenv.ZooKeeperChroot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(zk.Close)
	rec := &recorder{}
	opts := Options{SystemID: "zuul-system", Tenant: "tenant-one", Pipeline: "check", Job: "tox",
		Project: "example/project", Observer: rec.observer()}
	for _, m := range mods {
		m(&opts)
	}
	c, err := New(zk, opts)
	require.NoError(t, err)
	return &fixture{t: t, zk: zk, zuul: c, rec: rec}
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	f.t.Cleanup(cancel)
	return ctx
}

func (f *fixture) node(id string) *zookeeper.Node {
	f.t.Helper()
	n, err := f.zk.GetNode(f.ctx(), id)
	require.NoError(f.t, err)
	return n
}

func (f *fixture) locked(id string) bool {
	f.t.Helper()
	ok, err := f.zk.IsLocked(f.ctx(), zookeeper.NodeLockPath(id))
	require.NoError(f.t, err)
	return ok
}

func (f *fixture) requests() []string {
	f.t.Helper()
	ids, err := f.zk.ListRequests(f.ctx())
	require.NoError(f.t, err)
	return ids
}

// fulfilled submits a request for labels to a fulfilling launcher and waits for
// it.
func (f *fixture) fulfilled(labels ...string) *zookeeper.NodeRequest {
	f.t.Helper()
	zuultest.Start(f.t, f.zk, zuultest.Fulfil, nil)
	r, err := f.zuul.Submit(f.ctx(), PriorityNormal, labels...)
	require.NoError(f.t, err)
	done, err := f.zuul.Wait(f.ctx(), r.ID)
	require.NoError(f.t, err)
	require.Equal(f.t, zookeeper.StateFulfilled, done.State)
	return done
}

// TestBuildLifecycle runs a whole build's exchange against a fulfilling
// launcher: submit, wait, accept, use, return, and wait for the deletion.
func TestBuildLifecycle(t *testing.T) {
	f := newFixture(t)
	launcher := zuultest.Start(t, f.zk, zuultest.Fulfil, nil)
	ctx := f.ctx()

	r, err := f.zuul.Submit(ctx, PriorityHigh-1, "large", "small")
	require.NoError(t, err)
	assert.Regexp(t, `^099-\d{10}$`, r.ID)

	done, err := f.zuul.Wait(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, zookeeper.StateFulfilled, done.State)
	f.rec.mu.Lock()
	assert.Equal(t, zookeeper.StateFulfilled, f.rec.states[len(f.rec.states)-1], "the final version is observed")
	f.rec.mu.Unlock()

	// What the launcher found: a persistent request with Zuul's body.
	seen := launcher.Only()
	assert.False(t, seen.Ephemeral, "Zuul's requests are persistent")
	var body map[string]any
	require.NoError(t, json.Unmarshal(seen.Body, &body))
	assert.Equal(t, "zuul-system", body["requestor"])
	assert.Equal(t, []any{"large", "small"}, body["node_types"])
	assert.Equal(t, "tenant-one", body["tenant_name"])
	assert.Equal(t, seen.Nodes, done.Nodes)

	set, err := f.zuul.Accept(ctx, done)
	require.NoError(t, err)
	assert.Equal(t, done.ID, set.RequestID())
	assert.Equal(t, done.Nodes, set.IDs())
	assert.Empty(t, f.requests(), "accepting deletes the request")
	f.rec.mu.Lock()
	assert.Equal(t, []string{done.Nodes[0] + " large", done.Nodes[1] + " small"}, f.rec.locking)
	f.rec.mu.Unlock()
	for i, n := range set.Nodes() {
		assert.True(t, f.locked(n.ID))
		assert.Equal(t, []string{"large", "small"}[i], n.Label)
		assert.Equal(t, zookeeper.NodeReady, n.Record.State)
	}

	require.NoError(t, set.Use(ctx))
	for _, n := range set.Nodes() {
		stored := f.node(n.ID)
		assert.Equal(t, zookeeper.NodeInUse, stored.State)
		assert.JSONEq(t, `{"zuul_system": "zuul-system", "project_name": "example/project"}`, string(stored.UserData))
		assert.JSONEq(t, fmt.Sprintf("%q", n.ID), string(stored.Extra["id"]), "Zuul writes the node id")
		assert.Equal(t, done.ID, *stored.AllocatedTo)
		assert.Equal(t, int32(1), stored.Version)
		assert.Equal(t, stored.Version, n.Record.Version, "the set keeps the record it wrote")
	}

	before := time.Now()
	returned, err := set.Return(ctx)
	require.NoError(t, err)
	require.Len(t, returned, 2)
	for _, id := range done.Nodes {
		stored := f.node(id)
		assert.Equal(t, zookeeper.NodeUsed, stored.State)
		assert.Equal(t, int32(2), stored.Version, "written twice: in-use, used")
		assert.False(t, f.locked(id))
		assert.False(t, returned[id].Before(before))
	}

	// The launcher deletes used nodes; WaitGone sees them go.
	go func() {
		time.Sleep(100 * time.Millisecond)
		for _, id := range done.Nodes {
			_ = f.zk.DeleteNode(context.Background(), id)
		}
	}()
	require.NoError(t, f.zuul.WaitGone(ctx, done.Nodes...))
	assert.Empty(t, f.rec.warnings)
}

func TestHoldKeepsNodesHeld(t *testing.T) {
	f := newFixture(t)
	done := f.fulfilled("small")
	ctx := f.ctx()
	set, err := f.zuul.Accept(ctx, done)
	require.NoError(t, err)
	require.NoError(t, set.Use(ctx))
	require.NoError(t, set.Hold(ctx, Hold{Job: "tenant-one example/project tox refs/heads/.*", Reason: "debugging", Expiration: 4 * time.Second}))

	returned, err := set.Return(ctx)
	require.NoError(t, err)
	assert.Empty(t, returned, "held nodes are not returned as used")
	id := done.Nodes[0]
	n := f.node(id)
	assert.Equal(t, zookeeper.NodeHold, n.State)
	assert.Equal(t, "debugging", *n.Comment)
	assert.Equal(t, "tenant-one example/project tox refs/heads/.*", *n.HoldJob)
	assert.Equal(t, 4, n.HoldExpiration)
	assert.Contains(t, string(n.UserData), "zuul_system", "user data stays")
	assert.False(t, f.locked(id))
}

func TestWaitFailedRequest(t *testing.T) {
	f := newFixture(t)
	zuultest.Start(t, f.zk, zuultest.Decline, nil)
	ctx := f.ctx()
	r, err := f.zuul.Submit(ctx, PriorityLow, "small")
	require.NoError(t, err)
	done, err := f.zuul.Wait(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, zookeeper.StateFailed, done.State)
	assert.Equal(t, zuultest.DecliningPools, done.DeclinedBy)

	require.NoError(t, f.zuul.Cancel(ctx, r.ID))
	assert.Empty(t, f.requests())
	require.NoError(t, f.zuul.Cancel(ctx, r.ID), "cancelling a request already gone")
}

func TestWaitVanishedRequest(t *testing.T) {
	f := newFixture(t)
	zuultest.Start(t, f.zk, zuultest.Vanish, nil)
	ctx := f.ctx()
	r, err := f.zuul.Submit(ctx, PriorityNormal, "small")
	require.NoError(t, err)
	_, err = f.zuul.Wait(ctx, r.ID)
	assert.ErrorIs(t, err, zookeeper.ErrNotFound)
}

func TestWaitUntilAState(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	r, err := f.zuul.Submit(ctx, PriorityNormal, "small")
	require.NoError(t, err)

	// Nobody serves it: the wait ends with the context.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = f.zuul.Wait(short, r.ID)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// Another writer moves it to pending: WaitUntil wakes on the change.
	got := make(chan *zookeeper.NodeRequest, 1)
	go func() {
		p, err := f.zuul.WaitUntil(ctx, r.ID, func(r *zookeeper.NodeRequest) bool { return r.State == zookeeper.StatePending })
		assert.NoError(t, err)
		got <- p
	}()
	time.Sleep(100 * time.Millisecond)
	_, _, err = f.zk.ModifyRequest(ctx, r.ID, nil, func(r *zookeeper.NodeRequest) (bool, error) {
		r.State = zookeeper.StatePending
		return true, nil
	})
	require.NoError(t, err)
	select {
	case p := <-got:
		require.NotNil(t, p)
		assert.Equal(t, zookeeper.StatePending, p.State)
		assert.Equal(t, int32(1), p.Version)
	case <-time.After(DefaultRecheck / 2):
		t.Fatal("WaitUntil not woken by the change")
	}
}

func TestAcceptMisallocatedNodes(t *testing.T) {
	f := newFixture(t)
	launcher := zuultest.Start(t, f.zk, zuultest.Misallocate, nil)
	ctx := f.ctx()
	r, err := f.zuul.Submit(ctx, PriorityNormal, "small", "large")
	require.NoError(t, err)
	done, err := f.zuul.Wait(ctx, r.ID)
	require.NoError(t, err)

	_, err = f.zuul.Accept(ctx, done)
	require.ErrorIs(t, err, ErrNotAllocated)
	assert.ErrorContains(t, err, `allocated to "`+zuultest.OtherRequest+`", not to request `+r.ID)
	assert.Empty(t, f.requests(), "Zuul deletes the request even when accepting fails")
	for _, id := range launcher.Only().Nodes {
		assert.Equal(t, zookeeper.NodeReady, f.node(id).State)
		assert.False(t, f.locked(id))
	}
}

func TestAcceptLockTimeout(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.LockTimeout = 200 * time.Millisecond })
	done := f.fulfilled("small", "large")
	ctx := f.ctx()
	// Someone else holds the second node.
	other := f.zk.NewLock(zookeeper.NodeLockPath(done.Nodes[1]), "other")
	ok, err := other.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	_, err = f.zuul.Accept(ctx, done)
	require.ErrorIs(t, err, zookeeper.ErrLockTimeout)
	assert.ErrorContains(t, err, "locking node "+done.Nodes[1])
	assert.False(t, f.locked(done.Nodes[0]), "the node locked first is unlocked again")
	assert.Empty(t, f.requests())
	held, err := other.Held(ctx)
	require.NoError(t, err)
	assert.True(t, held, "the other holder keeps its lock")
	require.NoError(t, other.Release(ctx))
}

func TestAcceptUnfulfilledRequest(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	r, err := f.zuul.Submit(ctx, PriorityNormal, "small")
	require.NoError(t, err)
	_, err = f.zuul.Accept(ctx, r)
	assert.ErrorContains(t, err, "not fulfilled")
	assert.Empty(t, f.requests())
}

// A node whose lock went (with an expired session) is reported and not written.
func TestLostLockIsNotWritten(t *testing.T) {
	f := newFixture(t)
	done := f.fulfilled("small")
	ctx := f.ctx()
	set, err := f.zuul.Accept(ctx, done)
	require.NoError(t, err)
	require.NoError(t, set.Use(ctx))
	lost, err := set.LockLost(ctx)
	require.NoError(t, err)
	assert.Empty(t, lost)

	id := done.Nodes[0]
	require.NoError(t, f.zk.DeleteRecursive(ctx, zookeeper.NodeLockPath(id)))
	lost, err = set.LockLost(ctx)
	require.NoError(t, err)
	assert.Equal(t, id, lost)

	returned, err := set.Return(ctx)
	assert.ErrorContains(t, err, "not returning node "+id+": its lock is no longer held")
	assert.Empty(t, returned)
	assert.Equal(t, zookeeper.NodeInUse, f.node(id).State)
}

// Return still works after the caller's context ended (Ctrl-C in the CLI).
func TestReturnAfterCancel(t *testing.T) {
	f := newFixture(t)
	done := f.fulfilled("small")
	ctx, cancel := context.WithCancel(f.ctx())
	set, err := f.zuul.Accept(ctx, done)
	require.NoError(t, err)
	require.NoError(t, set.Use(ctx))
	cancel()
	returned, err := set.Return(ctx)
	require.NoError(t, err)
	assert.Len(t, returned, 1)
	assert.Equal(t, zookeeper.NodeUsed, f.node(done.Nodes[0]).State)
	assert.False(t, f.locked(done.Nodes[0]))
}

// A concurrent write to a node in use is not lost: the change is applied again
// on top of it.
func TestUseSurvivesConcurrentWrite(t *testing.T) {
	f := newFixture(t)
	done := f.fulfilled("small")
	ctx := f.ctx()
	set, err := f.zuul.Accept(ctx, done)
	require.NoError(t, err)
	id := done.Nodes[0]
	_, _, err = f.zk.ModifyNode(ctx, id, nil, func(n *zookeeper.Node) (bool, error) {
		n.Comment = ptr("written meanwhile")
		return true, nil
	})
	require.NoError(t, err)
	require.NoError(t, set.Use(ctx))
	n := f.node(id)
	assert.Equal(t, zookeeper.NodeInUse, n.State)
	assert.Equal(t, "written meanwhile", *n.Comment)
}

func ptr[T any](v T) *T { return &v }
