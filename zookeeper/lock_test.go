package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

var contenderName = regexp.MustCompile(`^[0-9a-f]{32}__lock__\d{10}$`)

func TestSortContenders(t *testing.T) {
	got := sortContenders([]string{
		"bbbb__lock__0000000003",
		"lease_holder",
		"aaaa__lock__0000000010",
		"cccc__lock__0000000001",
		"dddd__rlock__0000000000",
		"eeee__lock__-0000000001",
	})
	var names []string
	for _, c := range got {
		names = append(names, c.name)
	}
	assertEqual(t, "order", names, []string{
		"eeee__lock__-0000000001", "cccc__lock__0000000001", "bbbb__lock__0000000003", "aaaa__lock__0000000010",
	})
	if !contenderName.MatchString(newContenderPrefix() + "0000000001") {
		t.Errorf("contender prefix %q does not follow kazoo's naming", newContenderPrefix())
	}
}

func TestLockMutualExclusion(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := RequestLockPath("200-0000000001")

	la := a.NewLock(path, "holder-a")
	lb := b.NewLock(path, "holder-b")
	if ok, err := la.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("first TryAcquire: %v %v", ok, err)
	}
	if ok, err := la.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("TryAcquire while holding: %v %v, want true", ok, err)
	}
	if ok, err := lb.TryAcquire(ctx); err != nil || ok {
		t.Fatalf("second client TryAcquire: %v %v, want false", ok, err)
	}
	names := contenderNames(t, a, path)
	if len(names) != 1 || !contenderName.MatchString(names[0]) {
		t.Fatalf("contenders %v, want exactly the holder in kazoo format", names)
	}
	locked, owner, err := b.LockHolder(ctx, path)
	if err != nil || !locked || owner != "holder-a" {
		t.Fatalf("LockHolder: %v %q %v, want holder-a", locked, owner, err)
	}
	if held, err := la.Held(ctx); err != nil || !held {
		t.Fatalf("Held: %v %v", held, err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if ok, err := lb.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("TryAcquire after release: %v %v, want true", ok, err)
	}
	if held, err := la.Held(ctx); err != nil || held {
		t.Fatalf("released lock Held: %v %v, want false", held, err)
	}
}

func TestNodeLockOfMissingNode(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	tests := []struct {
		name string
		do   func() error
	}{
		{"TryAcquire", func() error { _, err := c.NewLock(NodeLockPath("0000009999"), "").TryAcquire(ctx); return err }},
		{"Acquire", func() error { return c.NewLock(NodeLockPath("0000009999"), "").Acquire(ctx, time.Second) }},
		{"EnsureLock", func() error { _, err := c.EnsureLock(ctx, NodeLockPath("0000009999"), "wf"); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			if _, err := c.exists(ctx, NodePath("0000009999")); !errors.Is(err, zk.ErrNoNode) {
				t.Fatalf("node path: %v, want it not re-created", err)
			}
		})
	}
}

func TestBlockingAcquireWakesOnRelease(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := RequestLockPath("200-0000000002")
	la := a.NewLock(path, "a")
	if ok, err := la.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("TryAcquire: %v %v", ok, err)
	}
	lb := b.NewLock(path, "b")
	done := make(chan error, 1)
	go func() { done <- lb.Acquire(ctx, waitTimeout) }()
	waitUntil(t, "the waiter's contender", func() bool { return len(contenderNames(t, a, path)) == 2 })
	select {
	case err := <-done:
		t.Fatalf("Acquire returned %v while the lock was held", err)
	default:
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Acquire did not wake after release")
	}
	if held, err := lb.Held(ctx); err != nil || !held {
		t.Fatalf("Held after acquire: %v %v", held, err)
	}
}

func TestBlockingAcquireWakesWhenHolderSessionEnds(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := NodeLockPath("0000000001")
	if err := a.EnsurePath(ctx, NodePath("0000000001")); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.NewLock(path, "a").TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("TryAcquire: %v %v", ok, err)
	}
	done := make(chan error, 1)
	go func() { done <- b.NewLock(path, "b").Acquire(ctx, waitTimeout) }()
	waitUntil(t, "the waiter's contender", func() bool { return len(contenderNames(t, b, path)) == 2 })
	a.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Acquire did not wake when the holder's session ended")
	}
}

