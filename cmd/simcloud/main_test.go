package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
)

// mainEnv makes the re-executed test binary run main instead of the tests.
const mainEnv = "SIMCLOUD_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Args = append([]string{"simcloud"}, strings.Fields(os.Getenv("SIMCLOUD_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// address reads the "listening" line and returns the address.
func address(t *testing.T, r io.Reader) string {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	require.NoError(t, err, "reading the listening line")
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "simcloud listening on ")
	require.True(t, ok, "unexpected first line %q", line)
	return addr
}

// start runs simcloud in process and returns a client of it; the server stops when
// the test ends, and the test checks that it stopped cleanly.
func start(t *testing.T, args ...string) *sim.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), pw, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "simcloud stopped with an error")
		case <-time.After(30 * time.Second):
			t.Error("simcloud did not stop")
		}
	})
	addrc := make(chan string, 1)
	go func() { addrc <- address(t, pr) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		require.FailNow(t, "simcloud stopped", "%v", err)
	}
	c, err := sim.NewClient("http://" + addr)
	require.NoError(t, err)
	return c
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cloud.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func TestServe(t *testing.T) {
	ctx := context.Background()
	path := writeConfig(t, `
seed: 9
boot-steps: []
quota: {instances: 1}
flavors: [{name: s, cores: 1, ram: 512}]
`)
	c := start(t, "--config", path, "--seed", "4")

	in := sim.CreateInstanceInput{ClientToken: "t", Name: "np1", Flavor: sim.Flavor{Name: "s", Cores: 1, RAM: 512},
		Image: "img", Metadata: map[string]string{drivers.MetaNodeID: "0000000001"}}
	info, err := c.CreateInstance(ctx, in)
	require.NoError(t, err)
	require.Equal(t, sim.StatusActive, info.Status)

	// --seed overrides the file: the instance matches one from a cloud seeded with 4.
	want, err := sim.NewCloud(sim.Config{Seed: 4, BootSteps: []float64{}})
	require.NoError(t, err)
	wantInfo, err := want.CreateInstance(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, wantInfo.HostID, info.HostID)
	assert.Equal(t, wantInfo.AZ, info.AZ)

	in.ClientToken, in.Name = "u", "np2"
	_, err = c.CreateInstance(ctx, in)
	require.Error(t, err)
	assert.Equal(t, sim.CodeQuotaExceeded, apiCode(err))

	stats, err := c.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), stats["create"])
	assert.Equal(t, int64(1), stats["instances"])
	assert.Equal(t, int64(1), stats["errors.QuotaExceeded"])

	insts, err := c.Instances(ctx)
	require.NoError(t, err)
	require.Len(t, insts, 1)
	assert.Equal(t, "0000000001", insts[0].Metadata[drivers.MetaNodeID])

	require.NoError(t, c.InjectError(ctx, sim.CallList, sim.CodeThrottling))
	_, err = c.ListInstances(ctx)
	assert.Equal(t, sim.CodeThrottling, apiCode(err))
}

func apiCode(err error) sim.ErrorCode {
	var ae *sim.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func TestBadArguments(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		config string
		want   []string
	}{
		{"unknown flag", []string{"--colour"}, "", []string{"colour"}},
		{"extra argument", []string{"serve"}, "", []string{`unexpected arguments ["serve"]`}},
		{"bad log level", []string{"--log-level", "loud"}, "", []string{"parsing --log-level"}},
		{"missing config", []string{"--config", "/nonexistent/cloud.yaml"}, "", []string{"reading config"}},
		{"unknown key", nil, "colour: blue\n", []string{"decoding", "colour"}},
		{"invalid keys", nil, "server: http://x\nrate-limit-rate: 2\nazs: []\n", []string{
			"server: a simcloud server cannot use another server",
			"rate-limit-rate: must be a fraction", "azs: must list at least one zone",
		}},
		{"invalid address", []string{"--listen", "256.0.0.1:1"}, "", []string{"listening on 256.0.0.1:1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.config != "" {
				args = append(args, "--config", writeConfig(t, tc.config))
			}
			err := run(context.Background(), args, io.Discard, io.Discard)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestStopsOnSIGTERM(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainEnv+"=1", "SIMCLOUD_ARGS=--listen 127.0.0.1:0 --seed 3")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	addr := address(t, stdout)
	c, err := sim.NewClient("http://" + addr)
	require.NoError(t, err)
	_, err = c.Stats(context.Background())
	require.NoError(t, err)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		require.NoError(t, err, "simcloud exit status")
	case <-time.After(30 * time.Second):
		require.FailNow(t, "simcloud did not stop on SIGTERM")
	}
}
