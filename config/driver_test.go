package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The shape an AWS driver might give its section: no common key is declared; pools
// and labels declare only their name besides their own keys.
type awsImageFilter struct {
	Name   string   `yaml:"name"`
	Values []string `yaml:"values"`
}

type awsCloudImage struct {
	Name         string           `yaml:"name"`
	ImageFilters []awsImageFilter `yaml:"image-filters"`
	Username     string           `yaml:"username"`
	PythonPath   string           `yaml:"python-path"`
}

type awsLabelKeys struct {
	CloudImage   string            `yaml:"cloud-image"`
	InstanceType string            `yaml:"instance-type"`
	KeyName      string            `yaml:"key-name"`
	VolumeType   string            `yaml:"volume-type"`
	VolumeSize   int               `yaml:"volume-size"`
	Tags         map[string]string `yaml:"tags"`
	DynamicTags  map[string]string `yaml:"dynamic-tags"`
}

type awsLabel struct {
	Name         string `yaml:"name"`
	awsLabelKeys `yaml:",inline"`
}

type awsPoolKeys struct {
	SubnetID        string `yaml:"subnet-id"`
	SecurityGroupID string `yaml:"security-group-id"`
	PublicIPv4      *bool  `yaml:"public-ipv4"`
}

type awsPool struct {
	Name        string `yaml:"name"`
	awsPoolKeys `yaml:",inline"`
	Labels      []awsLabel `yaml:"labels"`
}

type awsProvider struct {
	RegionName  string          `yaml:"region-name"`
	CloudImages []awsCloudImage `yaml:"cloud-images"`
	Pools       []awsPool       `yaml:"pools"`
}

func loadAWSExample(t *testing.T) *Provider {
	t.Helper()
	clearTemporalEnv(t)
	c, err := Load("testdata/good/aws-example.yaml")
	require.NoError(t, err)
	return &c.Providers[0]
}

func TestProviderDecodeDriver(t *testing.T) {
	p := loadAWSExample(t)
	var got awsProvider
	require.NoError(t, p.DecodeDriver(&got))
	yes := true
	want := awsProvider{
		RegionName: "us-east-1",
		CloudImages: []awsCloudImage{{
			Name: "ubuntu-jammy-ami",
			ImageFilters: []awsImageFilter{
				{Name: "name", Values: []string{"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"}},
				{Name: "owner-id", Values: []string{"099720109477"}},
			},
			Username:   "ubuntu",
			PythonPath: "auto",
		}},
		Pools: []awsPool{{
			Name:        "main",
			awsPoolKeys: awsPoolKeys{SubnetID: "subnet-0123456789abcdef0", SecurityGroupID: "sg-0123456789abcdef0", PublicIPv4: &yes},
			Labels: []awsLabel{{Name: "ubuntu-jammy", awsLabelKeys: awsLabelKeys{
				CloudImage: "ubuntu-jammy-ami", InstanceType: "m5.large", KeyName: "zuul",
				VolumeType: "gp3", VolumeSize: 80,
				Tags:        map[string]string{"team": "ci"},
				DynamicTags: map[string]string{"zuul-tenant": "{request.tenant_name}"},
			}}},
		}},
	}
	assert.Equal(t, want, got)
}

func TestPoolAndLabelDecodeDriver(t *testing.T) {
	p := loadAWSExample(t)
	pool := &p.Pools[0]
	var pk awsPoolKeys
	require.NoError(t, pool.DecodeDriver(&pk))
	assert.Equal(t, "subnet-0123456789abcdef0", pk.SubnetID)

	var lk awsLabelKeys
	require.NoError(t, pool.Labels[0].DecodeDriver(&lk))
	assert.Equal(t, "m5.large", lk.InstanceType)
	assert.Equal(t, 80, lk.VolumeSize)

	// The raw nodes are untouched by stripping.
	assert.Len(t, pool.Raw.Content, 14)
}

