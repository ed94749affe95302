package worker

import (
	"log/slog"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
)

// Every driver the configuration accepts can be built, and every driver that can be
// built is validated.
func TestFactoriesMatchValidators(t *testing.T) {
	require.Equal(t,
		slices.Sorted(maps.Keys(launchconfig.DriverValidators())),
		slices.Sorted(maps.Keys(Factories())))
}

// A static provider is built, with its pools' labels taken from their nodes, and its
// nodes' labels must be defined.
func TestStaticProvider(t *testing.T) {
	cfg, err := launchconfig.Load("../internal/launchconfig/testdata/static.yaml", "")
	require.NoError(t, err)
	p := &cfg.Providers[0]
	require.Equal(t, []string{"trusty-static", "win"}, PoolLabels(p, &p.Pools[0]))

	built, err := BuildDrivers(t.Context(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Contains(t, built, "static-rack")
	for _, d := range built {
		require.NoError(t, d.Close())
	}

	cfg.Labels = cfg.Labels[:1]
	_, err = BuildDrivers(t.Context(), cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, `label "win" is not defined in the top-level labels`)
}
