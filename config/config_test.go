package config

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clearTemporalEnv makes sure the machine's environment does not leak into tests.
func clearTemporalEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{
		EnvTemporalAddress, EnvTemporalNamespace, EnvTemporalTaskQueue, EnvTemporalTLS,
		EnvTemporalTLSCert, EnvTemporalTLSKey, EnvTemporalTLSCA, EnvTemporalServerName,
		EnvTemporalAPIKey,
	} {
		t.Setenv(name, "")
	}
}

func TestLoadGoodConfigs(t *testing.T) {
	clearTemporalEnv(t)
	t.Setenv("NODEPOOL_TEST_ZK_HOST", "zk.example.com")
	t.Setenv("NODEPOOL_TEST_ZK_PORT", "2182")
	files, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			require.NoError(t, err)
			require.NoError(t, c.Validate())
			assert.Equal(t, f, c.Path)
		})
	}
}

// wantLines returns the "# want: " expectations written at the end of a bad file.
func wantLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if w, ok := strings.CutPrefix(s.Text(), "# want: "); ok {
			out = append(out, w)
		}
	}
	require.NoError(t, s.Err())
	return out
}

// TestLoadBadConfigs loads every file in testdata/bad and checks that the problems
// reported (by Load, or else by Validate) are exactly those listed in the file's
// "# want:" comments, in order: every problem is reported at once, with file, line
// and key path.
func TestLoadBadConfigs(t *testing.T) {
	clearTemporalEnv(t)
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wantLines(t, f)
			require.NotEmpty(t, want, "bad file without # want: lines")
			c, err := Load(f)
			if err == nil {
				err = c.Validate()
			}
			require.Error(t, err)
			got := Problems(err)
			gotText := make([]string, len(got))
			for i, p := range got {
				gotText[i] = p.Error()
			}
			require.Len(t, got, len(want), "problems:\n%s", strings.Join(gotText, "\n"))
			for i, w := range want {
				assert.Contains(t, gotText[i], w)
				assert.True(t, strings.HasPrefix(gotText[i], f+":"), "problem %q does not start with the file name", gotText[i])
			}
		})
	}
}

func TestAWSExample(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Load("testdata/good/aws-example.yaml")
	require.NoError(t, err)

	assert.Equal(t, []string{"zk01.example.com:2281"}, c.ZooKeeperHosts())
	chroot, err := c.Chroot()
	require.NoError(t, err)
	assert.Equal(t, "/nodepool", chroot)
	require.NotNil(t, c.ZooKeeperTLS)
	assert.Equal(t, ZooKeeperTLS{Cert: "/etc/nodepool/zk-client.pem", Key: "/etc/nodepool/zk-client.key", CA: "/etc/nodepool/zk-ca.pem"},
		ZooKeeperTLS{Cert: c.ZooKeeperTLS.Cert, Key: c.ZooKeeperTLS.Key, CA: c.ZooKeeperTLS.CA})
	assert.Equal(t, Seconds(30), c.ZooKeeperTimeout)
	assert.Equal(t, Webapp{Port: 8005, ListenAddress: "127.0.0.1"}, Webapp{Port: c.Webapp.Port, ListenAddress: c.Webapp.ListenAddress})
	assert.Equal(t, Seconds(86400), c.MaxHoldAge)

	l, ok := c.Label("ubuntu-jammy")
	require.True(t, ok)
	assert.Equal(t, 1, l.MinReady)
	assert.Equal(t, Seconds(7200), l.MaxReadyAge)
	_, ok = c.Label("missing")
	assert.False(t, ok)

	limits, ok := c.TenantLimits("example")
	require.True(t, ok)
	assert.Equal(t, map[string]int64{"instances": 20, "cores": 80}, limits)

	p, ok := c.Provider("aws-us-east-1")
	require.True(t, ok)
	assert.Equal(t, "aws", p.Driver)
	assert.Equal(t, 2.0, p.Rate)
	assert.Equal(t, 3, p.LaunchRetries)
	assert.Equal(t, Seconds(180), p.BootTimeout)
	assert.Equal(t, Seconds(900), p.LaunchTimeout)
	assert.Equal(t, -1, p.MaxConcurrency)
	assert.Equal(t, "providers[0]", p.Pos.Path)
	assert.Equal(t, 28, p.Pos.Line)

	pool, ok := p.Pool("main")
	require.True(t, ok)
	assert.Equal(t, []string{"ubuntu-jammy"}, pool.LabelNames())
	assert.Equal(t, map[string]int64{"instances": 10}, pool.Limits())
	assert.Equal(t, 100, pool.Priority(p))
	assert.False(t, pool.Disabled())
	assert.Equal(t, map[string]any{"executor-zone": "aws"}, pool.NodeAttributes)
	assert.Equal(t, "providers[0].pools[0]", pool.Pos.Path)
}

