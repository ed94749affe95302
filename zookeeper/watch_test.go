package zookeeper

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// nextEvent reads events until one satisfies want.
func nextEvent(t *testing.T, ch <-chan ChildrenEvent, what string, want func(ChildrenEvent) bool) ChildrenEvent {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed while waiting for %s", what)
			}
			if want(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func hasChildren(names ...string) func(ChildrenEvent) bool {
	return func(ev ChildrenEvent) bool { return ev.Exists && slices.Equal(ev.Children, names) }
}

func TestWatchChildren(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	watcher, writer := z.connect(t), z.connect(t)
	wctx, cancel := context.WithCancel(ctx)
	ch := watcher.WatchChildren(wctx, RequestsPath)

	first := nextEvent(t, ch, "the initial list", func(ChildrenEvent) bool { return true })
	assertEqual(t, "initial", first, ChildrenEvent{Path: RequestsPath, Children: []string{}, Exists: false})

	if err := writer.EnsurePath(ctx, RequestsPath); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "the path to appear", hasChildren())
	a, err := writer.SubmitRequest(ctx, &NodeRequest{State: StateRequested}, "200", false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writer.SubmitRequest(ctx, &NodeRequest{State: StateRequested}, "100", false)
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "both requests", hasChildren(b, a))
	if err := writer.DeleteRequest(ctx, a); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "the deletion", hasChildren(b))

	cancel()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed after cancel")
		}
	}
}

func TestWatchChildrenAcrossReconnectAndExpiry(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	watcher, tap := z.connectTapped(t)
	writer := z.connect(t)
	if err := writer.EnsurePath(ctx, NodesPath); err != nil {
		t.Fatal(err)
	}
	ch := watcher.WatchChildren(ctx, NodesPath)
	nextEvent(t, ch, "the initial list", hasChildren())

	// A reconnect in the same session re-emits the list.
	tap.Drop()
	nextEvent(t, ch, "the list after a reconnect", hasChildren())
	n1, err := writer.CreateNode(ctx, &Node{State: NodeInit})
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "a change after the reconnect", hasChildren(n1))

	// After an expiry the watch is re-armed in the new session; a change
	// made around the expiry is not lost.
	tap.Expire(t)
	n2, err := writer.CreateNode(ctx, &Node{State: NodeInit})
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "the change made during the expiry", hasChildren(n1, n2))
	n3, err := writer.CreateNode(ctx, &Node{State: NodeInit})
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "a change in the new session", hasChildren(n1, n2, n3))
}

func TestWatchChildrenClosesWithClient(t *testing.T) {
	z := newTestZK(t)
	c := z.connect(t)
	ch := c.WatchChildren(testCtx(t), "/")
	nextEvent(t, ch, "the initial list", func(ev ChildrenEvent) bool { return ev.Exists })
	c.Close()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed after Close")
		}
	}
}

func TestWaitDeleted(t *testing.T) {
	ctx := testCtx(t)
	c := newTestZK(t).connect(t)
	if err := c.WaitDeleted(ctx, "/missing"); err != nil {
		t.Fatalf("waiting for a missing znode: %v", err)
	}
	if err := c.EnsurePath(ctx, "/doomed/child"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitDeleted(ctx, "/doomed") }()
	select {
	case err := <-done:
		t.Fatalf("returned while the znode exists: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := c.DeleteRecursive(ctx, "/doomed"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("not woken by the deletion")
	}

	if err := c.EnsurePath(ctx, "/kept"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := c.WaitDeleted(short, "/kept"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
}
