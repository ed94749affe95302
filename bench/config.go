package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
)

// Names the generated configuration uses.
const (
	benchLabel     = "bench"
	benchPool      = "main"
	benchTaskQueue = "npbench"
	benchImage     = "bench-image"
	// awsImageID is one of ec2sim's canned AMIs (Ubuntu 22.04).
	awsImageID      = "ami-0a1b2c3d4e5f60002"
	awsInstanceType = "t3.small"
	awsRegion       = "us-east-1"
	// osCloud is the clouds.yaml entry of the openstack provider; osImage and osFlavor
	// are among ossim's canned images and flavors.
	osCloud  = "bench"
	osImage  = "ubuntu-jammy"
	osFlavor = "m1.small"
	osRegion = "RegionOne"
)

// Drivers the benchmark can run the launcher on.
const (
	driverSim       = "sim"
	driverAWS       = "aws"
	driverOpenStack = "openstack"
	driverStatic    = "static"
)

// drivers lists the drivers the benchmark runs, in the order flags name them.
var drivers = []string{driverSim, driverAWS, driverOpenStack, driverStatic}

// staticHost is one host of the static provider: a loopback address and the port of a
// TCP listener the benchmark holds open on it.
type staticHost struct {
	Name string
	Port int
}

// launcherParams are the values of one generated launcher configuration.
type launcherParams struct {
	ZooKeeperPort int
	// ZooKeeperAddrs, when set, are the ensemble's members (host:port) instead.
	ZooKeeperAddrs  []string
	TemporalAddress string
	Driver          string
	// CloudURL is the base URL of the simcloud server, the ec2sim endpoint or ossim (the
	// openstack provider reaches ossim through clouds.yaml, see cloudsYAML).
	CloudURL       string
	MaxServers     int
	PollInterval   float64
	DeleteInterval float64
	// Rate is the provider's driver steps per second; 0 leaves it unlimited.
	Rate float64
	// StaticHosts are the static provider's hosts, one slot each.
	StaticHosts []staticHost
	// MinReady is the label's min-ready; 0 leaves it out.
	MinReady int
}

// providerName is the provider of a driver in the generated configuration.
func providerName(driver string) string {
	return "bench-" + driver
}

// benchConfig is the launcher's configuration: one provider on the chosen driver with
// one pool offering benchLabel.
func benchConfig(p launcherParams) (devstack.LauncherConfig, error) {
	prov := devstack.Provider{
		Name:          providerName(p.Driver),
		Driver:        p.Driver,
		Rate:          p.Rate,
		LaunchTimeout: 300,
		LaunchRetries: 3,
	}
	pool := devstack.Pool{Name: benchPool, MaxServers: p.MaxServers, Attributes: map[string]any{"executor-zone": "bench"}}
	switch p.Driver {
	case driverSim:
		prov.Server = p.CloudURL
		prov.Flavors = []devstack.Flavor{{Name: "small", Cores: 2, RAM: 4096}}
		prov.CloudImages = []devstack.CloudImage{{Name: benchImage, Username: "zuul"}}
		pool.Labels = []devstack.Label{{Name: benchLabel, Flavor: "small", CloudImage: benchImage}}
	case driverAWS:
		prov.Region = awsRegion
		prov.Endpoint = p.CloudURL
		prov.CloudImages = []devstack.CloudImage{{Name: benchImage, ImageID: awsImageID, Username: "ubuntu"}}
		pool.SubnetID, pool.SecurityGroupID = "subnet-0b0e0c0b0e0c0b0e0", "sg-0b0e0c0b0e0c0b0e0"
		pool.Extra = map[string]any{"host-key-checking": false}
		pool.Labels = []devstack.Label{{Name: benchLabel, CloudImage: benchImage, InstanceType: awsInstanceType, KeyName: "bench"}}
	case driverOpenStack:
		prov.Region = osRegion
		prov.Extra = map[string]any{"cloud": osCloud}
		prov.CloudImages = []devstack.CloudImage{{Name: benchImage, Username: "zuul", Extra: map[string]any{"image-name": osImage}}}
		pool.Extra = map[string]any{"host-key-checking": false}
		pool.Labels = []devstack.Label{{Name: benchLabel, CloudImage: benchImage, Extra: map[string]any{"flavor-name": osFlavor}}}
	case driverStatic:
		if len(p.StaticHosts) == 0 {
			return devstack.LauncherConfig{}, fmt.Errorf("the static provider needs at least one host")
		}
		nodes := make([]map[string]any, len(p.StaticHosts))
		for i, h := range p.StaticHosts {
			nodes[i] = map[string]any{
				"name": h.Name, "labels": []string{benchLabel}, "username": "zuul",
				"host-key-checking": false, "connection-port": h.Port,
			}
		}
		// The pool offers the labels of its nodes; it has no labels list of its own.
		pool.Extra = map[string]any{"nodes": nodes}
	default:
		return devstack.LauncherConfig{}, fmt.Errorf("unknown driver %q (want one of %v)", p.Driver, drivers)
	}
	prov.Pools = []devstack.Pool{pool}
	servers := p.ZooKeeperAddrs
	if len(servers) == 0 {
		servers = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(p.ZooKeeperPort))}
	}
	return devstack.LauncherConfig{
		ZooKeeper:        servers,
		Labels:           []string{benchLabel},
		ZooKeeperTimeout: 10,
		Temporal:         devstack.TemporalSection{Address: p.TemporalAddress, Namespace: "default", TaskQueue: benchTaskQueue},
		Launcher:         devstack.LauncherSection{PollInterval: p.PollInterval, DeleteInterval: p.DeleteInterval},
		Providers:        []devstack.Provider{prov},
	}, nil
}

