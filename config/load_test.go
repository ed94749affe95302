package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadWithSecure(t *testing.T) {
	clearTemporalEnv(t)
	t.Setenv("NODEPOOL_TEST_MIRROR_PASSWORD", "s3cret")
	c, err := LoadWithSecure("testdata/secure/nodepool.yaml", "testdata/secure/secure.yaml")
	require.NoError(t, err)
	require.NoError(t, c.Validate())

	assert.Equal(t, []string{"testdata/secure/nodepool.yaml", "testdata/secure/secure.yaml"}, c.Files())
	// zookeeper-servers is replaced as a whole.
	assert.Equal(t, []string{"zk-private-1.example.com:2282", "zk-private-2.example.com:2282"}, c.ZooKeeperHosts())
	chroot, err := c.Chroot()
	require.NoError(t, err)
	assert.Equal(t, "/np", chroot)
	assert.Equal(t, "testdata/secure/secure.yaml", c.ZooKeeperServers[0].Pos.File)
	// zookeeper-tls keys are merged.
	require.NotNil(t, c.ZooKeeperTLS)
	assert.Equal(t, "/etc/nodepool/zk-client.pem", c.ZooKeeperTLS.Cert)
	assert.Equal(t, "/etc/nodepool/zk-client.key", c.ZooKeeperTLS.Key)
	assert.Equal(t, "/etc/nodepool/secret-ca.pem", c.ZooKeeperTLS.CA)
	// diskimage env-vars are merged, the secure file winning.
	img, ok := c.DiskImage("ubuntu")
	require.True(t, ok)
	assert.Equal(t, map[string]string{
		"DIB_RELEASE": "noble",
		"DIB_MIRROR":  "https://user:s3cret@mirror.example.com",
		"DIB_TOKEN":   "secret",
	}, img.EnvVars)
}

func TestLoadWithoutSecureKeepsMain(t *testing.T) {
	clearTemporalEnv(t)
	c, err := LoadWithSecure("testdata/secure/nodepool.yaml", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"zk-public.example.com:2281"}, c.ZooKeeperHosts())
	assert.Equal(t, []string{"testdata/secure/nodepool.yaml"}, c.Files())
	// Without the secure file, the TLS section lacks its CA.
	ps := Problems(c.Validate())
	require.Len(t, ps, 1)
	assert.Equal(t, "testdata/secure/nodepool.yaml:4: zookeeper-tls.ca: is required when zookeeper-tls is present (cert, key and ca)", ps[0].Error())
}

func TestBadSecureFile(t *testing.T) {
	clearTemporalEnv(t)
	_, err := LoadWithSecure("testdata/secure/nodepool.yaml", "testdata/secure/bad-secure.yaml")
	require.Error(t, err)
	assert.Equal(t, []string{
		"testdata/secure/bad-secure.yaml:2: field labels not found",
		`testdata/secure/bad-secure.yaml:5: diskimages[0].name: unknown diskimage "centos"`,
		"testdata/secure/bad-secure.yaml:8: diskimages[1].name: is required",
	}, problemTexts(err))

	_, err = LoadWithSecure("testdata/secure/nodepool.yaml", filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "reading secure configuration file")
}

func TestMergeSecureEmptyZooKeeperList(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Parse("main.yaml", []byte("zookeeper-servers:\n  - host: a\n"))
	require.NoError(t, err)
	require.NoError(t, c.MergeSecure("secure.yaml", []byte("zookeeper-servers: []\nzookeeper-tls:\n  cert: c\n  key: k\n  ca: ca\n")))
	assert.Equal(t, []string{"a:2281"}, c.ZooKeeperHosts(), "an empty list does not replace the main file's")
	require.NotNil(t, c.ZooKeeperTLS)
	assert.Equal(t, "secure.yaml", c.ZooKeeperTLS.Pos.File)
	assert.Equal(t, "secure.yaml", c.SecurePath)
	require.NoError(t, c.Validate())
}

func problemTexts(err error) []string {
	var out []string
	for _, p := range Problems(err) {
		out = append(out, p.Error())
	}
	return out
}

func TestSubstituteEnv(t *testing.T) {
	env := map[string]string{"NODEPOOL_A": "alpha", "NODEPOOL_EMPTY": "", "OTHER": "x"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		name     string
		in       string
		want     string
		problems []string
	}{
		{"none", "a: b\n", "a: b\n", nil},
		{"one", "a: %(NODEPOOL_A)\n", "a: alpha\n", nil},
		{"several on a line", "a: %(NODEPOOL_A)-%(NODEPOOL_A)\n", "a: alpha-alpha\n", nil},
		{"empty value is set", "a: x%(NODEPOOL_EMPTY)y\n", "a: xy\n", nil},
		{"other prefixes untouched", "a: %(OTHER)\n", "a: %(OTHER)\n", nil},
		{"malformed untouched", "a: %(NODEPOOL_A\n", "a: %(NODEPOOL_A\n", nil},
		{"unset", "a: 1\nb: %(NODEPOOL_B)\n", "a: 1\nb: %(NODEPOOL_B)\n",
			[]string{"f:2: environment variable NODEPOOL_B referenced by %(NODEPOOL_B) is not set"}},
		{"comment lines left alone", "  # uses %(NODEPOOL_B)\na: %(NODEPOOL_A)\n", "  # uses %(NODEPOOL_B)\na: alpha\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ps := substituteEnv("f", []byte(tc.in), lookup)
			assert.Equal(t, tc.want, string(got))
			var texts []string
			for _, p := range ps {
				texts = append(texts, p.Error())
			}
			assert.Equal(t, tc.problems, texts)
		})
	}
}

