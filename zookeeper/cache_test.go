package zookeeper

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestGetNodeW(t *testing.T) {
	ctx := testCtx(t)
	c := newTestZK(t).connect(t)
	good, err := c.CreateNode(ctx, &Node{State: NodeReady, Provider: "sim", Type: Labels{"small"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePath(ctx, NodesPath); err != nil {
		t.Fatal(err)
	}
	bad, err := c.Create(ctx, NodesPath+"/", []byte("junk"), zk.FlagSequence)
	if err != nil {
		t.Fatal(err)
	}
	bad = bad[len(NodesPath)+1:]
	tests := []struct {
		name       string
		id         string
		wantNode   bool
		wantWatch  bool
		wantDecode bool
		wantGone   bool
	}{
		{"record", good, true, true, false, false},
		{"undecodable record", bad, false, true, true, false},
		{"missing", "0000999999", false, false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, _, watch, err := c.GetNodeW(ctx, tc.id)
			var de *DecodeError
			assertEqual(t, "node", n != nil, tc.wantNode)
			assertEqual(t, "watch", watch != nil, tc.wantWatch)
			assertEqual(t, "decode error", errors.As(err, &de), tc.wantDecode)
			assertEqual(t, "not found", errors.Is(err, ErrNotFound), tc.wantGone)
			if watch == nil {
				return
			}
			if err := c.modifyRaw(ctx, NodePath(tc.id), []byte(`{"state": "used"}`)); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-watch:
				assertEqual(t, "event", ev.Type, zk.EventNodeDataChanged)
			case <-time.After(waitTimeout):
				t.Fatal("watch did not fire")
			}
			n, version, _, err := c.GetNodeW(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "state after the change", n.State, NodeUsed)
			assertEqual(t, "version", version, n.Version)
		})
	}
}

// modifyRaw overwrites a znode's data.
func (c *Client) modifyRaw(ctx context.Context, p string, data []byte) error {
	_, err := c.set(ctx, p, data, -1)
	return err
}

func TestWatchLock(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	z := newTestZK(t)
	c, other := z.connect(t), z.connect(t)
	path := RequestLockPath("200-0000000042")
	events := c.WatchLock(ctx, path)
	next := func(what string) LockEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(waitTimeout):
			t.Fatalf("no lock event: %s", what)
		}
		return LockEvent{}
	}
	steps := []struct {
		name string
		do   func() error
		want LockEvent
	}{
		{"missing directory", func() error { return nil }, LockEvent{Locked: false}},
		{"held", func() error {
			held, err := other.EnsureLock(ctx, path, "tq/owner")
			if err == nil && !held {
				err = errors.New("not held")
			}
			return err
		}, LockEvent{Locked: true, Owner: "tq/owner"}},
		{"released", func() error { return other.ReleaseOwned(ctx, path, "tq/owner") }, LockEvent{Locked: false}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		// Events may come for intermediate states (the directory created, say): the
		// wanted state comes last.
		deadline := time.Now().Add(waitTimeout)
		for {
			ev := next(s.name)
			if ev.Locked == s.want.Locked && ev.Owner == s.want.Owner {
				if ev.Reads < 1 {
					t.Fatalf("%s: reads not counted: %+v", s.name, ev)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last event %+v", s.name, ev)
			}
		}
	}
	cancel()
	for range events {
	}
}
