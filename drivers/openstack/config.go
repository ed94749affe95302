package openstack

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"

	"gopkg.in/yaml.v3"
)

// Defaults of the OpenStack configuration, as upstream Nodepool has them.
const (
	DefaultAutoFloatingIP  = true
	DefaultHostKeyChecking = true
	// DefaultVolumeSize is the boot volume size in GiB of a boot-from-volume label
	// without volume-size.
	DefaultVolumeSize = 50
)

// Config is the OpenStack-specific part of a provider section of nodepool.yaml.
// Nodepool's common keys (name, driver, rate, boot-timeout, launch-timeout,
// launch-retries, max-servers, pools[].name, labels[].name, ...) are removed by the
// caller before decoding, so pools and labels are matched to their names by position
// (see PoolSpec).
type Config struct {
	// Cloud names the entry of clouds.yaml (as the OpenStack tools find it:
	// OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml,
	// /etc/openstack/clouds.yaml, with secure.yaml beside it). Required. When no
	// clouds.yaml is found, the OS_* environment variables authenticate instead.
	Cloud string `yaml:"cloud"`
	// RegionName selects the region of the cloud's catalog; empty takes the
	// clouds.yaml entry's region_name (or OS_REGION_NAME).
	RegionName string `yaml:"region-name,omitempty"`
	// ImageNameFormat is upstream's name format of uploaded images; accepted, and
	// unused since this launcher uploads no images.
	ImageNameFormat string `yaml:"image-name-format,omitempty"`
	// NodepoolID is a deprecated upstream key; accepted and ignored.
	NodepoolID string `yaml:"nodepool-id,omitempty"`
	// CleanFloatingIPs is accepted for compatibility: the floating IPs of the
	// provider's servers are always deleted with them, and listed as leaks otherwise.
	CleanFloatingIPs *bool `yaml:"clean-floating-ips,omitempty"`
	// PortCleanupInterval is accepted for compatibility; ports are deleted by Nova
	// with their servers.
	PortCleanupInterval *int `yaml:"port-cleanup-interval,omitempty"`
	// CloudImages are the images labels refer to by name.
	CloudImages []CloudImage `yaml:"cloud-images,omitempty"`
	// Pools are the provider's pools, in the order of the provider section.
	Pools []Pool `yaml:"pools"`

	// Upstream keys for image builds and uploads, which this launcher does not do:
	// accepted by the decoder so that Validate can say so instead of reporting an
	// unknown key.
	DiskImages         any `yaml:"diskimages,omitempty"`
	ImageUploadTimeout any `yaml:"image-upload-timeout,omitempty"`
	PostUploadHook     any `yaml:"post-upload-hook,omitempty"`
}

// CloudImage is an existing Glance image. It is found by ImageID, else by
// ImageName, else by Name.
type CloudImage struct {
	Name           string `yaml:"name"`
	ImageID        string `yaml:"image-id,omitempty"`
	ImageName      string `yaml:"image-name,omitempty"`
	ConfigDrive    *bool  `yaml:"config-drive,omitempty"`
	Username       string `yaml:"username,omitempty"`
	PythonPath     string `yaml:"python-path,omitempty"`
	ShellType      string `yaml:"shell-type,omitempty"`
	ConnectionType string `yaml:"connection-type,omitempty"`
	ConnectionPort int    `yaml:"connection-port,omitempty"`
}

// Pool is the OpenStack-specific part of a pool.
type Pool struct {
	// Networks are network names or ids every server of the pool is attached to;
	// empty lets Nova choose ("auto").
	Networks []string `yaml:"networks,omitempty"`
	// AutoFloatingIP attaches a floating IP to a server that has no public IPv4
	// address (default true).
	AutoFloatingIP *bool `yaml:"auto-floating-ip,omitempty"`
	// HostKeyChecking makes the launcher scan the node's SSH host keys (default
	// true); a label may override it.
	HostKeyChecking *bool `yaml:"host-key-checking,omitempty"`
	// IgnoreProviderQuota makes the pool ignore the cloud's compute limits and
	// count only its own max-servers, max-cores and max-ram.
	IgnoreProviderQuota bool `yaml:"ignore-provider-quota,omitempty"`
	// MaxVolumes and MaxVolumeGB are upstream's volume limits; accepted, and not
	// enforced by this launcher.
	MaxVolumes  *int `yaml:"max-volumes,omitempty"`
	MaxVolumeGB *int `yaml:"max-volume-gb,omitempty"`
	// AvailabilityZones are the zones servers are spread over (round robin by node);
	// empty leaves the zone to Nova.
	AvailabilityZones []string `yaml:"availability-zones,omitempty"`
	SecurityGroups    []string `yaml:"security-groups,omitempty"`
	Labels            []Label  `yaml:"labels"`
}