func TestDecodeDriverProblems(t *testing.T) {
	p := loadAWSExample(t)

	type label struct {
		Name         string `yaml:"name"`
		CloudImage   string `yaml:"cloud-image"`
		InstanceType string `yaml:"instance-type"`
		KeyName      string `yaml:"key-name"`
		VolumeType   string `yaml:"volume-type"`
		VolumeSize   string `yaml:"volume-size"`
		Tags         bool   `yaml:"tags"`
	}
	type pool struct {
		Name   string  `yaml:"name"`
		Labels []label `yaml:"labels"`
	}
	type provider struct {
		RegionName int    `yaml:"region-name"`
		Pools      []pool `yaml:"pools"`
	}
	const f = "testdata/good/aws-example.yaml"
	var v provider
	err := p.DecodeDriver(&v)
	require.Error(t, err)
	assert.Equal(t, []string{
		f + `:30: providers[0].region-name: expected an integer, got "us-east-1"`,
		f + ":35: providers[0]: field cloud-images not found",
		f + ":47: providers[0].pools[0]: field subnet-id not found",
		f + ":48: providers[0].pools[0]: field security-group-id not found",
		f + ":49: providers[0].pools[0]: field public-ipv4 not found",
		f + ":60: providers[0].pools[0].labels[0].tags: expected a boolean, got a mapping",
		f + ":61: providers[0].pools[0].labels[0]: field dynamic-tags not found",
	}, problemTexts(err))

	var lk struct {
		InstanceType string `yaml:"instance-type"`
	}
	err = p.Pools[0].Labels[0].DecodeDriver(&lk)
	require.Error(t, err)
	assert.Contains(t, err.Error(), f+":54: providers[0].pools[0].labels[0]: field cloud-image not found")
	assert.Len(t, Problems(err), 6)

	require.Error(t, p.DecodeDriver(v))
	require.Error(t, p.DecodeDriver(nil))
}

func TestDecodeDriverOfCodeBuiltProvider(t *testing.T) {
	var p Provider
	var v struct {
		Region string `yaml:"region"`
	}
	require.NoError(t, p.DecodeDriver(&v), "a provider without a raw node has no driver keys")
	require.NoError(t, (&Pool{}).DecodeDriver(&v))
	require.NoError(t, (&PoolLabel{}).DecodeDriver(&v))
}

func TestDecodeDriverWithMergeKeys(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Parse("m.yaml", []byte(`
zookeeper-servers: [{host: zk}]
labels: [{name: a}]
providers:
  - &p
    name: one
    driver: x
    region: r1
    pools:
      - &pool
        name: main
        flavor: big
        labels: [{name: a, size: 3}]
  - <<: *p
    name: two
    pools:
      - <<: *pool
        flavor: small
`))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	type label struct {
		Name string `yaml:"name"`
		Size int    `yaml:"size"`
	}
	type pool struct {
		Name   string  `yaml:"name"`
		Flavor string  `yaml:"flavor"`
		Labels []label `yaml:"labels"`
	}
	type provider struct {
		Region string `yaml:"region"`
		Pools  []pool `yaml:"pools"`
	}
	var v provider
	require.NoError(t, c.Providers[1].DecodeDriver(&v))
	assert.Equal(t, provider{Region: "r1", Pools: []pool{{Name: "main", Flavor: "small", Labels: []label{{Name: "a", Size: 3}}}}}, v)
}

func TestCommonKeys(t *testing.T) {
	assert.Equal(t, []string{
		KeyName, KeyDriver, KeyMaxConcurrency, KeyPriority, KeyRate, KeyLaunchTimeout, KeyBootTimeout,
		KeyLaunchRetries, KeyMaxServers, KeyMaxCores, KeyMaxRAM, KeyMaxResources, KeyPools,
	}, CommonProviderKeys())
	assert.Equal(t, []string{
		KeyName, KeyMaxServers, KeyMaxCores, KeyMaxRAM, KeyMaxResources, KeyPriority, KeyNodeAttributes, KeyLabels,
	}, CommonPoolKeys())
	assert.Equal(t, []string{KeyName}, CommonLabelKeys())
	// Callers get copies.
	k := CommonLabelKeys()
	k[0] = "changed"
	assert.Equal(t, []string{KeyName}, CommonLabelKeys())
}

func TestValidateDrivers(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Parse("d.yaml", []byte(`zookeeper-servers: [{host: zk}]
labels: [{name: small}]
providers:
  - name: cloud-a
    driver: aws
    region: here
    pools:
      - name: main
        labels:
          - name: small
            flavor: tiny
  - name: cloud-b
    driver: gce
  - name: cloud-c
    driver: sim
    pools:
      - name: main
        labels:
          - name: missing
  - name: cloud-d
    driver: off
`))
	require.NoError(t, err)

	type awsLabel struct {
		Name string `yaml:"name"`
	}
	type awsPool struct {
		Name   string     `yaml:"name"`
		Labels []awsLabel `yaml:"labels"`
	}
	type aws struct {
		Region string    `yaml:"region"`
		Pools  []awsPool `yaml:"pools"`
	}
	var simCalls []string
	known := map[string]func(p *Provider) error{
		"aws": func(p *Provider) error {
			var v aws
			return p.DecodeDriver(&v)
		},
		"sim": func(p *Provider) error {
			simCalls = append(simCalls, p.Name)
			return errors.New("sim refuses this provider")
		},
		"off": nil,
	}
	err = c.ValidateDrivers(known)
	require.Error(t, err)
	assert.Equal(t, []string{
		"d.yaml:11: providers[0].pools[0].labels[0]: field flavor not found",
		`d.yaml:13: providers[1] (cloud-b): driver "gce" of upstream Nodepool is not supported by this launcher (supported: aws, off, sim)`,
		"d.yaml:14: providers[2] (cloud-c): sim refuses this provider",
		`d.yaml:19: providers[2].pools[0].labels[0].name: label "missing" is not defined in the top-level labels`,
	}, problemTexts(err))
	assert.Equal(t, []string{"cloud-c"}, simCalls)

	// With every driver happy, only the configuration's own problems remain.
	known["aws"] = func(*Provider) error { return nil }
	known["sim"] = func(*Provider) error { return nil }
	known["gce"] = func(*Provider) error { return nil }
	assert.Equal(t, []string{
		`d.yaml:19: providers[2].pools[0].labels[0].name: label "missing" is not defined in the top-level labels`,
	}, problemTexts(c.ValidateDrivers(known)))
}

