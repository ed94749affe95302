package sim

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

var small = Flavor{Name: "s", Cores: 2, RAM: 2048}

func createInput(name, token string) CreateInstanceInput {
	return CreateInstanceInput{ClientToken: token, Name: name, Flavor: small, Image: "debian",
		Metadata: map[string]string{drivers.MetaNodeID: name}}
}

// outcomes runs a fixed sequence of calls against a cloud and records what each
// returned, errors and addresses included.
func outcomes(t *testing.T, cfg Config) []string {
	t.Helper()
	clock := newFakeClock()
	c, err := NewCloud(cfg, WithClock(clock.Now))
	require.NoError(t, err)
	ctx := context.Background()
	var out []string
	for i := range 60 {
		info, err := c.CreateInstance(ctx, createInput(fmt.Sprintf("n%d", i), fmt.Sprintf("t%d", i)))
		if err != nil {
			out = append(out, "create: "+err.Error())
		} else {
			out = append(out, fmt.Sprintf("create: %s %s %s %s %s %s", info.ID, info.AZ, info.HostID,
				info.PrivateIPv4, info.PublicIPv4, info.PublicIPv6))
		}
		_, err = c.DescribeInstance(ctx, info.ID)
		out = append(out, fmt.Sprintf("describe: %v", err))
		if i%3 == 0 {
			_, err = c.DeleteInstance(ctx, DeleteInstanceInput{ID: info.ID})
			out = append(out, fmt.Sprintf("delete: %v", err))
		}
		list, err := c.ListInstances(ctx)
		out = append(out, fmt.Sprintf("list: %d %v", len(list), err))
		clock.Advance(100 * time.Millisecond)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	cfg := Config{
		Seed:              11,
		ErrorRate:         ErrorRateConfig{Create: 0.2, Delete: 0.2, List: 0.2, Describe: 0.1},
		RateLimitRate:     0.1,
		CapacityErrorRate: 0.1,
		AZs:               []string{"a", "b", "c"},
	}
	first := outcomes(t, cfg)
	require.Equal(t, first, outcomes(t, cfg), "two runs with the same seed differ")

	other := cfg
	other.Seed = 12
	require.NotEqual(t, first, outcomes(t, other), "runs with different seeds are equal")

	// The configured rates show in the sequence: some calls of every kind fail.
	joined := fmt.Sprint(first)
	for _, code := range []ErrorCode{CodeThrottling, CodeInternalError, CodeInsufficientCapacity} {
		assert.Contains(t, joined, string(code))
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct {
		seq                   uint64
		private, public, ipv6 string
	}{
		{1, "192.0.2.1", "198.51.100.1", "2001:db8::1"},
		{254, "192.0.2.254", "198.51.100.254", "2001:db8::fe"},
		{255, "192.0.2.1", "203.0.113.1", "2001:db8::ff"},
		{508, "192.0.2.254", "203.0.113.254", "2001:db8::1fc"},
		{509, "192.0.2.1", "198.51.100.1", "2001:db8::1fd"},
		{1 << 40, "", "", "2001:db8::100:0:0"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.seq), func(t *testing.T) {
			private, public, v6 := addresses(tc.seq)
			for _, a := range []string{private, public, v6} {
				ip := netip.MustParseAddr(a)
				assert.True(t, documentation(ip), "%s is outside the documentation ranges", ip)
			}
			if tc.private != "" {
				assert.Equal(t, tc.private, private)
			}
			if tc.public != "" {
				assert.Equal(t, tc.public, public)
			}
			assert.Equal(t, tc.ipv6, v6)
		})
	}
}

// documentation reports whether ip is in a documentation range.
func documentation(ip netip.Addr) bool {
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
		if netip.MustParsePrefix(p).Contains(ip) && ip != netip.MustParsePrefix(p).Addr() {
			return true
		}
	}
	return false
}

