package zookeeper

import (
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestModifyNode(t *testing.T) {
	ctx := testCtx(t)
	c := newTestZK(t).connect(t)
	errStop := errors.New("stop")

	tests := []struct {
		name string
		// stale makes the record handed to ModifyNode out of date (someone else
		// wrote the node after it was read); nil cur means ModifyNode reads.
		stale bool
		cur   bool
		// change is applied to the node; calls counts its calls.
		change      func(n *Node) (bool, error)
		wantWritten bool
		wantErr     error
		wantCalls   int
		wantVersion int32
		wantComment string
	}{
		{
			name:        "reads and writes",
			change:      func(n *Node) (bool, error) { n.Comment = ptr("a"); return true, nil },
			wantWritten: true, wantCalls: 1, wantVersion: 1, wantComment: "a",
		},
		{
			name: "starts from the given record", cur: true,
			change:      func(n *Node) (bool, error) { n.Comment = ptr("b"); return true, nil },
			wantWritten: true, wantCalls: 1, wantVersion: 1, wantComment: "b",
		},
		{
			name: "re-reads and re-applies after a concurrent write", cur: true, stale: true,
			change: func(n *Node) (bool, error) {
				n.Comment = ptr(*n.Comment + "+c")
				return true, nil
			},
			wantWritten: true, wantCalls: 2, wantVersion: 2, wantComment: "other+c",
		},
		{
			name:      "change writes nothing",
			change:    func(n *Node) (bool, error) { n.Comment = ptr("unsaved"); return false, nil },
			wantCalls: 1, wantVersion: 0, wantComment: "",
		},
		{
			name:    "change fails",
			change:  func(*Node) (bool, error) { return true, errStop },
			wantErr: errStop, wantCalls: 1, wantVersion: 0, wantComment: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := c.CreateNode(ctx, &Node{State: NodeReady, Comment: ptr("")})
			if err != nil {
				t.Fatal(err)
			}
			var cur *Node
			if tc.cur {
				if cur, err = c.GetNode(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if tc.stale {
				other, err := c.GetNode(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				other.Comment = ptr("other")
				if err := c.UpdateNode(ctx, other); err != nil {
					t.Fatal(err)
				}
			}
			calls := 0
			got, written, err := c.ModifyNode(ctx, id, cur, func(n *Node) (bool, error) {
				calls++
				return tc.change(n)
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			assertEqual(t, "written", written, tc.wantWritten)
			assertEqual(t, "calls", calls, tc.wantCalls)
			if err == nil && written {
				assertEqual(t, "returned version", got.Version, tc.wantVersion)
			}
			stored, err := c.GetNode(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "stored version", stored.Version, tc.wantVersion)
			if tc.stale && !tc.wantWritten {
				return
			}
			assertEqual(t, "stored comment", *stored.Comment, tc.wantComment)
		})
	}

	t.Run("gone", func(t *testing.T) {
		_, written, err := c.ModifyNode(ctx, "0000099999", nil, func(*Node) (bool, error) { return true, nil })
		if !errors.Is(err, ErrNotFound) || written {
			t.Fatalf("got written=%v err=%v, want ErrNotFound", written, err)
		}
		id, err := c.CreateNode(ctx, &Node{State: NodeReady})
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.GetNode(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteNode(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, _, err = c.ModifyNode(ctx, id, n, func(*Node) (bool, error) { return true, nil })
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("modifying a node deleted meanwhile: %v, want ErrNotFound", err)
		}
	})
}

func TestModifyRequest(t *testing.T) {
	ctx := testCtx(t)
	c := newTestZK(t).connect(t)
	r := &NodeRequest{State: StateRequested, NodeTypes: []string{"small"}, Reuse: true}
	id, err := c.SubmitRequest(ctx, r, "200", false)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else declines after our read: our change is applied on top.
	other, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	other.DeclinedBy = append(other.DeclinedBy, "pool-a")
	if err := c.UpdateRequest(ctx, other); err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, written, err := c.ModifyRequest(ctx, id, r, func(r *NodeRequest) (bool, error) {
		calls++
		r.DeclinedBy = append(r.DeclinedBy, "pool-b")
		return true, nil
	})
	if err != nil || !written {
		t.Fatalf("written=%v err=%v", written, err)
	}
	assertEqual(t, "calls", calls, 2)
	assertEqual(t, "declined_by", got.DeclinedBy, []string{"pool-a", "pool-b"})
	stored, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "stored declined_by", stored.DeclinedBy, []string{"pool-a", "pool-b"})
	assertEqual(t, "stored version", stored.Version, int32(2))

	if err := c.DeleteRequest(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ModifyRequest(ctx, id, nil, func(*NodeRequest) (bool, error) { return true, nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("modifying a deleted request: %v, want ErrNotFound", err)
	}
}

func TestGetRequestW(t *testing.T) {
	ctx := testCtx(t)
	c := newTestZK(t).connect(t)
	if _, _, err := c.GetRequestW(ctx, "200-0000000001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing request: %v, want ErrNotFound", err)
	}
	r := &NodeRequest{State: StateRequested, NodeTypes: []string{"small"}, Reuse: true}
	id, err := c.SubmitRequest(ctx, r, "200", false)
	if err != nil {
		t.Fatal(err)
	}
	got, watch, err := c.GetRequestW(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "state", got.State, StateRequested)
	assertEqual(t, "version", got.Version, int32(0))
	got.State = StatePending
	if err := c.UpdateRequest(ctx, got); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watch:
		assertEqual(t, "event", ev.Type, zk.EventNodeDataChanged)
	case <-time.After(waitTimeout):
		t.Fatal("no watch event")
	}

	// A record that does not decode still comes with a watch.
	if _, err := c.set(ctx, RequestPath(id), []byte("not json"), -1); err != nil {
		t.Fatal(err)
	}
	_, watch, err = c.GetRequestW(ctx, id)
	var de *DecodeError
	if !errors.As(err, &de) || watch == nil {
		t.Fatalf("bad record: watch=%v err=%v, want a watch and a *DecodeError", watch != nil, err)
	}
	if err := c.DeleteRequest(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watch:
		assertEqual(t, "event", ev.Type, zk.EventNodeDeleted)
	case <-time.After(waitTimeout):
		t.Fatal("no watch event")
	}
}

func TestRawHelpers(t *testing.T) {
	ctx := testCtx(t)
	c := newTestZK(t).connect(t)
	if err := c.EnsurePath(ctx, "/raw"); err != nil {
		t.Fatal(err)
	}
	created, err := c.Create(ctx, "/raw/item-", []byte("data"), zk.FlagSequence|zk.FlagEphemeral)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != len("/raw/item-")+10 {
		t.Fatalf("created %q, want a sequence suffix", created)
	}
	if _, err := c.Create(ctx, created, nil, 0); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("creating twice: %v, want zk.ErrNodeExists", err)
	}
	data, stat, err := c.Get(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "data", string(data), "data")
	assertEqual(t, "ephemeral", stat.EphemeralOwner, c.SessionID())
	if _, _, err := c.Get(ctx, "/raw/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reading a missing znode: %v, want ErrNotFound", err)
	}

	ok, watch, err := c.ExistsW(ctx, created)
	if err != nil || !ok {
		t.Fatalf("exists=%v err=%v", ok, err)
	}
	if err := c.DeleteRecursive(ctx, created); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watch:
		assertEqual(t, "event", ev.Type, zk.EventNodeDeleted)
	case <-time.After(waitTimeout):
		t.Fatal("no watch event")
	}
	ok, watch, err = c.ExistsW(ctx, created)
	if err != nil || ok {
		t.Fatalf("after delete: exists=%v err=%v", ok, err)
	}
	if _, err := c.Create(ctx, created, nil, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watch:
		assertEqual(t, "event", ev.Type, zk.EventNodeCreated)
	case <-time.After(waitTimeout):
		t.Fatal("no watch event")
	}
}
