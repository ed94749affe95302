package main

import (
	"fmt"

	"gopkg.in/yaml.v3"
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
)

// Drivers the benchmark can run the launcher on.
const (
	driverSim = "sim"
	driverAWS = "aws"
)

// launcherParams are the values of one generated launcher configuration.
type launcherParams struct {
	ZooKeeperPort   int
	TemporalAddress string
	Driver          string
	// CloudURL is the base URL of the simcloud server or the ec2sim endpoint.
	CloudURL       string
	MaxServers     int
	PollInterval   float64
	DeleteInterval float64
	// Rate is the provider's driver steps per second; 0 leaves it unlimited.
	Rate float64
}

// providerName is the provider of a driver in the generated configuration.
func providerName(driver string) string {
	return "bench-" + driver
}

type yamlConfig struct {
	ZooKeeperServers []yamlZK       `yaml:"zookeeper-servers"`
	ZooKeeperTimeout float64        `yaml:"zookeeper-timeout"`
	Temporal         yamlTemporal   `yaml:"temporal"`
	Launcher         yamlLauncher   `yaml:"launcher"`
	Labels           []yamlName     `yaml:"labels"`
	Providers        []yamlProvider `yaml:"providers"`
}

type yamlZK struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
}

type yamlTemporal struct {
	Address   string `yaml:"address"`
	Namespace string `yaml:"namespace"`
	TaskQueue string `yaml:"task-queue"`
}

type yamlLauncher struct {
	PollInterval   float64 `yaml:"poll-interval"`
	DeleteInterval float64 `yaml:"delete-interval"`
}

type yamlName struct {
	Name string `yaml:"name"`
}

type yamlProvider struct {
	Name          string  `yaml:"name"`
	Driver        string  `yaml:"driver"`
	Rate          float64 `yaml:"rate,omitempty"`
	LaunchTimeout int     `yaml:"launch-timeout"`
	LaunchRetries int     `yaml:"launch-retries"`
	// sim
	Server  string       `yaml:"server,omitempty"`
	Flavors []yamlFlavor `yaml:"flavors,omitempty"`
	// aws
	RegionName  string `yaml:"region-name,omitempty"`
	Endpoint    string `yaml:"endpoint,omitempty"`
	CloudImages []any  `yaml:"cloud-images"`
	Pools       []any  `yaml:"pools"`
}

type yamlFlavor struct {
	Name  string `yaml:"name"`
	Cores int    `yaml:"cores"`
	RAM   int    `yaml:"ram"`
}

type yamlSimImage struct {
	Name     string `yaml:"name"`
	Username string `yaml:"username"`
}

type yamlSimPool struct {
	Name       string         `yaml:"name"`
	MaxServers int            `yaml:"max-servers"`
	Attributes map[string]any `yaml:"node-attributes"`
	Labels     []yamlSimLabel `yaml:"labels"`
}

type yamlSimLabel struct {
	Name       string `yaml:"name"`
	Flavor     string `yaml:"flavor"`
	CloudImage string `yaml:"cloud-image"`
}

type yamlAWSImage struct {
	Name     string `yaml:"name"`
	ImageID  string `yaml:"image-id"`
	Username string `yaml:"username"`
}

type yamlAWSPool struct {
	Name            string         `yaml:"name"`
	MaxServers      int            `yaml:"max-servers"`
	SubnetID        string         `yaml:"subnet-id"`
	SecurityGroupID string         `yaml:"security-group-id"`
	HostKeyChecking bool           `yaml:"host-key-checking"`
	Attributes      map[string]any `yaml:"node-attributes"`
	Labels          []yamlAWSLabel `yaml:"labels"`
}

type yamlAWSLabel struct {
	Name         string `yaml:"name"`
	CloudImage   string `yaml:"cloud-image"`
	InstanceType string `yaml:"instance-type"`
	KeyName      string `yaml:"key-name"`
}

// launcherConfig renders the launcher's nodepool.yaml: one provider on the chosen
// driver with one pool offering benchLabel.
func launcherConfig(p launcherParams) ([]byte, error) {
	prov := yamlProvider{
		Name:          providerName(p.Driver),
		Driver:        p.Driver,
		Rate:          p.Rate,
		LaunchTimeout: 300,
		LaunchRetries: 3,
	}
	attrs := map[string]any{"executor-zone": "bench"}
	switch p.Driver {
	case driverSim:
		prov.Server = p.CloudURL
		prov.Flavors = []yamlFlavor{{Name: "small", Cores: 2, RAM: 4096}}
		prov.CloudImages = []any{yamlSimImage{Name: benchImage, Username: "zuul"}}
		prov.Pools = []any{yamlSimPool{
			Name: benchPool, MaxServers: p.MaxServers, Attributes: attrs,
			Labels: []yamlSimLabel{{Name: benchLabel, Flavor: "small", CloudImage: benchImage}},
		}}
	case driverAWS:
		prov.RegionName = awsRegion
		prov.Endpoint = p.CloudURL
		prov.CloudImages = []any{yamlAWSImage{Name: benchImage, ImageID: awsImageID, Username: "ubuntu"}}
		prov.Pools = []any{yamlAWSPool{
			Name: benchPool, MaxServers: p.MaxServers,
			SubnetID: "subnet-0b0e0c0b0e0c0b0e0", SecurityGroupID: "sg-0b0e0c0b0e0c0b0e0",
			Attributes: attrs,
			Labels: []yamlAWSLabel{{
				Name: benchLabel, CloudImage: benchImage, InstanceType: awsInstanceType, KeyName: "bench",
			}},
		}}
	default:
		return nil, fmt.Errorf("unknown driver %q (want %s or %s)", p.Driver, driverSim, driverAWS)
	}
	cfg := yamlConfig{
		ZooKeeperServers: []yamlZK{{Host: "127.0.0.1", Port: p.ZooKeeperPort}},
		ZooKeeperTimeout: 10,
		Temporal:         yamlTemporal{Address: p.TemporalAddress, Namespace: "default", TaskQueue: benchTaskQueue},
		Launcher:         yamlLauncher{PollInterval: p.PollInterval, DeleteInterval: p.DeleteInterval},
		Labels:           []yamlName{{Name: benchLabel}},
		Providers:        []yamlProvider{prov},
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding launcher config: %w", err)
	}
	return append([]byte("# Generated by npbench.\n"), out...), nil
}

// simCloudConfig renders the simcloud server's configuration.
func simCloudConfig(bootSteps []float64, deleteLatency float64, seed int64) ([]byte, error) {
	cfg := struct {
		Seed          int64     `yaml:"seed"`
		BootSteps     []float64 `yaml:"boot-steps,flow"`
		DeleteLatency float64   `yaml:"delete-latency"`
	}{seed, bootSteps, deleteLatency}
	if cfg.BootSteps == nil {
		cfg.BootSteps = []float64{}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding simcloud config: %w", err)
	}
	return out, nil
}
