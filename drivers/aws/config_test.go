package aws

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

func TestDecodeConfig(t *testing.T) {
	cfg, err := DecodeConfig([]byte(fmt.Sprintf(baseConfig, "http://127.0.0.1:1")))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(testPools))
	require.Equal(t, []ImageFilter{
		{Name: "name", Values: []string{"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"}},
		{Name: "owner-id", Values: []string{"099720109477"}},
	}, cfg.CloudImages[0].ImageFilters, "filter keys in either case")
	main, private := cfg.Pools[0], cfg.Pools[1]
	require.True(t, main.publicIPv4())
	require.False(t, main.publicIPv6())
	require.True(t, main.hostKeyChecking())
	require.False(t, private.publicIPv4())
	require.True(t, private.publicIPv6())
	require.False(t, private.hostKeyChecking())
	require.Equal(t, []string{"m5.large", "c5.large"}, cfg.Pools[0].Labels[2].instanceTypes())
	require.Equal(t, &IAMInstanceProfile{Name: "ci-node"}, cfg.Pools[0].Labels[1].IAMInstanceProfile)

	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown provider key", "region-name: x\nrate: 2\npools: []", "field rate not found"},
		{"unknown label key", "region-name: x\npools:\n  - labels:\n      - flavor: big", "field flavor not found"},
		{"unknown filter key", "region-name: x\ncloud-images:\n  - name: a\n    image-filters:\n      - name: a\n        value: [b]", "field value not found"},
		{"wrong type", "region-name: x\npools:\n  - public-ipv4: maybe", "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeConfig([]byte(tc.yaml))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidate(t *testing.T) {
	good := func() Config {
		cfg, err := DecodeConfig([]byte(fmt.Sprintf(baseConfig, "http://127.0.0.1:1")))
		require.NoError(t, err)
		return cfg
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		pools  []PoolSpec
		want   []string
	}{
		{"good", func(*Config) {}, testPools, nil},
		{"region", func(c *Config) { c.RegionName = "" }, testPools, []string{"region-name: required"}},
		{"endpoint", func(c *Config) { c.Endpoint = "ftp://x" }, testPools, []string{"endpoint: must be an http or https URL"}},
		{"image both", func(c *Config) { c.CloudImages[1].ImageFilters = []ImageFilter{{Name: "a", Values: []string{"b"}}} },
			testPools, []string{"cloud-images[1]: exactly one of image-id or image-filters"}},
		{"image neither and no username", func(c *Config) { c.CloudImages[1].ImageID = ""; c.CloudImages[1].Username = "" },
			testPools, []string{"cloud-images[1]: exactly one of", "cloud-images[1].username: required"}},
		{"filter without values", func(c *Config) { c.CloudImages[0].ImageFilters[1].Values = nil },
			testPools, []string{"cloud-images[0].image-filters[1].values: at least one value"}},
		{"duplicate image", func(c *Config) { c.CloudImages = append(c.CloudImages, c.CloudImages[0]) },
			testPools, []string{`cloud-images[2].name: duplicate cloud image "jammy"`}},
		{"label problems", func(c *Config) {
			l := &c.Pools[0].Labels[0]
			l.InstanceTypes = []string{"c5.large", "c5.large"}
			l.CloudImage = "nope"
			l.KeyName = ""
			l.VolumeType = "floppy"
			l.IMDSv2 = "sometimes"
			l.OnDemandFallback = true
			l.IAMInstanceProfile = &IAMInstanceProfile{Name: "a", Arn: "b"}
		}, testPools, []string{
			"pools[0].labels[0]: instance-type and instance-types are exclusive",
			"pools[0].labels[0].instance-types[1]: duplicate instance type",
			`pools[0].labels[0].cloud-image: unknown cloud image "nope"`,
			"pools[0].labels[0].key-name: required",
			"pools[0].labels[0].volume-type: must be one of",
			"pools[0].labels[0].imdsv2: must be required or optional",
			"pools[0].labels[0].on-demand-fallback: requires use-spot",
			"pools[0].labels[0].iam-instance-profile: exactly one of name or arn",
		}},
		{"no instance type", func(c *Config) { c.Pools[1].Labels[0].InstanceType = "" }, testPools,
			[]string{"pools[1].labels[0]: one of instance-type, instance-types or fleet is required"}},
		{"names do not match", func(*Config) {}, []PoolSpec{{Name: "main", Labels: []string{"a"}}},
			[]string{"pools: 2 pools decoded but 1 named", "pools[0].labels: 3 labels decoded but 1 named"}},
		{"duplicate names", func(*Config) {}, []PoolSpec{{Name: "a", Labels: []string{"x", "x", "y"}}, {Name: "a", Labels: []string{"z"}}},
			[]string{`pools[1].name: duplicate pool "a"`, `pools[0].labels[1].name: missing or duplicate label name "x"`}},
		{"zones", func(c *Config) {
			c.Pools[0].AvailabilityZones = []string{"us-east-1a", "", "us-east-1a"}
			c.Pools[1].AvailabilityZones = []string{"us-east-1c"}
		}, testPools, []string{
			"pools[0].availability-zones: more than one zone needs no subnet-id",
			"pools[0].availability-zones[1]: must not be empty",
			`pools[0].availability-zones[2]: duplicate zone "us-east-1a"`,
			"pools[1]: availability-zone and availability-zones are exclusive",
		}},
		{"one zone with a subnet", func(c *Config) { c.Pools[0].AvailabilityZones = []string{"us-east-1a"} }, testPools, nil},
		{"ip aliases disagree", func(c *Config) {
			yes, no := true, false
			c.Pools[0].PublicIPv4, c.Pools[0].PublicIPAddress = &yes, &no
		}, testPools, []string{"pools[0]: public-ipv4 and public-ip-address disagree"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.mutate(&cfg)
			err := cfg.Validate(tc.pools)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "every problem reported once: %v", err)
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(context.Background(), "p", Config{}, nil)
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err))
	require.ErrorContains(t, err, "region-name: required")
	_, err = New(context.Background(), "", Config{}, nil)
	require.Equal(t, drivers.KindPermanent, drivers.KindOf(err))
}

