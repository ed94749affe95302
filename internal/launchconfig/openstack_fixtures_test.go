package launchconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/config"
)

// TestOpenStackUpstreamFixtures loads upstream Nodepool's typical OpenStack (fake
// driver) fixtures: those launching from cloud images load, those building disk
// images name the keys this launcher does not support.
func TestOpenStackUpstreamFixtures(t *testing.T) {
	fields := strings.NewReplacer(
		"{zookeeper_host}", "zk.example.com", "{zookeeper_port}", "2281", "{zookeeper_chroot}", "/nodepool-test",
		"{zookeeper_ca}", "/etc/zk/ca.pem", "{zookeeper_cert}", "/etc/zk/cert.pem", "{zookeeper_key}", "/etc/zk/key.pem",
		"{images_dir}", "/var/lib/nodepool/images", "{build_log_dir}", "/var/log/nodepool/builds",
		"{{", "{", "}}", "}",
	)
	tests := []struct {
		file string
		want []string // substrings of the problems; empty = valid
	}{
		{file: "node_unmanaged_image.yaml"},
		{file: "unmanaged_image_provider_id.yaml"},
		{file: "unmanaged_image_provider_name.yaml"},
		{file: "node.yaml", want: []string{
			"providers[0].diskimages: not supported by this launcher",
			"providers[0].pools[0].labels[0].diskimage: not supported by this launcher",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("../../config/testdata/upstream", tc.file))
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), tc.file)
			require.NoError(t, os.WriteFile(path, []byte(fields.Replace(string(raw))), 0o644))
			cfg, err := Load(path, "")
			if len(tc.want) == 0 {
				require.NoError(t, err)
				for _, p := range cfg.Providers {
					require.Equal(t, "fake", p.Driver)
					_, err := OpenStackConfig(&p)
					require.NoError(t, err)
				}
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
