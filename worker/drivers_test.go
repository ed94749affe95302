package worker

import (
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
