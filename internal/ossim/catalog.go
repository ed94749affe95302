package ossim

// Flavor is a Nova flavor: VCPUs, RAM in MiB and root Disk in GiB.
type Flavor struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	VCPUs int    `json:"vcpus"`
	RAM   int    `json:"ram"`
	Disk  int    `json:"disk"`
}

// Image is a Glance image. Properties appear as top-level attributes of the image, as
// Glance shows custom properties.
type Image struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Properties map[string]string `json:"properties,omitempty"`
}

// Network is a Neutron network. External networks (router:external) are the pools
// floating IPs are allocated from; servers may also attach to them directly.
type Network struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	External bool   `json:"external"`
}

// Limits are the compute absolute limits of the project: instances, cores and RAM in
// MiB. -1 means unlimited; 0 means the default (see DefaultLimits).
type Limits struct {
	MaxInstances int `json:"max_instances"`
	MaxCores     int `json:"max_cores"`
	MaxRAM       int `json:"max_ram"`
}

// DefaultLimits are the limits of a zero Limits field.
var DefaultLimits = Limits{MaxInstances: 100, MaxCores: 200, MaxRAM: 512000}

func (l Limits) withDefaults() Limits {
	if l.MaxInstances == 0 {
		l.MaxInstances = DefaultLimits.MaxInstances
	}
	if l.MaxCores == 0 {
		l.MaxCores = DefaultLimits.MaxCores
	}
	if l.MaxRAM == 0 {
		l.MaxRAM = DefaultLimits.MaxRAM
	}
	return l
}

// Ids of the default images and networks.
const (
	ImageUbuntuJammy     = "5f1e0f9a-4c1d-4c8e-9a55-0b1d2c3e4f01"
	ImageDebianBookworm  = "5f1e0f9a-4c1d-4c8e-9a55-0b1d2c3e4f02"
	ImageCentOS9Stream   = "5f1e0f9a-4c1d-4c8e-9a55-0b1d2c3e4f03"
	NetworkPublic        = "7c0a7d6e-8f7b-4d6e-b1a2-1c2d3e4f5a01"
	NetworkPrivate       = "7c0a7d6e-8f7b-4d6e-b1a2-1c2d3e4f5a02"
	DefaultProject       = "demo"
	DefaultAZ            = "nova"
	DefaultNodeMetadata  = "nodepool_node_id"
	managedMetadataStart = "nodepool_"
)

// DefaultFlavors is the flavor catalogue of a zero Options.Flavors.
var DefaultFlavors = []Flavor{
	{ID: "1", Name: "m1.tiny", VCPUs: 1, RAM: 512, Disk: 1},
	{ID: "2", Name: "m1.small", VCPUs: 1, RAM: 2048, Disk: 20},
	{ID: "3", Name: "m1.medium", VCPUs: 2, RAM: 4096, Disk: 40},
	{ID: "4", Name: "m1.large", VCPUs: 4, RAM: 8192, Disk: 80},
	{ID: "5", Name: "m1.xlarge", VCPUs: 8, RAM: 16384, Disk: 160},
}

// DefaultImages is the image catalogue of a zero Options.Images.
var DefaultImages = []Image{
	{ID: ImageUbuntuJammy, Name: "ubuntu-jammy", Properties: map[string]string{"os_distro": "ubuntu", "os_version": "22.04"}},
	{ID: ImageDebianBookworm, Name: "debian-bookworm", Properties: map[string]string{"os_distro": "debian", "os_version": "12"}},
	{ID: ImageCentOS9Stream, Name: "centos-9-stream", Properties: map[string]string{"os_distro": "centos", "os_version": "9"}},
}

// DefaultNetworks are the networks of a zero Options.Networks.
var DefaultNetworks = []Network{
	{ID: NetworkPublic, Name: "public", External: true},
	{ID: NetworkPrivate, Name: "private"},
}
