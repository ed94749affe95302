package aws

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"

	"gopkg.in/yaml.v3"
)

// Defaults of the AWS configuration, as upstream Nodepool has them.
const (
	DefaultPublicIPv4      = true
	DefaultPublicIPv6      = false
	DefaultHostKeyChecking = true
)

// Values accepted for some keys.
var (
	// VolumeTypes are the EBS volume types a label may ask for.
	VolumeTypes = []string{"standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"}
	// IMDSv2Values are the accepted values of a label's imdsv2 key.
	IMDSv2Values = []string{"required", "optional"}
)

// Config is the AWS-specific part of a provider section of nodepool.yaml. Nodepool's
// common keys (name, driver, rate, max-servers, pools[].name, labels[].name, ...) are
// removed by the caller before decoding, so pools and labels are matched to their
// names by position (see PoolSpec).
type Config struct {
	// RegionName is the EC2 region, e.g. "us-east-1". Required.
	RegionName string `yaml:"region-name"`
	// ProfileName selects a profile of the shared AWS configuration files.
	ProfileName string `yaml:"profile-name,omitempty"`
	// Endpoint overrides the service endpoint URL, for EC2-compatible clouds and the
	// simulator. Empty means AWS.
	Endpoint string `yaml:"endpoint,omitempty"`
	// CloudImages are the images labels refer to by name.
	CloudImages []CloudImage `yaml:"cloud-images,omitempty"`
	// Pools are the provider's pools, in the order of the provider section.
	Pools []Pool `yaml:"pools"`

	// Upstream keys for image builds, which this launcher does not do: accepted by the
	// decoder so that Validate can say so instead of reporting an unknown key.
	ObjectStorage      any `yaml:"object-storage,omitempty"`
	ImageImportTimeout any `yaml:"image-import-timeout,omitempty"`
	DiskImages         any `yaml:"diskimages,omitempty"`
}

// CloudImage is an existing AMI, named directly or found by filters.
type CloudImage struct {
	Name string `yaml:"name"`
	// ImageID names the AMI; exclusive with ImageFilters.
	ImageID string `yaml:"image-id,omitempty"`
	// ImageFilters select the newest AMI matching all filters (DescribeImages filters).
	ImageFilters   []ImageFilter `yaml:"image-filters,omitempty"`
	Username       string        `yaml:"username"`
	PythonPath     string        `yaml:"python-path,omitempty"`
	ShellType      string        `yaml:"shell-type,omitempty"`
	ConnectionType string        `yaml:"connection-type,omitempty"`
	ConnectionPort int           `yaml:"connection-port,omitempty"`
}

// ImageFilter is one DescribeImages filter. Its keys are accepted as "name"/"values" and
// as "Name"/"Values", as upstream does.
type ImageFilter struct {
	Name   string   `yaml:"name"`
	Values []string `yaml:"values"`
}

// UnmarshalYAML decodes a filter strictly, accepting either case of the keys.
func (f *ImageFilter) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: image filter must be a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name", "Name":
			if err := v.Decode(&f.Name); err != nil {
				return fmt.Errorf("decoding image filter name: %w", err)
			}
		case "values", "Values":
			if err := v.Decode(&f.Values); err != nil {
				return fmt.Errorf("decoding image filter values: %w", err)
			}
		default:
			return fmt.Errorf("line %d: field %s not found in image filter", k.Line, k.Value)
		}
	}
	return nil
}

// Pool is the AWS-specific part of a pool.
type Pool struct {
	SubnetID        string `yaml:"subnet-id,omitempty"`
	SecurityGroupID string `yaml:"security-group-id,omitempty"`
	// PublicIPv4 asks for a public IPv4 address (default true). PublicIPAddress is its
	// deprecated upstream spelling.
	PublicIPv4      *bool `yaml:"public-ipv4,omitempty"`
	PublicIPAddress *bool `yaml:"public-ip-address,omitempty"`
	// PublicIPv6 asks for one IPv6 address (default false).
	PublicIPv6 *bool `yaml:"public-ipv6,omitempty"`
	// HostKeyChecking makes the launcher scan the node's SSH host keys (default true).
	HostKeyChecking *bool `yaml:"host-key-checking,omitempty"`
	// AvailabilityZone places every instance of the pool in one zone; empty leaves the
	// zone to EC2 (or to the subnet).
	AvailabilityZone string `yaml:"availability-zone,omitempty"`
	// AvailabilityZones lists zones in order of preference (the key of upstream's
	// OpenStack pools): an instance goes to the first zone with capacity for its
	// offering. Exclusive with AvailabilityZone; with more than one zone the pool must
	// not set subnet-id, since a subnet lies in one zone.
	AvailabilityZones []string `yaml:"availability-zones,omitempty"`
	// UseInternalIP makes the private address the node's interface address.
	UseInternalIP bool    `yaml:"use-internal-ip,omitempty"`
	Labels        []Label `yaml:"labels"`
}

