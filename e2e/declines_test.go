package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Each launcher process registers its pools under ids of its own, as Nodepool's
// launchers do: a request the launcher declined is looked at again after a restart
// (after a configuration fix, say), and declined_by then names both processes' ids.
func TestRestartRevisitsDeclinedRequests(t *testing.T) {
	cl := simCloud(1, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	ctx := c.ctx(3 * time.Minute)
	// Another launcher's pool offers the label and has not declined, so a decline of
	// ours hands the request back instead of failing it.
	other, err := c.zk.RegisterPool(ctx, zookeeper.PoolComponent{
		Hostname: "upstream", State: "running", Version: "10.0.0",
		ID:   names.PoolInstanceID(names.PoolID("upstream", "other", "main"), "00112233445566778899aabbccddeeff"),
		Name: "main", ProviderName: "other", SupportedLabels: []string{"small"}, Priority: 100,
	})
	require.NoError(t, err)
	defer func() { _ = other.Unregister(ctx) }()
	launcher := c.startLauncher("all")

	// Two nodes from a pool of max-servers 1: ours can never serve it.
	id := c.submit("100", "small", "small")
	ours := names.PoolID("e2e", "sim", "main")
	first := c.waitRequest(id, 60*time.Second, func(r *zookeeper.NodeRequest) bool { return len(r.DeclinedBy) > 0 })
	require.Equal(t, zookeeper.StateRequested, first.State, "another pool may still serve it")
	require.Len(t, first.DeclinedBy, 1)
	require.True(t, names.IsPoolInstance(first.DeclinedBy[0], ours), "declined by %v", first.DeclinedBy)
	require.NotEqual(t, ours, first.DeclinedBy[0], "declined under the process's own id")

	require.NoError(t, launcher.Restart(ctx))
	again := c.waitRequest(id, 60*time.Second, func(r *zookeeper.NodeRequest) bool { return len(r.DeclinedBy) > 1 })
	require.Equal(t, zookeeper.StateRequested, again.State)
	require.Len(t, again.DeclinedBy, 2, "declined once by each process: %v", again.DeclinedBy)
	require.True(t, names.IsPoolInstance(again.DeclinedBy[1], ours))
	require.NotEqual(t, first.DeclinedBy[0], again.DeclinedBy[1])

	// Once the other launcher's pool declines too, the request fails.
	_, _, err = c.zk.ModifyRequest(ctx, id, nil, func(r *zookeeper.NodeRequest) (bool, error) {
		r.DeclinedBy = append(r.DeclinedBy, other.Component().ID)
		return true, nil
	})
	require.NoError(t, err)
	require.NoError(t, launcher.Restart(ctx))
	c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFailed))
}
