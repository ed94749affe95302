package worker

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/config"
)

func TestLoadConfigValidatesDriverSections(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // substrings of the problems; empty = valid
	}{
		{name: "upstream AWS example", file: "../config/testdata/good/aws-example.yaml"},
		{name: "example of make run", file: "../examples/nodepool.yaml"},
		{name: "compose stack", file: "../docker/nodepool.yaml"},
		{name: "unknown driver", file: "testdata/unknown-driver.yaml", want: []string{
			`unknown-driver.yaml:7: providers[0] (cloud)`, `unknown driver "openstack"`,
		}},
		{name: "bad sim and aws keys at once", file: "testdata/bad-drivers.yaml", want: []string{
			"bad-drivers.yaml:", "unknown flavor", "region-name", "key-name",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(tc.file, "")
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var all []string
			for _, p := range config.Problems(err) {
				all = append(all, p.Error())
			}
			text := strings.Join(all, "\n")
			for _, w := range tc.want {
				require.Contains(t, text, w)
			}
		})
	}
}

func TestSettingsFromConfig(t *testing.T) {
	cfg, err := LoadConfig("../examples/nodepool.yaml", "")
	require.NoError(t, err)
	s := Settings(cfg)
	require.Equal(t, DefaultLauncherName, s.LauncherName, "pool ids do not depend on the machine")
	require.Len(t, s.Providers, 2)
	sim := s.Providers[0]
	require.Equal(t, "nodepool-provider-sim", sim.TaskQueue)
	require.Equal(t, "nodepool-temporal-PoolWorker.sim-main", sim.Pools[0].ID)
	require.EqualValues(t, 10, sim.Pools[0].Limits["instances"])
	require.EqualValues(t, 40, sim.Pools[0].Limits["cores"])
	require.Equal(t, []string{"ubuntu-jammy", "debian-bookworm", "large"}, sim.Pools[0].Labels)
}