func TestUnsupportedUpstreamKeysAreNamed(t *testing.T) {
	c := Config{RegionName: "us-east-1", ObjectStorage: map[string]any{"bucket-name": "b"}, DiskImages: []any{"u"},
		Pools: []Pool{{Labels: []Label{{DiskImage: "u", CloudImage: "x", KeyName: "k", Fleet: &Fleet{
			InstanceTypes: []string{"t3.small"}, AllocationStrategy: "lowest-price", InstanceRequirements: map[string]any{"vcpu-count": 1},
		}}}}}}
	err := c.Validate([]PoolSpec{{Name: "main", Labels: []string{"small"}}})
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{"object-storage: not supported by this launcher", "diskimages: not supported by this launcher",
		"labels[0].diskimage: not supported", "labels[0].fleet.instance-requirements: not supported by this launcher"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
}

func TestValidateFleetAndDedicatedHost(t *testing.T) {
	base := func() Config {
		return Config{
			RegionName:  "us-east-1",
			CloudImages: []CloudImage{{Name: "jammy", ImageID: "ami-1", Username: "ubuntu"}},
			Pools: []Pool{{AvailabilityZone: "us-east-1a", Labels: []Label{{
				CloudImage: "jammy", KeyName: "zuul",
				Fleet: &Fleet{InstanceTypes: []string{"t3.small", "t3.large"}, AllocationStrategy: "lowest-price"},
			}}}},
		}
	}
	pools := []PoolSpec{{Name: "main", Labels: []string{"fleet"}}}
	tests := []struct {
		name   string
		mutate func(l *Label, p *Pool)
		want   []string
	}{
		{"on-demand fleet", func(*Label, *Pool) {}, nil},
		{"prioritized on demand", func(l *Label, _ *Pool) { l.Fleet.AllocationStrategy = "prioritized" }, nil},
		{"spot by use-spot", func(l *Label, _ *Pool) { l.UseSpot, l.Fleet.AllocationStrategy = true, "price-capacity-optimized" }, nil},
		{"spot by market-type", func(l *Label, _ *Pool) { l.Fleet.MarketType, l.Fleet.AllocationStrategy = "spot", "diversified" }, nil},
		{"spot strategy on demand", func(l *Label, _ *Pool) { l.Fleet.AllocationStrategy = "capacity-optimized" },
			[]string{"labels[0].fleet.allocation-strategy: must be one of prioritized, lowest-price for a on-demand fleet"}},
		{"on-demand strategy for spot", func(l *Label, _ *Pool) { l.Fleet.MarketType, l.Fleet.AllocationStrategy = "spot", "prioritized" },
			[]string{"labels[0].fleet.allocation-strategy: must be one of price-capacity-optimized"}},
		{"no strategy", func(l *Label, _ *Pool) { l.Fleet.AllocationStrategy = "" },
			[]string{"labels[0].fleet.allocation-strategy: required"}},
		{"bad market", func(l *Label, _ *Pool) { l.Fleet.MarketType = "reserved" },
			[]string{`labels[0].fleet.market-type: must be spot or on-demand, got "reserved"`}},
		{"market contradicts use-spot", func(l *Label, _ *Pool) {
			l.UseSpot, l.Fleet.MarketType = true, "on-demand"
		}, []string{"labels[0].fleet.market-type: on-demand contradicts the label's use-spot"}},
		{"no types", func(l *Label, _ *Pool) { l.Fleet.InstanceTypes = nil },
			[]string{"labels[0].fleet.instance-types: at least one instance type is required"}},
		{"duplicate type", func(l *Label, _ *Pool) { l.Fleet.InstanceTypes = []string{"t3.small", "t3.small"} },
			[]string{`labels[0].fleet.instance-types[1]: duplicate instance type "t3.small"`}},
		{"fleet and instance-type", func(l *Label, _ *Pool) { l.InstanceType = "t3.small" },
			[]string{"labels[0]: fleet is exclusive with instance-type and instance-types"}},
		{"fallback with fleet", func(l *Label, _ *Pool) {
			l.UseSpot, l.OnDemandFallback, l.Fleet.AllocationStrategy = true, true, "lowest-price"
		}, []string{"labels[0].fleet: on-demand-fallback is not available with fleet"}},
		{"dedicated host", func(l *Label, _ *Pool) { l.Fleet, l.InstanceType, l.DedicatedHost = nil, "m5.large", true }, nil},
		{"dedicated host in the one zone of a list", func(l *Label, p *Pool) {
			l.Fleet, l.InstanceType, l.DedicatedHost = nil, "m5.large", true
			p.AvailabilityZone, p.AvailabilityZones = "", []string{"us-east-1b"}
		}, nil},
		{"dedicated host without zone", func(l *Label, p *Pool) {
			l.Fleet, l.InstanceType, l.DedicatedHost = nil, "m5.large", true
			p.AvailabilityZone = ""
		}, []string{"labels[0].dedicated-host: requires the pool's availability-zone"}},
		{"dedicated host on spot", func(l *Label, _ *Pool) {
			l.Fleet, l.InstanceType, l.DedicatedHost, l.UseSpot = nil, "m5.large", true, true
		},
			[]string{"labels[0].dedicated-host: spot instances cannot be launched on dedicated hosts"}},
		{"dedicated host with a fleet", func(l *Label, _ *Pool) { l.DedicatedHost = true },
			[]string{"labels[0].dedicated-host: requires instance-type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c.Pools[0].Labels[0], &c.Pools[0])
			err := c.Validate(pools)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), "pools[0]."+w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "every problem reported once: %v", err)
		})
	}
}
