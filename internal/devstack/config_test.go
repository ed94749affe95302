package devstack_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
)

// The generated configuration passes the launcher's own validation, drivers included.
func TestLauncherConfigLoads(t *testing.T) {
	cfg := devstack.LauncherConfig{
		ZooKeeper:        []string{"127.0.0.1:2999"},
		Chroot:           "/t-1",
		ZooKeeperTimeout: 4,
		Temporal:         devstack.TemporalSection{Address: "127.0.0.1:7999", Namespace: "default", TaskQueue: "q"},
		Launcher:         devstack.LauncherSection{Hostname: "h", PollInterval: 0.5, DeleteInterval: 2},
		MaxHoldAge:       3600,
		Extra:            map[string]any{"tenant-resource-limits": []map[string]any{{"tenant-name": "t", "max-servers": 7}}},
		Providers: []devstack.Provider{
			{
				Name: "sim", Driver: "sim", Rate: 20, LaunchTimeout: 60, LaunchRetries: 2,
				Server:      "http://127.0.0.1:8999",
				Flavors:     []devstack.Flavor{{Name: "small", Cores: 1, RAM: 1024}},
				CloudImages: []devstack.CloudImage{{Name: "img", Username: "zuul"}},
				Pools: []devstack.Pool{{
					Name: "main", MaxServers: 5, Attributes: map[string]any{"executor-zone": "z"},
					Labels: []devstack.Label{
						{Name: "small", Flavor: "small", CloudImage: "img"},
						{Name: "other", Flavor: "small", CloudImage: "img"},
					},
				}},
			},
			{
				Name: "aws", Driver: "aws", Region: "us-east-1", Endpoint: "http://127.0.0.1:8998", LaunchTimeout: 60,
				CloudImages: []devstack.CloudImage{{Name: "jammy", ImageID: "ami-0a1b2c3d4e5f60002", Username: "ubuntu"}},
				Pools: []devstack.Pool{{
					Name: "main", MaxServers: 4, SubnetID: "subnet-0b0e0c0b0e0c0b0e0", SecurityGroupID: "sg-0b0e0c0b0e0c0b0e0",
					Labels: []devstack.Label{{
						Name: "aws-small", CloudImage: "jammy", InstanceType: "t3.small", KeyName: "zuul",
						Extra: map[string]any{"tags": map[string]string{"team": "ci"}},
					}},
				}},
			},
		},
	}
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	if err := cfg.Write(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	loaded, err := launchconfig.Load(path, "")
	if err != nil {
		t.Fatalf("loading the generated configuration: %v\n%s", err, data)
	}
	if got := loaded.ZooKeeperHosts(); len(got) != 1 || got[0] != "127.0.0.1:2999" {
		t.Errorf("zookeeper hosts %v", got)
	}
	if chroot, err := loaded.Chroot(); err != nil || chroot != "/t-1" {
		t.Errorf("chroot %q, %v", chroot, err)
	}
	if len(loaded.Labels) != 3 || len(loaded.Providers) != 2 {
		t.Fatalf("labels %v, %d providers:\n%s", loaded.Labels, len(loaded.Providers), data)
	}
	p := loaded.Providers[0]
	if p.RateOr(0) != 20 || *p.Pools[0].MaxServers != 5 || len(p.Pools[0].LabelNames()) != 2 {
		t.Errorf("sim provider %+v:\n%s", p, data)
	}
	if len(loaded.TenantResourceLimits) != 1 || loaded.TenantResourceLimits[0].TenantName != "t" {
		t.Errorf("top-level keys of Extra: tenant-resource-limits %+v:\n%s", loaded.TenantResourceLimits, data)
	}
	if loaded.Temporal.TaskQueue != "q" || loaded.Launcher.PollInterval.Duration().Seconds() != 0.5 {
		t.Errorf("temporal %+v, launcher %+v", loaded.Temporal, loaded.Launcher)
	}
}

func TestSimCloudConfigYAML(t *testing.T) {
	tests := []struct {
		name string
		cfg  devstack.SimCloudConfig
		want string
	}{
		{"defaults", devstack.SimCloudConfig{}, "{}\n"},
		{"instant boot", devstack.SimCloudConfig{BootSteps: []float64{}, Seed: 7}, "boot-steps: []\nseed: 7\n"},
		{"faults", devstack.SimCloudConfig{BootSteps: []float64{0.5}, RateLimitRate: 0.1, ErrorRate: map[string]float64{"create": 0.2}},
			"boot-steps:\n    - 0.5\nerror-rate:\n    create: 0.2\nrate-limit-rate: 0.1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.YAML()
			if err != nil || string(got) != tc.want {
				t.Errorf("YAML() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
