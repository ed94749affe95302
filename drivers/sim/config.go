package sim

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"
)

// Defaults for cloud keys that are absent from the configuration.
var (
	// DefaultBootSteps are the boot step latencies in seconds: a short "submit creating
	// instance" and a longer "creating instance".
	DefaultBootSteps = []float64{0.1, 0.4}
	// DefaultAZs are the availability zones of the cloud.
	DefaultAZs = []string{"sim-a", "sim-b"}
)

// DefaultRegion is the region the cloud reports.
const DefaultRegion = "sim-region"

// Config is the sim driver's part of a provider section, decoded strictly from YAML.
// Nodepool's common keys (name, driver, max-servers, pool priority, ...) are not part of
// it, except the pool and label names that tie the sim keys to pools and labels.
type Config struct {
	// Seed seeds the cloud's random generator.
	Seed int64 `yaml:"seed"`
	// APILatency is the time in seconds every API call takes.
	APILatency float64 `yaml:"api-latency"`
	// BootSteps are the latencies in seconds of the instance's boot steps; nil means
	// [DefaultBootSteps], an empty list boots instantly.
	BootSteps []float64 `yaml:"boot-steps"`
	// DeleteLatency is the time in seconds from a delete call until the instance is gone
	// and frees its quota.
	DeleteLatency float64 `yaml:"delete-latency"`
	// Quota is the cloud-wide quota; nil or an absent key is unlimited.
	Quota *QuotaConfig `yaml:"quota"`
	// ErrorRate is the fraction of calls of each kind that fail with an internal error.
	ErrorRate ErrorRateConfig `yaml:"error-rate"`
	// RateLimitRate is the fraction of calls of any kind answered with a throttling error.
	RateLimitRate float64 `yaml:"rate-limit-rate"`
	// CapacityErrorRate is the fraction of create calls answered with an insufficient
	// capacity error.
	CapacityErrorRate float64 `yaml:"capacity-error-rate"`
	// LostReplyRate is the fraction of create and delete calls that take effect but are
	// answered with an internal error, as when a reply times out: the caller must repeat
	// the call idempotently.
	LostReplyRate float64 `yaml:"lost-reply-rate"`
	// AZs are the availability zones; nil means [DefaultAZs].
	AZs []string `yaml:"azs"`
	// Region is the region name; empty means [DefaultRegion].
	Region string `yaml:"region"`

	// Flavors are the instance sizes labels may use.
	Flavors []Flavor `yaml:"flavors"`
	// CloudImages are the images labels may boot, with their connection details.
	CloudImages []CloudImage `yaml:"cloud-images"`
	// Server is the base URL of a shared simcloud server; empty runs the cloud in
	// process.
	Server string `yaml:"server"`
	// Pools name the provider's pools and their labels, with the labels' sim keys.
	Pools []PoolConfig `yaml:"pools"`
}

// QuotaConfig is the cloud-wide quota. A nil field is unlimited.
type QuotaConfig struct {
	Instances *int64 `yaml:"instances"`
	Cores     *int64 `yaml:"cores"`
	// RAM is in MiB.
	RAM *int64 `yaml:"ram"`
}

// ErrorRateConfig holds the fraction (0 to 1) of calls of each kind that fail with an
// injected internal error.
type ErrorRateConfig struct {
	Create   float64 `yaml:"create"`
	Delete   float64 `yaml:"delete"`
	List     float64 `yaml:"list"`
	Describe float64 `yaml:"describe"`
}

// Flavor is an instance size.
type Flavor struct {
	Name  string `yaml:"name" json:"name"`
	Cores int64  `yaml:"cores" json:"cores"`
	// RAM is in MiB.
	RAM int64 `yaml:"ram" json:"ram"`
}

// CloudImage is an image the cloud provides, with the connection details that nodes
// booted from it get.
type CloudImage struct {
	Name           string `yaml:"name"`
	Username       string `yaml:"username"`
	PythonPath     string `yaml:"python-path"`
	ShellType      string `yaml:"shell-type"`
	ConnectionType string `yaml:"connection-type"`
	ConnectionPort int    `yaml:"connection-port"`
}

// PoolConfig holds a pool's name and the sim keys of its labels.
type PoolConfig struct {
	Name   string        `yaml:"name"`
	Labels []LabelConfig `yaml:"labels"`
}

// LabelConfig holds a pool label's name and its sim keys.
type LabelConfig struct {
	Name string `yaml:"name"`
	// Flavor names an entry of the provider's flavors; empty means [DefaultFlavor].
	Flavor string `yaml:"flavor"`
	// CloudImage names an entry of the provider's cloud-images; empty means
	// [DefaultImage].
	CloudImage string `yaml:"cloud-image"`
}

// DefaultFlavor is the size of instances of labels that name no flavor.
var DefaultFlavor = Flavor{Name: "sim-default", Cores: 1, RAM: 1024}

// DefaultImage is the image of labels that name no cloud image; it sets no connection
// details, so nodes get Nodepool's defaults.
var DefaultImage = CloudImage{Name: "sim-image"}

// ParseProvider decodes a provider section with decode and builds the driver. decode is
// typically the config package's strict decoder of the section without Nodepool's
// common keys (which keeps the pool and label names).
func ParseProvider(provider string, decode func(any) error, opts ...Option) (*Driver, error) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("decoding sim provider %s: %w", provider, err)
	}
	return New(provider, cfg, opts...)
}

