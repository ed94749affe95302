package sim

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// strictDecoder decodes YAML text strictly, as the config package decodes a provider
// section without Nodepool's common keys.
func strictDecoder(text string) func(any) error {
	return func(v any) error {
		dec := yaml.NewDecoder(bytes.NewBufferString(text))
		dec.KnownFields(true)
		return dec.Decode(v)
	}
}

const goodProvider = `
seed: 42
api-latency: 0
boot-steps: [0.5, 2.0]
delete-latency: 0.5
quota: {instances: 10, cores: 40, ram: 81920}
error-rate: {create: 0.01, delete: 0.0, list: 0.0, describe: 0}
rate-limit-rate: 0.01
capacity-error-rate: 0.01
lost-reply-rate: 0.01
azs: [sim-a, sim-b]
region: sim-region
flavors:
  - {name: s, cores: 2, ram: 2048}
  - {name: l, cores: 8, ram: 16384}
cloud-images:
  - name: debian
    username: zuul
    python-path: /usr/bin/python3
    shell-type: sh
    connection-type: ssh
    connection-port: 22
pools:
  - labels:
      - {flavor: s, cloud-image: debian}
      - {flavor: l, cloud-image: debian}
  - labels:
      - {flavor: s, cloud-image: debian}
`

func TestParseProvider(t *testing.T) {
	d, err := ParseProvider("sim", strictDecoder(goodProvider), testPools)
	require.NoError(t, err)
	ctx := context.Background()
	q, err := d.LabelQuota(ctx, "main", "large")
	require.NoError(t, err)
	assert.Equal(t, drivers.Resources{"instances": 1, "cores": 8, "ram": 16384}, q)
	q, err = d.LabelQuota(ctx, "other", "small")
	require.NoError(t, err)
	assert.Equal(t, drivers.Resources{"instances": 1, "cores": 2, "ram": 2048}, q)
	limits, err := d.QuotaLimits(ctx)
	require.NoError(t, err)
	assert.Equal(t, drivers.Resources{"instances": 10, "cores": 40, "ram": 81920}, limits)
	require.IsType(t, &Cloud{}, d.API())

	// Label specs that name their flavor and image need no positional pools.
	d, err = ParseProvider("sim", strictDecoder("flavors: [{name: s, cores: 1, ram: 1}]\ncloud-images: [{name: i}]\n"),
		[]PoolSpec{{Name: "p", Labels: []LabelSpec{{Name: "x", Flavor: "s", CloudImage: "i"}}}})
	require.NoError(t, err)
	_, err = d.LabelQuota(ctx, "p", "x")
	require.NoError(t, err)

	d, err = ParseProvider("sim", strictDecoder("server: http://127.0.0.1:1\nflavors: [{name: s, cores: 1, ram: 1}]\ncloud-images: [{name: i}]\n"),
		[]PoolSpec{{Name: "p", Labels: []LabelSpec{{Name: "x", Flavor: "s", CloudImage: "i"}}}})
	require.NoError(t, err)
	require.IsType(t, &Client{}, d.API())
}