// launcherConfig renders the launcher's nodepool.yaml (see benchConfig).
func launcherConfig(p launcherParams) ([]byte, error) {
	cfg, err := benchConfig(p)
	if err != nil {
		return nil, err
	}
	out, err := cfg.YAML()
	if err != nil {
		return nil, err
	}
	if p.Driver == driverStatic {
		if out, err = withoutPoolLabels(out); err != nil {
			return nil, err
		}
	}
	if p.MinReady > 0 {
		if out, err = withMinReady(out, benchLabel, p.MinReady); err != nil {
			return nil, err
		}
	}
	return append([]byte("# Generated by npbench.\n"), out...), nil
}

// withMinReady sets min-ready of label in the top-level labels list of a rendered
// launcher configuration (devstack.LauncherConfig names its labels only).
func withMinReady(doc []byte, label string, n int) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("setting min-ready: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("setting min-ready: the configuration is not a mapping")
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "labels" || top.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, entry := range top.Content[i+1].Content {
			if entry.Kind != yaml.MappingNode || mappingValue(entry, "name") != label {
				continue
			}
			value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(n)}
			for j := 0; j+1 < len(entry.Content); j += 2 {
				if entry.Content[j].Value == "min-ready" {
					entry.Content[j+1] = value
					return yaml.Marshal(&root)
				}
			}
			entry.Content = append(entry.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "min-ready"}, value)
			return yaml.Marshal(&root)
		}
	}
	return nil, fmt.Errorf("setting min-ready: label %q is not in the top-level labels", label)
}

// withoutPoolLabels drops the empty labels lists of the pools of a rendered launcher
// configuration: a static pool offers its nodes' labels and has no labels key
// (devstack.Pool always renders one).
func withoutPoolLabels(doc []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("removing pool labels: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("removing pool labels: the configuration is not a mapping")
	}
	for _, prov := range sequenceItems(mappingNode(root.Content[0], "providers")) {
		for _, pool := range sequenceItems(mappingNode(prov, "pools")) {
			for i := 0; i+1 < len(pool.Content); i += 2 {
				if v := pool.Content[i+1]; pool.Content[i].Value == "labels" && v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
					pool.Content = append(pool.Content[:i], pool.Content[i+2:]...)
					break
				}
			}
		}
	}
	return yaml.Marshal(&root)
}

// mappingNode returns the value node of key in a mapping node, or nil.
func mappingNode(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// sequenceItems returns the items of a sequence node (none for anything else).
func sequenceItems(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// mappingValue returns the scalar value of key in a mapping node, or "".
func mappingValue(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// cloudsYAML is the clouds.yaml that points the openstack provider's cloud at ossim
// listening at baseURL; ossim accepts any credentials.
func cloudsYAML(baseURL string) ([]byte, error) {
	doc := map[string]any{"clouds": map[string]any{osCloud: map[string]any{
		"auth": map[string]any{
			"auth_url": baseURL + "/identity/v3", "username": "admin", "password": "npbench",
			"project_name": "demo", "user_domain_name": "Default", "project_domain_name": "Default",
		},
		"region_name": osRegion, "interface": "public", "identity_api_version": 3,
	}}}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding clouds.yaml: %w", err)
	}
	return append([]byte("# Generated by npbench.\n"), out...), nil
}

// staticAddrs returns n loopback addresses from 127.0.0.2 on (Linux routes all of
// 127.0.0.0/8 to the loopback interface).
func staticAddrs(n int) []string {
	out := make([]string, n)
	a := netip.MustParseAddr("127.0.0.2")
	for i := range out {
		out[i] = a.String()
		a = a.Next()
	}
	return out
}

// benchCloud is the simcloud server's configuration.
func benchCloud(bootSteps []float64, deleteLatency float64, seed int64) devstack.SimCloudConfig {
	steps := append([]float64{}, bootSteps...)
	return devstack.SimCloudConfig{Seed: seed, BootSteps: steps, DeleteLatency: deleteLatency}
}

// simCloudConfig renders the simcloud server's configuration file (see benchCloud).
func simCloudConfig(bootSteps []float64, deleteLatency float64, seed int64) ([]byte, error) {
	return benchCloud(bootSteps, deleteLatency, seed).YAML()
}
