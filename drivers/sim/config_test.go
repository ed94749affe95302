package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
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
		if err := dec.Decode(v); !errors.Is(err, io.EOF) {
			return err
		}
		return nil
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
  - name: main
    labels:
      - {name: small, flavor: s, cloud-image: debian}
      - {name: large, flavor: l, cloud-image: debian}
  - name: other
    labels:
      - name: small
`

func TestParseProvider(t *testing.T) {
	ctx := context.Background()
	d, err := ParseProvider("sim", strictDecoder(goodProvider))
	require.NoError(t, err)
	q, err := d.LabelQuota(ctx, "main", "large")
	require.NoError(t, err)
	assert.Equal(t, drivers.Resources{"instances": 1, "cores": 8, "ram": 16384}, q)
	// A label without flavor gets the default flavor.
	q, err = d.LabelQuota(ctx, "other", "small")
	require.NoError(t, err)
	assert.Equal(t, drivers.Resources{"instances": 1, "cores": DefaultFlavor.Cores, "ram": DefaultFlavor.RAM}, q)
	limits, err := d.QuotaLimits(ctx)
	require.NoError(t, err)
	assert.Equal(t, drivers.Resources{"instances": 10, "cores": 40, "ram": 81920}, limits)
	require.IsType(t, &Cloud{}, d.API())

	// A section with nothing but pools and labels (what is left of a provider that sets
	// only Nodepool's common keys) works; the cloud is unlimited.
	d, err = ParseProvider("sim", strictDecoder("pools:\n  - name: main\n    labels:\n      - name: small\n"))
	require.NoError(t, err)
	limits, err = d.QuotaLimits(ctx)
	require.NoError(t, err)
	assert.Empty(t, limits)
	st, err := d.AdvanceCreate(ctx, drivers.CreateState{Request: drivers.CreateRequest{
		NodeID: "0000000001", Attempt: 1, Hostname: "np0000000001", Pool: "main", Label: "small",
	}})
	require.NoError(t, err)
	require.NotEmpty(t, st.ExternalID)

	d, err = ParseProvider("sim", strictDecoder("server: http://127.0.0.1:1\npools: [{name: p, labels: [{name: x}]}]\n"))
	require.NoError(t, err)
	require.IsType(t, &Client{}, d.API())
}

func TestParseProviderErrors(t *testing.T) {
	base := "flavors: [{name: s, cores: 2, ram: 2048}]\ncloud-images: [{name: debian}]\n" +
		"pools: [{name: main, labels: [{name: small, flavor: s, cloud-image: debian}]}]\n"
	tests := []struct {
		name string
		yaml string
		// want lists substrings of the error, one per expected problem; nil means valid.
		want []string
		// decoding marks errors of the decoder, which stops at the first problem.
		decoding bool
	}{
		{name: "valid", yaml: base},
		{name: "empty", yaml: ""},
		{name: "unknown key", yaml: base + "colour: blue\n", want: []string{"decoding sim provider sim", "colour"}, decoding: true},
		{name: "wrong type", yaml: base + "seed: many\n", want: []string{"decoding sim provider sim"}, decoding: true},
		{name: "bad rates and latencies", yaml: base + "api-latency: -1\nboot-steps: [1, -2]\nerror-rate: {create: 2}\n" +
			"rate-limit-rate: -0.1\ncapacity-error-rate: 1.5\nlost-reply-rate: 3\ndelete-latency: 1e9\n", want: []string{
			"api-latency: must be between", "boot-steps[1]: must be between", "error-rate.create: must be a fraction",
			"rate-limit-rate: must be a fraction", "capacity-error-rate: must be a fraction",
			"lost-reply-rate: must be a fraction", "delete-latency: must be between",
		}},
		{name: "bad quota and zones", yaml: base + "quota: {instances: -1, cores: -2, ram: -3}\nazs: [a, '', a]\n", want: []string{
			"quota.instances: must not be negative", "quota.cores: must not be negative",
			"quota.ram: must not be negative", "azs[1]: must not be empty", `azs[2]: duplicate zone "a"`,
		}},
		{name: "empty zones", yaml: base + "azs: []\n", want: []string{"azs: must list at least one zone"}},
		{name: "bad flavors and images", yaml: "flavors: [{name: s}, {name: s, cores: 1, ram: 1}, {cores: 1, ram: 1}]\n" +
			"cloud-images: [{name: debian, connection-port: 70000}, {name: debian}, {}]\n", want: []string{
			"flavors[0].cores: must be at least 1", "flavors[0].ram: must be at least 1",
			`flavors[1].name: duplicate flavor "s"`, "flavors[2].name: required",
			"cloud-images[0].connection-port: must be between 0 and 65535",
			`cloud-images[1].name: duplicate cloud image "debian"`, "cloud-images[2].name: required",
		}},
		{name: "unknown flavor and image", yaml: "flavors: [{name: s, cores: 1, ram: 1}]\ncloud-images: [{name: debian}]\n" +
			"pools: [{name: main, labels: [{name: small, flavor: m, cloud-image: ubuntu}]}]\n", want: []string{
			`pools[0].labels[0].flavor: unknown flavor "m"`,
			`pools[0].labels[0].cloud-image: unknown cloud image "ubuntu"`,
		}},
		{name: "names", yaml: "pools: [{labels: [{}]}, {name: a, labels: [{name: x}, {name: x}]}, {name: a}]\n", want: []string{
			"pools[0].name: required", "pools[0].labels[0].name: required",
			`pools[1].labels[1].name: duplicate label "x" in pool "a"`, `pools[2].name: duplicate pool "a"`,
		}},
		{name: "cloud keys with a server", yaml: base + "server: http://127.0.0.1:9\nseed: 1\nquota: {instances: 1}\nazs: [a]\n", want: []string{
			"seed: configures the cloud", "quota: configures the cloud", "azs: configures the cloud",
		}},
		{name: "bad server", yaml: base + "server: 'ftp://x'\n", want: []string{"server: must be an http or https URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProvider("sim", strictDecoder(tc.yaml))
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			if !tc.decoding {
				// Every problem is reported, one per line.
				assert.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "problems in %v", err)
			}
		})
	}
}