func TestProviderDecodeDriverPositional(t *testing.T) {
	p := loadAWSExample(t)
	type pool struct {
		awsPoolKeys `yaml:",inline"`
		Labels      []awsLabelKeys `yaml:"labels"`
	}
	type provider struct {
		RegionName  string          `yaml:"region-name"`
		CloudImages []awsCloudImage `yaml:"cloud-images"`
		Pools       []pool          `yaml:"pools"`
	}
	var got provider
	require.NoError(t, p.DecodeDriverPositional(&got), "names need not be declared")
	require.Len(t, got.Pools, 1)
	assert.Equal(t, "subnet-0123456789abcdef0", got.Pools[0].SubnetID)
	require.Len(t, got.Pools[0].Labels, 1)
	assert.Equal(t, "m5.large", got.Pools[0].Labels[0].InstanceType)
	assert.Equal(t, "us-east-1", got.RegionName)

	// A struct that declares names is told they are not there.
	var named awsProvider
	err := p.DecodeDriverPositional(&named)
	require.NoError(t, err, "declared but absent keys are fine")
	assert.Empty(t, named.Pools[0].Name)

	// Unknown keys are still problems, located in the file.
	var bare struct {
		RegionName string `yaml:"region-name"`
	}
	err = p.DecodeDriverPositional(&bare)
	require.Error(t, err)
	assert.Equal(t, []string{
		"testdata/good/aws-example.yaml:35: providers[0]: field cloud-images not found",
		"testdata/good/aws-example.yaml:44: providers[0]: field pools not found",
	}, problemTexts(err))

	// The raw nodes are untouched.
	assert.Len(t, p.Pools[0].Raw.Content, 14)
	assert.Len(t, p.Pools[0].Labels[0].Raw.Content, 16)
}

func TestProviderDriverProblems(t *testing.T) {
	p := loadAWSExample(t)
	where := "testdata/good/aws-example.yaml:28: providers[0]: "
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"nil", nil, nil},
		{"one error", errors.New("region-name: unknown region"), []string{where + "region-name: unknown region"}},
		{"joined errors", errors.Join(errors.New("a: bad"), errors.Join(errors.New("b: bad"), errors.New("c: bad"))),
			[]string{where + "a: bad", where + "b: bad", where + "c: bad"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.DriverProblems(tc.err)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, tc.want, problemTexts(err))
		})
	}
}

// A pool label may be a bare name, as upstream's drivers whose labels have no keys of
// their own write it; a driver whose labels are mappings rejects it when it decodes.
func TestBarePoolLabelName(t *testing.T) {
	c, err := Parse("b.yaml", []byte(`zookeeper-servers: [{host: zk}]
labels: [{name: small}, {name: big}]
providers:
  - name: p
    driver: x
    pools:
      - name: main
        labels:
          - small
          - name: big
            flavor: f
`))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	pool := c.Providers[0].Pools[0]
	require.Len(t, pool.Labels, 2)
	assert.Equal(t, "small", pool.Labels[0].Name)
	assert.Equal(t, 9, pool.Labels[0].Pos.KeyLine(KeyName))
	assert.Equal(t, "big", pool.Labels[1].Name)

	type label struct {
		Name   string `yaml:"name"`
		Flavor string `yaml:"flavor"`
	}
	var l label
	err = pool.Labels[0].DecodeDriver(&l)
	require.Error(t, err)
	assert.Equal(t, []string{`b.yaml:9: providers[0].pools[0].labels[0]: expected a mapping, got "small"`}, problemTexts(err))
	require.NoError(t, pool.Labels[1].DecodeDriver(&l))
	assert.Equal(t, "f", l.Flavor)
}
