package static

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/driverstest"
	"github.com/nodepool-temporal/nodepool-temporal/nodescan"
	"github.com/nodepool-temporal/nodepool-temporal/nodescan/nodescantest"
)

func ptr[T any](v T) *T { return &v }

// The driver passes the conformance suite, with hosts that are SSH servers on
// loopback.
func TestConformance(t *testing.T) {
	a := nodescantest.NewServer(t, nodescantest.Options{})
	b := nodescantest.NewServer(t, nodescantest.Options{Host: "127.0.0.2", KeyTypes: []string{nodescantest.Ed25519}})
	var current *Driver
	driverstest.Run(t, driverstest.Harness{
		New: func(t *testing.T) drivers.Driver {
			d, err := New("static", Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
				{Name: a.Host, Labels: Labels{"static-label"}, ConnectionPort: ptr(a.Port), MaxParallelJobs: ptr(3)},
				{Name: b.Host, Labels: Labels{"static-label", "other"}, ConnectionPort: ptr(b.Port)},
			}}}}, WithoutPriorClaims(), WithCheckInterval(time.Second))
			require.NoError(t, err)
			// A fresh driver checks its hosts first; the suite's steps do not wait
			// for that.
			waitStatus(t, d, a.Host, "up")
			waitStatus(t, d, b.Host, "up")
			current = d
			return d
		},
		Pool:              "main",
		Label:             "static-label",
		UnknownExternalID: "unknown.example.org#3",
		InjectCapacityError: func(t *testing.T) {
			current.mu.Lock()
			defer current.mu.Unlock()
			current.failNext = drivers.CapacityRetryAfter(100*time.Millisecond, "injected: no slot")
		},
	})
}

