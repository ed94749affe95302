package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/drivers/openstack"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/static"
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
		{"openstack", launcherParams{ZooKeeperPort: 2999, TemporalAddress: "127.0.0.1:7999", Driver: driverOpenStack,
			CloudURL: "http://127.0.0.1:8999", MaxServers: 200, PollInterval: 1, DeleteInterval: 5}},
		{"static", launcherParams{ZooKeeperPort: 2999, TemporalAddress: "127.0.0.1:7999", Driver: driverStatic,
			MaxServers: 2, PollInterval: 1, DeleteInterval: 5,
			StaticHosts: []staticHost{{Name: "127.0.0.2", Port: 40001}, {Name: "127.0.0.3", Port: 40002}}}},
		{"sim with min-ready", launcherParams{ZooKeeperPort: 2999, TemporalAddress: "127.0.0.1:7999", Driver: driverSim,
			CloudURL: "http://127.0.0.1:8999", MaxServers: 10, PollInterval: 1, DeleteInterval: 5, MinReady: 5}},
		{"static with min-ready", launcherParams{ZooKeeperPort: 2999, TemporalAddress: "127.0.0.1:7999", Driver: driverStatic,
			MaxServers: 1, PollInterval: 1, DeleteInterval: 5, MinReady: 1,
			StaticHosts: []staticHost{{Name: "127.0.0.2", Port: 40001}}}},
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
			require.Len(t, cfg.Labels, 1)
			assert.Equal(t, benchLabel, cfg.Labels[0].Name)
			assert.Equal(t, tc.params.MinReady, cfg.Labels[0].MinReady)
			switch tc.params.Driver {
			case driverStatic:
				// A static pool offers its nodes' labels.
				var sc static.Config
				require.NoError(t, p.DecodeDriver(&sc))
				assert.Equal(t, []string{benchLabel}, sc.PoolLabels()[benchPool])
				require.Len(t, sc.Pools[0].Nodes, len(tc.params.StaticHosts))
				for i, h := range tc.params.StaticHosts {
					n := sc.Pools[0].Nodes[i]
					assert.Equal(t, h.Name, n.Name)
					assert.False(t, n.EffectiveHostKeyChecking())
					assert.Equal(t, h.Port, n.EffectiveConnectionPort())
				}
				assert.Equal(t, map[string]int{benchPool: len(tc.params.StaticHosts)}, sc.PoolSlots())
			case driverOpenStack:
				assert.Equal(t, []string{benchLabel}, p.Pools[0].LabelNames())
				var oc openstack.Config
				require.NoError(t, p.DecodeDriverPositional(&oc))
				assert.Equal(t, osCloud, oc.Cloud)
				require.Len(t, oc.CloudImages, 1)
				assert.Equal(t, osImage, oc.CloudImages[0].ImageName)
				require.Len(t, oc.Pools, 1)
				require.NotNil(t, oc.Pools[0].HostKeyChecking)
				assert.False(t, *oc.Pools[0].HostKeyChecking)
				require.Len(t, oc.Pools[0].Labels, 1)
				assert.Equal(t, osFlavor, oc.Pools[0].Labels[0].FlavorName)
			default:
				assert.Equal(t, []string{benchLabel}, p.Pools[0].LabelNames())
			}
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

func TestLauncherConfigStaticWithoutHosts(t *testing.T) {
	_, err := launcherConfig(launcherParams{Driver: driverStatic, MaxServers: 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "at least one host")
}

// assertSameYAML checks that got decodes to the same value as want.
func assertSameYAML(t *testing.T, want string, got []byte) {
	t.Helper()
	var w, g any
	require.NoError(t, yaml.Unmarshal([]byte(want), &w))
	require.NoError(t, yaml.Unmarshal(got, &g))
	assert.Equal(t, w, g, "got:\n%s", got)
}

func TestWithMinReady(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    string
		wantErr string
	}{
		{"added", "labels:\n  - name: bench\n  - name: other\n", "labels:\n  - name: bench\n    min-ready: 3\n  - name: other\n", ""},
		{"replaced", "providers: []\nlabels:\n  - name: bench\n    min-ready: 1\n", "providers: []\nlabels:\n  - name: bench\n    min-ready: 3\n", ""},
		{"label missing", "labels:\n  - name: other\n", "", `label "bench" is not in the top-level labels`},
		{"no labels", "providers: []\n", "", `label "bench" is not in the top-level labels`},
		{"not a mapping", "- a\n", "", "not a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := withMinReady([]byte(tc.doc), benchLabel, 3)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assertSameYAML(t, tc.want, out)
		})
	}
}

func TestWithoutPoolLabels(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty list dropped", "providers:\n  - name: p\n    pools:\n      - name: main\n        labels: []\n        nodes: []\n",
			"providers:\n  - name: p\n    pools:\n      - name: main\n        nodes: []\n"},
		{"labels kept", "providers:\n  - name: p\n    pools:\n      - name: main\n        labels:\n          - name: x\n",
			"providers:\n  - name: p\n    pools:\n      - name: main\n        labels:\n          - name: x\n"},
		{"no providers", "labels: []\n", "labels: []\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := withoutPoolLabels([]byte(tc.doc))
			require.NoError(t, err)
			assertSameYAML(t, tc.want, out)
		})
	}
}

func TestCloudsYAML(t *testing.T) {
	tests := []struct {
		name, url string
	}{
		{"loopback", "http://127.0.0.1:8999"},
		{"other port", "http://127.0.0.1:41234"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := cloudsYAML(tc.url)
			require.NoError(t, err)
			var doc struct {
				Clouds map[string]struct {
					Auth struct {
						AuthURL     string `yaml:"auth_url"`
						Username    string `yaml:"username"`
						Password    string `yaml:"password"`
						ProjectName string `yaml:"project_name"`
					} `yaml:"auth"`
					RegionName string `yaml:"region_name"`
				} `yaml:"clouds"`
			}
			require.NoError(t, yaml.Unmarshal(data, &doc))
			c, ok := doc.Clouds[osCloud]
			require.True(t, ok, "clouds.yaml:\n%s", data)
			assert.Equal(t, tc.url+"/identity/v3", c.Auth.AuthURL)
			assert.NotEmpty(t, c.Auth.Username)
			assert.NotEmpty(t, c.Auth.Password)
			assert.NotEmpty(t, c.Auth.ProjectName)
			assert.Equal(t, osRegion, c.RegionName)
		})
	}
}

func TestStaticAddrs(t *testing.T) {
	tests := []struct {
		n    int
		want []string
	}{
		{0, []string{}},
		{1, []string{"127.0.0.2"}},
		{3, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, staticAddrs(tc.n), "n=%d", tc.n)
	}
	many := staticAddrs(300)
	assert.Equal(t, "127.0.1.45", many[299])
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
