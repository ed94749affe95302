package zookeeper

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestConnectCreatesChroot(t *testing.T) {
	z := newTestZK(t)
	c := z.connect(t)
	if _, err := c.exists(testCtx(t), "/"); err != nil {
		t.Fatalf("chroot %s: %v, want it created", z.chroot, err)
	}
	if !c.Connected() || c.SessionID() == 0 {
		t.Fatalf("connected=%v session=%#x, want a live session", c.Connected(), c.SessionID())
	}
	assertEqual(t, "chroot", c.Chroot(), z.chroot)
}

func TestConnectErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		timeout time.Duration
		want    string
		wantIs  error
	}{
		{name: "no servers", opts: Options{}, want: "no servers"},
		{name: "relative chroot", opts: Options{Servers: []string{"127.0.0.1:1"}, Chroot: "nodepool"}, want: "chroot"},
		{
			name: "missing tls file", want: "reading zookeeper tls cert file",
			opts: Options{Servers: []string{"127.0.0.1:1"}, TLS: &TLSConfig{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem", CAFile: "/nonexistent/ca.pem"}},
		},
		{
			name: "unreachable server", timeout: 1500 * time.Millisecond, wantIs: context.DeadlineExceeded,
			opts: Options{Servers: []string{"127.0.0.1:1"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			c, err := Connect(ctx, tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("connect succeeded, want an error")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
		})
	}
}

func TestNormalizeServers(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"zk1:2181", "zk2"}, []string{"zk1:2181", "zk2:2281"}},
		{[]string{"[::1]:2181", "[::1]", "::1"}, []string{"[::1]:2181", "[::1]:2281", "[::1]:2281"}},
		{[]string{" 10.0.0.1:2281 "}, []string{"10.0.0.1:2281"}},
	}
	for _, tc := range tests {
		got, err := normalizeServers(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, strings.Join(tc.in, ","), got, tc.want)
	}
	if _, err := normalizeServers([]string{"zk1", " "}); err == nil {
		t.Error("an empty entry was accepted")
	}
}

