package config

import (
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Default file locations, as upstream Nodepool uses them.
const (
	DefaultPath       = "/etc/nodepool/nodepool.yaml"
	DefaultSecurePath = "/etc/nodepool/secure.conf"
)

// Top-level keys of nodepool.yaml.
const (
	KeyZooKeeperServers      = "zookeeper-servers"
	KeyZooKeeperTLS          = "zookeeper-tls"
	KeyZooKeeperTimeout      = "zookeeper-timeout"
	KeyLabels                = "labels"
	KeyProviders             = "providers"
	KeyDiskImages            = "diskimages"
	KeyMaxHoldAge            = "max-hold-age"
	KeyTenantResourceLimits  = "tenant-resource-limits"
	KeyWebapp                = "webapp"
	KeyElementsDir           = "elements-dir"
	KeyImagesDir             = "images-dir"
	KeyImagesDirRequiredFree = "images-dir-required-free"
	KeyBuildLogDir           = "build-log-dir"
	KeyBuildLogRetention     = "build-log-retention"
	KeyTemporal              = "temporal"
	KeyLauncher              = "launcher"
)

// Keys shared by several sections.
const (
	KeyName         = "name"
	KeyHost         = "host"
	KeyPort         = "port"
	KeyChroot       = "chroot"
	KeyCert         = "cert"
	KeyKey          = "key"
	KeyCA           = "ca"
	KeyMinReady     = "min-ready"
	KeyMaxReadyAge  = "max-ready-age"
	KeyParent       = "parent"
	KeyEnvVars      = "env-vars"
	KeyPriority     = "priority"
	KeyMaxServers   = "max-servers"
	KeyMaxCores     = "max-cores"
	KeyMaxRAM       = "max-ram"
	KeyMaxResources = "max-resources"
	KeyMaxVolumes   = "max-volumes"
	KeyMaxVolumeGB  = "max-volume-gb"
	KeyTenantName   = "tenant-name"
	KeyListenAddr   = "listen_address"
)

// Provider and pool keys common to all drivers (see CommonProviderKeys).
const (
	KeyDriver         = "driver"
	KeyMaxConcurrency = "max-concurrency"
	KeyRate           = "rate"
	KeyLaunchTimeout  = "launch-timeout"
	KeyBootTimeout    = "boot-timeout"
	KeyLaunchRetries  = "launch-retries"
	KeyPools          = "pools"
	KeyNodeAttributes = "node-attributes"
)

// Keys of the temporal and launcher sections.
const (
	KeyAddress         = "address"
	KeyNamespace       = "namespace"
	KeyTaskQueue       = "task-queue"
	KeyTLS             = "tls"
	KeyTLSEnabled      = "enabled"
	KeyServerName      = "server-name"
	KeyPollInterval    = "poll-interval"
	KeyDeleteInterval  = "delete-interval"
	KeyCleanupInterval = "cleanup-interval"
	KeyHostname        = "hostname"
)

// Defaults. Durations are in seconds, as in the file.
const (
	DefaultZooKeeperPort         = 2281
	DefaultZooKeeperTimeout      = 10.0
	DefaultWebappPort            = 8005
	DefaultWebappListenAddress   = "0.0.0.0"
	DefaultBuildLogDir           = "/var/log/nodepool/builds"
	DefaultBuildLogRetention     = 7
	DefaultPriority              = 100
	DefaultMaxConcurrency        = -1
	DefaultLaunchTimeout         = 3600
	DefaultBootTimeout           = 180
	DefaultLaunchRetries         = 3
	DefaultTemporalAddress       = "127.0.0.1:7233"
	DefaultTemporalNamespace     = "default"
	DefaultTemporalTaskQueue     = "nodepool"
	DefaultPollInterval          = 1.0
	DefaultDeleteInterval        = 5.0
	DefaultCleanupInterval       = 60.0
	DefaultDiskImageUsername     = "zuul"
	DefaultDiskImagePythonPath   = "auto"
	DefaultDiskImageRebuildAge   = 86400
	DefaultDiskImageBuildTimeout = 8 * 3600
)

// Nodepool's resource names, as used in quota limits and node records.
const (
	ResourceInstances = "instances"
	ResourceCores     = "cores"
	ResourceRAM       = "ram"
	ResourceVolumes   = "volumes"
	ResourceVolumeGB  = "volume-gb"
)

// Seconds is a duration written in the file as a number of seconds (an integer or a
// fraction).
type Seconds float64

// Duration converts s to a time.Duration.
func (s Seconds) Duration() time.Duration {
	return time.Duration(float64(s) * float64(time.Second))
}

// Config is a parsed nodepool.yaml, plus the secure file if one was given.
type Config struct {
	// Pos locates the top-level mapping.
	Pos Pos
	// Path is the main configuration file; SecurePath the secure file, or empty.
	Path       string `yaml:"-"`
	SecurePath string `yaml:"-"`

	ZooKeeperServers []ZooKeeperServer `yaml:"zookeeper-servers"`
	// ZooKeeperTLS is nil when the section is absent: the connection is then plain,
	// which upstream refuses but is convenient for a local ZooKeeper.
	ZooKeeperTLS     *ZooKeeperTLS `yaml:"zookeeper-tls"`
	ZooKeeperTimeout Seconds       `yaml:"zookeeper-timeout"`

	Labels               []Label               `yaml:"labels"`
	Providers            []Provider            `yaml:"providers"`
	DiskImages           []DiskImage           `yaml:"diskimages"`
	MaxHoldAge           Seconds               `yaml:"max-hold-age"`
	TenantResourceLimits []TenantResourceLimit `yaml:"tenant-resource-limits"`
	Webapp               Webapp                `yaml:"webapp"`

	// Builder settings: accepted so upstream files load, unused by the launcher.
	ElementsDir           string `yaml:"elements-dir"`
	ImagesDir             string `yaml:"images-dir"`
	ImagesDirRequiredFree int    `yaml:"images-dir-required-free"`
	BuildLogDir           string `yaml:"build-log-dir"`
	BuildLogRetention     int    `yaml:"build-log-retention"`

	Temporal Temporal `yaml:"temporal"`
	Launcher Launcher `yaml:"launcher"`
}

// ZooKeeperServer is one member of the ZooKeeper ensemble.
type ZooKeeperServer struct {
	Pos    Pos
	Host   string `yaml:"host"`
	Port   int    `yaml:"port"`
	Chroot string `yaml:"chroot"`
}

func (z *ZooKeeperServer) setDefaults() { z.Port = DefaultZooKeeperPort }

// ZooKeeperTLS holds the PEM files of a mutual-TLS ZooKeeper connection.
type ZooKeeperTLS struct {
	Pos  Pos
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
	// AllowCNOnly accepts a server certificate that names its host only in the
	// subject's common name (as Nodepool's tools/zk-ca.sh makes them); Go verifies
	// host names against subject alternative names only.
	AllowCNOnly bool `yaml:"allow-cn-only"`
}

// Label is a top-level label: a kind of node Zuul can request.
type Label struct {
	Pos  Pos
	Name string `yaml:"name"`
	// MinReady is the number of unallocated ready nodes to keep; <= 0 disables
	// pre-launching.
	MinReady int `yaml:"min-ready"`
	// MaxReadyAge deletes unallocated ready nodes older than this; 0 disables it.
	MaxReadyAge Seconds `yaml:"max-ready-age"`
}

// DiskImage is a top-level image built by nodepool-builder. The launcher only reads a
// few of its settings (username, python-path, shell-type); the rest is accepted so
// upstream files load.
type DiskImage struct {
	Pos               Pos
	Name              string            `yaml:"name"`
	Abstract          bool              `yaml:"abstract"`
	Parent            string            `yaml:"parent"`
	Formats           []string          `yaml:"formats"`
	KeepFormats       []string          `yaml:"keep-formats"`
	DeleteAfterUpload bool              `yaml:"delete-after-upload"`
	RebuildAge        Seconds           `yaml:"rebuild-age"`
	BuildTimeout      Seconds           `yaml:"build-timeout"`
	Release           string            `yaml:"release"`
	Elements          []string          `yaml:"elements"`
	EnvVars           map[string]string `yaml:"env-vars"`
	Pause             bool              `yaml:"pause"`
	Username          string            `yaml:"username"`
	PythonPath        string            `yaml:"python-path"`
	ShellType         string            `yaml:"shell-type"`
	DibCmd            string            `yaml:"dib-cmd"`
	Metadata          map[string]string `yaml:"metadata"`
}

func (d *DiskImage) setDefaults() {
	d.Username = DefaultDiskImageUsername
	d.PythonPath = DefaultDiskImagePythonPath
	d.RebuildAge = DefaultDiskImageRebuildAge
	d.BuildTimeout = DefaultDiskImageBuildTimeout
}

// TenantResourceLimit caps what one Zuul tenant may hold across all providers.
type TenantResourceLimit struct {
	Pos        Pos
	TenantName string
	// Limits uses Nodepool's resource names: max-servers is "instances", max-cores
	// "cores", max-ram "ram", max-volumes "volumes", max-volume-gb "volume-gb"; any
	// other key is kept verbatim. An absent resource is unlimited.
	Limits map[string]int64
}

// tenantKeyResources maps tenant-resource-limits keys to resource names.
var tenantKeyResources = map[string]string{
	KeyMaxServers:  ResourceInstances,
	KeyMaxCores:    ResourceCores,
	KeyMaxRAM:      ResourceRAM,
	KeyMaxVolumes:  ResourceVolumes,
	KeyMaxVolumeGB: ResourceVolumeGB,
}

// decodeFrom decodes the entry: tenant-name plus any number of integer limits.
func (t *TenantResourceLimit) decodeFrom(d *decoder, n *yaml.Node, path string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.add(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	t.Pos = Pos{File: d.file, Line: n.Line, Column: n.Column, Path: path, keys: map[string]int{}}
	t.Limits = map[string]int64{}
	for _, p := range d.pairs(n, path) {
		t.Pos.keys[p.key] = p.kNode.Line
		if p.key == KeyTenantName {
			d.decode(p.vNode, reflect.ValueOf(&t.TenantName).Elem(), joinPath(path, p.key))
			continue
		}
		var v int64
		d.decode(p.vNode, reflect.ValueOf(&v).Elem(), joinPath(path, p.key))
		name := p.key
		if r, ok := tenantKeyResources[p.key]; ok {
			name = r
		}
		t.Limits[name] = v
	}
}

// Webapp configures the status HTTP server.
type Webapp struct {
	Pos           Pos
	Port          int    `yaml:"port"`
	ListenAddress string `yaml:"listen_address"`
}

// Temporal is this project's connection to a Temporal cluster. Environment variables
// override it (see WithEnv); the API key is read from the environment only.
type Temporal struct {
	Pos       Pos
	Address   string      `yaml:"address"`
	Namespace string      `yaml:"namespace"`
	TaskQueue string      `yaml:"task-queue"`
	TLS       TemporalTLS `yaml:"tls"`
	// APIKey comes from TEMPORAL_API_KEY only; secrets stay out of the file.
	APIKey string `yaml:"-"`

	badTLSEnv string // unparsable TEMPORAL_TLS value, reported by Validate
}

// TemporalTLS configures TLS to the Temporal frontend.
type TemporalTLS struct {
	Pos Pos
	// Enabled turns TLS on without client certificates (system roots, or CA).
	Enabled    bool   `yaml:"enabled"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	CA         string `yaml:"ca"`
	ServerName string `yaml:"server-name"`
}

// Launcher tunes this project's launcher.
type Launcher struct {
	Pos Pos
	// PollInterval is the pause between two steps of a create or delete state machine.
	PollInterval Seconds `yaml:"poll-interval"`
	// DeleteInterval is the period of the sweep for nodes to delete.
	DeleteInterval Seconds `yaml:"delete-interval"`
	// CleanupInterval is the period of leaked-resource cleanup.
	CleanupInterval Seconds `yaml:"cleanup-interval"`
	// Hostname identifies this launcher in ZooKeeper; the OS hostname by default.
	Hostname string `yaml:"hostname"`
}

// Provider is one entry of providers: the keys common to all drivers, plus the whole
// YAML mapping for the driver to decode (see DecodeDriver).
type Provider struct {
	Pos    Pos
	Name   string `yaml:"name"`
	Driver string `yaml:"driver"`
	// MaxConcurrency caps launches in progress across the provider's pools; -1 is
	// unlimited and 0 stops request handling.
	MaxConcurrency int `yaml:"max-concurrency"`
	// Priority is the default pool priority (lower is preferred); nil means 100.
	Priority *int `yaml:"priority"`
	// Rate is API calls per second as written; 0 means absent or unlimited, and the
	// driver applies its own default.
	Rate          float64 `yaml:"rate"`
	LaunchTimeout Seconds `yaml:"launch-timeout"`
	BootTimeout   Seconds `yaml:"boot-timeout"`
	LaunchRetries int     `yaml:"launch-retries"`
	// Provider-level defaults for the pools' limits; nil is unlimited.
	MaxServers   *int             `yaml:"max-servers"`
	MaxCores     *int64           `yaml:"max-cores"`
	MaxRAM       *int64           `yaml:"max-ram"`
	MaxResources map[string]int64 `yaml:"max-resources"`
	Pools        []Pool           `yaml:"pools"`
	// Raw is the provider's whole mapping, driver keys included.
	Raw yaml.Node `config:"raw"`
}

func (p *Provider) setDefaults() {
	p.MaxConcurrency = DefaultMaxConcurrency
	p.LaunchTimeout = DefaultLaunchTimeout
	p.BootTimeout = DefaultBootTimeout
	p.LaunchRetries = DefaultLaunchRetries
}

// Pool is one entry of a provider's pools: common keys plus the raw mapping.
type Pool struct {
	Pos  Pos
	Name string `yaml:"name"`
	// MaxServers is nil when absent (inherit the provider's, else unlimited); a value
	// <= 0 disables the pool: every request is declined.
	MaxServers   *int             `yaml:"max-servers"`
	MaxCores     *int64           `yaml:"max-cores"`
	MaxRAM       *int64           `yaml:"max-ram"`
	MaxResources map[string]int64 `yaml:"max-resources"`
	// ConfiguredPriority is the pool's own priority key; see Priority.
	ConfiguredPriority *int `yaml:"priority"`
	// NodeAttributes is copied into the attributes of every node of the pool.
	NodeAttributes map[string]any `yaml:"node-attributes"`
	Labels         []PoolLabel    `yaml:"labels"`
	// Raw is the pool's whole mapping, driver keys included.
	Raw yaml.Node `config:"raw"`

	inherited poolDefaults
}

// poolDefaults are the provider-level limits a pool inherits.
type poolDefaults struct {
	maxServers   *int
	maxCores     *int64
	maxRAM       *int64
	maxResources map[string]int64
}

// PoolLabel is a label a pool offers; every key but name is driver-specific.
type PoolLabel struct {
	Pos  Pos
	Name string `yaml:"name"`
	// Raw is the label's whole mapping, driver keys included.
	Raw yaml.Node `config:"raw"`
}

// decodeFrom decodes a pool label: a mapping, or, as upstream's drivers that take only
// label names write it, a bare name. The driver decides whether a bare name is enough:
// drivers whose labels have keys of their own reject it when they decode the pool.
func (l *PoolLabel) decodeFrom(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		l.Pos = Pos{File: d.file, Line: n.Line, Column: n.Column, Path: path, keys: map[string]int{KeyName: n.Line}}
		l.Name = n.Value
		l.Raw = *n
		return
	}
	d.decodeStruct(n, reflect.ValueOf(l).Elem(), path)
}

// Default returns the configuration used for everything the file leaves out.
func Default() *Config {
	host, _ := os.Hostname()
	return &Config{
		ZooKeeperTimeout:  DefaultZooKeeperTimeout,
		Webapp:            Webapp{Port: DefaultWebappPort, ListenAddress: DefaultWebappListenAddress},
		BuildLogDir:       DefaultBuildLogDir,
		BuildLogRetention: DefaultBuildLogRetention,
		Temporal: Temporal{
			Address:   DefaultTemporalAddress,
			Namespace: DefaultTemporalNamespace,
			TaskQueue: DefaultTemporalTaskQueue,
		},
		Launcher: Launcher{
			PollInterval:    DefaultPollInterval,
			DeleteInterval:  DefaultDeleteInterval,
			CleanupInterval: DefaultCleanupInterval,
			Hostname:        host,
		},
	}
}

// Label returns the top-level label called name.
func (c *Config) Label(name string) (*Label, bool) {
	for i := range c.Labels {
		if c.Labels[i].Name == name {
			return &c.Labels[i], true
		}
	}
	return nil, false
}

// Provider returns the provider called name.
func (c *Config) Provider(name string) (*Provider, bool) {
	for i := range c.Providers {
		if c.Providers[i].Name == name {
			return &c.Providers[i], true
		}
	}
	return nil, false
}

// DiskImage returns the top-level diskimage called name.
func (c *Config) DiskImage(name string) (*DiskImage, bool) {
	for i := range c.DiskImages {
		if c.DiskImages[i].Name == name {
			return &c.DiskImages[i], true
		}
	}
	return nil, false
}

// TenantLimits returns the resource limits of tenant (Nodepool resource names;
// absent resources are unlimited) and whether the tenant has an entry.
func (c *Config) TenantLimits(tenant string) (map[string]int64, bool) {
	for _, t := range c.TenantResourceLimits {
		if t.TenantName == tenant {
			out := make(map[string]int64, len(t.Limits))
			for k, v := range t.Limits {
				out[k] = v
			}
			return out, true
		}
	}
	return nil, false
}

// ZooKeeperHosts returns the ensemble as "host:port" strings (IPv6 hosts bracketed),
// without the chroot.
func (c *Config) ZooKeeperHosts() []string {
	out := make([]string, len(c.ZooKeeperServers))
	for i, s := range c.ZooKeeperServers {
		out[i] = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	}
	return out
}

// Chroot returns the ZooKeeper chroot shared by all servers ("" for none). The
// entries must agree: a connection has one chroot.
func (c *Config) Chroot() (string, error) {
	if len(c.ZooKeeperServers) == 0 {
		return "", nil
	}
	first := c.ZooKeeperServers[0].Chroot
	for i, s := range c.ZooKeeperServers[1:] {
		if s.Chroot != first {
			return "", fmt.Errorf("zookeeper-servers[%d]: chroot %q differs from %q of zookeeper-servers[0]", i+1, s.Chroot, first)
		}
	}
	return first, nil
}

// RateOr returns the provider's rate if the file sets one (0 then means unlimited),
// else def, the driver's default.
func (p *Provider) RateOr(def float64) float64 {
	if p.Pos.Has(KeyRate) {
		return p.Rate
	}
	return def
}

// Pool returns the provider's pool called name.
func (p *Provider) Pool(name string) (*Pool, bool) {
	for i := range p.Pools {
		if p.Pools[i].Name == name {
			return &p.Pools[i], true
		}
	}
	return nil, false
}

// Priority returns the pool's priority: its own, else the provider's, else 100.
// Lower is preferred.
func (pool *Pool) Priority(provider *Provider) int {
	if pool.ConfiguredPriority != nil {
		return *pool.ConfiguredPriority
	}
	if provider != nil && provider.Priority != nil {
		return *provider.Priority
	}
	return DefaultPriority
}

// LabelNames returns the names of the labels the pool offers, in file order.
func (pool *Pool) LabelNames() []string {
	out := make([]string, len(pool.Labels))
	for i, l := range pool.Labels {
		out[i] = l.Name
	}
	return out
}

// Label returns the pool's label called name.
func (pool *Pool) Label(name string) (*PoolLabel, bool) {
	for i := range pool.Labels {
		if pool.Labels[i].Name == name {
			return &pool.Labels[i], true
		}
	}
	return nil, false
}

// Limits returns the pool's quota limits in Nodepool's resource names: "instances"
// (max-servers), "cores" (max-cores), "ram" (max-ram) and the max-resources keys.
// Keys the pool leaves out are taken from the provider-level defaults it was loaded
// with; a resource set at neither level is unlimited and omitted.
func (pool *Pool) Limits() map[string]int64 {
	out := map[string]int64{}
	for k, v := range pool.inherited.maxResources {
		out[k] = v
	}
	for k, v := range pool.MaxResources {
		out[k] = v
	}
	if v := firstNonNil(pool.MaxServers, pool.inherited.maxServers); v != nil {
		out[ResourceInstances] = int64(*v)
	}
	if v := firstNonNil(pool.MaxCores, pool.inherited.maxCores); v != nil {
		out[ResourceCores] = *v
	}
	if v := firstNonNil(pool.MaxRAM, pool.inherited.maxRAM); v != nil {
		out[ResourceRAM] = *v
	}
	return out
}

// Disabled reports whether the pool's effective max-servers is <= 0, in which case
// every request is declined.
func (pool *Pool) Disabled() bool {
	v := firstNonNil(pool.MaxServers, pool.inherited.maxServers)
	return v != nil && *v <= 0
}

func firstNonNil[T any](vs ...*T) *T {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// link records each provider's limits in its pools, for Pool.Limits.
func (c *Config) link() {
	for i := range c.Providers {
		p := &c.Providers[i]
		for j := range p.Pools {
			p.Pools[j].inherited = poolDefaults{
				maxServers:   p.MaxServers,
				maxCores:     p.MaxCores,
				maxRAM:       p.MaxRAM,
				maxResources: p.MaxResources,
			}
		}
	}
}

// Files returns the files the configuration was read from, for change detection.
func (c *Config) Files() []string {
	out := []string{}
	if c.Path != "" {
		out = append(out, c.Path)
	}
	if c.SecurePath != "" {
		out = append(out, c.SecurePath)
	}
	return slices.Clip(out)
}
