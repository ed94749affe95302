package worker

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/openstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ossim"
)

// OpenStack providers, with the driver key absent (upstream's default) or naming
// upstream's fake driver, are built from clouds.yaml and reach the cloud.
func TestOpenStackProviders(t *testing.T) {
	srv := httptest.NewServer(ossim.New(ossim.Options{}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	clouds := filepath.Join(dir, "clouds.yaml")
	require.NoError(t, os.WriteFile(clouds, []byte(`clouds:
  devcloud:
    auth:
      auth_url: `+srv.URL+`/identity/v3
      username: admin
      password: secret
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
`), 0o600))
	t.Setenv("OS_CLIENT_CONFIG_FILE", clouds)
	t.Setenv("OS_CLOUD", "")
	conf := filepath.Join(dir, "nodepool.yaml")
	require.NoError(t, os.WriteFile(conf, []byte(`zookeeper-servers:
  - host: 127.0.0.1
labels:
  - name: jammy
providers:
  - name: default-driver
    cloud: devcloud
    cloud-images: [{name: jammy, image-name: ubuntu-jammy, username: zuul}]
    pools:
      - name: main
        labels:
          - {name: jammy, cloud-image: jammy, flavor-name: m1.small}
  - name: fake-provider
    driver: fake
    cloud: devcloud
    cloud-images: [{name: jammy, image-name: ubuntu-jammy}]
    pools:
      - name: main
        labels:
          - {name: jammy, cloud-image: jammy, min-ram: 4096}
`), 0o600))
	cfg, err := launchconfig.Load(conf, "")
	require.NoError(t, err)
	require.Equal(t, "openstack", cfg.Providers[0].Driver)
	built, err := BuildDrivers(t.Context(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, d := range built {
			require.NoError(t, d.Close())
		}
	})
	tests := []struct {
		provider string
		want     drivers.Resources
	}{
		{"default-driver", drivers.Resources{"instances": 1, "cores": 1, "ram": 2048}},
		{"fake-provider", drivers.Resources{"instances": 1, "cores": 2, "ram": 4096}},
	}
	for _, tc := range tests {
		t.Run(tc.provider, func(t *testing.T) {
			require.IsType(t, &openstack.Driver{}, built[tc.provider])
			q, err := built[tc.provider].LabelQuota(t.Context(), "main", "jammy")
			require.NoError(t, err)
			require.Equal(t, tc.want, q)
		})
	}
}