func TestParseProviderErrors(t *testing.T) {
	pools := []PoolSpec{{Name: "main", Labels: []LabelSpec{{Name: "small"}}}}
	base := "flavors: [{name: s, cores: 2, ram: 2048}]\ncloud-images: [{name: debian}]\n" +
		"pools: [{labels: [{flavor: s, cloud-image: debian}]}]\n"
	tests := []struct {
		name string
		yaml string
		// want lists substrings of the error, one per expected problem.
		want []string
	}{
		{"unknown key", base + "colour: blue\n", []string{"decoding sim provider sim", "colour"}},
		{"wrong type", base + "seed: many\n", []string{"decoding sim provider sim"}},
		{"bad rates and latencies", base + "api-latency: -1\nboot-steps: [1, -2]\nerror-rate: {create: 2}\n" +
			"rate-limit-rate: -0.1\ncapacity-error-rate: 1.5\nlost-reply-rate: 3\ndelete-latency: 1e9\n", []string{
			"api-latency: must be between", "boot-steps[1]: must be between", "error-rate.create: must be a fraction",
			"rate-limit-rate: must be a fraction", "capacity-error-rate: must be a fraction",
			"lost-reply-rate: must be a fraction", "delete-latency: must be between",
		}},
		{"bad quota and zones", base + "quota: {instances: -1, cores: -2, ram: -3}\nazs: [a, '', a]\n", []string{
			"quota.instances: must not be negative", "quota.cores: must not be negative",
			"quota.ram: must not be negative", "azs[1]: must not be empty", `azs[2]: duplicate zone "a"`,
		}},
		{"empty zones", base + "azs: []\n", []string{"azs: must list at least one zone"}},
		{"bad flavors and images", "flavors: [{name: s}, {name: s, cores: 1, ram: 1}, {cores: 1, ram: 1}]\n" +
			"cloud-images: [{name: debian, connection-port: 70000}, {name: debian}, {}]\n" +
			"pools: [{labels: [{flavor: s, cloud-image: debian}]}]\n", []string{
			"flavors[0].cores: must be at least 1", "flavors[0].ram: must be at least 1",
			`flavors[1].name: duplicate flavor "s"`, "flavors[2].name: required",
			"cloud-images[0].connection-port: must be between 0 and 65535",
			`cloud-images[1].name: duplicate cloud image "debian"`, "cloud-images[2].name: required",
		}},
		{"unknown flavor and image", "flavors: [{name: s, cores: 1, ram: 1}]\ncloud-images: [{name: debian}]\n" +
			"pools: [{labels: [{flavor: m, cloud-image: ubuntu}]}]\n", []string{
			`pools[0].labels[0].flavor: unknown flavor "m" (label "small")`,
			`pools[0].labels[0].cloud-image: unknown cloud image "ubuntu" (label "small")`,
		}},
		{"label without sim keys", "flavors: [{name: s, cores: 1, ram: 1}]\ncloud-images: [{name: debian}]\n", []string{
			`pools[0].labels[0].flavor: required (label "small")`,
			`pools[0].labels[0].cloud-image: required (label "small")`,
		}},
		{"valid", base, nil},
		{"extra pool", "flavors: [{name: s, cores: 1, ram: 1}]\ncloud-images: [{name: debian}]\n" +
			"pools: [{labels: [{flavor: s, cloud-image: debian}, {flavor: s, cloud-image: debian}]}, {labels: []}]\n", []string{
			"pools: 2 entries but the provider has 1 pools", `pools[0].labels: 2 entries but pool "main" has 1 labels`,
		}},
		{"cloud keys with a server", base + "server: http://127.0.0.1:9\nseed: 1\nquota: {instances: 1}\nazs: [a]\n", []string{
			"seed: configures the cloud", "quota: configures the cloud", "azs: configures the cloud",
		}},
		{"bad server", base + "server: 'ftp://x'\n", []string{"server: must be an http or https URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProvider("sim", strictDecoder(tc.yaml), pools)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			if !strings.HasPrefix(tc.name, "unknown key") && !strings.HasPrefix(tc.name, "wrong type") {
				// Every problem is reported, one per line.
				assert.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "problems in %v", err)
			}
		})
	}
}

func TestValidateDuplicateLabels(t *testing.T) {
	cfg := Config{Flavors: []Flavor{small}, CloudImages: []CloudImage{{Name: "i"}}}
	err := cfg.Validate([]PoolSpec{{Name: "p", Labels: []LabelSpec{
		{Name: "x", Flavor: "s", CloudImage: "i"}, {Name: "x", Flavor: "s", CloudImage: "i"},
	}}})
	require.ErrorContains(t, err, `pools[0].labels[1]: duplicate label "x" in pool "p"`)
}