func TestSimExample(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Load("testdata/good/sim.yaml")
	require.NoError(t, err)
	require.NoError(t, c.Validate())

	assert.Nil(t, c.ZooKeeperTLS, "plain connection when zookeeper-tls is absent")
	assert.Equal(t, []string{"127.0.0.1:2181", "[::1]:2182"}, c.ZooKeeperHosts())
	chroot, err := c.Chroot()
	require.NoError(t, err)
	assert.Empty(t, chroot)

	limits, ok := c.TenantLimits("tenant-one")
	require.True(t, ok)
	assert.Equal(t, map[string]int64{
		"instances": 5, "ram": 16384, "volumes": 4, "volume-gb": 400, "L-1216C47A": 64,
	}, limits)
	_, ok = c.TenantLimits("nobody")
	assert.False(t, ok)

	retired, ok := c.Label("retired")
	require.True(t, ok)
	assert.Equal(t, -1, retired.MinReady)

	one, ok := c.Provider("sim-one")
	require.True(t, ok)
	two, ok := c.Provider("sim-two")
	require.True(t, ok)
	assert.Equal(t, 0.5, two.Rate)
	assert.Zero(t, one.Rate, "absent rate is left to the driver")
	assert.Equal(t, 2.0, one.RateOr(2))
	assert.Equal(t, 0.5, two.RateOr(2))
	zero, err := Parse("z.yaml", []byte("providers: [{name: p, driver: aws, rate: 0}]"))
	require.NoError(t, err)
	assert.Zero(t, zero.Providers[0].RateOr(2), "an explicit 0 is unlimited")

	tests := []struct {
		provider *Provider
		pool     string
		priority int
		limits   map[string]int64
		disabled bool
		labels   []string
	}{
		{one, "main", 50, map[string]int64{"instances": 8, "cores": 32, "gpus": 2}, false, []string{"small", "large"}},
		{one, "fast", 10, map[string]int64{"instances": 2, "cores": 32, "ram": 8192, "gpus": 1}, false, []string{"small"}},
		{one, "off", 50, map[string]int64{"instances": 0, "cores": 32, "gpus": 2}, true, []string{"retired"}},
		{two, "main", 100, map[string]int64{}, false, []string{"large"}},
	}
	for _, tc := range tests {
		t.Run(tc.provider.Name+"/"+tc.pool, func(t *testing.T) {
			pool, ok := tc.provider.Pool(tc.pool)
			require.True(t, ok)
			assert.Equal(t, tc.priority, pool.Priority(tc.provider))
			assert.Equal(t, tc.limits, pool.Limits())
			assert.Equal(t, tc.disabled, pool.Disabled())
			assert.Equal(t, tc.labels, pool.LabelNames())
		})
	}
	fast, _ := one.Pool("fast")
	assert.Equal(t, map[string]any{"zone": "fast", "tier": 1}, fast.NodeAttributes)
	_, ok = one.Pool("missing")
	assert.False(t, ok)

	assert.Equal(t, Temporal{
		Address: "temporal.example.com:7233", Namespace: "nodepool", TaskQueue: "launcher",
		TLS: TemporalTLS{Cert: "/etc/nodepool/temporal.pem", Key: "/etc/nodepool/temporal.key",
			CA: "/etc/nodepool/temporal-ca.pem", ServerName: "temporal.example.com"},
	}, stripPos(c.Temporal))
	assert.True(t, c.Temporal.UseTLS())
	assert.Equal(t, Seconds(0.25), c.Launcher.PollInterval)
	assert.Equal(t, 250*1e6, float64(c.Launcher.PollInterval.Duration()))
	assert.Equal(t, Seconds(2), c.Launcher.DeleteInterval)
	assert.Equal(t, Seconds(30), c.Launcher.CleanupInterval)
	assert.Equal(t, "launcher-01", c.Launcher.Hostname)
}

