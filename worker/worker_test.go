package worker

import (
	"testing"

	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/stretchr/testify/require"
)

func TestSettingsFromConfig(t *testing.T) {
	cfg, err := launchconfig.Load("../examples/nodepool.yaml", "")
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