// Label is the AWS-specific part of a pool label.
type Label struct {
	// DiskImage is an upstream key this launcher does not support; Validate reports
	// it as such.
	DiskImage any `yaml:"diskimage,omitempty"`
	// DedicatedHost launches each node on a dedicated host of its own, allocated for
	// the node (in the pool's availability zone) and released after it.
	DedicatedHost bool `yaml:"dedicated-host,omitempty"`
	// Fleet launches through an EC2 Fleet of type instant over several instance
	// types; exclusive with InstanceType and InstanceTypes.
	Fleet *Fleet `yaml:"fleet,omitempty"`
	// InstanceType is the EC2 instance type; exclusive with InstanceTypes.
	InstanceType string `yaml:"instance-type,omitempty"`
	// InstanceTypes lists instance types in order of preference: after a capacity error
	// the next one is tried.
	InstanceTypes []string `yaml:"instance-types,omitempty"`
	CloudImage    string   `yaml:"cloud-image"`
	KeyName       string   `yaml:"key-name"`
	EBSOptimized  bool     `yaml:"ebs-optimized,omitempty"`
	VolumeType    string   `yaml:"volume-type,omitempty"`
	// VolumeSize is the root volume size in GiB.
	VolumeSize int32 `yaml:"volume-size,omitempty"`
	IOPS       int32 `yaml:"iops,omitempty"`
	Throughput int32 `yaml:"throughput,omitempty"`
	// UserData is passed to the instance (the driver base64-encodes it).
	UserData           string              `yaml:"userdata,omitempty"`
	IAMInstanceProfile *IAMInstanceProfile `yaml:"iam-instance-profile,omitempty"`
	Tags               map[string]string   `yaml:"tags,omitempty"`
	// DynamicTags are formatted with the node request's attributes, e.g.
	// "{request.tenant_name}"; a tag whose format fails is skipped.
	DynamicTags map[string]string `yaml:"dynamic-tags,omitempty"`
	UseSpot     bool              `yaml:"use-spot,omitempty"`
	// OnDemandFallback launches on-demand instances after spot capacity errors.
	OnDemandFallback bool `yaml:"on-demand-fallback,omitempty"`
	// IMDSv2 is "required" or "optional"; empty leaves the AMI's default.
	IMDSv2 string `yaml:"imdsv2,omitempty"`
}

// Fleet is a label's EC2 Fleet: EC2 picks one of the instance types by the
// allocation strategy.
type Fleet struct {
	InstanceTypes []string `yaml:"instance-types"`
	// AllocationStrategy is one of SpotAllocationStrategies for spot fleets and of
	// OnDemandAllocationStrategies for on-demand ones.
	AllocationStrategy string `yaml:"allocation-strategy"`
	// MarketType is "spot" or "on-demand"; empty follows the label's use-spot.
	MarketType string `yaml:"market-type,omitempty"`
	// InstanceRequirements is an upstream key this launcher does not support.
	InstanceRequirements any `yaml:"instance-requirements,omitempty"`
}

// Allocation strategies a fleet may use, by market.
var (
	SpotAllocationStrategies     = []string{"price-capacity-optimized", "capacity-optimized", "diversified", "lowest-price"}
	OnDemandAllocationStrategies = []string{"prioritized", "lowest-price"}
)

// spot reports whether the fleet launches spot instances.
func (f *Fleet) spot(useSpot bool) bool {
	if f.MarketType != "" {
		return f.MarketType == "spot"
	}
	return useSpot
}

// IAMInstanceProfile names an instance profile by name or by ARN.
type IAMInstanceProfile struct {
	Name string `yaml:"name,omitempty"`
	Arn  string `yaml:"arn,omitempty"`
}

// PoolSpec carries the name of a pool and of its labels (see drivers.PoolSpec).
type PoolSpec = drivers.PoolSpec

// DecodeConfig decodes an AWS provider section strictly (unknown keys are errors). It
// is for callers that hold YAML with only the AWS keys, such as tests and tools.
func DecodeConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decoding aws provider config: %w", err)
	}
	return c, nil
}