func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  Config
		// call makes the call under test through the driver.
		call     func(env *testEnv) error
		wantKind drivers.Kind
		wantCode ErrorCode
	}{
		{
			name:     "rate limit on create",
			cfg:      Config{RateLimitRate: 1},
			call:     func(env *testEnv) error { return createStep(ctx, env, "0000000001") },
			wantKind: drivers.KindTransient, wantCode: CodeThrottling,
		},
		{
			name:     "rate limit on quota limits",
			cfg:      Config{RateLimitRate: 1},
			call:     func(env *testEnv) error { _, err := env.driver.QuotaLimits(ctx); return err },
			wantKind: drivers.KindTransient, wantCode: CodeThrottling,
		},
		{
			name:     "capacity",
			cfg:      Config{CapacityErrorRate: 1},
			call:     func(env *testEnv) error { return createStep(ctx, env, "0000000001") },
			wantKind: drivers.KindCapacity, wantCode: CodeInsufficientCapacity,
		},
		{
			name:     "create errors",
			cfg:      Config{ErrorRate: ErrorRateConfig{Create: 1}},
			call:     func(env *testEnv) error { return createStep(ctx, env, "0000000001") },
			wantKind: drivers.KindTransient, wantCode: CodeInternalError,
		},
		{
			name:     "list errors",
			cfg:      Config{ErrorRate: ErrorRateConfig{List: 1}},
			call:     func(env *testEnv) error { _, err := env.driver.ListInstances(ctx); return err },
			wantKind: drivers.KindTransient, wantCode: CodeInternalError,
		},
		{
			name: "delete errors",
			cfg:  Config{ErrorRate: ErrorRateConfig{Delete: 1}},
			call: func(env *testEnv) error {
				_, err := env.driver.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: "sim-1"})
				return err
			},
			wantKind: drivers.KindTransient, wantCode: CodeInternalError,
		},
		{
			name: "quota of instances",
			cfg:  Config{Quota: &QuotaConfig{Instances: ptr(int64(1))}},
			call: func(env *testEnv) error {
				if err := createStep(ctx, env, "0000000001"); err != nil {
					return fmt.Errorf("first create: %w", err)
				}
				return createStep(ctx, env, "0000000002")
			},
			wantKind: drivers.KindQuota, wantCode: CodeQuotaExceeded,
		},
		{
			name: "quota of cores",
			cfg:  Config{Quota: &QuotaConfig{Cores: ptr(int64(3))}},
			call: func(env *testEnv) error {
				if err := createStep(ctx, env, "0000000001"); err != nil {
					return fmt.Errorf("first create: %w", err)
				}
				return createStep(ctx, env, "0000000002")
			},
			wantKind: drivers.KindQuota, wantCode: CodeQuotaExceeded,
		},
		{
			name:     "quota of ram",
			cfg:      Config{Quota: &QuotaConfig{RAM: ptr(int64(1024))}},
			call:     func(env *testEnv) error { return createStep(ctx, env, "0000000001") },
			wantKind: drivers.KindQuota, wantCode: CodeQuotaExceeded,
		},
	}
	for _, tc := range tests {
		for _, overHTTP := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/http=%v", tc.name, overHTTP), func(t *testing.T) {
				cfg := testConfig()
				cfg.RateLimitRate, cfg.CapacityErrorRate, cfg.ErrorRate, cfg.Quota =
					tc.cfg.RateLimitRate, tc.cfg.CapacityErrorRate, tc.cfg.ErrorRate, tc.cfg.Quota
				env := newEnv(t, cfg, overHTTP)
				err := tc.call(env)
				require.Error(t, err)
				assert.Equal(t, tc.wantKind, drivers.KindOf(err), "kind of %v", err)
				assert.True(t, isCode(err, tc.wantCode), "code of %v", err)
				assert.Equal(t, int64(1), env.cloud.Stats()["errors."+string(tc.wantCode)])
			})
		}
	}
}

// createStep runs the first create step of a node of pool main, label small.
func createStep(ctx context.Context, env *testEnv, nodeID string) error {
	_, err := env.driver.AdvanceCreate(ctx, drivers.CreateState{Request: drivers.CreateRequest{
		NodeID: nodeID, Attempt: 1, Hostname: "np" + nodeID, Pool: "main", Label: "small",
		Metadata: map[string]string{drivers.MetaNodeID: nodeID},
	}})
	return err
}