// Label is the OpenStack-specific part of a pool label.
type Label struct {
	// DiskImage is an upstream key this launcher does not support; Validate reports
	// it as such.
	DiskImage  any    `yaml:"diskimage,omitempty"`
	CloudImage string `yaml:"cloud-image,omitempty"`
	// FlavorName names the flavor (by name or id); else the smallest flavor with at
	// least MinRAM MiB is used.
	FlavorName string `yaml:"flavor-name,omitempty"`
	MinRAM     int    `yaml:"min-ram,omitempty"`
	KeyName    string `yaml:"key-name,omitempty"`
	// ConsoleLog is accepted for compatibility (upstream logs the console of a
	// server that fails to boot).
	ConsoleLog bool `yaml:"console-log,omitempty"`
	// BootFromVolume boots from a new volume of VolumeSize GiB (default 50) made
	// from the image and deleted with the server.
	BootFromVolume bool `yaml:"boot-from-volume,omitempty"`
	VolumeSize     int  `yaml:"volume-size,omitempty"`
	// InstanceProperties are added to the server's metadata.
	InstanceProperties map[string]string `yaml:"instance-properties,omitempty"`
	// DynamicInstanceProperties are formatted with the node request's attributes,
	// e.g. "{request.tenant_name}"; a property whose format fails is skipped.
	DynamicInstanceProperties map[string]string `yaml:"dynamic-instance-properties,omitempty"`
	UserData                  string            `yaml:"userdata,omitempty"`
	// Networks replace the pool's networks for this label.
	Networks        []string `yaml:"networks,omitempty"`
	HostKeyChecking *bool    `yaml:"host-key-checking,omitempty"`
}

// PoolSpec carries the name of a pool and of its labels (see drivers.PoolSpec).
type PoolSpec = drivers.PoolSpec

// DecodeConfig decodes an OpenStack provider section strictly (unknown keys are
// errors). It is for callers that hold YAML with only the OpenStack keys, such as
// tests and tools.
func DecodeConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decoding openstack provider config: %w", err)
	}
	return c, nil
}

// Problem is one problem of a configuration: the key path inside the provider
// section (such as "pools[0].labels[1].flavor-name") and the message.
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) Error() string { return p.Path + ": " + p.Msg }

// Validate returns every problem of the configuration, each a Problem, joined with
// errors.Join. When pools is not nil it must describe the same pools and labels in
// the same order.
func (c *Config) Validate(pools []PoolSpec) error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Cloud == "" {
		add("cloud", "required (the name of a clouds.yaml entry)")
	}
	for _, k := range []struct {
		key string
		v   any
	}{{"diskimages", c.DiskImages}, {"image-upload-timeout", c.ImageUploadTimeout}, {"post-upload-hook", c.PostUploadHook}} {
		if k.v != nil {
			add(k.key, "not supported by this launcher: it builds and uploads no images (use cloud-images)")
		}
	}
	if c.PortCleanupInterval != nil && *c.PortCleanupInterval < 0 {
		add("port-cleanup-interval", "must not be negative")
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
		if im.ImageID != "" && im.ImageName != "" {
			add(path, "image-id and image-name are exclusive")
		}
		if im.ConnectionPort < 0 || im.ConnectionPort > 65535 {
			add(path+".connection-port", "must be a TCP port, got %d", im.ConnectionPort)
		}
		switch im.ConnectionType {
		case "", "ssh", "network_cli", "winrm":
		default:
			add(path+".connection-type", "must be ssh, network_cli or winrm, got %q", im.ConnectionType)
		}
	}
	drivers.CheckPoolSpecs(pools, len(c.Pools), add)
	for i, p := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		checkList(path+".networks", p.Networks, "network", add)
		checkList(path+".availability-zones", p.AvailabilityZones, "zone", add)
		checkList(path+".security-groups", p.SecurityGroups, "security group", add)
		for _, k := range []struct {
			key string
			v   *int
		}{{"max-volumes", p.MaxVolumes}, {"max-volume-gb", p.MaxVolumeGB}} {
			if k.v != nil && *k.v < 0 {
				add(path+"."+k.key, "must not be negative")
			}
		}
		if pools != nil && i < len(pools) && len(pools[i].Labels) != len(p.Labels) {
			add(path+".labels", "%d labels decoded but %d named", len(p.Labels), len(pools[i].Labels))
		}
		for j, l := range p.Labels {
			validateLabel(fmt.Sprintf("%s.labels[%d]", path, j), l, images, add)
		}
	}
	return errors.Join(errs...)
}