// Validate returns every problem of the configuration, each prefixed by its key path,
// joined with errors.Join. When pools is not nil it must describe the same pools and
// labels in the same order.
func (c *Config) Validate(pools []PoolSpec) error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.RegionName == "" {
		add("region-name", "required")
	}
	for _, k := range []struct {
		key string
		v   any
	}{{"object-storage", c.ObjectStorage}, {"image-import-timeout", c.ImageImportTimeout}, {"diskimages", c.DiskImages}} {
		if k.v != nil {
			add(k.key, "not supported by this launcher: it uploads no images (use cloud-images)")
		}
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("endpoint", "must be an http or https URL, got %q", c.Endpoint)
		}
	}
	images := map[string]bool{}
	for i, im := range c.CloudImages {
		path := fmt.Sprintf("cloud-images[%d]", i)
		if im.Name == "" {
			add(path+".name", "required")
		} else if images[im.Name] {
			add(path+".name", "duplicate cloud image %q", im.Name)
		}
		images[im.Name] = true
		if im.Username == "" {
			add(path+".username", "required")
		}
		if (im.ImageID == "") == (len(im.ImageFilters) == 0) {
			add(path, "exactly one of image-id or image-filters is required")
		}
		for j, f := range im.ImageFilters {
			if f.Name == "" {
				add(fmt.Sprintf("%s.image-filters[%d].name", path, j), "required")
			}
			if len(f.Values) == 0 {
				add(fmt.Sprintf("%s.image-filters[%d].values", path, j), "at least one value is required")
			}
		}
		if im.ConnectionPort < 0 || im.ConnectionPort > 65535 {
			add(path+".connection-port", "must be a TCP port, got %d", im.ConnectionPort)
		}
	}
	drivers.CheckPoolSpecs(pools, len(c.Pools), add)
	for i, p := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		if p.PublicIPv4 != nil && p.PublicIPAddress != nil && *p.PublicIPv4 != *p.PublicIPAddress {
			add(path, "public-ipv4 and public-ip-address disagree")
		}
		if p.AvailabilityZone != "" && len(p.AvailabilityZones) > 0 {
			add(path, "availability-zone and availability-zones are exclusive")
		}
		if len(p.AvailabilityZones) > 1 && p.SubnetID != "" {
			add(path+".availability-zones", "more than one zone needs no subnet-id: a subnet lies in one zone")
		}
		for k, z := range p.AvailabilityZones {
			if z == "" {
				add(fmt.Sprintf("%s.availability-zones[%d]", path, k), "must not be empty")
			} else if slices.Index(p.AvailabilityZones, z) < k {
				add(fmt.Sprintf("%s.availability-zones[%d]", path, k), "duplicate zone %q", z)
			}
		}
		if pools != nil && i < len(pools) && len(pools[i].Labels) != len(p.Labels) {
			add(path+".labels", "%d labels decoded but %d named", len(p.Labels), len(pools[i].Labels))
		}
		for j, l := range p.Labels {
			lpath := fmt.Sprintf("%s.labels[%d]", path, j)
			if l.DiskImage != nil {
				add(lpath+".diskimage", "not supported by this launcher: it uploads no images (use cloud-image)")
			}
			if l.DedicatedHost {
				validateDedicatedHost(lpath, &p, l, add)
			}
			if l.Fleet != nil {
				validateFleet(lpath, l, add)
			}
			validateLabel(lpath, l, images, add)
		}
	}
	return errors.Join(errs...)
}

func validateLabel(path string, l Label, images map[string]bool, add func(path, format string, args ...any)) {
	switch {
	case l.Fleet != nil:
		if l.InstanceType != "" || len(l.InstanceTypes) > 0 {
			add(path, "fleet is exclusive with instance-type and instance-types")
		}
	case l.InstanceType == "" && len(l.InstanceTypes) == 0:
		add(path, "one of instance-type, instance-types or fleet is required")
	case l.InstanceType != "" && len(l.InstanceTypes) > 0:
		add(path, "instance-type and instance-types are exclusive")
	}
	for k, t := range l.InstanceTypes {
		if t == "" {
			add(fmt.Sprintf("%s.instance-types[%d]", path, k), "must not be empty")
		}
		if slices.Index(l.InstanceTypes, t) < k {
			add(fmt.Sprintf("%s.instance-types[%d]", path, k), "duplicate instance type %q", t)
		}
	}
	if l.CloudImage == "" {
		if l.DiskImage == nil {
			// A label naming a diskimage is reported as such.
			add(path+".cloud-image", "required")
		}
	} else if !images[l.CloudImage] {
		add(path+".cloud-image", "unknown cloud image %q", l.CloudImage)
	}
	if l.KeyName == "" {
		add(path+".key-name", "required")
	}
	if l.VolumeType != "" && !slices.Contains(VolumeTypes, l.VolumeType) {
		add(path+".volume-type", "must be one of %s, got %q", strings.Join(VolumeTypes, ", "), l.VolumeType)
	}
	if l.VolumeSize < 0 {
		add(path+".volume-size", "must not be negative")
	}
	if l.IOPS < 0 {
		add(path+".iops", "must not be negative")
	}
	if l.Throughput < 0 {
		add(path+".throughput", "must not be negative")
	}
	if l.IMDSv2 != "" && !slices.Contains(IMDSv2Values, l.IMDSv2) {
		add(path+".imdsv2", "must be required or optional, got %q", l.IMDSv2)
	}
	if p := l.IAMInstanceProfile; p != nil && (p.Name == "") == (p.Arn == "") {
		add(path+".iam-instance-profile", "exactly one of name or arn is required")
	}
	if l.OnDemandFallback && !l.UseSpot {
		add(path+".on-demand-fallback", "requires use-spot")
	}
}