func TestQuotaFreedOnlyAfterDeletion(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	cfg.Quota = &QuotaConfig{Instances: ptr(int64(1))}
	env := newEnv(t, cfg, false)
	require.NoError(t, createStep(ctx, env, "0000000001"))

	del, err := env.driver.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: "sim-1", NodeID: "0000000001"})
	require.NoError(t, err)
	require.False(t, del.Complete)
	require.Equal(t, string(StepDeleting), del.Step)
	require.Equal(t, 500*time.Millisecond, del.Wait)

	err = createStep(ctx, env, "0000000002")
	require.Equal(t, drivers.KindQuota, drivers.KindOf(err), "a deleting instance still uses quota: %v", err)

	env.clock.Advance(del.Wait)
	del, err = env.driver.AdvanceDelete(ctx, del)
	require.NoError(t, err)
	require.True(t, del.Complete)
	require.NoError(t, createStep(ctx, env, "0000000002"))
}

func TestCreateSteps(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		bootSteps []float64
		// want lists the step and wait after each call until completion.
		want []string
	}{
		{"default", nil, []string{"submit creating instance 100ms", "creating instance 400ms", "complete 0s"}},
		{"three steps", []float64{1, 2, 3}, []string{
			"submit creating instance 1s", "creating instance 2s", "booting instance 3s", "complete 0s",
		}},
		{"instant", []float64{}, []string{"complete 0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.BootSteps = tc.bootSteps
			env := newEnv(t, cfg, false)
			st := drivers.CreateState{Request: drivers.CreateRequest{
				NodeID: "0000000001", Attempt: 1, Hostname: "np0000000001", Pool: "main", Label: "large",
				Metadata: map[string]string{drivers.MetaNodeID: "0000000001"},
			}}
			var got []string
			for !st.Complete && len(got) < 10 {
				var err error
				st, err = env.driver.AdvanceCreate(ctx, st)
				require.NoError(t, err)
				got = append(got, fmt.Sprintf("%s %s", st.Step, st.Wait))
				env.clock.Advance(st.Wait)
			}
			require.Equal(t, tc.want, got)
			inst := st.Instance
			assert.Equal(t, "sim-1", inst.ExternalID)
			assert.Equal(t, drivers.Resources{"instances": 1, "cores": 8, "ram": 16384}, inst.Quota)
			assert.Equal(t, "zuul", inst.Username)
			assert.Equal(t, "/usr/bin/python3", inst.PythonPath)
			assert.Equal(t, "ssh", inst.ConnectionType)
			assert.Equal(t, 22, inst.ConnectionPort)
			assert.Equal(t, "debian", inst.ImageName)
			assert.Equal(t, DefaultRegion, inst.Region)
			assert.Contains(t, DefaultAZs, inst.AZ)
			assert.Equal(t, "198.51.100.1", inst.InterfaceIP)
			assert.Equal(t, "192.0.2.1", inst.PrivateIPv4)
			assert.Equal(t, "2001:db8::1", inst.PublicIPv6)
		})
	}
}

func TestClientToken(t *testing.T) {
	ctx := context.Background()
	for _, overHTTP := range []bool{false, true} {
		t.Run(fmt.Sprintf("http=%v", overHTTP), func(t *testing.T) {
			env := newEnv(t, testConfig(), overHTTP)
			api := env.driver.API()
			first, err := api.CreateInstance(ctx, createInput("a", "tok"))
			require.NoError(t, err)
			again, err := api.CreateInstance(ctx, createInput("a", "tok"))
			require.NoError(t, err)
			require.Equal(t, first.ID, again.ID)

			other := createInput("b", "tok")
			_, err = api.CreateInstance(ctx, other)
			require.True(t, isCode(err, CodeIdempotentParameterMismatch), "reusing a token for another name: %v", err)
			require.Equal(t, drivers.KindPermanent, drivers.KindOf(classify(err)))

			_, err = api.DeleteInstance(ctx, DeleteInstanceInput{ID: first.ID})
			require.NoError(t, err)
			env.clock.Advance(time.Second)
			gone, err := api.CreateInstance(ctx, createInput("a", "tok"))
			require.NoError(t, err)
			require.Equal(t, StatusDeleted, gone.Status, "a create with the token of a deleted instance")
			require.Equal(t, first.ID, gone.ID)
			require.Equal(t, int64(1), env.cloud.Stats()["instances.created"])
		})
	}
}

