package zookeeper

import (
	"errors"
	"testing"
)

// ownerContenders returns the sessions of the contenders whose data is owner.
func ownerContenders(t *testing.T, c *Client, lockPath, owner string) []int64 {
	t.Helper()
	cs, err := c.contendersWithData(testCtx(t), lockPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sessions []int64
	for _, ct := range cs {
		if string(ct.data) == owner {
			sessions = append(sessions, ct.ephemeralOwner)
		}
	}
	return sessions
}

func TestEnsureLockSurvivesOwnerProcessCrash(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := RequestLockPath("200-0000000010")
	const owner = "workflow/launch-200-0000000010"

	if held, err := a.EnsureLock(ctx, path, owner); err != nil || !held {
		t.Fatalf("EnsureLock from A: %v %v", held, err)
	}
	if held, err := a.EnsureLock(ctx, path, owner); err != nil || !held {
		t.Fatalf("EnsureLock from A again: %v %v", held, err)
	}
	assertEqual(t, "contenders after re-asserting", ownerContenders(t, a, path, owner), []int64{a.SessionID()})

	// B asserts while A's session still lives: still held, and B keeps a
	// standby contender so the lock cannot slip to someone else when A dies.
	if held, err := b.EnsureLock(ctx, path, owner); err != nil || !held {
		t.Fatalf("EnsureLock from B: %v %v", held, err)
	}
	assertEqual(t, "contenders with a standby", ownerContenders(t, b, path, owner), []int64{a.SessionID(), b.SessionID()})
	if held, err := b.EnsureLock(ctx, path, owner); err != nil || !held {
		t.Fatalf("EnsureLock from B again: %v %v", held, err)
	}
	assertEqual(t, "standby not duplicated", len(ownerContenders(t, b, path, owner)), 2)

	// A foreign owner cannot take it and leaves nothing behind.
	if held, err := b.EnsureLock(ctx, path, "someone-else"); err != nil || held {
		t.Fatalf("EnsureLock for another owner: %v %v, want false", held, err)
	}
	assertEqual(t, "foreign contenders", len(ownerContenders(t, b, path, "someone-else")), 0)
	other := b.NewLock(path, "kazoo-user")
	if ok, err := other.TryAcquire(ctx); err != nil || ok {
		t.Fatalf("TryAcquire by another holder: %v %v, want false", ok, err)
	}

	// A crashes: the lock passes straight to B's standby.
	a.Close()
	locked, holder, err := b.LockHolder(ctx, path)
	if err != nil || !locked || holder != owner {
		t.Fatalf("after A crashed: locked=%v holder=%q err=%v, want %q", locked, holder, err, owner)
	}
	if held, err := b.EnsureLock(ctx, path, owner); err != nil || !held {
		t.Fatalf("EnsureLock from B after the crash: %v %v", held, err)
	}
	assertEqual(t, "contenders after the crash", ownerContenders(t, b, path, owner), []int64{b.SessionID()})

	if err := b.ReleaseOwned(ctx, path, owner); err != nil {
		t.Fatal(err)
	}
	if locked, err := b.IsLocked(ctx, path); err != nil || locked {
		t.Fatalf("IsLocked after ReleaseOwned: %v %v", locked, err)
	}
}

func TestEnsureLockRecreatesAfterSessionLoss(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := NodeLockPath("0000000020")
	if err := a.EnsurePath(ctx, NodePath("0000000020")); err != nil {
		t.Fatal(err)
	}
	const owner = "workflow/node-0000000020"
	if held, err := a.EnsureLock(ctx, path, owner); err != nil || !held {
		t.Fatalf("EnsureLock from A: %v %v", held, err)
	}
	a.Close()
	if locked, err := b.IsLocked(ctx, path); err != nil || locked {
		t.Fatalf("IsLocked after A closed: %v %v, want false", locked, err)
	}
	if held, err := b.EnsureLock(ctx, path, owner); err != nil || !held {
		t.Fatalf("EnsureLock from B: %v %v", held, err)
	}
	assertEqual(t, "re-created in B's session", ownerContenders(t, b, path, owner), []int64{b.SessionID()})
}

func TestEnsureLockYieldsToEarlierHolder(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := RequestLockPath("200-0000000011")
	zuul := a.NewLock(path, "")
	if ok, err := zuul.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("TryAcquire: %v %v", ok, err)
	}
	if held, err := b.EnsureLock(ctx, path, "wf"); err != nil || held {
		t.Fatalf("EnsureLock while another holds: %v %v, want false", held, err)
	}
	assertEqual(t, "contenders", len(contenderNames(t, b, path)), 1)
	locked, holder, err := b.LockHolder(ctx, path)
	if err != nil || !locked || holder != "" {
		t.Fatalf("LockHolder: %v %q %v, want locked by an anonymous holder", locked, holder, err)
	}
	if err := zuul.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if held, err := b.EnsureLock(ctx, path, "wf"); err != nil || !held {
		t.Fatalf("EnsureLock after release: %v %v", held, err)
	}
}

