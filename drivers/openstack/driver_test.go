package openstack

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ossim"
)

func TestQuota(t *testing.T) {
	tests := []struct {
		name      string
		limits    ossim.Limits
		unmanaged []string // flavors of servers not launched by the provider
		want      drivers.Resources
	}{
		{"limits alone", ossim.Limits{MaxInstances: 10, MaxCores: 20, MaxRAM: 51200}, nil,
			drivers.Resources{"instances": 10, "cores": 20, "ram": 51200}},
		{"minus unmanaged servers", ossim.Limits{MaxInstances: 10, MaxCores: 20, MaxRAM: 51200}, []string{"m1.medium", "m1.large"},
			drivers.Resources{"instances": 8, "cores": 14, "ram": 51200 - 4096 - 8192}},
		{"unlimited cores left out", ossim.Limits{MaxInstances: 5, MaxCores: -1, MaxRAM: 8192}, nil,
			drivers.Resources{"instances": 5, "ram": 8192}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ossim.Options{Limits: tc.limits})
			for i, f := range tc.unmanaged {
				e.sim.AddUnmanagedServer("other-"+string(rune('a'+i)), f)
			}
			d := e.driver()
			got, err := d.QuotaLimits(t.Context())
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestQuotaIgnoresOwnServers(t *testing.T) {
	e := newEnv(t, ossim.Options{Limits: ossim.Limits{MaxInstances: 10, MaxCores: 20, MaxRAM: 51200}})
	d := e.driver()
	e.create(t.Context(), d, drivers.CreateState{Request: request("0000000001", testPool, "jammy", 1)})
	e.clock.Advance(2 * time.Second)
	got, err := d.QuotaLimits(t.Context())
	require.NoError(t, err)
	assert.Equal(t, drivers.Resources{"instances": 10, "cores": 20, "ram": 51200}, got, "the provider's own servers are counted by the launcher")
}

func TestLabelQuota(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	d := e.driver()
	tests := []struct {
		pool, label string
		want        drivers.Resources
	}{
		{testPool, "jammy", drivers.Resources{"instances": 1, "cores": 1, "ram": 2048}},        // flavor-name m1.small
		{testPool, "jammy-volume", drivers.Resources{"instances": 1, "cores": 2, "ram": 4096}}, // min-ram 4000: m1.medium
		{"public", "jammy-public", drivers.Resources{"instances": 1, "cores": 1, "ram": 512}},  // m1.tiny
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			got, err := d.LabelQuota(t.Context(), tc.pool, tc.label)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestNoDoubleCreateOnLostReply makes the create reply arrive after the step gave up
// (the server exists, the step failed): the retried step adopts the server.
func TestNoDoubleCreateOnLostReply(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	d := e.driver()
	req := request("0000000042", testPool, "jammy", 1)
	e.sim.SetDelay("CreateServer", 2*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	st, err := d.AdvanceCreate(ctx, drivers.CreateState{Request: req})
	cancel()
	require.Error(t, err, "the create reply should have been lost")
	require.Equal(t, drivers.KindTransient, drivers.KindOf(err), "kind of %v", err)
	require.Empty(t, st.ExternalID)
	e.sim.SetDelay("CreateServer", 0)
	require.Equal(t, int64(1), e.sim.CreationsByNode()[req.NodeID], "the lost create made the server")

	done := e.create(t.Context(), d, st)
	assert.Equal(t, int64(1), e.sim.CreationsByNode()[req.NodeID], "servers created for the node")
	assert.True(t, done.Instance.Ready)
	assert.Equal(t, "1", done.Instance.Metadata[MetaAttempt])

	// A second attempt is a new server; repeating its first step adopts it.
	req2 := request(req.NodeID, testPool, "jammy", 2)
	a, err := d.AdvanceCreate(t.Context(), drivers.CreateState{Request: req2})
	require.NoError(t, err)
	b, err := d.AdvanceCreate(t.Context(), drivers.CreateState{Request: req2})
	require.NoError(t, err)
	assert.Equal(t, a.ExternalID, b.ExternalID)
	assert.NotEqual(t, done.ExternalID, a.ExternalID)
	assert.Equal(t, int64(2), e.sim.CreationsByNode()[req.NodeID])
}

func TestFloatingIP(t *testing.T) {
	tests := []struct {
		name, pool, label string
		wantFloating      bool
	}{
		{"private network gets a floating ip", testPool, "jammy", true},
		{"external network, auto-floating-ip off", "public", "jammy-public", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ossim.Options{})
			d := e.driver()
			ctx := t.Context()
			st := e.create(ctx, d, drivers.CreateState{Request: request("0000000007", tc.pool, tc.label, 1)})
			inst := st.Instance
			require.NotEmpty(t, inst.PublicIPv4)
			assert.Equal(t, inst.PublicIPv4, inst.InterfaceIP)
			ip := netip.MustParseAddr(inst.PublicIPv4)
			assert.True(t, netip.MustParsePrefix("172.24.4.0/22").Contains(ip), "public address %s", ip)
			stats := e.sim.Stats()
			if tc.wantFloating {
				assert.Equal(t, 1, stats.FloatingIPsAttached)
				assert.NotEmpty(t, inst.PrivateIPv4)
				// A repeated floating-ip step keeps the floating IP it made.
				again, err := d.AdvanceCreate(ctx, drivers.CreateState{Request: st.Request, Step: stepFloatingIP, ExternalID: st.ExternalID})
				require.NoError(t, err)
				assert.Equal(t, inst.PublicIPv4, again.Instance.PublicIPv4)
				assert.Equal(t, 1, e.sim.Stats().FloatingIPs)
			} else {
				assert.Zero(t, stats.FloatingIPs)
			}
			e.remove(ctx, d, drivers.DeleteState{ExternalID: st.ExternalID, NodeID: st.Request.NodeID})
			assert.Zero(t, e.sim.Stats().FloatingIPs, "floating ips left after the delete")
		})
	}
}

func TestBootFromVolume(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	d := e.driver()
	ctx := t.Context()
	st := e.create(ctx, d, drivers.CreateState{Request: request("0000000009", testPool, "jammy-volume", 1)})
	rs, err := d.ListResources(ctx)
	require.NoError(t, err)
	var vols []drivers.Resource
	for _, r := range rs {
		if r.Type == ResourceVolume {
			vols = append(vols, r)
		}
	}
	require.Len(t, vols, 1, "boot volume in %v", rs)
	assert.Equal(t, st.Request.NodeID, vols[0].Metadata[drivers.MetaNodeID])

	ds := e.remove(ctx, d, drivers.DeleteState{ExternalID: st.ExternalID, NodeID: st.Request.NodeID})
	assert.True(t, ds.Complete)
	rs, err = d.ListResources(ctx)
	require.NoError(t, err)
	assert.Empty(t, rs, "resources left after the delete")
	for status, n := range e.sim.Stats().Volumes {
		assert.Zero(t, n, "volumes %s", status)
	}
}

func TestNoValidHost(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	d := e.driver(WithCapacityBackoff(45 * time.Second))
	ctx := t.Context()
	req := request("0000000011", testPool, "jammy", 1)
	e.sim.InjectError("CreateServer", ossim.KindNoValidHost, 1)
	st, err := d.AdvanceCreate(ctx, drivers.CreateState{Request: req})
	require.Error(t, err)
	assert.Equal(t, drivers.KindCapacity, drivers.KindOf(err), "kind of %v", err)
	assert.Equal(t, 45*time.Second, drivers.RetryAfter(err))
	assert.Contains(t, err.Error(), "No valid host")
	assert.Empty(t, st.ExternalID)
	insts, err := d.ListInstances(ctx)
	require.NoError(t, err)
	for _, inst := range insts {
		assert.True(t, inst.Deleted, "the failed server %s is being deleted", inst.ExternalID)
	}
	e.clock.Advance(45 * time.Second)
	done := e.create(ctx, d, st)
	assert.True(t, done.Instance.Ready)
	assert.Equal(t, int64(2), e.sim.CreationsByNode()[req.NodeID])
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		label string
		want  drivers.Kind
	}{
		{"quota", func(e *env) { e.sim.InjectError("CreateServer", ossim.KindQuota, 1) }, "jammy", drivers.KindQuota},
		{"cores limit", func(e *env) { e.sim.SetLimits(ossim.Limits{MaxInstances: 10, MaxCores: 0, MaxRAM: 1000}) }, "jammy", drivers.KindQuota},
		{"rate limit", func(e *env) { e.sim.InjectError("CreateServer", ossim.KindRateLimit, 1) }, "jammy", drivers.KindTransient},
		{"internal error", func(e *env) { e.sim.InjectError("CreateServer", ossim.KindInternal, 1) }, "jammy", drivers.KindTransient},
		{"unavailable", func(e *env) { e.sim.InjectError("CreateServer", ossim.KindUnavailable, 1) }, "jammy", drivers.KindTransient},
		{"unknown label", func(*env) {}, "no-such-label", drivers.KindPermanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ossim.Options{})
			d := e.driver()
			tc.setup(e)
			_, err := d.AdvanceCreate(t.Context(), drivers.CreateState{Request: request("0000000013", testPool, tc.label, 1)})
			require.Error(t, err)
			assert.Equal(t, tc.want, drivers.KindOf(err), "kind of %v", err)
		})
	}
}

