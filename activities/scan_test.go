package activities

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/nodescan/nodescantest"
)

func TestScanNode(t *testing.T) {
	f := newFixture(t)
	server := nodescantest.NewServer(t, nodescantest.Options{})
	silentHost, silentPort := nodescantest.Silent(t)
	closedHost, closedPort := nodescantest.ClosedPort(t)
	tests := []struct {
		name     string
		host     string
		port     int
		keys     []string
		failType string
	}{
		{"ssh server", server.Host, server.Port, server.Keys, ""},
		{"never answers", silentHost, silentPort, nil, ErrTypeNodescan},
		{"nothing listens", closedHost, closedPort, nil, ErrTypeNodescan},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := f.env.ExecuteActivity(f.acts.ScanNode, ScanNodeInput{NodeID: "0000000001", Host: tc.host, Port: tc.port, TimeoutSec: 1.5})
			if tc.failType != "" {
				require.Equal(t, tc.failType, errorTypeOf(err), "%v", err)
				return
			}
			require.NoError(t, err)
			var res ScanNodeResult
			require.NoError(t, v.Get(&res))
			require.Equal(t, tc.keys, res.HostKeys)
		})
	}
}

func TestHostKeyCheckingFollowsTheDriver(t *testing.T) {
	f := newFixture(t)
	require.False(t, f.acts.hostKeyChecking("sim", "main"), "the sim cloud's instances have no SSH server")
	require.False(t, f.acts.hostKeyChecking("unknown", "main"))
}
