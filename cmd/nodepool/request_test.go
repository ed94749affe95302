package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul/zuultest"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// startLauncher runs a fake launcher on the environment's ZooKeeper until the
// test ends.
func startLauncher(t *testing.T, e *env, mode zuultest.Mode) *zuultest.Launcher {
	return zuultest.Start(t, e.zk, mode, readyNode)
}

// only returns the single request the launcher saw, its body and its nodes.
func only(t *testing.T, l *zuultest.Launcher) (string, map[string]any, []string) {
	t.Helper()
	seen := l.Only()
	var body map[string]any
	require.NoError(t, json.Unmarshal(seen.Body, &body))
	assert.False(t, seen.Ephemeral, "Zuul's requests are persistent")
	return seen.ID, body, seen.Nodes
}

func TestRequestFulfilled(t *testing.T) {
	e := newEnv(t)
	f := startLauncher(t, e, zuultest.Fulfil)

	r := e.cli("request", "small", "--tenant", "tenant-one", "--requestor", "me@test")
	require.Equal(t, 0, r.code, r.stderr)

	id, body, nodes := only(t, f)
	assert.Regexp(t, `^200-\d{10}$`, id)

	// The request carries what Zuul writes.
	assert.Equal(t, "requested", body["state"])
	assert.Equal(t, []any{"small"}, body["node_types"])
	assert.Equal(t, "me@test", body["requestor"])
	assert.Nil(t, body["provider"])
	assert.Equal(t, float64(0), body["relative_priority"])
	assert.Equal(t, "tenant-one", body["tenant_name"])
	assert.Regexp(t, `^[0-9a-f]{32}$`, body["event_id"])
	assert.Greater(t, body["created_time"], float64(time.Now().Add(-time.Minute).Unix()))
	assert.Equal(t, body["created_time"], body["state_time"])
	rd, ok := body["requestor_data"].(map[string]any)
	require.True(t, ok, "requestor_data: %v", body["requestor_data"])
	assert.Regexp(t, `^[0-9a-f]{32}$`, rd["build_set_uuid"])
	assert.Regexp(t, `^[0-9a-f]{32}$`, rd["job_uuid"])
	assert.Equal(t, "tenant-one", rd["tenant_name"])
	assert.Equal(t, "manual", rd["pipeline_name"])
	assert.Equal(t, "nodepool-request", rd["job_name"])
	assert.Contains(t, rd, "span_info")
	assert.Nil(t, rd["span_info"])

	// The executor's side: request deleted, node used with Zuul's user data,
	// unlocked, written exactly twice (in-use, then used).
	assert.Empty(t, e.requests())
	require.Len(t, nodes, 1)
	n := e.node(nodes[0])
	assert.Equal(t, zookeeper.NodeUsed, n.State)
	assert.False(t, e.locked(nodes[0]))
	assert.Equal(t, int32(2), n.Version)
	assert.JSONEq(t, `{"zuul_system": "me@test", "project_name": "manual"}`, string(n.UserData))
	assert.JSONEq(t, fmt.Sprintf("%q", nodes[0]), string(n.Extra["id"]))
	assert.Equal(t, id, strCell(n.AllocatedTo))

	assert.Contains(t, r.stderr, "submitted request "+id+" for small")
	assert.Contains(t, r.stderr, "request "+id+" fulfilled with nodes "+nodes[0])
	assert.Contains(t, r.stderr, "locking node "+nodes[0]+" (small)")
	assert.Contains(t, r.stderr, "deleted request "+id)
	assert.Contains(t, r.stderr, "returned nodes "+nodes[0]+" (used, unlocked); the launcher will delete them")
	rows := tableRows(r.stdout)
	require.Len(t, rows, 1, r.stdout)
	assert.Equal(t, []string{nodes[0], "small", "sim-one", "main", "sim-a", "192.0.2.10", "22", "zuul", "",
		"sim-small", "in-use"}, rows[0])
}

