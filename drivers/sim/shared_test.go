package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// sharedCloud starts one cloud behind a real HTTP server and returns n drivers of the
// same provider using it, as n launcher worker processes would.
func sharedCloud(t *testing.T, cloudCfg Config, n int) (*Cloud, *fakeClock, []*Driver) {
	t.Helper()
	clock := newFakeClock()
	cloud, err := NewCloud(cloudCfg, WithClock(clock.Now))
	require.NoError(t, err)
	srv := httptest.NewServer(NewHandler(cloud, nil))
	t.Cleanup(srv.Close)
	cfg := testConfig().withoutCloudKeys()
	cfg.Server = srv.URL
	ds := make([]*Driver, n)
	for i := range ds {
		ds[i], err = New("shared", cfg)
		require.NoError(t, err)
	}
	return cloud, clock, ds
}

func nodeRequest(nodeID string) drivers.CreateRequest {
	return drivers.CreateRequest{
		NodeID: nodeID, Attempt: 1, Hostname: "np" + nodeID, Pool: "main", Label: "small",
		Metadata: map[string]string{drivers.MetaProviderName: "shared", drivers.MetaNodeID: nodeID},
	}
}

func TestSharedServer(t *testing.T) {
	ctx := context.Background()
	cloudCfg := Config{Seed: 3, BootSteps: []float64{0.5, 2.0}, DeleteLatency: 0.5,
		Quota: &QuotaConfig{Instances: ptr(int64(3))}}
	_, clock, ds := sharedCloud(t, cloudCfg, 2)
	a, b := ds[0], ds[1]

	create := func(d *Driver, nodeID string) (drivers.CreateState, error) {
		return d.AdvanceCreate(ctx, drivers.CreateState{Request: nodeRequest(nodeID)})
	}
	st1, err := create(a, "0000000001")
	require.NoError(t, err)
	// The same step retried on the other worker finds the instance the first started.
	again, err := create(b, "0000000001")
	require.NoError(t, err)
	require.Equal(t, st1.ExternalID, again.ExternalID)
	_, err = create(b, "0000000002")
	require.NoError(t, err)

	for _, d := range ds {
		insts, err := d.ListInstances(ctx)
		require.NoError(t, err)
		var nodes []string
		for _, inst := range insts {
			nodes = append(nodes, inst.Metadata[drivers.MetaNodeID])
		}
		require.Equal(t, []string{"0000000001", "0000000002"}, nodes)
	}

	// The cloud's quota holds across both drivers.
	_, err = create(a, "0000000003")
	require.NoError(t, err)
	_, err = create(b, "0000000004")
	require.Equal(t, drivers.KindQuota, drivers.KindOf(err), "fourth instance: %v", err)
	limits, err := b.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, drivers.Resources{drivers.ResourceInstances: 3}, limits)

	// One driver completes a creation the other started and deletes an instance the
	// other created; the quota is then free for either.
	st1 = roundTripState(t, st1)
	for !st1.Complete {
		clock.Advance(st1.Wait)
		st1, err = b.AdvanceCreate(ctx, st1)
		require.NoError(t, err)
	}
	del := drivers.DeleteState{ExternalID: st1.ExternalID, NodeID: "0000000001"}
	for !del.Complete {
		del, err = b.AdvanceDelete(ctx, del)
		require.NoError(t, err)
		clock.Advance(del.Wait)
	}
	_, err = create(b, "0000000004")
	require.NoError(t, err)
}

// roundTripState passes a state through JSON, as it travels between workers.
func roundTripState(t *testing.T, st drivers.CreateState) drivers.CreateState {
	t.Helper()
	b, err := json.Marshal(st)
	require.NoError(t, err)
	var out drivers.CreateState
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestConcurrentLaunchesWithFaults(t *testing.T) {
	// Many nodes launched at once through two drivers sharing a server, with throttling,
	// failing and lost-reply calls: every node ends up with exactly one instance, and
	// after deletion nothing is left.
	const nodes = 32
	cloudCfg := Config{
		Seed: 5, BootSteps: []float64{0.2, 0.3}, DeleteLatency: 0.2,
		ErrorRate:     ErrorRateConfig{Create: 0.1, Delete: 0.1, Describe: 0.1},
		RateLimitRate: 0.1, LostReplyRate: 0.4,
	}
	cloud, clock, ds := sharedCloud(t, cloudCfg, 2)
	ctx := context.Background()

	var mu sync.Mutex
	external := make(map[string]string)
	var g errgroup.Group
	for i := range nodes {
		g.Go(func() error {
			nodeID := fmt.Sprintf("%010d", i+1)
			st := drivers.CreateState{Request: nodeRequest(nodeID)}
			for step := 0; !st.Complete; step++ {
				if step > 1000 {
					return fmt.Errorf("node %s did not complete", nodeID)
				}
				// Alternate drivers, as retried activities land on any worker.
				next, err := ds[step%2].AdvanceCreate(ctx, st)
				if err != nil {
					if drivers.KindOf(err) != drivers.KindTransient {
						return fmt.Errorf("creating node %s: %w", nodeID, err)
					}
					continue // retry the same state
				}
				st = next
				clock.Advance(st.Wait/4 + time.Millisecond)
			}
			mu.Lock()
			external[nodeID] = st.ExternalID
			mu.Unlock()
			return nil
		})
	}
	require.NoError(t, g.Wait())

	stats := cloud.Stats()
	assert.Equal(t, int64(nodes), stats["instances.created"], "instances created for %d nodes", nodes)
	assert.Equal(t, int64(0), stats["instances.duplicate_nodes"])
	assert.Positive(t, stats["lost_replies"], "no reply was lost; the test proves nothing")
	assert.Positive(t, stats["errors.Throttling"])

	for nodeID, id := range external {
		g.Go(func() error {
			del := drivers.DeleteState{ExternalID: id, NodeID: nodeID}
			for step := 0; !del.Complete; step++ {
				if step > 1000 {
					return fmt.Errorf("deleting %s did not complete", id)
				}
				next, err := ds[step%2].AdvanceDelete(ctx, del)
				if err != nil {
					if drivers.KindOf(err) != drivers.KindTransient {
						return fmt.Errorf("deleting %s: %w", id, err)
					}
					continue
				}
				del = next
				clock.Advance(del.Wait/4 + time.Millisecond)
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	stats = cloud.Stats()
	assert.Equal(t, int64(0), stats["instances"])
	assert.Equal(t, int64(nodes), stats["instances.deleted"])
}