func TestCreateOfDeletedAttempt(t *testing.T) {
	// A create step repeated after the attempt's instance was deleted reports the
	// instance as not found instead of starting another one.
	ctx := context.Background()
	env := newEnv(t, testConfig(), false)
	require.NoError(t, createStep(ctx, env, "0000000001"))
	_, err := env.driver.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: "sim-1"})
	require.NoError(t, err)
	err = createStep(ctx, env, "0000000001")
	require.ErrorIs(t, err, drivers.ErrNotFound)
	env.clock.Advance(time.Second)
	err = createStep(ctx, env, "0000000001")
	require.ErrorIs(t, err, drivers.ErrNotFound)
	require.Equal(t, int64(1), env.cloud.Stats()["instances.created"])
}

func TestDeleteGuard(t *testing.T) {
	// A delete state naming another node does not delete the instance.
	ctx := context.Background()
	env := newEnv(t, testConfig(), true)
	require.NoError(t, createStep(ctx, env, "0000000001"))
	del, err := env.driver.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: "sim-1", NodeID: "0000000002"})
	require.NoError(t, err)
	require.True(t, del.Complete, "the instance of another node counts as gone")
	insts, err := env.driver.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, insts, 1)
	require.False(t, insts[0].Deleted)

	require.NoError(t, env.driver.DeleteResource(ctx, drivers.Resource{
		Type: ResourceTypeInstance, ID: "sim-1", Metadata: map[string]string{drivers.MetaNodeID: "0000000003"},
	}))
	require.Equal(t, int64(0), env.cloud.Stats()["instances.deleting"])
}

func TestInvalidRequests(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, testConfig(), false)
	tests := []struct {
		name string
		in   CreateInstanceInput
	}{
		{"no name", CreateInstanceInput{Flavor: small, Image: "debian"}},
		{"no image", CreateInstanceInput{Name: "a", Flavor: small}},
		{"negative flavor", CreateInstanceInput{Name: "a", Image: "debian", Flavor: Flavor{Name: "x", Cores: -1}}},
		{"unknown zone", CreateInstanceInput{Name: "a", Image: "debian", Flavor: small, AZ: "nowhere"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.cloud.CreateInstance(ctx, tc.in)
			require.True(t, isCode(err, CodeInvalidParameter), "got %v", err)
		})
	}

	_, err := env.driver.AdvanceCreate(ctx, drivers.CreateState{Request: drivers.CreateRequest{
		NodeID: "0000000001", Hostname: "np0000000001", Pool: "main", Label: "small", AZ: "nowhere",
	}})
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "unknown zone: %v", err)
	_, err = env.driver.AdvanceCreate(ctx, drivers.CreateState{Request: drivers.CreateRequest{
		Hostname: "np", Pool: "main", Label: "small",
	}})
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "no node id: %v", err)
	_, err = env.driver.AdvanceCreate(ctx, drivers.CreateState{Step: "bogus", Request: drivers.CreateRequest{NodeID: "1"}})
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "unknown step: %v", err)
	_, err = env.driver.AdvanceDelete(ctx, drivers.DeleteState{Step: "bogus", ExternalID: "sim-1"})
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "unknown delete step: %v", err)
	err = env.driver.DeleteResource(ctx, drivers.Resource{Type: "volume", ID: "v-1"})
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err), "unknown resource type: %v", err)
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, testConfig(), true)
	require.NoError(t, createStep(ctx, env, "0000000001"))
	require.NoError(t, createStep(ctx, env, "0000000001")) // repeated step, same instance
	_, err := env.driver.API().CreateInstance(ctx, createInput("0000000001", "other-attempt"))
	require.NoError(t, err)
	require.NoError(t, createStep(ctx, env, "0000000002"))
	_, err = env.driver.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: "sim-3"})
	require.NoError(t, err)
	_, err = env.driver.ListInstances(ctx)
	require.NoError(t, err)
	_, err = env.driver.QuotaLimits(ctx)
	require.NoError(t, err)

	want := map[string]int64{
		"create": 4, "describe": 0, "delete": 1, "list": 1, "limits": 1,
		"instances": 3, "instances.building": 2, "instances.active": 0, "instances.deleting": 1,
		"instances.created": 3, "instances.deleted": 0, "instances.duplicate_nodes": 1, "lost_replies": 0,
		"instances.nodes_created": 2, "instances.nodes_created_twice": 1, "instances.max_created_per_node": 2,
	}
	stats, err := env.client.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, want, stats)
	require.Equal(t, map[string]int64{"create": 3, "delete": 1, "list": 1, "limits": 1}, env.driver.Stats())

	env.clock.Advance(3 * time.Second)
	stats = env.cloud.Stats()
	assert.Equal(t, int64(1), stats["instances.deleted"])
	assert.Equal(t, int64(2), stats["instances.active"])

	insts, err := env.client.Instances(ctx)
	require.NoError(t, err)
	require.Len(t, insts, 2)
	assert.Equal(t, "0000000001", insts[0].Metadata[drivers.MetaNodeID])
	assert.Equal(t, "0000000001", insts[1].Metadata[drivers.MetaNodeID])
	// The operator's views are not calls.
	assert.Equal(t, int64(1), env.cloud.Stats()["list"])
}