// validateFleet checks a label's fleet section.
func validateFleet(path string, l Label, add func(path, format string, args ...any)) {
	f := l.Fleet
	path += ".fleet"
	if f.InstanceRequirements != nil {
		add(path+".instance-requirements", "not supported by this launcher (use instance-types)")
	}
	if len(f.InstanceTypes) == 0 {
		add(path+".instance-types", "at least one instance type is required")
	}
	for k, t := range f.InstanceTypes {
		if t == "" {
			add(fmt.Sprintf("%s.instance-types[%d]", path, k), "must not be empty")
		} else if slices.Index(f.InstanceTypes, t) < k {
			add(fmt.Sprintf("%s.instance-types[%d]", path, k), "duplicate instance type %q", t)
		}
	}
	switch f.MarketType {
	case "", "spot", "on-demand":
	default:
		add(path+".market-type", "must be spot or on-demand, got %q", f.MarketType)
		return
	}
	if f.MarketType == "on-demand" && l.UseSpot {
		add(path+".market-type", "on-demand contradicts the label's use-spot")
	}
	if l.OnDemandFallback {
		add(path, "on-demand-fallback is not available with fleet (choose the fleet's market-type)")
	}
	strategies, market := OnDemandAllocationStrategies, "on-demand"
	if f.spot(l.UseSpot) {
		strategies, market = SpotAllocationStrategies, "spot"
	}
	switch {
	case f.AllocationStrategy == "":
		add(path+".allocation-strategy", "required (one of %s)", strings.Join(strategies, ", "))
	case !slices.Contains(strategies, f.AllocationStrategy):
		add(path+".allocation-strategy", "must be one of %s for a %s fleet, got %q", strings.Join(strategies, ", "), market, f.AllocationStrategy)
	}
}

// validateDedicatedHost checks a dedicated-host label: one instance type, on demand,
// in one availability zone of the pool.
func validateDedicatedHost(path string, p *Pool, l Label, add func(path, format string, args ...any)) {
	if l.InstanceType == "" {
		add(path+".dedicated-host", "requires instance-type (a host holds one instance type)")
	}
	if l.UseSpot {
		add(path+".dedicated-host", "spot instances cannot be launched on dedicated hosts")
	}
	if p.hostZone() == "" {
		add(path+".dedicated-host", "requires the pool's availability-zone (or availability-zones with one zone)")
	}
}

// hostZone returns the zone dedicated hosts of the pool are allocated in, or "" when
// the pool does not name exactly one zone.
func (p *Pool) hostZone() string {
	if p.AvailabilityZone != "" {
		return p.AvailabilityZone
	}
	if len(p.AvailabilityZones) == 1 {
		return p.AvailabilityZones[0]
	}
	return ""
}

// publicIPv4 returns whether the pool asks for a public IPv4 address.
func (p *Pool) publicIPv4() bool {
	switch {
	case p.PublicIPv4 != nil:
		return *p.PublicIPv4
	case p.PublicIPAddress != nil:
		return *p.PublicIPAddress
	}
	return DefaultPublicIPv4
}

// publicIPv6 returns whether the pool asks for an IPv6 address.
func (p *Pool) publicIPv6() bool {
	if p.PublicIPv6 != nil {
		return *p.PublicIPv6
	}
	return DefaultPublicIPv6
}

// hostKeyChecking returns whether the pool checks host keys.
func (p *Pool) hostKeyChecking() bool {
	if p.HostKeyChecking != nil {
		return *p.HostKeyChecking
	}
	return DefaultHostKeyChecking
}

// zones returns the pool's availability zones in order of preference; a single ""
// leaves the choice to EC2.
func (p *Pool) zones() []string {
	if len(p.AvailabilityZones) > 0 {
		return p.AvailabilityZones
	}
	return []string{p.AvailabilityZone}
}

// instanceTypes returns the label's instance types in order of preference.
func (l *Label) instanceTypes() []string {
	switch {
	case l.Fleet != nil:
		return l.Fleet.InstanceTypes
	case l.InstanceType != "":
		return []string{l.InstanceType}
	}
	return l.InstanceTypes
}
