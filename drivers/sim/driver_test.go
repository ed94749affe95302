package sim

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/driverstest"
)

// fakeClock is a clock shared by the cloud and the driver, moved by the test.
type fakeClock = testenv.ManualClock

func newFakeClock() *fakeClock {
	return testenv.NewManualClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

func ptr[T any](v T) *T { return &v }

// testConfig returns a provider configuration with slow enough boots that every
// create step is seen.
func testConfig() Config {
	return Config{
		Seed:          7,
		BootSteps:     []float64{0.5, 2.0},
		DeleteLatency: 0.5,
		Flavors:       []Flavor{{Name: "s", Cores: 2, RAM: 2048}, {Name: "l", Cores: 8, RAM: 16384}},
		CloudImages: []CloudImage{{
			Name: "debian", Username: "zuul", PythonPath: "/usr/bin/python3",
			ShellType: "sh", ConnectionType: "ssh", ConnectionPort: 22,
		}},
		Pools: []PoolConfig{
			{Name: "main", Labels: []LabelConfig{
				{Name: "small", Flavor: "s", CloudImage: "debian"},
				{Name: "large", Flavor: "l", CloudImage: "debian"},
			}},
			{Name: "other", Labels: []LabelConfig{{Name: "small"}}},
		},
	}
}

// testEnv is a driver on a fresh cloud.
type testEnv struct {
	clock  *fakeClock
	cloud  *Cloud
	client *Client // nil in process
	driver *Driver
}

// newEnv builds a driver on a fresh cloud made from cfg, in process or behind a real
// HTTP server.
func newEnv(t testing.TB, cfg Config, overHTTP bool) *testEnv {
	t.Helper()
	env := &testEnv{clock: newFakeClock()}
	cloud, err := NewCloud(cfg, WithClock(env.clock.Now))
	require.NoError(t, err)
	env.cloud = cloud
	if !overHTTP {
		env.driver, err = New("sim-test", cfg, WithCloud(cloud))
		require.NoError(t, err)
		return env
	}
	srv := httptest.NewServer(NewHandler(cloud, nil))
	t.Cleanup(srv.Close)
	dcfg := cfg.withoutCloudKeys()
	dcfg.Server = srv.URL
	env.driver, err = New("sim-test", dcfg)
	require.NoError(t, err)
	env.client = env.driver.API().(*Client)
	return env
}

// inject makes the next call of the kind fail, through HTTP when the driver uses it.
func (e *testEnv) inject(t *testing.T, call string, code ErrorCode) {
	t.Helper()
	if e.client != nil {
		require.NoError(t, e.client.InjectError(context.Background(), call, code))
		return
	}
	require.NoError(t, e.cloud.InjectError(call, code))
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name     string
		overHTTP bool
	}{
		{"in process", false},
		{"over http", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var env *testEnv
			injector := func(code ErrorCode) func(t *testing.T) {
				return func(t *testing.T) { env.inject(t, CallCreate, code) }
			}
			driverstest.Run(t, driverstest.Harness{
				New: func(t *testing.T) drivers.Driver {
					env = newEnv(t, testConfig(), tc.overHTTP)
					return env.driver
				},
				Provider:             "sim-test",
				Pool:                 "main",
				Label:                "small",
				UnknownExternalID:    "sim-424242",
				InjectQuotaError:     injector(CodeQuotaExceeded),
				InjectCapacityError:  injector(CodeInsufficientCapacity),
				InjectTransientError: injector(CodeThrottling),
				InjectPermanentError: injector(CodeInvalidParameter),
				Advance:              func(d time.Duration) { env.clock.Advance(d) },
				MaxSteps:             20,
			})
		})
	}
}

func TestConformanceRealClock(t *testing.T) {
	// A short run on the wall clock, without fault hooks: waits are real sleeps.
	cfg := testConfig()
	cfg.BootSteps = []float64{0.01, 0.02}
	cfg.DeleteLatency = 0.01
	driverstest.Run(t, driverstest.Harness{
		New: func(t *testing.T) drivers.Driver {
			d, err := New("sim-test", cfg)
			require.NoError(t, err)
			return d
		},
		Provider: "sim-test",
		Pool:     "other",
		Label:    "small",
	})
}

// BenchmarkLaunch measures creating and deleting one node, in process and over HTTP.
func BenchmarkLaunch(b *testing.B) {
	for _, overHTTP := range []bool{false, true} {
		b.Run(fmt.Sprintf("http=%v", overHTTP), func(b *testing.B) {
			cfg := testConfig()
			cfg.BootSteps = []float64{}
			env := newEnv(b, cfg, overHTTP)
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				nodeID := fmt.Sprintf("%010d", i)
				st, err := env.driver.AdvanceCreate(ctx, drivers.CreateState{Request: drivers.CreateRequest{
					NodeID: nodeID, Attempt: 1, Hostname: "np" + nodeID, Pool: "main", Label: "small",
					Metadata: map[string]string{drivers.MetaNodeID: nodeID},
				}})
				if err != nil || !st.Complete {
					b.Fatalf("creating node %s: complete=%v, %v", nodeID, st.Complete, err)
				}
				del, err := env.driver.AdvanceDelete(ctx, drivers.DeleteState{ExternalID: st.ExternalID, NodeID: nodeID})
				if err != nil {
					b.Fatalf("deleting node %s: %v", nodeID, err)
				}
				env.clock.Advance(del.Wait)
			}
		})
	}
}