// testDriver builds a driver that checks often, closed when the test ends.
func testDriver(t *testing.T, cfg Config, opts ...Option) *Driver {
	t.Helper()
	opts = append([]Option{WithoutPriorClaims(), WithCheckInterval(100 * time.Millisecond)}, opts...)
	d, err := New("static", cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// create runs a create state machine until it completes or fails.
func create(t *testing.T, d *Driver, nodeID string, attempt int, pool, label string) (drivers.CreateState, error) {
	t.Helper()
	st := drivers.CreateState{Request: drivers.CreateRequest{
		NodeID: nodeID, Attempt: attempt, Pool: pool, Label: label,
		Metadata: map[string]string{
			drivers.MetaProviderName: "static", drivers.MetaPoolName: pool, drivers.MetaNodeID: nodeID,
		},
	}}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		next, err := d.AdvanceCreate(t.Context(), st)
		if err != nil || next.Complete {
			return next, err
		}
		require.Equal(t, string(StepWaitingForHost), next.Step)
		require.Empty(t, next.ExternalID, "an incomplete create holds a slot")
		st = next
		time.Sleep(next.Wait)
	}
	t.Fatalf("create of node %s did not end", nodeID)
	return st, nil
}

// del runs a delete state machine of a node's slot.
func del(t *testing.T, d *Driver, nodeID, externalID string) {
	t.Helper()
	st, err := d.AdvanceDelete(t.Context(), drivers.DeleteState{NodeID: nodeID, ExternalID: externalID})
	require.NoError(t, err)
	require.True(t, st.Complete)
}

// hostStatus waits until the host has the status.
func waitStatus(t *testing.T, d *Driver, name, status string) HostStatus {
	t.Helper()
	var last HostStatus
	require.Eventually(t, func() bool {
		for _, h := range d.Hosts() {
			if h.Name == name {
				last = h
				return h.Status == status
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "host %s never became %s", name, status)
	return last
}

func listedIDs(t *testing.T, d *Driver) []string {
	t.Helper()
	insts, err := d.ListInstances(t.Context())
	require.NoError(t, err)
	var ids []string
	for _, i := range insts {
		ids = append(ids, i.ExternalID)
	}
	return ids
}

func instances(t *testing.T, d *Driver) int64 {
	t.Helper()
	q, err := d.QuotaLimits(t.Context())
	require.NoError(t, err)
	return q[drivers.ResourceInstances]
}

func TestSlots(t *testing.T) {
	a := nodescantest.NewServer(t, nodescantest.Options{})
	b := nodescantest.NewServer(t, nodescantest.Options{Host: "127.0.0.2"})
	cfg := Config{Pools: []PoolConfig{
		{Name: "main", Nodes: []NodeConfig{
			{Name: a.Host, Labels: Labels{"small", "big"}, ConnectionPort: ptr(a.Port), MaxParallelJobs: ptr(2)},
			{Name: b.Host, Labels: Labels{"small"}, ConnectionPort: ptr(b.Port)},
		}},
		{Name: "other", Nodes: []NodeConfig{}},
	}}

	tests := []struct {
		name string
		run  func(t *testing.T, d *Driver)
	}{
		{"jobs spread over the hosts, then wait for a slot", func(t *testing.T, d *Driver) {
			var ids []string
			for _, n := range []string{"0000000001", "0000000002", "0000000003"} {
				st, err := create(t, d, n, 1, "main", "small")
				require.NoError(t, err)
				ids = append(ids, st.ExternalID)
			}
			assert.Equal(t, []string{"127.0.0.1#0", "127.0.0.2", "127.0.0.1#1"}, ids)
			_, err := create(t, d, "0000000004", 1, "main", "small")
			require.Error(t, err)
			assert.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
			assert.Equal(t, DefaultRetryAfter, drivers.RetryAfter(err))
			assert.Contains(t, err.Error(), "in use")

			// Deleting a node frees its slot for the next one.
			del(t, d, "0000000002", "127.0.0.2")
			st, err := create(t, d, "0000000004", 1, "main", "small")
			require.NoError(t, err)
			assert.Equal(t, "127.0.0.2", st.ExternalID)
		}},
		{"a label of one host only", func(t *testing.T, d *Driver) {
			st, err := create(t, d, "0000000001", 1, "main", "big")
			require.NoError(t, err)
			assert.Equal(t, "127.0.0.1#0", st.ExternalID)
			// The other slot of the host serves the other label.
			st, err = create(t, d, "0000000002", 1, "main", "small")
			require.NoError(t, err)
			assert.Equal(t, "127.0.0.2", st.ExternalID)
			st, err = create(t, d, "0000000003", 1, "main", "small")
			require.NoError(t, err)
			assert.Equal(t, "127.0.0.1#1", st.ExternalID)
			_, err = create(t, d, "0000000004", 1, "main", "big")
			assert.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
		}},
		{"repeated steps and attempts", func(t *testing.T, d *Driver) {
			first, err := create(t, d, "0000000001", 1, "main", "small")
			require.NoError(t, err)
			again, err := create(t, d, "0000000001", 1, "main", "small")
			require.NoError(t, err)
			assert.Equal(t, first.ExternalID, again.ExternalID, "a repeated create claimed another slot")
			second, err := create(t, d, "0000000001", 2, "main", "small")
			require.NoError(t, err)
			assert.NotEqual(t, first.ExternalID, second.ExternalID, "a second attempt got the first attempt's slot")
			assert.Len(t, listedIDs(t, d), 2)
		}},
		{"a late deletion of a slot handed out again", func(t *testing.T, d *Driver) {
			st, err := create(t, d, "0000000001", 1, "main", "big")
			require.NoError(t, err)
			del(t, d, "0000000001", st.ExternalID)
			again, err := create(t, d, "0000000002", 1, "main", "big")
			require.NoError(t, err)
			require.Equal(t, st.ExternalID, again.ExternalID)
			// The first node's deletion, repeated, leaves the second node's slot alone.
			del(t, d, "0000000001", st.ExternalID)
			assert.Equal(t, []string{st.ExternalID}, listedIDs(t, d))
			// So does a leak deletion of the first node's listing.
			require.NoError(t, d.DeleteResource(t.Context(), drivers.Resource{Type: ResourceTypeSlot, ID: st.ExternalID,
				Metadata: map[string]string{drivers.MetaNodeID: "0000000001"}}))
			assert.Equal(t, []string{st.ExternalID}, listedIDs(t, d))
		}},
		{"unknown pool and label", func(t *testing.T, d *Driver) {
			for _, pl := range [][2]string{{"nope", "small"}, {"main", "nope"}, {"other", "small"}} {
				_, err := create(t, d, "0000000001", 1, pl[0], pl[1])
				assert.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "%v", err)
				_, err = d.LabelQuota(t.Context(), pl[0], pl[1])
				assert.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "%v", err)
			}
			q, err := d.LabelQuota(t.Context(), "main", "big")
			require.NoError(t, err)
			assert.Equal(t, drivers.Resources{drivers.ResourceInstances: 1}, q)
		}},
		{"instance fields", func(t *testing.T, d *Driver) {
			st, err := create(t, d, "0000000001", 1, "main", "big")
			require.NoError(t, err)
			inst := *st.Instance
			assert.Equal(t, "127.0.0.1", inst.InterfaceIP)
			assert.Equal(t, "127.0.0.1", inst.PublicIPv4)
			assert.Equal(t, "zuul", inst.Username)
			assert.Equal(t, "auto", inst.PythonPath)
			assert.Equal(t, "ssh", inst.ConnectionType)
			assert.Equal(t, a.Port, inst.ConnectionPort)
			assert.Equal(t, a.Keys, inst.HostKeys)
			assert.True(t, inst.Ready)
			assert.Equal(t, "0000000001", inst.Metadata[drivers.MetaNodeID])
			name, slot, ok := d.ParseExternalID(inst.ExternalID)
			assert.True(t, ok)
			assert.Equal(t, "127.0.0.1", name)
			assert.Equal(t, 0, slot)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDriver(t, cfg)
			waitStatus(t, d, a.Host, "up")
			waitStatus(t, d, b.Host, "up")
			assert.Equal(t, int64(3), instances(t, d))
			tc.run(t, d)
		})
	}
}

func TestHostChecks(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a host that stops answering is taken out and comes back", func(t *testing.T) {
			s := nodescantest.NewServer(t, nodescantest.Options{})
			d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
				{Name: s.Host, Labels: Labels{"l"}, ConnectionPort: ptr(s.Port), MaxParallelJobs: ptr(2), Timeout: ptr(1)},
			}}}})
			waitStatus(t, d, s.Host, "up")
			held, err := create(t, d, "0000000001", 1, "main", "l")
			require.NoError(t, err)
			assert.Equal(t, int64(2), instances(t, d))

			s.Stop()
			h := waitStatus(t, d, s.Host, "down")
			assert.Contains(t, h.Reason, "no answer")
			assert.Equal(t, int64(0), instances(t, d))
			_, err = create(t, d, "0000000002", 1, "main", "l")
			require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
			assert.Contains(t, err.Error(), "answers")
			assert.Equal(t, []string{held.ExternalID}, listedIDs(t, d), "the claimed slot stays claimed")

			require.NoError(t, s.Start())
			waitStatus(t, d, s.Host, "up")
			assert.Equal(t, int64(2), instances(t, d))
			st, err := create(t, d, "0000000002", 1, "main", "l")
			require.NoError(t, err)
			assert.Equal(t, "127.0.0.1#1", st.ExternalID)
		}},
		{"a host is checked again before a slot is handed out", func(t *testing.T) {
			s := nodescantest.NewServer(t, nodescantest.Options{})
			d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
				{Name: s.Host, Labels: Labels{"l"}, ConnectionPort: ptr(s.Port), Timeout: ptr(1)},
			}}}}, WithCheckInterval(time.Hour), WithHandoutCheckAge(time.Nanosecond))
			waitStatus(t, d, s.Host, "up")
			s.Stop()
			// The periodic check is an hour away: only the check at handout sees it.
			_, err := create(t, d, "0000000001", 1, "main", "l")
			require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
			assert.Equal(t, "down", d.Hosts()[0].Status)
		}},
		{"a configured host key must be among the scanned ones", func(t *testing.T) {
			s := nodescantest.NewServer(t, nodescantest.Options{KeyTypes: []string{nodescantest.Ed25519}})
			bad := nodescantest.NewServer(t, nodescantest.Options{Host: "127.0.0.3", KeyTypes: []string{nodescantest.Ed25519}})
			ecdsa := nodescantest.NewServer(t, nodescantest.Options{Host: "127.0.0.2", KeyTypes: []string{nodescantest.ECDSA256}})
			d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
				{Name: s.Host, Labels: Labels{"good"}, ConnectionPort: ptr(s.Port), HostKey: StringList{s.Keys[0] + " root@host"}},
				{Name: bad.Host, Labels: Labels{"bad"}, ConnectionPort: ptr(bad.Port), HostKey: StringList{ecdsa.Keys[0]}},
			}}}})
			waitStatus(t, d, s.Host, "up")
			st, err := create(t, d, "0000000001", 1, "main", "good")
			require.NoError(t, err)
			assert.Equal(t, s.Keys, st.Instance.HostKeys)
			// The bad host's key is not the configured one.
			h := waitStatus(t, d, bad.Host, "down")
			assert.Contains(t, h.Reason, "host key mismatch")
			_, err = create(t, d, "0000000002", 1, "main", "bad")
			assert.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
		}},
		{"without host-key-checking the host is not contacted", func(t *testing.T) {
			host, port := nodescantest.ClosedPort(t)
			d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
				{Name: host, Labels: Labels{"l"}, ConnectionPort: ptr(port), HostKeyChecking: ptr(false),
					HostKey: StringList{"ssh-ed25519 AAAAfake"}, Username: "root", PythonPath: "/usr/bin/python3",
					ShellType: "csh"},
			}}}})
			st, err := create(t, d, "0000000001", 1, "main", "l")
			require.NoError(t, err)
			inst := st.Instance
			assert.Equal(t, []string{"ssh-ed25519 AAAAfake"}, inst.HostKeys)
			assert.Equal(t, "root", inst.Username)
			assert.Equal(t, "/usr/bin/python3", inst.PythonPath)
			assert.Equal(t, "csh", inst.ShellType)
		}},
		{"winrm: a port check, no keys", func(t *testing.T) {
			host, port := nodescantest.Silent(t)
			d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
				{Name: host, Labels: Labels{"win"}, ConnectionPort: ptr(port), ConnectionType: "winrm", Timeout: ptr(1)},
			}}}})
			st, err := create(t, d, "0000000001", 1, "main", "win")
			require.NoError(t, err)
			assert.Equal(t, "winrm", st.Instance.ConnectionType)
			assert.Equal(t, port, st.Instance.ConnectionPort)
			assert.Equal(t, []string{}, st.Instance.HostKeys)
		}},
		{"a host whose name does not resolve is down", func(t *testing.T) {
			resolver := withResolver(func(_ context.Context, name string) ([]netip.Addr, error) {
				if name == "static.example.org" {
					return []netip.Addr{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("192.0.2.7")}, nil
				}
				return nil, errors.New("no such host")
			})
			d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
				{Name: "gone.example.org", Labels: Labels{"l"}, HostKeyChecking: ptr(false)},
				{Name: "static.example.org", Labels: Labels{"m"}, HostKeyChecking: ptr(false)},
			}}}}, resolver)
			h := waitStatus(t, d, "gone.example.org", "down")
			assert.Contains(t, h.Reason, "no such host")
			_, err := create(t, d, "0000000001", 1, "main", "l")
			assert.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
			st, err := create(t, d, "0000000002", 1, "main", "m")
			require.NoError(t, err)
			assert.Equal(t, "static.example.org", st.Instance.InterfaceIP)
			assert.Equal(t, "192.0.2.7", st.Instance.PublicIPv4)
			assert.Equal(t, "2001:db8::7", st.Instance.PublicIPv6)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestRestoreClaims(t *testing.T) {
	s := nodescantest.NewServer(t, nodescantest.Options{})
	cfg := Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
		{Name: s.Host, Labels: Labels{"l"}, ConnectionPort: ptr(s.Port), MaxParallelJobs: ptr(3)},
	}}}}
	d, err := New("static", cfg, WithCheckInterval(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	waitStatus(t, d, s.Host, "up")

	// Until the claims of existing nodes are known, nothing is handed out.
	_, err = create(t, d, "0000000009", 1, "main", "l")
	require.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "%v", err)
	assert.Equal(t, RestoreRetryAfter, drivers.RetryAfter(err))

	err = d.RestoreClaims([]Claim{
		{ExternalID: "127.0.0.1#0", NodeID: "0000000001", Label: "l"},
		{ExternalID: "127.0.0.1#0", NodeID: "0000000002"},
		{ExternalID: "127.0.0.1#7", NodeID: "0000000003"},
		{ExternalID: "elsewhere.example.org", NodeID: "0000000004"},
	})
	require.Error(t, err)
	for _, want := range []string{"held by node 0000000001", `no slot "127.0.0.1#7"`, `no slot "elsewhere.example.org"`} {
		assert.Contains(t, err.Error(), want)
	}
	rs, err := d.ListResources(t.Context())
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, drivers.Resource{Type: ResourceTypeSlot, ID: "127.0.0.1#0", Metadata: map[string]string{
		drivers.MetaProviderName: "static", drivers.MetaPoolName: "main", drivers.MetaNodeID: "0000000001",
	}}, rs[0])

	st, err := create(t, d, "0000000009", 1, "main", "l")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1#1", st.ExternalID)
	// A launch of the restored node that is retried finds its slot.
	st, err = create(t, d, "0000000001", 1, "main", "l")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1#0", st.ExternalID)
	// The leak sweep frees a restored claim like any other.
	require.NoError(t, d.DeleteResource(t.Context(), rs[0]))
	assert.Equal(t, []string{"127.0.0.1#1"}, listedIDs(t, d))
}

