package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

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
	assert.Equal(t, options{config: "x.yaml", dir: "d", bin: "bin", role: "all", uiPort: 9000, quiet: true}, o)
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
