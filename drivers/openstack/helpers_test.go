package openstack

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ossim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

const (
	testProvider = "os-test"
	testPool     = "main"
)

// testConfig is the provider section the tests use: a label booting from the image,
// one booting from a volume, one without floating IPs on the external network.
const testConfig = `
cloud: ossim
region-name: RegionOne
cloud-images:
  - name: jammy
    image-name: ubuntu-jammy
    username: zuul
    python-path: /usr/bin/python3
  - name: bookworm
    image-id: IMAGE-ID
pools:
  - networks: [private]
    security-groups: [default]
    availability-zones: [nova]
    labels:
      - cloud-image: jammy
        flavor-name: m1.small
        key-name: zuul
        instance-properties:
          team: ci
        dynamic-instance-properties:
          tenant: "{request.tenant_name}"
      - cloud-image: jammy
        min-ram: 4000
        boot-from-volume: true
        volume-size: 20
  - networks: [public]
    auto-floating-ip: false
    labels:
      - cloud-image: jammy
        flavor-name: m1.tiny
`

var testPools = []PoolSpec{
	{Name: testPool, Labels: []string{"jammy", "jammy-volume"}},
	{Name: "public", Labels: []string{"jammy-public"}},
}

// env is an ossim server over HTTP with a driver of it, on one manual clock.
type env struct {
	t     *testing.T
	clock *testenv.ManualClock
	sim   *ossim.Server
	url   string
}

func newEnv(t *testing.T, opts ossim.Options) *env {
	t.Helper()
	clock := testenv.NewManualClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if opts.Clock == nil {
		opts.Clock = clock.Now
	}
	if opts.BootTime == 0 {
		opts.BootTime = 5 * time.Second
	}
	if opts.DeleteTime == 0 {
		opts.DeleteTime = 3 * time.Second
	}
	sim := ossim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{t: t, clock: clock, sim: sim, url: srv.URL}
}

// cloudsYAML points the cloud "ossim" at the server.
func (e *env) cloudsYAML() []byte {
	return []byte(`clouds:
  ossim:
    auth:
      auth_url: ` + e.url + `/identity/v3
      username: admin
      password: secret
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
`)
}

// driver returns a driver of the test configuration.
func (e *env) driver(opts ...Option) *Driver {
	e.t.Helper()
	return e.driverOf(testConfig, testPools, opts...)
}

func (e *env) driverOf(text string, pools []PoolSpec, opts ...Option) *Driver {
	e.t.Helper()
	text = strings.ReplaceAll(text, "IMAGE-ID", ossim.DefaultImages[1].ID)
	cfg, err := DecodeConfig([]byte(text))
	require.NoError(e.t, err)
	all := append([]Option{WithCloudsYAML(e.cloudsYAML()), WithClock(e.clock.Now), WithPollInterval(time.Second)}, opts...)
	d, err := New(context.Background(), testProvider, cfg, pools, all...)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = d.Close() })
	return d
}

// request returns a create request of the label for a node.
func request(nodeID, pool, label string, attempt int) drivers.CreateRequest {
	return drivers.CreateRequest{
		NodeID: nodeID, Attempt: attempt, Hostname: "np" + nodeID, Pool: pool, Label: label,
		Metadata: map[string]string{
			drivers.MetaProviderName: testProvider, drivers.MetaPoolName: pool, drivers.MetaNodeID: nodeID,
		},
		Request: drivers.RequestInfo{ID: "100-" + nodeID, TenantName: "tenant-a"},
	}
}

// create runs a create state machine to completion, moving the clock by each Wait.
func (e *env) create(ctx context.Context, d *Driver, st drivers.CreateState) drivers.CreateState {
	e.t.Helper()
	for range 100 {
		next, err := d.AdvanceCreate(ctx, st)
		require.NoError(e.t, err, "create step %q", st.Step)
		st = next
		if st.Complete {
			return st
		}
		e.clock.Advance(max(st.Wait, time.Second))
	}
	e.t.Fatalf("create of node %s did not complete", st.Request.NodeID)
	return st
}

// remove runs a delete state machine to completion.
func (e *env) remove(ctx context.Context, d *Driver, st drivers.DeleteState) drivers.DeleteState {
	e.t.Helper()
	for range 100 {
		next, err := d.AdvanceDelete(ctx, st)
		require.NoError(e.t, err, "delete step %q", st.Step)
		st = next
		if st.Complete {
			return st
		}
		e.clock.Advance(max(st.Wait, time.Second))
	}
	e.t.Fatalf("delete of %s did not complete", st.ExternalID)
	return st
}

func requestInfo() drivers.RequestInfo {
	return drivers.RequestInfo{ID: "100-1", Requestor: "zuul", TenantName: "tenant-a"}
}