// TestSharedListing checks that booting servers are polled through one listing per
// poll interval, not one call per server.
func TestSharedListing(t *testing.T) {
	e := newEnv(t, ossim.Options{BootTime: 10 * time.Second})
	d := e.driver()
	ctx := t.Context()
	const nodes = 8
	states := make([]drivers.CreateState, nodes)
	for i := range states {
		st, err := d.AdvanceCreate(ctx, drivers.CreateState{Request: request("00000001"+string(rune('0'+i))+"0", testPool, "jammy", 1)})
		require.NoError(t, err)
		states[i] = st
	}
	before := e.sim.Calls("ListServers") + e.sim.Calls("GetServer")
	const rounds = 5
	for range rounds {
		var wg sync.WaitGroup
		for i := range states {
			wg.Go(func() {
				next, err := d.AdvanceCreate(ctx, states[i])
				assert.NoError(t, err)
				assert.False(t, next.Complete)
				states[i] = next
			})
		}
		wg.Wait()
		e.clock.Advance(time.Second)
	}
	calls := e.sim.Calls("ListServers") + e.sim.Calls("GetServer") - before
	assert.LessOrEqual(t, calls, int64(rounds), "server reads for %d servers over %d polls", nodes, rounds)
}

func TestLeakListing(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	d := e.driver()
	ctx := t.Context()
	st := e.create(ctx, d, drivers.CreateState{Request: request("0000000021", testPool, "jammy", 1)})
	e.sim.AddUnmanagedServer("not-ours", "m1.small")
	rs, err := d.ListResources(ctx)
	require.NoError(t, err)
	types := map[string]int{}
	for _, r := range rs {
		types[r.Type]++
		assert.Equal(t, st.Request.NodeID, r.Metadata[drivers.MetaNodeID], "resource %s %s", r.Type, r.ID)
		assert.Equal(t, testProvider, r.Metadata[drivers.MetaProviderName])
	}
	assert.Equal(t, map[string]int{ResourceServer: 1, ResourceFloatingIP: 1}, types)
	for _, r := range rs {
		require.NoError(t, d.DeleteResource(ctx, r))
	}
	e.clock.Advance(10 * time.Second)
	rs, err = d.ListResources(ctx)
	require.NoError(t, err)
	assert.Empty(t, rs)
	assert.Zero(t, e.sim.Stats().FloatingIPs)
}