func TestAcquireGivesUp(t *testing.T) {
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := RequestLockPath("200-0000000003")
	if ok, err := a.NewLock(path, "a").TryAcquire(testCtx(t)); err != nil || !ok {
		t.Fatalf("TryAcquire: %v %v", ok, err)
	}
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		want    error
	}{
		{"timeout", 300 * time.Millisecond, func() (context.Context, context.CancelFunc) { return context.WithCancel(testCtx(t)) }, ErrLockTimeout},
		{"context deadline", 0, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(testCtx(t), 300*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			err := b.NewLock(path, "b").Acquire(ctx, tc.timeout)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			waitUntil(t, "the waiter's contender to go", func() bool { return len(contenderNames(t, a, path)) == 1 })
		})
	}
}

func TestLockNotHeldAfterSessionExpiry(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c, tap := z.connectTapped(t)
	observer := z.connect(t)
	path := RequestLockPath("200-0000000004")
	l := c.NewLock(path, "a")
	if ok, err := l.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("TryAcquire: %v %v", ok, err)
	}
	old := c.SessionID()
	tap.Expire(t)
	waitUntil(t, "a new session", func() bool { return c.Connected() && c.SessionID() != old })
	if held, err := l.Held(ctx); err != nil || held {
		t.Fatalf("Held after expiry: %v %v, want false", held, err)
	}
	if locked, err := observer.IsLocked(ctx, path); err != nil || locked {
		t.Fatalf("IsLocked after expiry: %v %v, want false", locked, err)
	}
	if ok, err := l.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("re-acquiring in the new session: %v %v", ok, err)
	}
}

// A create or delete whose answer is lost (the connection drops after the server applied
// it, as when the ensemble changes leader) leaves no contender behind: one created without
// an answer is found again by its prefix and used, one deleted without an answer is not
// reported as still there.
func TestLockRepliesLost(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		acquire func(ctx context.Context, l *Lock) error
	}{
		{"TryAcquire, create answer lost", "create", func(ctx context.Context, l *Lock) error {
			ok, err := l.TryAcquire(ctx)
			if err == nil && !ok {
				err = errors.New("not acquired")
			}
			return err
		}},
		{"Acquire, create answer lost", "create", func(ctx context.Context, l *Lock) error { return l.Acquire(ctx, 5*time.Second) }},
		{"Release, delete answer lost", "delete", func(ctx context.Context, l *Lock) error { return l.Acquire(ctx, 5*time.Second) }},
	}
	z := newTestZK(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			a, b := z.connect(t), z.connect(t)
			path := RequestLockPath(fmt.Sprintf("300-000000010%d", i))
			if err := a.ensureLockDir(ctx, path); err != nil {
				t.Fatal(err)
			}
			var lost atomic.Int32
			a.lostReplies = func(op, p string) bool {
				return op == tc.op && strings.HasPrefix(p, path+"/") && lost.Add(1) == 1
			}
			la := a.NewLock(path, "holder-a")
			if err := tc.acquire(ctx, la); err != nil {
				t.Fatalf("acquiring: %v (contenders %v)", err, contenderNames(t, a, path))
			}
			if names := contenderNames(t, a, path); len(names) != 1 {
				t.Fatalf("contenders %v, want exactly ours", names)
			}
			if err := la.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if lost.Load() == 0 {
				t.Fatalf("no %s answer was lost", tc.op)
			}
			if names := contenderNames(t, a, path); len(names) != 0 {
				t.Fatalf("contenders %v after release, want none", names)
			}
			if ok, err := b.NewLock(path, "holder-b").TryAcquire(ctx); err != nil || !ok {
				t.Fatalf("another session's TryAcquire after release: %v %v", ok, err)
			}
		})
	}
}
