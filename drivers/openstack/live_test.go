package openstack

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/driverstest"
)

// TestLiveOpenStack runs the conformance suite against a real OpenStack cloud. It
// boots and deletes several small servers, so it runs only when asked:
//
//	OS_CLOUD=mycloud NODEPOOL_OS_LIVE_IMAGE=ubuntu-jammy NODEPOOL_OS_LIVE_FLAVOR=m1.small \
//	  go test ./drivers/openstack -run Live -v
//
// with the cloud's entry in clouds.yaml (found as the openstack tools find it).
// Optional: OS_REGION_NAME, NODEPOOL_OS_LIVE_NETWORK (a network name; default: Nova
// chooses), NODEPOOL_OS_LIVE_KEY_NAME, NODEPOOL_OS_LIVE_FLOATING_IP=false.
func TestLiveOpenStack(t *testing.T) {
	cloud := os.Getenv("OS_CLOUD")
	if cloud == "" {
		t.Skip("set OS_CLOUD (a clouds.yaml entry) to run against a real OpenStack cloud")
	}
	image, flavor := os.Getenv("NODEPOOL_OS_LIVE_IMAGE"), os.Getenv("NODEPOOL_OS_LIVE_FLAVOR")
	if image == "" || flavor == "" {
		t.Skip("set NODEPOOL_OS_LIVE_IMAGE and NODEPOOL_OS_LIVE_FLAVOR to an image and a flavor of the cloud")
	}
	floating := os.Getenv("NODEPOOL_OS_LIVE_FLOATING_IP") != "false"
	pool := Pool{AutoFloatingIP: &floating, Labels: []Label{{
		CloudImage: "live", FlavorName: flavor, KeyName: os.Getenv("NODEPOOL_OS_LIVE_KEY_NAME"),
	}}}
	if n := os.Getenv("NODEPOOL_OS_LIVE_NETWORK"); n != "" {
		pool.Networks = []string{n}
	}
	cfg := Config{
		Cloud: cloud, RegionName: os.Getenv("OS_REGION_NAME"),
		CloudImages: []CloudImage{{Name: "live", ImageName: image}},
		Pools:       []Pool{pool},
	}
	const provider = "nodepool-temporal-live"
	specs := []PoolSpec{{Name: "live", Labels: []string{"live"}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Check the credentials once, so that a broken setup fails plainly.
	d, err := New(ctx, provider, cfg, specs)
	require.NoError(t, err, "connecting to cloud %s", cloud)
	require.NoError(t, d.Close())

	driverstest.Run(t, driverstest.Harness{
		New: func(t *testing.T) drivers.Driver {
			d, err := New(t.Context(), provider, cfg, specs, WithPollInterval(5*time.Second))
			require.NoError(t, err)
			return d
		},
		Provider:          provider,
		Pool:              "live",
		Label:             "live",
		UnknownExternalID: "00000000-0000-0000-0000-00000000dead",
		MaxSteps:          200,
		MaxSleep:          10 * time.Second,
		PollInterval:      5 * time.Second,
		Timeout:           15 * time.Minute,
	})
}