func TestInstanceMetadataAndImage(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	d := e.driver()
	st := e.create(t.Context(), d, drivers.CreateState{Request: request("0000000031", testPool, "jammy", 1)})
	inst := st.Instance
	for k, v := range map[string]string{
		drivers.MetaNodeID: "0000000031", drivers.MetaPoolName: testPool, drivers.MetaProviderName: testProvider,
		MetaAttempt: "1", "team": "ci", "tenant": "tenant-a",
	} {
		assert.Equal(t, v, inst.Metadata[k], "metadata %s", k)
	}
	assert.Equal(t, "jammy", inst.ImageName)
	assert.Equal(t, "zuul", inst.Username)
	assert.Equal(t, "/usr/bin/python3", inst.PythonPath)
	assert.Equal(t, "nova", inst.AZ)
	assert.Equal(t, "RegionOne", inst.Region)
	assert.Equal(t, "ossim", inst.Cloud)
	assert.Equal(t, drivers.Resources{"instances": 1, "cores": 1, "ram": 2048}, inst.Quota)
}

func TestHostKeyChecking(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	d := e.driverOf(`
cloud: ossim
cloud-images: [{name: jammy, image-name: ubuntu-jammy}]
pools:
  - host-key-checking: false
    labels:
      - {cloud-image: jammy, min-ram: 512}
      - {cloud-image: jammy, min-ram: 512, host-key-checking: true}
  - labels:
      - {cloud-image: jammy, min-ram: 512}
`, []PoolSpec{{Name: "off", Labels: []string{"a", "b"}}, {Name: "on", Labels: []string{"c"}}})
	tests := []struct {
		pool, label string
		pool0, want bool
	}{
		{"off", "a", false, false},
		{"off", "b", false, true},
		{"on", "c", true, true},
		{"unknown", "x", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.pool+"/"+tc.label, func(t *testing.T) {
			assert.Equal(t, tc.pool0, d.HostKeyChecking(tc.pool))
			assert.Equal(t, tc.want, d.LabelHostKeyChecking(tc.pool, tc.label))
		})
	}
}