func checkList(path string, list []string, what string, add func(path, format string, args ...any)) {
	for k, v := range list {
		if v == "" {
			add(fmt.Sprintf("%s[%d]", path, k), "must not be empty")
		} else if slices.Index(list, v) < k {
			add(fmt.Sprintf("%s[%d]", path, k), "duplicate %s %q", what, v)
		}
	}
}

func validateLabel(path string, l Label, images map[string]bool, add func(path, format string, args ...any)) {
	switch {
	case l.DiskImage != nil:
		add(path+".diskimage", "not supported by this launcher: it builds and uploads no images (use cloud-image)")
		if l.CloudImage != "" {
			add(path, "diskimage and cloud-image are exclusive")
		}
	case l.CloudImage == "":
		add(path+".cloud-image", "required")
	case !images[l.CloudImage]:
		add(path+".cloud-image", "unknown cloud image %q", l.CloudImage)
	}
	if l.FlavorName == "" && l.MinRAM <= 0 {
		add(path, "one of flavor-name or min-ram is required")
	}
	if l.MinRAM < 0 {
		add(path+".min-ram", "must not be negative")
	}
	if l.VolumeSize < 0 {
		add(path+".volume-size", "must not be negative")
	}
	if l.VolumeSize > 0 && !l.BootFromVolume {
		add(path+".volume-size", "requires boot-from-volume")
	}
	checkList(path+".networks", l.Networks, "network", add)
}

// autoFloatingIP returns whether the pool attaches floating IPs.
func (p *Pool) autoFloatingIP() bool {
	if p.AutoFloatingIP != nil {
		return *p.AutoFloatingIP
	}
	return DefaultAutoFloatingIP
}

// hostKeyChecking returns whether nodes of the label have their host keys scanned.
func (p *Pool) hostKeyChecking(l *Label) bool {
	switch {
	case l != nil && l.HostKeyChecking != nil:
		return *l.HostKeyChecking
	case p.HostKeyChecking != nil:
		return *p.HostKeyChecking
	}
	return DefaultHostKeyChecking
}

// networks returns the networks of a label's servers.
func (p *Pool) networks(l *Label) []string {
	if len(l.Networks) > 0 {
		return l.Networks
	}
	return p.Networks
}

// volumeSize returns the boot volume size of a boot-from-volume label.
func (l *Label) volumeSize() int {
	if l.VolumeSize > 0 {
		return l.VolumeSize
	}
	return DefaultVolumeSize
}

// imageRef returns what the cloud image is looked up by, and whether it is an id.
func (im *CloudImage) imageRef() (string, bool) {
	switch {
	case im.ImageID != "":
		return im.ImageID, true
	case im.ImageName != "":
		return im.ImageName, false
	}
	return im.Name, false
}

// Problems returns the Problems joined in an error of Validate; an error that is not
// a Problem becomes one without a path.
func Problems(err error) []Problem {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []Problem
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	var p Problem
	if errors.As(err, &p) {
		return []Problem{p}
	}
	return []Problem{{Msg: err.Error()}}
}
