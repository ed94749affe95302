package launchconfig

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestLoadValidatesDriverSections(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // substrings of the problems; empty = valid
	}{
		{name: "upstream AWS example", file: "../../config/testdata/good/aws-example.yaml"},
		{name: "example of make run", file: "../../examples/nodepool.yaml"},
		{name: "compose stack", file: "../../docker/nodepool.yaml"},
		{name: "unknown driver", file: "testdata/unknown-driver.yaml", want: []string{
			`unknown-driver.yaml:7: providers[0] (cloud)`, `driver "gce" of upstream Nodepool is not supported by this launcher (supported: aws, fake, openstack, sim, static)`,
		}},
		{name: "openstack providers, driver key absent in one", file: "testdata/openstack.yaml"},
		{name: "bad openstack keys", file: "testdata/bad-openstack-keys.yaml", want: []string{
			"bad-openstack-keys.yaml:15: providers[0].pools[0].labels[0]: field flavour-name not found",
		}},
		{name: "bad openstack values", file: "testdata/bad-openstack.yaml", want: []string{
			"bad-openstack.yaml:9: providers[0].cloud: required",
			"bad-openstack.yaml:12: providers[0].diskimages: not supported by this launcher",
			"bad-openstack.yaml:15: providers[0].cloud-images[0]: image-id and image-name are exclusive",
			`bad-openstack.yaml:20: providers[0].pools[0].networks[1]: duplicate network "private"`,
			"bad-openstack.yaml:23: providers[0].pools[0].labels[0].diskimage: not supported by this launcher",
			`bad-openstack.yaml:26: providers[0].pools[0].labels[1].cloud-image: unknown cloud image "focal"`,
			"bad-openstack.yaml:25: providers[0].pools[0].labels[1]: one of flavor-name or min-ram is required",
			"bad-openstack.yaml:27: providers[0].pools[0].labels[1].volume-size: requires boot-from-volume",
		}},
		{name: "static provider", file: "testdata/static.yaml"},
		{name: "bad static keys", file: "testdata/bad-static.yaml", want: []string{
			"bad-static.yaml:13: providers[0].pools[0].nodes[0]: field ssh-port not found",
			"bad-static.yaml:17: providers[0].pools[0].nodes[1].max-parallel-jobs:",
		}},
		{name: "bad static values", file: "testdata/bad-static-values.yaml", want: []string{
			`bad-static-values.yaml:14: providers[0].pools[0].nodes[1].name: duplicate node "trusty.example.com"`,
			"bad-static-values.yaml:16: providers[0].pools[0].nodes[1].timeout: must be at least 1",
		}},
		{name: "bad sim and aws keys at once", file: "testdata/bad-drivers.yaml", want: []string{
			"bad-drivers.yaml:", "unknown flavor", "region-name", "key-name",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.file, "")
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var all []string
			for _, p := range config.Problems(err) {
				all = append(all, p.Error())
			}
			text := strings.Join(all, "\n")
			for _, w := range tc.want {
				require.Contains(t, text, w)
			}
		})
	}
}

func TestZooKeeperOptions(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    zookeeper.Options
		wantErr string
	}{
		{
			name: "plain",
			yaml: "zookeeper-servers:\n  - host: zk1\n  - host: zk2\n    port: 2181\n",
			want: zookeeper.Options{Servers: []string{"zk1:2281", "zk2:2181"}, SessionTimeout: 10 * time.Second},
		},
		{
			name: "chroot, timeout and tls",
			yaml: "zookeeper-servers:\n  - host: zk1\n    chroot: /ci\nzookeeper-timeout: 4\n" +
				"zookeeper-tls:\n  cert: c.pem\n  key: k.pem\n  ca: ca.pem\n",
			want: zookeeper.Options{Servers: []string{"zk1:2281"}, Chroot: "/ci", SessionTimeout: 4 * time.Second,
				TLS: &zookeeper.TLSConfig{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}},
		},
		{
			name:    "different chroots",
			yaml:    "zookeeper-servers:\n  - host: zk1\n    chroot: /a\n  - host: zk2\n    chroot: /b\n",
			wantErr: "differs",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("zk.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			got, err := ZooKeeperOptions(cfg, slog.New(slog.DiscardHandler))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.NotNil(t, got.Logger)
			got.Logger = nil
			assert.Equal(t, tc.want, got)
		})
	}
}