// TestEnvironmentAuth authenticates from the OS_* variables when there is no
// clouds.yaml, as the openstack tools do.
func TestEnvironmentAuth(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	t.Setenv("OS_CLIENT_CONFIG_FILE", t.TempDir()+"/no-clouds.yaml")
	t.Setenv("OS_CLOUD", "")
	t.Setenv("OS_AUTH_URL", e.url+"/identity/v3")
	t.Setenv("OS_USERNAME", "admin")
	t.Setenv("OS_PASSWORD", "secret")
	t.Setenv("OS_PROJECT_NAME", "envproject")
	t.Setenv("OS_USER_DOMAIN_NAME", "Default")
	t.Setenv("OS_PROJECT_DOMAIN_NAME", "Default")
	t.Setenv("OS_REGION_NAME", "RegionOne")
	cfg, err := DecodeConfig([]byte(testConfig))
	require.NoError(t, err)
	d, err := New(t.Context(), testProvider, cfg, testPools, WithClock(e.clock.Now))
	require.NoError(t, err)
	defer d.Close()
	_, err = d.QuotaLimits(t.Context())
	require.NoError(t, err)
	assert.Contains(t, e.sim.Projects(), "envproject")
}

func TestBadCloud(t *testing.T) {
	e := newEnv(t, ossim.Options{})
	cfg, err := DecodeConfig([]byte(strings.Replace(testConfig, "cloud: ossim", "cloud: elsewhere", 1)))
	require.NoError(t, err)
	_, err = New(t.Context(), testProvider, cfg, testPools, WithCloudsYAML(e.cloudsYAML()))
	require.Error(t, err)
	assert.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "kind of %v", err)
	assert.Contains(t, err.Error(), "elsewhere")
}
