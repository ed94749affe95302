package openstack

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		pools     []PoolSpec
		decodeErr string
		problems  []string // "path: message" substrings; empty = valid
	}{
		{name: "test configuration", yaml: testConfig, pools: testPools},
		{name: "unknown key", yaml: "cloud: c\nflavor: x\npools: []\n", decodeErr: "line 2: field flavor not found"},
		{name: "unknown label key", yaml: "cloud: c\npools:\n  - labels:\n      - flavour-name: x\n", decodeErr: "line 4: field flavour-name not found"},
		{
			name: "image building keys",
			yaml: `
cloud: c
diskimages: [{name: d}]
image-upload-timeout: 100
post-upload-hook: /bin/true
pools:
  - labels:
      - diskimage: d
        min-ram: 1024
`,
			pools: []PoolSpec{{Name: "p", Labels: []string{"l"}}},
			problems: []string{
				"diskimages: not supported by this launcher", "image-upload-timeout: not supported", "post-upload-hook: not supported",
				"pools[0].labels[0].diskimage: not supported by this launcher",
			},
		},
		{
			name: "missing and bad values",
			yaml: `
cloud-images:
  - name: a
    image-id: x
    image-name: y
    connection-port: 70000
    connection-type: telnet
  - name: a
pools:
  - networks: [n, n]
    availability-zones: [""]
    max-volumes: -1
    labels:
      - cloud-image: nope
        volume-size: 10
      - cloud-image: a
        min-ram: -5
`,
			pools: []PoolSpec{{Name: "p", Labels: []string{"l1", "l1"}}},
			problems: []string{
				"cloud: required", "cloud-images[0]: image-id and image-name are exclusive",
				"cloud-images[0].connection-port: must be a TCP port", "cloud-images[0].connection-type: must be ssh",
				`cloud-images[1].name: duplicate cloud image "a"`, `pools[0].networks[1]: duplicate network "n"`,
				"pools[0].availability-zones[0]: must not be empty", "pools[0].max-volumes: must not be negative",
				`pools[0].labels[0].cloud-image: unknown cloud image "nope"`, "pools[0].labels[0]: one of flavor-name or min-ram is required",
				"pools[0].labels[0].volume-size: requires boot-from-volume", "pools[0].labels[1].min-ram: must not be negative",
				"pools[0].labels[1]: one of flavor-name or min-ram is required",
				`pools[0].labels[1].name: missing or duplicate label name "l1"`,
			},
		},
		{name: "no pools", yaml: "cloud: c\n", problems: []string{"pools: at least one pool is required"}},
		{name: "pool count mismatch", yaml: "cloud: c\npools:\n  - labels: []\n", pools: []PoolSpec{{Name: "a"}, {Name: "b"}},
			problems: []string{"pools: 1 pools decoded but 2 named"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := DecodeConfig([]byte(tc.yaml))
			if tc.decodeErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.decodeErr)
				return
			}
			require.NoError(t, err)
			verr := cfg.Validate(tc.pools)
			if len(tc.problems) == 0 {
				require.NoError(t, verr)
				return
			}
			require.Error(t, verr)
			var all []string
			for _, p := range Problems(verr) {
				all = append(all, p.Error())
			}
			text := strings.Join(all, "\n")
			for _, want := range tc.problems {
				assert.Contains(t, text, want)
			}
			assert.Len(t, all, len(tc.problems), "problems:\n%s", text)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	no, yes := false, true
	tests := []struct {
		name     string
		pool     Pool
		label    Label
		floating bool
		hostKeys bool
		volume   int
	}{
		{"defaults", Pool{}, Label{}, true, true, DefaultVolumeSize},
		{"pool settings", Pool{AutoFloatingIP: &no, HostKeyChecking: &no}, Label{VolumeSize: 20}, false, false, 20},
		{"label overrides host keys", Pool{HostKeyChecking: &no}, Label{HostKeyChecking: &yes}, true, true, DefaultVolumeSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.floating, tc.pool.autoFloatingIP())
			assert.Equal(t, tc.hostKeys, tc.pool.hostKeyChecking(&tc.label))
			assert.Equal(t, tc.volume, tc.label.volumeSize())
		})
	}
}

func TestFormatRequest(t *testing.T) {
	tests := []struct {
		format, want string
		ok           bool
	}{
		{"Tenant is {request.tenant_name}", "Tenant is tenant-a", true},
		{"{request.id}/{request.requestor}", "100-1/zuul", true},
		{"{{literal}}", "{literal}", true},
		{"{request.nope}", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			got, ok := formatRequest(tc.format, requestInfo())
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				assert.Equal(t, tc.want, got)
			}
		})
	}
}
