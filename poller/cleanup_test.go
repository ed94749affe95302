package poller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func lockDirExists(t *testing.T, c *zookeeper.Client, id string) bool {
	t.Helper()
	_, _, err := c.Get(context.Background(), zookeeper.RequestLockPath(id))
	if errors.Is(err, zookeeper.ErrNotFound) {
		return false
	}
	require.NoError(t, err)
	return true
}

// Zuul never removes request lock directories; Nodepool removes those of vanished
// requests that nobody holds after 8 hours.
func TestPollerRemovesStaleRequestLockDirectories(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	other := connect(t, e.addr, e.chroot)
	tests := []struct {
		name      string
		exists    bool
		contender bool
		remove    bool
	}{
		{name: "vanished request", remove: true},
		{name: "vanished request still locked", contender: true},
		{name: "existing request", exists: true},
	}
	ids := make([]string, len(tests))
	for i, tc := range tests {
		if tc.exists {
			ids[i] = submit(t, e.zk, zookeeper.StateFulfilled)
		} else {
			ids[i] = fmt.Sprintf("100-%010d", 900+i)
		}
		require.NoError(t, e.zk.EnsurePath(ctx, zookeeper.RequestLockPath(ids[i])))
		if tc.contender {
			lockAs(t, other, zookeeper.RequestLockPath(ids[i]), "zuul")
		}
	}
	// Young lock directories stay.
	time.Sleep(2 * time.Second)
	for i := range tests {
		require.True(t, lockDirExists(t, e.zk, ids[i]), tests[i].name)
	}
	e.clock.Advance(lockDirMaxAge + time.Minute)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.remove {
				eventually(t, func() bool { return !lockDirExists(t, e.zk, ids[i]) }, "stale lock directory not removed")
				return
			}
			time.Sleep(2 * time.Second)
			require.True(t, lockDirExists(t, e.zk, ids[i]))
		})
	}
}

// What the poller remembers about requests and nodes is forgotten once they are gone, so
// its memory follows the live objects, not their history.
func TestPollerForgetsGoneObjects(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	other := connect(t, e.addr, e.chroot)
	var reqs, nodes []string
	for i := range 10 {
		// Requests of every kind the poller tracks: started, pending and locked by a
		// workflow of ours, unlocked pending, malformed.
		reqs = append(reqs, submit(t, e.zk, zookeeper.StateRequested))
		id, ns := pendingRequest(t, e.zk, zookeeper.NodeBuilding)
		reqs = append(reqs, id)
		nodes = append(nodes, ns...)
		if i%2 == 0 {
			lockAs(t, other, zookeeper.RequestLockPath(id), names.LockOwner(names.RequestWorkflowID("tq", id), "chain"))
		}
		reqs = append(reqs, rawRequest(t, e.zk, []byte("junk")))
		// Nodes of ours: deletable, unlocked and locked by one of our workflows.
		n, err := e.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeUsed, Provider: "sim", Pool: "main", Type: zookeeper.Labels{"small"}})
		require.NoError(t, err)
		nodes = append(nodes, n)
		n, err = e.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeBuilding, Provider: "sim", Pool: "main", Type: zookeeper.Labels{"small"}})
		require.NoError(t, err)
		lockAs(t, other, zookeeper.NodeLockPath(n), names.LockOwner(names.RequestWorkflowID("tq", reqs[0]), "chain"))
		nodes = append(nodes, n)
		nodes = append(nodes, rawNode(t, e.zk, nil))
	}
	eventually(t, func() bool { return e.p.trackedRequests() >= len(reqs) && e.p.trackedNodes() >= len(nodes) }, "objects not tracked")
	other.Close()
	for _, id := range reqs {
		require.NoError(t, e.zk.DeleteRequest(ctx, id))
	}
	for _, id := range nodes {
		require.NoError(t, e.zk.DeleteRecursive(ctx, zookeeper.NodePath(id)))
	}
	eventually(t, func() bool { return e.p.trackedRequests() == 0 && e.p.trackedNodes() == 0 },
		"entries of gone objects remain")
}

// trackedRequests counts what the poller remembers per request.
func (p *Poller) trackedRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.reqs)
	for path := range p.holders {
		if strings.HasPrefix(path, zookeeper.RequestLockRoot+"/") {
			n++
		}
	}
	return n
}

// trackedNodes counts what the poller remembers per node.
func (p *Poller) trackedNodes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.nodes)
	for path := range p.holders {
		if strings.HasPrefix(path, zookeeper.NodesPath+"/") {
			n++
		}
	}
	return n
}