func TestExternalIDs(t *testing.T) {
	d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
		{Name: "one.example.org", Labels: Labels{"l"}, HostKeyChecking: ptr(false)},
		{Name: "two.example.org", Labels: Labels{"l"}, HostKeyChecking: ptr(false), MaxParallelJobs: ptr(2)},
	}}}}, withResolver(func(context.Context, string) ([]netip.Addr, error) { return nil, nil }))
	tests := []struct {
		id   string
		host string
		slot int
		ok   bool
	}{
		{"one.example.org", "one.example.org", 0, true},
		{"one.example.org#0", "one.example.org", 0, true},
		{"one.example.org#1", "", 0, false},
		{"two.example.org", "two.example.org", 0, true},
		{"two.example.org#1", "two.example.org", 1, true},
		{"two.example.org#2", "", 0, false},
		{"two.example.org#x", "", 0, false},
		{"two.example.org#-1", "", 0, false},
		{"three.example.org", "", 0, false},
		{"", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			host, slot, ok := d.ParseExternalID(tc.id)
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				assert.Equal(t, tc.host, host)
				assert.Equal(t, tc.slot, slot)
			}
		})
	}
}

// The scan of a host uses the node's connection settings and timeout.
func TestScanTarget(t *testing.T) {
	targets := make(chan nodescan.Target, 10)
	d := testDriver(t, Config{Pools: []PoolConfig{{Name: "main", Nodes: []NodeConfig{
		{Name: "192.0.2.1", Labels: Labels{"l"}, ConnectionPort: ptr(2222), ConnectionType: "network_cli", Timeout: ptr(13)},
	}}}}, WithCheckInterval(time.Hour), withScanner(func(_ context.Context, tg nodescan.Target) (nodescan.Result, error) {
		targets <- tg
		return nodescan.Result{Keys: []string{"ssh-ed25519 AAAAkey"}}, nil
	}))
	select {
	case tg := <-targets:
		assert.Equal(t, nodescan.Target{Host: "192.0.2.1", Port: 2222, ConnectionType: "network_cli",
			Timeout: 13 * time.Second, HostKeys: true}, tg)
	case <-time.After(5 * time.Second):
		t.Fatal("the host was not scanned")
	}
	h := waitStatus(t, d, "192.0.2.1", "up")
	assert.Equal(t, []string{"ssh-ed25519 AAAAkey"}, h.HostKeys)
	assert.Empty(t, h.Reason)
}

// withResolver replaces the name resolution of the driver's checks.
func withResolver(f func(context.Context, string) ([]netip.Addr, error)) Option {
	return func(d *Driver) { d.resolve = f }
}

// withScanner replaces the driver's node scans.
func withScanner(f func(context.Context, nodescan.Target) (nodescan.Result, error)) Option {
	return func(d *Driver) { d.scan = f }
}