func TestRequestSeveralLabelsJSON(t *testing.T) {
	e := newEnv(t)
	f := startLauncher(t, e, zuultest.Fulfil)

	r := e.cli("request", "large", "small", "large", "--priority", "99", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	id, body, nodes := only(t, f)
	assert.Regexp(t, `^099-\d{10}$`, id)
	assert.Nil(t, body["tenant_name"])
	assert.Regexp(t, `^nodepool-cli`, body["requestor"])

	var printed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &printed), r.stdout)
	require.Len(t, printed, 3)
	for i, label := range []string{"large", "small", "large"} {
		assert.Equal(t, nodes[i], printed[i]["id"])
		assert.Equal(t, []any{label}, printed[i]["type"])
		assert.Equal(t, "in-use", printed[i]["state"])
		assert.Equal(t, id, printed[i]["allocated_to"])
		n := e.node(nodes[i])
		assert.Equal(t, zookeeper.NodeUsed, n.State)
		assert.False(t, e.locked(nodes[i]))
	}
}

func TestRequestKeep(t *testing.T) {
	e := newEnv(t)
	f := startLauncher(t, e, zuultest.Fulfil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- runCLI(ctx, "-c", e.cfg, "request", "small", "--keep") }()

	// Wait until the node is in use.
	var nodeID string
	require.Eventually(t, func() bool {
		for _, seen := range f.Requests() {
			if len(seen.Nodes) > 0 {
				nodeID = seen.Nodes[0]
			}
		}
		if nodeID == "" {
			return false
		}
		n, err := e.zk.GetNode(ctx, nodeID)
		return err == nil && n.State == zookeeper.NodeInUse
	}, 30*time.Second, 20*time.Millisecond)

	// While kept: request gone, node locked by a kazoo-style contender, in use
	// with Zuul's user data.
	assert.Empty(t, e.requests())
	contenders, err := e.zk.Children(ctx, zookeeper.NodeLockPath(nodeID))
	require.NoError(t, err)
	require.Len(t, contenders, 1)
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}__lock__\d{10}$`), contenders[0])
	n := e.node(nodeID)
	assert.Contains(t, string(n.UserData), "zuul_system")
	select {
	case res := <-done:
		t.Fatalf("request returned while keeping the nodes: %+v", res)
	case <-time.After(100 * time.Millisecond):
	}

	// Ctrl-C returns the nodes.
	cancel()
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("request did not return after interrupt")
	}
	assert.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stderr, "press Ctrl-C to return them")
	assert.Contains(t, res.stderr, "returned nodes "+nodeID)
	n = e.node(nodeID)
	assert.Equal(t, zookeeper.NodeUsed, n.State)
	assert.False(t, e.locked(nodeID))
}

func TestRequestFailed(t *testing.T) {
	e := newEnv(t)
	startLauncher(t, e, zuultest.Decline)

	r := e.cli("request", "small")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "declined by "+zuultest.DecliningPools[0])
	assert.Contains(t, r.stderr, "declined by "+zuultest.DecliningPools[1])
	assert.Contains(t, r.stderr, "failed; declined by: "+strings.Join(zuultest.DecliningPools, ", "))
	assert.Empty(t, e.requests(), "a failed request is deleted, as Zuul does")
	assert.Empty(t, r.stdout)
}

func TestRequestMisallocated(t *testing.T) {
	e := newEnv(t)
	f := startLauncher(t, e, zuultest.Misallocate)

	r := e.cli("request", "small", "large")
	assert.Equal(t, 1, r.code)
	_, _, nodes := only(t, f)
	assert.Contains(t, r.stderr, "not to request")
	assert.Empty(t, e.requests(), "Zuul deletes the request even when accepting fails")
	for _, id := range nodes {
		assert.Equal(t, zookeeper.NodeReady, e.node(id).State)
		assert.False(t, e.locked(id))
	}
}

func TestRequestVanished(t *testing.T) {
	e := newEnv(t)
	startLauncher(t, e, zuultest.Vanish)

	r := e.cli("request", "small")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "was deleted before a launcher fulfilled it")
}

func TestRequestTimeout(t *testing.T) {
	e := newEnv(t)

	r := e.cli("request", "small", "--timeout", "300ms")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "was not fulfilled within 300ms; deleted it")
	assert.Empty(t, e.requests())
}

func TestRequestInterrupted(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-c", e.cfg, "request", "small", "large"}, &stdout, &stderr) }()

	// Interrupt once the request is submitted and being watched.
	require.Eventually(t, func() bool {
		return strings.Contains(stderr.String(), "submitted request")
	}, 30*time.Second, 20*time.Millisecond)
	require.Len(t, e.requests(), 1)
	cancel()
	assert.Equal(t, 1, <-done)
	assert.Contains(t, stderr.String(), "interrupted; deleted request")
	assert.Empty(t, e.requests(), "interrupting cancels the request, as Zuul does")
}

func TestRequestUnknownLabelWarns(t *testing.T) {
	e := newEnv(t)
	r := e.cli("request", "nonexistent", "--timeout", "100ms")
	assert.Equal(t, 1, r.code)
	assert.True(t, strings.Contains(r.stderr, "warning: label nonexistent is not in "+e.cfg), r.stderr)
}

// syncBuffer collects output written by another goroutine.
type syncBuffer = testenv.SyncBuffer

// slowLaunch serves the first request that appears the way a launcher does, slowly:
// pending with building nodes, then ready nodes, then fulfilled, with pause between
// the steps.
func slowLaunch(t *testing.T, e *env, pause time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		var id string
		for ctx.Err() == nil && id == "" {
			if ids, err := e.zk.ListRequests(ctx); err == nil && len(ids) > 0 {
				id = ids[0]
			}
			time.Sleep(20 * time.Millisecond)
		}
		r, err := e.zk.GetRequest(ctx, id)
		if err != nil {
			return
		}
		r.State = zookeeper.StatePending
		var nodes []*zookeeper.Node
		for _, label := range r.NodeTypes {
			n := readyNode(label)
			n.State = zookeeper.NodeBuilding
			n.AllocatedTo = &id
			nid, err := e.zk.CreateNode(ctx, n)
			if err != nil {
				return
			}
			n.ID = nid
			nodes = append(nodes, n)
			r.Nodes = append(r.Nodes, nid)
		}
		if e.zk.UpdateRequest(ctx, r) != nil {
			return
		}
		time.Sleep(pause)
		for _, n := range nodes {
			cur, err := e.zk.GetNode(ctx, n.ID)
			if err != nil {
				return
			}
			cur.State = zookeeper.NodeReady
			if e.zk.UpdateNode(ctx, cur) != nil {
				return
			}
		}
		time.Sleep(pause)
		r.State = zookeeper.StateFulfilled
		_ = e.zk.UpdateRequest(ctx, r)
	}()
}

func TestRequestProgress(t *testing.T) {
	oldPoll, oldEvery := progressPoll, progressEvery
	progressPoll, progressEvery = 20*time.Millisecond, 150*time.Millisecond
	t.Cleanup(func() { progressPoll, progressEvery = oldPoll, oldEvery })

	t.Run("nodes of a pending request", func(t *testing.T) {
		e := newEnv(t)
		slowLaunch(t, e, 400*time.Millisecond)
		r := e.cli("request", "small", "large")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Regexp(t, `request \S+ is pending\n`, r.stderr)
		assert.Regexp(t, `node \d{10} \(small\) is building\n`, r.stderr)
		assert.Regexp(t, `node \d{10} \(large\) is building\n`, r.stderr)
		assert.Regexp(t, `node \d{10} \(small\) is ready\n`, r.stderr)
		// Building comes before ready, ready before fulfilled.
		b := strings.Index(r.stderr, "(small) is building")
		rd := strings.Index(r.stderr, "(small) is ready")
		f := strings.Index(r.stderr, "fulfilled with nodes")
		assert.True(t, b < rd && rd < f, r.stderr)
	})

	t.Run("a request nobody serves", func(t *testing.T) {
		e := newEnv(t)
		r := e.cli("request", "small", "--timeout", "700ms")
		assert.Equal(t, 1, r.code)
		assert.Regexp(t, `request (\S+) is still requested after [\d.]+m?s; "nodepool explain \S+" tells why\n`, r.stderr)
	})
}