func TestTemporalWithEnv(t *testing.T) {
	base := Temporal{Address: "file:7233", Namespace: "ns", TaskQueue: "q", TLS: TemporalTLS{CA: "/file-ca.pem"}}
	tests := []struct {
		name   string
		env    map[string]string
		want   Temporal
		useTLS bool
	}{
		{"no env", nil, base, true},
		{"empty values ignored", map[string]string{EnvTemporalAddress: ""}, base, true},
		{"all", map[string]string{
			EnvTemporalAddress: "env:7233", EnvTemporalNamespace: "env-ns", EnvTemporalTaskQueue: "env-q",
			EnvTemporalTLSCert: "/c.pem", EnvTemporalTLSKey: "/k.pem", EnvTemporalTLSCA: "/ca.pem",
			EnvTemporalServerName: "server", EnvTemporalAPIKey: "key", EnvTemporalTLS: "true",
		}, Temporal{Address: "env:7233", Namespace: "env-ns", TaskQueue: "env-q", APIKey: "key",
			TLS: TemporalTLS{Enabled: true, Cert: "/c.pem", Key: "/k.pem", CA: "/ca.pem", ServerName: "server"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := base.WithEnv(func(k string) string { return tc.env[k] })
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.useTLS, got.UseTLS())
		})
	}

	plain := Temporal{Address: "a", Namespace: "n", TaskQueue: "q"}
	assert.False(t, plain.UseTLS())
	withKey := plain.WithEnv(func(k string) string {
		if k == EnvTemporalAPIKey {
			return "k"
		}
		return ""
	})
	assert.True(t, withKey.UseTLS(), "API keys imply TLS")
}

func TestTemporalEnvAppliedByLoad(t *testing.T) {
	clearTemporalEnv(t)
	t.Setenv(EnvTemporalAddress, "env.example.com:7233")
	t.Setenv(EnvTemporalAPIKey, "from-env")
	t.Setenv(EnvTemporalTLS, "maybe")
	c, err := Parse("t.yaml", []byte("zookeeper-servers: [{host: zk}]\ntemporal:\n  address: file.example.com:7233\n  namespace: prod\n"))
	require.NoError(t, err)
	assert.Equal(t, "env.example.com:7233", c.Temporal.Address)
	assert.Equal(t, "prod", c.Temporal.Namespace)
	assert.Equal(t, "from-env", c.Temporal.APIKey)
	assert.Equal(t, []string{`temporal.tls.enabled: TEMPORAL_TLS="maybe" is not a boolean`}, problemTexts(c.Validate()))
}

// TestZooKeeperFromSecureFileOnly loads a main file without zookeeper-servers and
// zookeeper-tls, whose secure file gives them, as upstream's launcher allows; each
// problem names the file that has it.
func TestZooKeeperFromSecureFileOnly(t *testing.T) {
	const main = "testdata/secure/main-without-zookeeper.yaml"
	tests := []struct {
		name     string
		secure   string
		hosts    []string
		chroot   string
		problems []string
	}{
		{name: "servers and tls from the secure file", secure: "testdata/secure/zookeeper-only.yaml",
			hosts: []string{"zk-private.example.com:2282"}, chroot: "/nodepool"},
		{name: "problems located in the secure file", secure: "testdata/secure/bad-zookeeper.yaml", problems: []string{
			"testdata/secure/bad-zookeeper.yaml:3: zookeeper-servers[0].port: must be between 1 and 65535, got 0",
			`testdata/secure/bad-zookeeper.yaml:4: zookeeper-servers[0].chroot: must start with "/", got "nodepool"`,
			"testdata/secure/bad-zookeeper.yaml:6: zookeeper-tls.key: is required when zookeeper-tls is present (cert, key and ca)",
			"testdata/secure/bad-zookeeper.yaml:6: zookeeper-tls.ca: is required when zookeeper-tls is present (cert, key and ca)",
		}},
		{name: "an empty list in the secure file gives no servers", secure: "testdata/secure/empty-zookeeper.yaml", problems: []string{
			main + ":2: zookeeper-servers: at least one server is required, in this file or in the secure file testdata/secure/empty-zookeeper.yaml",
		}},
		{name: "no secure file", problems: []string{
			main + ":2: zookeeper-servers: at least one server is required",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearTemporalEnv(t)
			c, err := LoadWithSecure(main, tc.secure)
			require.NoError(t, err)
			err = c.Validate()
			if tc.problems != nil {
				assert.Equal(t, tc.problems, problemTexts(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.hosts, c.ZooKeeperHosts())
			chroot, err := c.Chroot()
			require.NoError(t, err)
			assert.Equal(t, tc.chroot, chroot)
			require.NotNil(t, c.ZooKeeperTLS)
			assert.Equal(t, "/etc/nodepool/zk-ca.pem", c.ZooKeeperTLS.CA)
			assert.Equal(t, tc.secure, c.ZooKeeperTLS.Pos.File)
			assert.Equal(t, []string{main, tc.secure}, c.Files())
		})
	}
}