// Creations are counted per node id over the cloud's life, deleted instances and
// idempotent repeats apart.
func TestCreationsByNode(t *testing.T) {
	c, err := NewCloud(Config{DeleteLatency: 0})
	require.NoError(t, err)
	ctx := context.Background()
	first, err := c.CreateInstance(ctx, createInput("a", "tok-a"))
	require.NoError(t, err)
	_, err = c.CreateInstance(ctx, createInput("a", "tok-a")) // an idempotent repeat
	require.NoError(t, err)
	_, err = c.CreateInstance(ctx, createInput("b", "tok-b"))
	require.NoError(t, err)
	_, err = c.DeleteInstance(ctx, DeleteInstanceInput{ID: first.ID})
	require.NoError(t, err)
	_, err = c.CreateInstance(ctx, createInput("a", "tok-a2")) // a second instance for node a
	require.NoError(t, err)

	assert.Equal(t, map[string]int64{"a": 2, "b": 1}, c.CreationsByNode())
	st := c.Stats()
	assert.EqualValues(t, 2, st["instances.nodes_created"])
	assert.EqualValues(t, 1, st["instances.nodes_created_twice"])
	assert.EqualValues(t, 2, st["instances.max_created_per_node"])
	assert.EqualValues(t, 0, st["instances.duplicate_nodes"], "never two live instances at once")
	assert.Equal(t, map[string]int64{"a": 1, "b": 1}, c.PeakLiveByNode(), "node a had one instance at a time")
	_, err = c.CreateInstance(ctx, createInput("b", "tok-b2")) // b's first instance still lives
	require.NoError(t, err)
	assert.EqualValues(t, 2, c.PeakLiveByNode()["b"], "two instances of node b at once")
}

// Faults can be changed while the cloud runs, and turned off again.
func TestSetFaults(t *testing.T) {
	c, err := NewCloud(Config{Seed: 3})
	require.NoError(t, err)
	ctx := context.Background()
	require.Error(t, c.SetFaults(Faults{RateLimitRate: 2}), "a rate above 1 is refused")
	require.NoError(t, c.SetFaults(Faults{RateLimitRate: 1}))
	assert.Equal(t, Faults{RateLimitRate: 1}, c.Faults())
	_, err = c.ListInstances(ctx)
	assert.True(t, isCode(err, CodeThrottling), "every call throttled: %v", err)

	require.NoError(t, c.SetFaults(Faults{CapacityErrorRate: 1, ErrorRate: FaultRates{Describe: 1}}))
	_, err = c.CreateInstance(ctx, createInput("x", "t"))
	assert.True(t, isCode(err, CodeInsufficientCapacity), "%v", err)
	_, err = c.DescribeInstance(ctx, "sim-1")
	assert.True(t, isCode(err, CodeInternalError), "%v", err)

	require.NoError(t, c.SetFaults(Faults{APILatency: 0.05}))
	start := time.Now()
	_, err = c.ListInstances(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "slow calls")

	require.NoError(t, c.SetFaults(Faults{}))
	_, err = c.CreateInstance(ctx, createInput("x", "t"))
	require.NoError(t, err)
}
