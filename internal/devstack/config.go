package devstack

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"gopkg.in/yaml.v3"
)

// LauncherConfig is a launcher's nodepool.yaml: where ZooKeeper and Temporal are, and
// the providers with their pools and labels. YAML renders it; fields left zero are left
// out, so the launcher's defaults apply.
type LauncherConfig struct {
	// ZooKeeper lists the servers as host:port.
	ZooKeeper []string `yaml:"-"`
	// Chroot is the ZooKeeper chroot, e.g. "/t-1234"; empty means none.
	Chroot string `yaml:"-"`
	// ZooKeeperTimeout is the session timeout in seconds.
	ZooKeeperTimeout float64 `yaml:"zookeeper-timeout,omitempty"`
	// Temporal is the temporal section.
	Temporal TemporalSection `yaml:"temporal,omitempty"`
	// Launcher is the launcher section.
	Launcher LauncherSection `yaml:"launcher,omitempty"`
	// MaxHoldAge is max-hold-age in seconds.
	MaxHoldAge int `yaml:"max-hold-age,omitempty"`
	// Labels are the top-level labels; nil means every label of every pool, in the
	// order they first appear.
	Labels    []string   `yaml:"-"`
	Providers []Provider `yaml:"providers"`
	// Extra holds further top-level keys.
	Extra map[string]any `yaml:",inline"`
}

// TemporalSection is the launcher's temporal section.
type TemporalSection struct {
	Address   string `yaml:"address,omitempty"`
	Namespace string `yaml:"namespace,omitempty"`
	TaskQueue string `yaml:"task-queue,omitempty"`
}

// LauncherSection is the launcher's launcher section.
type LauncherSection struct {
	// Hostname names the deployment's pools (…-PoolWorker.<provider>-<pool>).
	Hostname string `yaml:"hostname,omitempty"`
	// PollInterval is the longest timer between state-machine steps, seconds.
	PollInterval float64 `yaml:"poll-interval,omitempty"`
	// DeleteInterval is how often every request and node is re-read, seconds.
	DeleteInterval float64 `yaml:"delete-interval,omitempty"`
}

// Provider is one provider section.
type Provider struct {
	Name   string `yaml:"name"`
	Driver string `yaml:"driver"`
	// Rate is driver steps per second across every worker; zero is unlimited.
	Rate float64 `yaml:"rate,omitempty"`
	// LaunchTimeout is in seconds.
	LaunchTimeout float64 `yaml:"launch-timeout,omitempty"`
	LaunchRetries int     `yaml:"launch-retries,omitempty"`
	// Server is a sim provider's simcloud URL.
	Server string `yaml:"server,omitempty"`
	// Flavors are a sim provider's instance sizes.
	Flavors []Flavor `yaml:"flavors,omitempty"`
	// Region and Endpoint are an aws provider's region-name and EC2 endpoint.
	Region   string `yaml:"region-name,omitempty"`
	Endpoint string `yaml:"endpoint,omitempty"`
	// CloudImages are the provider's cloud-images.
	CloudImages []CloudImage `yaml:"cloud-images,omitempty"`
	Pools       []Pool       `yaml:"pools"`
	// Extra holds further keys of the provider.
	Extra map[string]any `yaml:",inline"`
}

// Flavor is a sim provider's instance size.
type Flavor struct {
	Name  string `yaml:"name"`
	Cores int    `yaml:"cores"`
	// RAM is in MiB.
	RAM int `yaml:"ram"`
}

// CloudImage is an entry of a provider's cloud-images.
type CloudImage struct {
	Name     string `yaml:"name"`
	Username string `yaml:"username,omitempty"`
	// ImageID is an aws image id (ami-...).
	ImageID string `yaml:"image-id,omitempty"`
	// Extra holds further keys (image-filters, python-path, ...).
	Extra map[string]any `yaml:",inline"`
}

// Pool is a provider's pool.
type Pool struct {
	Name string `yaml:"name"`
	// MaxServers, MaxCores and MaxRAM are the pool's limits; zero is unlimited.
	MaxServers int `yaml:"max-servers,omitempty"`
	MaxCores   int `yaml:"max-cores,omitempty"`
	MaxRAM     int `yaml:"max-ram,omitempty"`
	// Priority is the pool's priority (lower first); zero is the default.
	Priority int `yaml:"priority,omitempty"`
	// SubnetID and SecurityGroupID are an aws pool's network settings.
	SubnetID        string `yaml:"subnet-id,omitempty"`
	SecurityGroupID string `yaml:"security-group-id,omitempty"`
	// Attributes are the pool's node-attributes.
	Attributes map[string]any `yaml:"node-attributes,omitempty"`
	Labels     []Label        `yaml:"labels"`
	// Extra holds further keys of the pool.
	Extra map[string]any `yaml:",inline"`
}

// Label is a pool's label.
type Label struct {
	Name string `yaml:"name"`
	// Flavor names a sim provider's flavor.
	Flavor     string `yaml:"flavor,omitempty"`
	CloudImage string `yaml:"cloud-image,omitempty"`
	// InstanceType and KeyName are an aws label's settings.
	InstanceType string `yaml:"instance-type,omitempty"`
	KeyName      string `yaml:"key-name,omitempty"`
	// Extra holds further keys of the label.
	Extra map[string]any `yaml:",inline"`
}

// yamlZK is an entry of zookeeper-servers.
type yamlZK struct {
	Host   string `yaml:"host"`
	Port   int    `yaml:"port"`
	Chroot string `yaml:"chroot,omitempty"`
}

// AllLabels returns the labels of every pool, in the order they first appear.
func (c LauncherConfig) AllLabels() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range c.Providers {
		for _, pool := range p.Pools {
			for _, l := range pool.Labels {
				if !seen[l.Name] {
					seen[l.Name] = true
					out = append(out, l.Name)
				}
			}
		}
	}
	return out
}

// YAML renders the configuration file.
func (c LauncherConfig) YAML() ([]byte, error) {
	var servers []yamlZK
	for _, s := range c.ZooKeeper {
		host, port, err := splitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("zookeeper server %q: %w", s, err)
		}
		servers = append(servers, yamlZK{Host: host, Port: port, Chroot: c.Chroot})
	}
	labels := c.Labels
	if labels == nil {
		labels = c.AllLabels()
	}
	type name struct {
		Name string `yaml:"name"`
	}
	names := make([]name, len(labels))
	for i, l := range labels {
		names[i] = name{l}
	}
	// The configuration's own fields (Extra inlined) come between zookeeper-servers and
	// labels; yaml.v3 drops an inline map inside an inlined struct, so the document is
	// put together as nodes.
	type plain LauncherConfig
	var body yaml.Node
	if err := body.Encode(plain(c)); err != nil {
		return nil, fmt.Errorf("encoding launcher configuration: %w", err)
	}
	var head, tail yaml.Node
	if err := head.Encode(map[string]any{"zookeeper-servers": servers}); err != nil {
		return nil, fmt.Errorf("encoding launcher configuration: %w", err)
	}
	if err := tail.Encode(map[string]any{"labels": names}); err != nil {
		return nil, fmt.Errorf("encoding launcher configuration: %w", err)
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	doc.Content = append(doc.Content, head.Content...)
	doc.Content = append(doc.Content, body.Content...)
	doc.Content = append(doc.Content, tail.Content...)
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding launcher configuration: %w", err)
	}
	return out, nil
}

// Write renders the configuration into path.
func (c LauncherConfig) Write(path string) error {
	data, err := c.YAML()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing launcher configuration: %w", err)
	}
	return nil
}

func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	return host, n, nil
}
