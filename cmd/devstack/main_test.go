package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example configuration places every component on a loopback port.
func TestPlanForExampleConfig(t *testing.T) {
	cfg, err := launchconfig.Load(filepath.Join("..", "..", "examples", "nodepool.yaml"), "")
	require.NoError(t, err)
	p, err := planFor(cfg)
	require.NoError(t, err)
	assert.Equal(t, 2181, p.zkPort)
	assert.Equal(t, 7233, p.temporalPort)
	assert.Equal(t, []cloud{{provider: "aws-sim", addr: "127.0.0.1:8780"}}, p.ec2)
	assert.Empty(t, p.sim, "the example's sim provider runs its cloud in the launcher")
	assert.Equal(t, []string{"sim", "aws-sim"}, p.providers)
}

func TestLoopbackPort(t *testing.T) {
	for addr, want := range map[string]int{"127.0.0.1:2181": 2181, "localhost:7233": 7233, "[::1]:9": 9} {
		got, err := loopbackPort(addr)
		require.NoError(t, err, addr)
		assert.Equal(t, want, got)
	}
	for _, addr := range []string{"zk.example.com:2181", "10.0.0.1:2181", "nope"} {
		_, err := loopbackPort(addr)
		assert.Error(t, err, addr)
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"-c", "x.yaml", "--dir", "d", "--ui-port", "9000", "-q"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, options{config: "x.yaml", dir: "d", bin: "bin", role: "all", uiPort: 9000, quiet: true,
		pollers: 1, workers: 3, frontendPort: 7233}, o)
	_, err = parseFlags([]string{"extra"}, io.Discard)
	assert.Error(t, err)
}

func TestGateDropsUntilOpened(t *testing.T) {
	var sb strings.Builder
	g := &gate{w: &sb}
	_, _ = g.Write([]byte("before\n"))
	g.open()
	_, _ = g.Write([]byte("after\n"))
	assert.Equal(t, "after\n", sb.String())
}

func TestClusterFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    options
		wantErr bool
	}{
		{
			args: []string{"--cluster", "--dir", ".run-cluster"},
			want: options{config: "examples/nodepool.yaml", dir: ".run-cluster", bin: "bin", role: "all", uiPort: 8233,
				cluster: true, pollers: 1, workers: 3, frontendPort: 7233},
		},
		{
			args: []string{"--cluster", "--pollers", "2", "--workers", "5", "--frontend-port", "0", "--ui-port", "0"},
			want: options{config: "examples/nodepool.yaml", dir: ".run", bin: "bin", role: "all",
				cluster: true, pollers: 2, workers: 5},
		},
		{args: []string{"--cluster", "--pollers", "0"}, wantErr: true},
		{args: []string{"--cluster", "--workers", "0"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, o)
		})
	}
}

func TestControlCommands(t *testing.T) {
	st, err := devstack.New(devstack.Options{Dir: t.TempDir(), BinDir: t.TempDir()})
	require.NoError(t, err)
	tests := []struct{ line, want string }{
		{"", ""},
		{"ps", ""},
		{"kill", "usage: ps | kill NAME"},
		{"kill a b", "usage: ps | kill NAME"},
		{"kill temporal-history", `no component "temporal-history"`},
		{"restart zookeeper-2", `no component "zookeeper-2"`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got := control(context.Background(), st, tt.line)
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, tt.want)
		})
	}
}