func TestReleaseOwnedAndMissingLocks(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	a, b := z.connect(t), z.connect(t)
	path := RequestLockPath("200-0000000012")

	tests := []struct {
		name string
		do   func() error
	}{
		{"ReleaseOwned", func() error { return a.ReleaseOwned(ctx, path, "wf") }},
		{"IsLocked", func() error {
			locked, err := a.IsLocked(ctx, path)
			if locked {
				t.Error("missing lock reported locked")
			}
			return err
		}},
		{"LockHolder", func() error {
			locked, _, err := a.LockHolder(ctx, path)
			if locked {
				t.Error("missing lock reported locked")
			}
			return err
		}},
	}
	for _, tc := range tests {
		t.Run("missing "+tc.name, func(t *testing.T) {
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
		})
	}

	if held, err := a.EnsureLock(ctx, path, "wf"); err != nil || !held {
		t.Fatalf("EnsureLock: %v %v", held, err)
	}
	if held, err := b.EnsureLock(ctx, path, "wf"); err != nil || !held {
		t.Fatalf("EnsureLock from B: %v %v", held, err)
	}
	// Released from a third session: every contender of the owner goes,
	// whichever session it lives in.
	c := z.connect(t)
	if err := c.ReleaseOwned(ctx, path, "wf"); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "contenders", len(contenderNames(t, c, path)), 0)
}

// Taking a free lock is three requests (list, create, list again), and asserting a
// lock already held two; neither re-reads the contender it created.
func TestEnsureLockRequests(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	id, err := c.CreateNode(ctx, &Node{State: NodeUsed})
	if err != nil {
		t.Fatal(err)
	}
	path := NodeLockPath(id)
	// Zuul locked and released the node: its lock directory exists and is empty.
	zuul := c.NewLock(path, "")
	if ok, err := zuul.TryAcquire(ctx); err != nil || !ok {
		t.Fatalf("TryAcquire: %v %v", ok, err)
	}
	if err := zuul.Release(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		want uint64
	}{
		{"free lock", 3},
		{"already held", 2},
	}
	for _, tc := range cases {
		before := c.Requests()
		name, held, err := c.EnsureLockContender(ctx, path, "tq/delete/"+id)
		if err != nil || !held || name == "" {
			t.Fatalf("%s: EnsureLockContender: %q %v %v", tc.name, name, held, err)
		}
		assertEqual(t, tc.name+": requests", c.Requests()-before, tc.want)
	}
}

func TestRemoveHeldNode(t *testing.T) {
	const owner = "tq/delete/x"
	cases := []struct {
		name string
		// setup runs after owner took the lock, through contender.
		setup       func(t *testing.T, c *Client, id, contender string)
		wantRemoved bool
	}{
		{name: "held alone: node and lock removed together", wantRemoved: true},
		{name: "someone queued behind the holder", setup: func(t *testing.T, c *Client, id, _ string) {
			if _, err := c.Create(testCtx(t), NodeLockPath(id)+"/waiting__lock__0000000099", []byte("zuul"), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "contender gone (lock lost)", setup: func(t *testing.T, c *Client, id, contender string) {
			if err := c.delete(testCtx(t), NodeLockPath(id)+"/"+contender, -1); err != nil {
				t.Fatal(err)
			}
		}},
	}
	z := newTestZK(t)
	c := z.connect(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			id, err := c.CreateNode(ctx, &Node{State: NodeDeleting})
			if err != nil {
				t.Fatal(err)
			}
			contender, held, err := c.EnsureLockContender(ctx, NodeLockPath(id), owner)
			if err != nil || !held {
				t.Fatalf("EnsureLockContender: %v %v", held, err)
			}
			if tc.setup != nil {
				tc.setup(t, c, id, contender)
			}
			before := c.Requests()
			removed, err := c.RemoveHeldNode(ctx, id, contender)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "removed", removed, tc.wantRemoved)
			assertEqual(t, "requests", c.Requests()-before, uint64(1))
			_, err = c.GetNode(ctx, id)
			assertEqual(t, "node gone", errors.Is(err, ErrNotFound), tc.wantRemoved)
		})
	}
}