// Validate reports every problem of the configuration, each prefixed by its key path.
func (c *Config) Validate() error {
	var problems []error
	add := func(path, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.Server != "" {
		u, err := url.Parse(c.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("server", "must be an http or https URL, got %q", c.Server)
		}
		for _, key := range c.cloudKeysSet() {
			add(key, "configures the cloud, which is the simcloud server's when server is set")
		}
	} else {
		problems = append(problems, c.ValidateCloud())
	}

	flavors := make(map[string]bool)
	for i, f := range c.Flavors {
		path := fmt.Sprintf("flavors[%d]", i)
		switch {
		case f.Name == "":
			add(path+".name", "required")
		case flavors[f.Name]:
			add(path+".name", "duplicate flavor %q", f.Name)
		}
		flavors[f.Name] = true
		if f.Cores < 1 {
			add(path+".cores", "must be at least 1")
		}
		if f.RAM < 1 {
			add(path+".ram", "must be at least 1 (MiB)")
		}
	}
	images := make(map[string]bool)
	for i, im := range c.CloudImages {
		path := fmt.Sprintf("cloud-images[%d]", i)
		switch {
		case im.Name == "":
			add(path+".name", "required")
		case images[im.Name]:
			add(path+".name", "duplicate cloud image %q", im.Name)
		}
		images[im.Name] = true
		if im.ConnectionPort < 0 || im.ConnectionPort > 65535 {
			add(path+".connection-port", "must be between 0 and 65535")
		}
	}

	pools := make(map[string]bool)
	for i, p := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		switch {
		case p.Name == "":
			add(path+".name", "required")
		case pools[p.Name]:
			add(path+".name", "duplicate pool %q", p.Name)
		}
		pools[p.Name] = true
		labels := make(map[string]bool)
		for j, l := range p.Labels {
			path := fmt.Sprintf("pools[%d].labels[%d]", i, j)
			switch {
			case l.Name == "":
				add(path+".name", "required")
			case labels[l.Name]:
				add(path+".name", "duplicate label %q in pool %q", l.Name, p.Name)
			}
			labels[l.Name] = true
			if l.Flavor != "" && !flavors[l.Flavor] {
				add(path+".flavor", "unknown flavor %q", l.Flavor)
			}
			if l.CloudImage != "" && !images[l.CloudImage] {
				add(path+".cloud-image", "unknown cloud image %q", l.CloudImage)
			}
		}
	}
	return errors.Join(problems...)
}

// ValidateCloud reports every problem of the keys that describe the cloud, each prefixed
// by its key path. The simcloud server validates its configuration file with it.
func (c *Config) ValidateCloud() error {
	var problems []error
	add := func(path, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	seconds := func(path string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxSeconds {
			add(path, "must be between 0 and %d seconds", maxSeconds)
		}
	}
	fraction := func(path string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1 {
			add(path, "must be a fraction between 0 and 1")
		}
	}
	seconds("api-latency", c.APILatency)
	seconds("delete-latency", c.DeleteLatency)
	for i, s := range c.BootSteps {
		seconds(fmt.Sprintf("boot-steps[%d]", i), s)
	}
	if q := c.Quota; q != nil {
		for _, f := range []struct {
			key string
			v   *int64
		}{{"instances", q.Instances}, {"cores", q.Cores}, {"ram", q.RAM}} {
			if f.v != nil && *f.v < 0 {
				add("quota."+f.key, "must not be negative")
			}
		}
	}
	fraction("error-rate.create", c.ErrorRate.Create)
	fraction("error-rate.delete", c.ErrorRate.Delete)
	fraction("error-rate.list", c.ErrorRate.List)
	fraction("error-rate.describe", c.ErrorRate.Describe)
	fraction("rate-limit-rate", c.RateLimitRate)
	fraction("capacity-error-rate", c.CapacityErrorRate)
	fraction("lost-reply-rate", c.LostReplyRate)
	if c.AZs != nil && len(c.AZs) == 0 {
		add("azs", "must list at least one zone")
	}
	zones := make(map[string]bool)
	for i, az := range c.AZs {
		switch {
		case az == "":
			add(fmt.Sprintf("azs[%d]", i), "must not be empty")
		case zones[az]:
			add(fmt.Sprintf("azs[%d]", i), "duplicate zone %q", az)
		}
		zones[az] = true
	}
	return errors.Join(problems...)
}

// maxSeconds bounds every latency so that durations cannot overflow.
const maxSeconds = 86400

// cloudKeysSet returns the keys describing the cloud that are set to a non-zero value.
func (c *Config) cloudKeysSet() []string {
	var keys []string
	for _, k := range []struct {
		key string
		set bool
	}{
		{"seed", c.Seed != 0},
		{"api-latency", c.APILatency != 0},
		{"boot-steps", c.BootSteps != nil},
		{"delete-latency", c.DeleteLatency != 0},
		{"quota", c.Quota != nil},
		{"error-rate", c.ErrorRate != ErrorRateConfig{}},
		{"rate-limit-rate", c.RateLimitRate != 0},
		{"capacity-error-rate", c.CapacityErrorRate != 0},
		{"lost-reply-rate", c.LostReplyRate != 0},
		{"azs", c.AZs != nil},
		{"region", c.Region != ""},
	} {
		if k.set {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// bootSteps returns the effective boot step latencies.
func (c *Config) bootSteps() []time.Duration {
	steps := c.BootSteps
	if steps == nil {
		steps = DefaultBootSteps
	}
	out := make([]time.Duration, len(steps))
	for i, s := range steps {
		out[i] = seconds(s)
	}
	return out
}

// azs returns the effective availability zones.
func (c *Config) azs() []string {
	if len(c.AZs) == 0 {
		return append([]string(nil), DefaultAZs...)
	}
	return append([]string(nil), c.AZs...)
}

// region returns the effective region.
func (c *Config) region() string {
	if c.Region == "" {
		return DefaultRegion
	}
	return c.Region
}

// seconds converts a validated number of seconds to a duration.
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}
