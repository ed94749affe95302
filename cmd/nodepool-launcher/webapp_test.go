package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The launcher serves the web app on the configured address, reports
// its pools ready, exposes Prometheus metrics and sends statsd gauges when
// STATSD_HOST and STATSD_PORT are set; --no-webapp turns the web app off.
func TestLauncherWebappAndMetrics(t *testing.T) {
	zkAddr, chroot := testenv.ZooKeeperChroot(t)
	zkHost, zkPort, err := net.SplitHostPort(zkAddr)
	require.NoError(t, err)
	temporal := testenv.Temporal(t)
	port := freePort(t)

	statsd, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer statsd.Close()
	t.Setenv("STATSD_HOST", "127.0.0.1")
	t.Setenv("STATSD_PORT", fmt.Sprint(statsd.LocalAddr().(*net.UDPAddr).Port))

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "nodepool.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
webapp:
  port: %d
  listen_address: 127.0.0.1
labels:
  - name: small
providers:
  - name: sim
    driver: sim
    pools:
      - name: main
        max-servers: 5
        labels:
          - name: small
temporal:
  address: %s
  task-queue: webapp-%s
launcher:
  hostname: webapp-test
  cleanup-interval: 1
`, zkHost, zkPort, chroot, port, temporal, uuid.NewString())), 0o644))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testenv.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-c", cfgPath}, io.Discard, &stderr) }()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	require.Eventually(t, func() bool { code, _ := get("/ready"); return code == http.StatusOK },
		60*time.Second, 100*time.Millisecond, "ready once the pool is registered; stderr:\n%s", &stderr)
	code, body := get("/label-list")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "| small |")
	require.Eventually(t, func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, "nodepool_stats_reporter 1") &&
			strings.Contains(m, `nodepool_nodes{label="small",provider="sim",state="ready"} 0`) &&
			strings.Contains(m, `nodepool_request_workflows{phase="launching"} 0`)
	}, 60*time.Second, 100*time.Millisecond)
	_, m := get("/metrics")
	assert.Contains(t, m, `nodepool_provider_max_servers{provider="sim"} 5`)
	// The Temporal workers count their activities (the leak sweep runs every second).
	require.Eventually(t, func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `nodepool_activity_executions_total{activity="SweepLeaks",outcome="completed"}`)
	}, 60*time.Second, 100*time.Millisecond, "stderr:\n%s", &stderr)

	// statsd receives upstream's gauges.
	seen := map[string]bool{}
	buf := make([]byte, 65536)
	require.NoError(t, statsd.SetReadDeadline(time.Now().Add(30*time.Second)))
	for !seen["nodepool.provider.sim.max_servers:5|g"] || !seen["nodepool.label.small.nodes.ready:0|g"] {
		n, _, err := statsd.ReadFrom(buf)
		require.NoError(t, err, "statsd gauges")
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			seen[l] = true
		}
	}

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, "stderr:\n%s", &stderr)
	case <-time.After(60 * time.Second):
		t.Fatal("launcher did not stop")
	}
	_, err = http.Get(base + "/ready")
	assert.Error(t, err, "the web app stops with the launcher")

	// --no-webapp: the launcher runs without listening.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	var stderr2 testenv.SyncBuffer
	done2 := make(chan int, 1)
	go func() {
		done2 <- run(ctx2, []string{"-c", cfgPath, "--role", "poller", "--no-webapp"}, io.Discard, &stderr2)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stderr2.String(), "launcher running") },
		60*time.Second, 100*time.Millisecond, "stderr:\n%s", &stderr2)
	_, err = http.Get(base + "/ready")
	assert.Error(t, err, "no web app")
	cancel2()
	select {
	case code := <-done2:
		assert.Equal(t, 0, code, "stderr:\n%s", &stderr2)
	case <-time.After(60 * time.Second):
		t.Fatal("launcher did not stop")
	}
}