func stripPos(t Temporal) Temporal {
	t.Pos = Pos{}
	t.TLS.Pos = Pos{}
	return t
}

func TestDefaults(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Parse("minimal.yaml", []byte("zookeeper-servers:\n  - host: zk\nproviders:\n  - name: p\n    driver: sim\n    pools:\n      - name: main\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())

	assert.Equal(t, 2281, c.ZooKeeperServers[0].Port)
	assert.Equal(t, Seconds(10), c.ZooKeeperTimeout)
	assert.Equal(t, 8005, c.Webapp.Port)
	assert.Equal(t, "0.0.0.0", c.Webapp.ListenAddress)
	assert.Equal(t, "/var/log/nodepool/builds", c.BuildLogDir)
	assert.Equal(t, 7, c.BuildLogRetention)
	assert.Zero(t, c.MaxHoldAge)
	assert.Equal(t, "127.0.0.1:7233", c.Temporal.Address)
	assert.Equal(t, "default", c.Temporal.Namespace)
	assert.Equal(t, "nodepool", c.Temporal.TaskQueue)
	assert.False(t, c.Temporal.UseTLS())
	assert.Equal(t, Seconds(1), c.Launcher.PollInterval)
	assert.Equal(t, Seconds(5), c.Launcher.DeleteInterval)
	assert.Equal(t, Seconds(60), c.Launcher.CleanupInterval)
	host, _ := os.Hostname()
	assert.Equal(t, host, c.Launcher.Hostname)

	p := &c.Providers[0]
	assert.Equal(t, -1, p.MaxConcurrency)
	assert.Nil(t, p.Priority)
	assert.Zero(t, p.Rate)
	assert.Equal(t, Seconds(3600), p.LaunchTimeout)
	assert.Equal(t, Seconds(180), p.BootTimeout)
	assert.Equal(t, 3, p.LaunchRetries)
	pool := &p.Pools[0]
	assert.Nil(t, pool.MaxServers, "absent max-servers stays distinguishable from 0")
	assert.Empty(t, pool.Limits(), "no limits means unlimited")
	assert.False(t, pool.Disabled())
	assert.Equal(t, 100, pool.Priority(p))
	assert.Empty(t, pool.LabelNames())
}

func TestDiskImageDefaults(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Load("testdata/good/upstream-full.yaml")
	require.NoError(t, err)
	base, ok := c.DiskImage("base")
	require.True(t, ok)
	assert.Equal(t, "zuul", base.Username)
	assert.Equal(t, "auto", base.PythonPath)
	assert.Equal(t, Seconds(86400), base.RebuildAge)
	assert.Equal(t, Seconds(8*3600), base.BuildTimeout)
	noble, ok := c.DiskImage("ubuntu-noble")
	require.True(t, ok)
	assert.Equal(t, "24.04", noble.Release)
	assert.Equal(t, "/usr/bin/python3", noble.PythonPath)
	assert.Equal(t, Seconds(43200), noble.RebuildAge)
	assert.Equal(t, 1024, c.ImagesDirRequiredFree)
	assert.Equal(t, -1, c.BuildLogRetention)
	_, ok = c.DiskImage("missing")
	assert.False(t, ok)
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Load("testdata/good/anchors.yaml")
	require.NoError(t, err)
	chroot, err := c.Chroot()
	require.NoError(t, err)
	assert.Equal(t, "/nodepool", chroot)
	b, ok := c.Provider("sim-b")
	require.True(t, ok)
	assert.Equal(t, "sim", b.Driver)
	assert.Equal(t, Seconds(600), b.LaunchTimeout)
	pool, ok := b.Pool("main")
	require.True(t, ok)
	assert.Equal(t, []string{"b"}, pool.LabelNames())
	assert.Equal(t, map[string]int64{"instances": 3}, pool.Limits())
}

func TestEnvSubstitution(t *testing.T) {
	clearTemporalEnv(t)
	t.Setenv("NODEPOOL_TEST_ZK_HOST", "zk.example.com")
	t.Setenv("NODEPOOL_TEST_ZK_PORT", "2182")
	t.Setenv("OTHER_VAR", "ignored")
	c, err := Load("testdata/good/env.yaml")
	require.NoError(t, err)
	assert.Equal(t, []string{"zk.example.com:2182"}, c.ZooKeeperHosts())

	// Only NODEPOOL_ names are substituted; other references stay as text.
	c, err = Parse("other.yaml", []byte("zookeeper-servers:\n  - host: \"%(OTHER_VAR)\"\n"))
	require.NoError(t, err)
	assert.Equal(t, "%(OTHER_VAR)", c.ZooKeeperServers[0].Host)
}

func TestChrootMismatch(t *testing.T) {
	c := &Config{ZooKeeperServers: []ZooKeeperServer{{Host: "a", Port: 1, Chroot: "/x"}, {Host: "b", Port: 2, Chroot: "/y"}}}
	_, err := c.Chroot()
	require.EqualError(t, err, `zookeeper-servers[1]: chroot "/y" differs from "/x" of zookeeper-servers[0]`)
	assert.Equal(t, []string{"a:1", "b:2"}, c.ZooKeeperHosts())
}

func TestValidateDefault(t *testing.T) {
	clearTemporalEnv(t)
	// The default configuration lacks only a ZooKeeper server.
	err := Default().Validate()
	require.Error(t, err)
	ps := Problems(err)
	require.Len(t, ps, 1)
	assert.Equal(t, "zookeeper-servers: at least one server is required", ps[0].Error())
}

func TestEmptyFile(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Parse("empty.yaml", nil)
	require.NoError(t, err)
	err = c.Validate()
	require.Error(t, err)
	assert.Equal(t, "empty.yaml: zookeeper-servers: at least one server is required", err.Error())
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "reading configuration file")
}

func TestProblemFormat(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f.yaml", Line: 3, Path: "a.b", Msg: "bad"}, "f.yaml:3: a.b: bad"},
		{Problem{File: "f.yaml", Path: "a", Msg: "bad"}, "f.yaml: a: bad"},
		{Problem{File: "f.yaml", Line: 2, Msg: "bad"}, "f.yaml:2: bad"},
		{Problem{Line: 2, Msg: "bad"}, "line 2: bad"},
		{Problem{Path: "x", Msg: "bad"}, "x: bad"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.p.Error())
		})
	}
	err := problemsError([]Problem{{File: "b", Line: 1, Msg: "x"}, {File: "a", Line: 9, Msg: "y"}, {File: "a", Line: 2, Msg: "z"}})
	assert.Equal(t, "a:2: z\na:9: y\nb:1: x", err.Error())
	var p Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, "z", p.Msg)
	assert.Nil(t, problemsError(nil))
	assert.Nil(t, Problems(nil))
}

func TestPoolLabelLookup(t *testing.T) {
	clearTemporalEnv(t)
	c, err := Load("testdata/good/sim.yaml")
	require.NoError(t, err)
	p, _ := c.Provider("sim-one")
	pool, _ := p.Pool("main")
	l, ok := pool.Label("large")
	require.True(t, ok)
	assert.Equal(t, "large", l.Name)
	assert.Equal(t, "providers[0].pools[0].labels[1]", l.Pos.Path)
	_, ok = pool.Label("retired")
	assert.False(t, ok)
	_, ok = c.Provider("missing")
	assert.False(t, ok)
}

func TestZooKeeperTLSAllowCNOnly(t *testing.T) {
	cfg, err := Parse("tls.yaml", []byte("zookeeper-tls:\n  cert: c.pem\n  key: k.pem\n  ca: ca.pem\n  allow-cn-only: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ZooKeeperTLS == nil || !cfg.ZooKeeperTLS.AllowCNOnly {
		t.Fatalf("allow-cn-only not read: %+v", cfg.ZooKeeperTLS)
	}
}
