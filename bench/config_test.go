package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
)

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func TestLauncherConfig(t *testing.T) {
	tests := []struct {
		name   string
		params launcherParams
	}{
		{"sim", launcherParams{ZooKeeperPort: 2999, TemporalAddress: "127.0.0.1:7999", Driver: driverSim,
			CloudURL: "http://127.0.0.1:8999", MaxServers: 200, PollInterval: 1, DeleteInterval: 5}},
		{"sim with rate", launcherParams{ZooKeeperPort: 2999, TemporalAddress: "127.0.0.1:7999", Driver: driverSim,
			CloudURL: "http://127.0.0.1:8999", MaxServers: 10, PollInterval: 0.5, DeleteInterval: 2, Rate: 50}},
		{"aws", launcherParams{ZooKeeperPort: 2999, TemporalAddress: "127.0.0.1:7999", Driver: driverAWS,
			CloudURL: "http://127.0.0.1:8999", MaxServers: 200, PollInterval: 1, DeleteInterval: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := launcherConfig(tc.params)
			require.NoError(t, err)
			path := writeTemp(t, "nodepool.yaml", data)
			// The launcher's own loader validates the driver sections too.
			cfg, err := launchconfig.Load(path, "")
			require.NoError(t, err, "generated config:\n%s", data)
			require.Len(t, cfg.Providers, 1)
			p := cfg.Providers[0]
			assert.Equal(t, providerName(tc.params.Driver), p.Name)
			assert.Equal(t, tc.params.Driver, p.Driver)
			assert.Equal(t, tc.params.Rate, p.RateOr(0))
			require.Len(t, p.Pools, 1)
			require.NotNil(t, p.Pools[0].MaxServers)
			assert.Equal(t, tc.params.MaxServers, *p.Pools[0].MaxServers)
			assert.Equal(t, []string{benchLabel}, p.Pools[0].LabelNames())
			assert.Equal(t, tc.params.TemporalAddress, cfg.Temporal.Address)
			assert.Equal(t, benchTaskQueue, cfg.Temporal.TaskQueue)
			assert.Equal(t, []string{"127.0.0.1:2999"}, cfg.ZooKeeperHosts())
			assert.InDelta(t, tc.params.PollInterval, cfg.Launcher.PollInterval.Duration().Seconds(), 1e-9)
			assert.InDelta(t, tc.params.DeleteInterval, cfg.Launcher.DeleteInterval.Duration().Seconds(), 1e-9)
		})
	}
}

func TestLauncherConfigUnknownDriver(t *testing.T) {
	_, err := launcherConfig(launcherParams{Driver: "gce"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown driver "gce"`)
}

func TestSimCloudConfig(t *testing.T) {
	tests := []struct {
		name   string
		boot   []float64
		del    float64
		expect []float64
	}{
		{"two steps", []float64{0.5, 1.5}, 0.1, []float64{0.5, 1.5}},
		{"instant boot", nil, 0, []float64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := simCloudConfig(tc.boot, tc.del, 7)
			require.NoError(t, err)
			var cfg sim.Config
			dec := yaml.NewDecoder(bytes.NewReader(data))
			dec.KnownFields(true)
			require.NoError(t, dec.Decode(&cfg))
			require.NoError(t, cfg.ValidateCloud())
			assert.Equal(t, tc.expect, cfg.BootSteps)
			assert.InDelta(t, tc.del, cfg.DeleteLatency, 1e-9)
			assert.Equal(t, int64(7), cfg.Seed)
		})
	}
}