func TestRequestLifecycle(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)

	ids, err := c.ListRequests(ctx)
	if err != nil || len(ids) != 0 {
		t.Fatalf("listing a fresh tree: %v %v, want empty", ids, err)
	}

	r := &NodeRequest{
		State: StateRequested, StateTime: 1700000000.5, NodeTypes: []string{"a", "b"},
		Nodes: []string{}, DeclinedBy: []string{}, Reuse: true, Requestor: ptr("zuul"),
	}
	id, err := c.SubmitRequest(ctx, r, "200", false)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^200-\d{10}$`).MatchString(id) || !IsNodepoolRequestID(id) || r.ID != id {
		t.Fatalf("request id %q (r.ID %q), want 200-<10 digits>", id, r.ID)
	}
	second, err := c.SubmitRequest(ctx, &NodeRequest{State: StateRequested}, "100", false)
	if err != nil {
		t.Fatal(err)
	}
	ids, err = c.ListRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "listed", ids, []string{second, id})

	got, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "read back", got, r)

	stale := *got
	got.State = StatePending
	if err := c.UpdateRequest(ctx, got); err != nil {
		t.Fatalf("updating: %v", err)
	}
	assertEqual(t, "version", got.Version, int32(1))
	stale.State = StateFailed
	if err := c.UpdateRequest(ctx, &stale); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("stale update: %v, want ErrBadVersion", err)
	}
	reread, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "state after conflict", reread.State, StatePending)

	if err := c.DeleteRequest(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRequest(ctx, id); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if _, err := c.GetRequest(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reading a deleted request: %v, want ErrNotFound", err)
	}
	if err := c.UpdateRequest(ctx, reread); !errors.Is(err, ErrNotFound) {
		t.Fatalf("updating a deleted request: %v, want ErrNotFound", err)
	}
}

func TestSubmitRequestRejectsBadPriority(t *testing.T) {
	z := newTestZK(t)
	c := z.connect(t)
	for _, prio := range []string{"", "1/0", "10-0"} {
		if _, err := c.SubmitRequest(testCtx(t), &NodeRequest{}, prio, false); err == nil {
			t.Errorf("priority %q accepted", prio)
		}
	}
}

func TestEphemeralRequestDiesWithSession(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	owner := z.connect(t)
	observer := z.connect(t)
	id, err := owner.SubmitRequest(ctx, &NodeRequest{State: StateRequested, NodeTypes: []string{"a"}, Reuse: false, Requestor: ptr("NodePool:min-ready")}, "900", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := observer.GetRequest(ctx, id); err != nil {
		t.Fatalf("reading from another session: %v", err)
	}
	owner.Close()
	if _, err := observer.GetRequest(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the owner closed: %v, want ErrNotFound", err)
	}
}

// A request as Zuul wrote it keeps every field through our read-modify-write.
func TestZuulRequestSurvivesUpdate(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	input, err := os.ReadFile(filepath.Join("testdata", "request-zuul-submitted.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePath(ctx, RequestsPath); err != nil {
		t.Fatal(err)
	}
	created, err := c.create(ctx, RequestsPath+"/200-", input, zk.FlagSequence)
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Base(created)
	r, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	r.State = StatePending
	r.DeclinedBy = append(r.DeclinedBy, "other-pool")
	if err := c.UpdateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	stored, _, err := c.get(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	checkPreserved(t, input, stored, "state")
	checkKeys(t, stored, nodepoolRequestKeys)
}

func TestNodeLifecycle(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)

	n := &Node{State: NodeInit, Type: Labels{"ubuntu-jammy"}, Provider: "sim", Pool: "main", Launcher: "test", AllocatedTo: ptr("200-0000000001")}
	id, err := c.CreateNode(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d{10}$`).MatchString(id) || n.ID != id {
		t.Fatalf("node id %q, want 10 digits", id)
	}
	if n.StateTime == 0 || n.CreatedTime != n.StateTime {
		t.Fatalf("state_time %v created_time %v, want both set and equal", n.StateTime, n.CreatedTime)
	}
	other, err := c.CreateNode(ctx, &Node{State: NodeInit})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "listed", ids, []string{id, other})

	got, err := c.GetNode(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	stale := *got
	got.State = NodeBuilding
	if err := c.UpdateNode(ctx, got); err != nil {
		t.Fatal(err)
	}
	stale.State = NodeFailed
	if err := c.UpdateNode(ctx, &stale); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("stale update: %v, want ErrBadVersion", err)
	}

	// Hold the node's lock, then delete: the lock goes with the node, and
	// "deleted" is written before the znode disappears.
	lock := c.NewLock(NodeLockPath(id), "deleter")
	if ok, err := lock.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("locking node: %v %v", ok, err)
	}
	_, watch, err := c.GetW(ctx, NodePath(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteNode(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watch:
		assertEqual(t, "first change", ev.Type, zk.EventNodeDataChanged)
	case <-time.After(waitTimeout):
		t.Fatal("no data event")
	}
	if _, err := c.GetNode(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reading a deleted node: %v, want ErrNotFound", err)
	}
	if err := c.DeleteNode(ctx, id); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if err := c.UpdateNode(ctx, got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("updating a deleted node: %v, want ErrNotFound", err)
	}
}

func TestGetNodeBadRecords(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	if err := c.EnsurePath(ctx, NodesPath); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		data      []byte
		wantEmpty bool
	}{
		{"empty znode", nil, true},
		{"garbage", []byte("not json"), false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.Repeat("0", 9) + string(rune('1'+i))
			if _, err := c.create(ctx, NodePath(id), tc.data, 0); err != nil {
				t.Fatal(err)
			}
			_, err := c.GetNode(ctx, id)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DecodeError", err)
			}
			assertEqual(t, "empty", errors.Is(err, ErrEmptyRecord), tc.wantEmpty)
			if err := c.DeleteNode(ctx, id); err != nil {
				t.Fatalf("deleting a bad record: %v", err)
			}
		})
	}
}

// A node Zuul wrote back keeps Zuul's keys when we update it.
func TestZuulNodeSurvivesUpdate(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	input, err := os.ReadFile(filepath.Join("testdata", "node-zuul-in-use.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePath(ctx, NodesPath); err != nil {
		t.Fatal(err)
	}
	if _, err := c.create(ctx, NodePath("0000000456"), input, 0); err != nil {
		t.Fatal(err)
	}
	n, err := c.GetNode(ctx, "0000000456")
	if err != nil {
		t.Fatal(err)
	}
	n.State = NodeUsed
	if err := c.UpdateNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	stored, _, err := c.get(ctx, NodePath("0000000456"))
	if err != nil {
		t.Fatal(err)
	}
	checkPreserved(t, input, stored, "state")
	var m map[string]json.RawMessage
	if err := json.Unmarshal(stored, &m); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if !slices.Contains(keys, "id") || !slices.Contains(keys, "node_properties") {
		t.Fatalf("zuul keys lost: %v", keys)
	}
}
