package poller

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// The periodic scan works from the records its watches keep: a request is read when it
// appears and when it changes, and only a resync reads every unsettled request again.
func TestPollerReadsRequestsOnlyWhenTheyChange(t *testing.T) {
	const waiting, declined, fulfilled = 20, 3, 2
	tests := []struct {
		name   string
		resync time.Duration
		// wantResync is whether the idle period must include resync reads.
		wantResync bool
	}{
		{"watches only", time.Hour, false},
		{"with resyncs", 300 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, func(o *Options) { o.Now = nil; o.ResyncInterval = tc.resync })
			var ids []string
			for range waiting {
				ids = append(ids, submit(t, e.zk, zookeeper.StateRequested))
			}
			for range declined {
				submit(t, e.zk, zookeeper.StateRequested, testPoolID)
			}
			for range fulfilled {
				submit(t, e.zk, zookeeper.StateFulfilled)
			}
			eventually(t, func() bool {
				for _, id := range ids {
					if e.ft.count(names.RequestWorkflowID("tq", id)) != 1 {
						return false
					}
				}
				return true
			}, "not every request started")
			total := waiting + declined + fulfilled
			eventually(t, func() bool { return e.p.Stats().RequestReads >= int64(total) }, "requests not read")

			// Idle: a dozen scans.
			before := e.p.Stats()
			time.Sleep(1200 * time.Millisecond)
			after := e.p.Stats()
			require.GreaterOrEqual(t, after.Scans-before.Scans, int64(5), "scans ran")
			idle := after.RequestReads - before.RequestReads
			if tc.wantResync {
				// Each resync reads the unsettled requests (the fulfilled ones are left),
				// and nothing else is read.
				unsettled := int64(waiting + declined)
				resyncs := after.Resyncs - before.Resyncs
				require.Positive(t, resyncs, "resyncs ran")
				require.Equal(t, resyncs*unsettled, after.ResyncReads-before.ResyncReads,
					"each of %d resyncs reads exactly the unsettled requests", resyncs)
				require.Equal(t, idle, after.ResyncReads-before.ResyncReads, "only resyncs read while idle")
			} else {
				require.Zero(t, idle, "unchanged requests are not read again")
			}

			// One change costs one read (plus resyncs) and is acted on.
			before = e.p.Stats()
			req := getRequest(t, e.zk, ids[0])
			req.RelativePriority = 4
			require.NoError(t, e.zk.UpdateRequest(context.Background(), req))
			wid := names.RequestWorkflowID("tq", ids[0])
			eventually(t, func() bool { return len(e.ft.signalsOf(wid)) == 1 }, "change not acted on")
			if !tc.wantResync {
				time.Sleep(300 * time.Millisecond)
				require.Equal(t, int64(1), e.p.Stats().RequestReads-before.RequestReads, "one read per change")
			}
			// Workflows still get their stranded-request checks from the kept records.
			e.ft.terminate(names.RequestWorkflowID("tq", ids[1]))
			eventually(t, func() bool { return e.ft.runCount(names.RequestWorkflowID("tq", ids[1])) == 2 }, "ended run not restarted")
		})
	}
}

