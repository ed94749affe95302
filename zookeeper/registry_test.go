package zookeeper

import (
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-zookeeper/zk"
)

func testPool(id string) PoolComponent {
	return PoolComponent{
		Hostname:        "launcher1.example.org",
		Version:         "0.1.0",
		ID:              id,
		Name:            "main",
		ProviderName:    "sim",
		SupportedLabels: []string{"ubuntu-jammy"},
		Priority:        DefaultPoolPriority,
	}
}

func TestRegisterPool(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	launcher, zuul := z.connect(t), z.connect(t)

	reg, err := launcher.RegisterPool(ctx, testPool("pool-a"))
	if err != nil {
		t.Fatal(err)
	}
	path := reg.Path()
	if !strings.HasPrefix(path, PoolComponentsPath+"/launcher1.example.org") || len(path) != len(PoolComponentsPath+"/launcher1.example.org")+10 {
		t.Fatalf("registration path %q, want %s/<hostname><10-digit seq>", path, PoolComponentsPath)
	}
	data, stat, err := zuul.get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if stat.EphemeralOwner != launcher.SessionID() {
		t.Fatalf("registration owner %#x, want the launcher's session %#x", stat.EphemeralOwner, launcher.SessionID())
	}
	var keys []string
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.IsSorted(keys) {
		t.Errorf("registration keys %v are not sorted", keys)
	}

	pools, err := zuul.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := testPool("pool-a")
	want.Kind, want.State, want.Path = ComponentKindPool, ComponentStateRunning, path
	assertEqual(t, "listed", pools, []PoolComponent{want})

	if err := reg.SetPaused(ctx, true); err != nil {
		t.Fatal(err)
	}
	pools, err = zuul.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "paused", pools[0].Paused, true)

	// An update that changes nothing does not write.
	_, before, err := zuul.get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Update(ctx, func(p *PoolComponent) { p.SupportedLabels = []string{"ubuntu-jammy"} }); err != nil {
		t.Fatal(err)
	}
	_, after, err := zuul.get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "version after a no-op update", after.Version, before.Version)

	// Someone else wrote the znode: the version check notices and the update
	// still lands.
	if _, err := zuul.set(ctx, path, data, -1); err != nil {
		t.Fatal(err)
	}
	if err := reg.Update(ctx, func(p *PoolComponent) { p.SupportedLabels = append(p.SupportedLabels, "ubuntu-noble") }); err != nil {
		t.Fatal(err)
	}
	pools, err = zuul.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "labels", pools[0].SupportedLabels, []string{"ubuntu-jammy", "ubuntu-noble"})
	assertEqual(t, "component", reg.Component().SupportedLabels, []string{"ubuntu-jammy", "ubuntu-noble"})

	if err := reg.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	pools, err = zuul.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "after unregister", len(pools), 0)
}

func TestListPoolsSkipsBadEntries(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	if pools, err := c.ListPools(ctx); err != nil || len(pools) != 0 {
		t.Fatalf("listing without a registry: %v %v", pools, err)
	}
	if _, err := c.RegisterPool(ctx, testPool("good")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.create(ctx, PoolComponentsPath+"/broken0000000099", []byte("{not json"), zk.FlagEphemeral); err != nil {
		t.Fatal(err)
	}
	pools, err := c.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 || pools[0].ID != "good" {
		t.Fatalf("pools %+v, want only the good one", pools)
	}
}

func TestRegistrationRestoredAfterSessionExpiry(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	launcher, tap := z.connectTapped(t)
	observer := z.connect(t)

	var sessions atomic.Int32
	launcher.OnSession(func() { sessions.Add(1) })
	reg, err := launcher.RegisterPool(ctx, testPool("pool-a"))
	if err != nil {
		t.Fatal(err)
	}
	oldPath, oldSession := reg.Path(), launcher.SessionID()

	tap.Expire(t)
	waitUntil(t, "the registration to be restored", func() bool {
		pools, err := observer.ListPools(ctx)
		return err == nil && len(pools) == 1 && pools[0].Path != oldPath && pools[0].ID == "pool-a"
	})
	if launcher.SessionID() == oldSession {
		t.Fatal("session id unchanged after expiry")
	}
	assertEqual(t, "path", reg.Path() != oldPath, true)
	waitUntil(t, "the session callback", func() bool { return sessions.Load() == 1 })

	if err := reg.SetPaused(ctx, true); err != nil {
		t.Fatal(err)
	}
	pools, err := observer.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 || !pools[0].Paused {
		t.Fatalf("pools after the update %+v, want one paused registration", pools)
	}

	// A reconnect within the same session is not a new session.
	tap.Drop()
	waitUntil(t, "reconnect", func() bool { return launcher.Connected() })
	pools, err = observer.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "registrations after a reconnect", len(pools), 1)
	assertEqual(t, "session callbacks", sessions.Load(), int32(1))
}

// Listing the registered pools again reads only the registrations not seen before.
func TestPoolIDsReadsOnlyNewRegistrations(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	regA, err := c.RegisterPool(ctx, testPool("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.create(ctx, PoolComponentsPath+"/broken0000000099", []byte("{not json"), zk.FlagEphemeral); err != nil {
		t.Fatal(err)
	}
	ids := func(m map[string]string) []string {
		var out []string
		for _, id := range m {
			if id != "" {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	steps := []struct {
		name         string
		change       func()
		wantIDs      []string
		wantRequests uint64
	}{
		{name: "first listing reads every registration", wantIDs: []string{"a"}, wantRequests: 3},
		{name: "nothing new: one listing", wantIDs: []string{"a"}, wantRequests: 1},
		{name: "a new registration is read", change: func() {
			if _, err := c.RegisterPool(ctx, testPool("b")); err != nil {
				t.Fatal(err)
			}
		}, wantIDs: []string{"a", "b"}, wantRequests: 2},
		{name: "an unregistered pool is gone", change: func() {
			if err := regA.Unregister(ctx); err != nil {
				t.Fatal(err)
			}
		}, wantIDs: []string{"b"}, wantRequests: 1},
	}
	var known map[string]string
	for _, st := range steps {
		if st.change != nil {
			st.change()
		}
		before := c.Requests()
		got, err := c.PoolIDs(ctx, known)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, st.name+": requests", c.Requests()-before, st.wantRequests)
		assertEqual(t, st.name+": ids", ids(got), st.wantIDs)
		known = got
	}
}