// Nodes are read when they appear and when they or their locks change; the scan acts on
// their kept state.
func TestPollerReadsNodesOnlyWhenTheyChange(t *testing.T) {
	e := start(t, func(o *Options) { o.Now = nil })
	ctx := context.Background()
	zuul := connect(t, e.addr, e.chroot)
	tests := []struct {
		name     string
		state    zookeeper.NodeState
		provider string
		// lockedBy is the owner of the node's lock ("" for none).
		lockedBy string
	}{
		{"in use, locked by Zuul", zookeeper.NodeInUse, "sim", "zuul"},
		{"ready", zookeeper.NodeReady, "sim", ""},
		{"another launcher's, used", zookeeper.NodeUsed, "elsewhere", ""},
		{"building, locked by our running workflow", zookeeper.NodeBuilding, "sim", "tq/launch-x"},
	}
	var ids []string
	for _, tc := range tests {
		for range 3 {
			// Created ready, then locked, then given its state, as Zuul and launches do.
			id, err := e.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: tc.provider, Pool: "main",
				Type: zookeeper.Labels{"small"}, StateTime: float64(time.Now().Unix())})
			require.NoError(t, err, tc.name)
			if tc.lockedBy != "" {
				lockAs(t, zuul, zookeeper.NodeLockPath(id), tc.lockedBy)
			}
			n := getNode(t, e.zk, id)
			n.State = tc.state
			require.NoError(t, e.zk.UpdateNode(ctx, n))
			ids = append(ids, id)
		}
	}
	// Each node: its record, and its lock (the listing, plus the holder when locked).
	eventually(t, func() bool { return e.p.Stats().NodeReads >= int64(len(ids)*2) }, "nodes not read")
	time.Sleep(300 * time.Millisecond)
	before := e.p.Stats()
	time.Sleep(1200 * time.Millisecond)
	after := e.p.Stats()
	require.Equal(t, before.NodeReads, after.NodeReads, "unchanged nodes are not read again")
	for _, id := range ids {
		require.Zero(t, e.ft.count(names.DeleteWorkflowID("tq", id)), "nothing to delete")
	}

	// Zuul's executor died: the in-use node's lock vanishes, which is seen and acted on.
	require.NoError(t, zuul.ReleaseOwned(ctx, zookeeper.NodeLockPath(ids[0]), "zuul"))
	eventually(t, func() bool { return e.ft.count(names.DeleteWorkflowID("tq", ids[0])) == 1 }, "unlocked in-use node not deleted")
	require.Less(t, e.p.Stats().NodeReads-after.NodeReads, int64(5), "one change costs a read or two")
}

// The record sources give the kept records: every listed request and node as last
// changed, complete once each has been read.
func TestPollerRecords(t *testing.T) {
	e := start(t, func(o *Options) { o.Now = nil })
	ctx := context.Background()
	reqs := []string{submit(t, e.zk, zookeeper.StateRequested), submit(t, e.zk, zookeeper.StateFulfilled)}
	bad := rawRequest(t, e.zk, []byte("junk"))
	node, err := e.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "elsewhere", Type: zookeeper.Labels{"small"}})
	require.NoError(t, err)
	_, err = e.zk.Create(ctx, zookeeper.NodePath("0000000999"), []byte("{not json"), 0)
	require.NoError(t, err)
	ids := func() (r, n []string, complete bool) {
		rs, runread, rok := e.p.RequestRecords().Records()
		ns, nunread, nok := e.p.NodeRecords().Records()
		return slices.Sorted(maps.Keys(rs)), slices.Sorted(maps.Keys(ns)), rok && nok && len(runread)+len(nunread) == 0
	}
	eventually(t, func() bool { r, n, ok := ids(); return ok && len(r) == 2 && len(n) == 1 }, "records not kept")
	r, n, _ := ids()
	require.Equal(t, reqs, r, "undecodable requests are left out")
	require.NotContains(t, r, bad)
	require.Equal(t, []string{node}, n, "undecodable nodes are left out")

	// A change shows; a deletion removes the record.
	req := getRequest(t, e.zk, reqs[0])
	req.RelativePriority = 9
	require.NoError(t, e.zk.UpdateRequest(ctx, req))
	eventually(t, func() bool {
		rs, _, _ := e.p.RequestRecords().Records()
		return rs[reqs[0]] != nil && rs[reqs[0]].RelativePriority == 9
	}, "change not kept")
	require.NoError(t, e.zk.DeleteRequest(ctx, reqs[1]))
	require.NoError(t, e.zk.DeleteRecursive(ctx, zookeeper.NodePath(node)))
	eventually(t, func() bool { r, n, ok := ids(); return ok && len(r) == 1 && len(n) == 0 }, "gone records kept")

	// A node that appears is not complete until it has been read.
	reads := e.p.Stats().NodeReads
	id, err := e.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "elsewhere", Type: zookeeper.Labels{"small"}})
	require.NoError(t, err)
	eventually(t, func() bool { _, n, ok := ids(); return ok && slices.Contains(n, id) }, "new node not kept")
	require.Greater(t, e.p.Stats().NodeReads, reads)
}
