package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/nodescan"
)

// Nodescan: before a node is ready, the launcher connects to it and reads its SSH host
// keys (or, for connection types without keys, checks that its port answers), within
// the provider's boot-timeout, as Nodepool does. Zuul's executors then trust exactly
// those keys. A node that never answers is a failed launch attempt.

// ErrTypeNodescan is the error type of a node that did not answer within boot-timeout.
const ErrTypeNodescan = "Nodescan"

// HostKeyChecker is implemented by drivers whose pools decide whether nodes get their
// host keys scanned (upstream's host-key-checking, default true).
type HostKeyChecker interface {
	HostKeyChecking(pool string) bool
}

// ScanHandler is implemented by drivers that check their hosts and learn their keys
// themselves (static hosts): the launcher does not scan their nodes again.
type ScanHandler interface {
	HandlesNodescan() bool
}

// ScanNodeInput asks for a node's scan.
type ScanNodeInput struct {
	NodeID         string  `json:"node_id"`
	Host           string  `json:"host"`
	Port           int     `json:"port,omitempty"`
	ConnectionType string  `json:"connection_type,omitempty"`
	TimeoutSec     float64 `json:"timeout_sec"`
}

// ScanNodeResult holds the node's host keys, "<type> <base64>".
type ScanNodeResult struct {
	HostKeys []string `json:"host_keys"`
}

// ScanNode reads a node's SSH host keys, retrying until the timeout. A node that does
// not answer in time yields a non-retryable Nodescan error: the launch attempt failed.
func (a *Activities) ScanNode(ctx context.Context, in ScanNodeInput) (ScanNodeResult, error) {
	res, err := nodescan.Scan(ctx, nodescan.Target{
		Host: in.Host, Port: in.Port, ConnectionType: in.ConnectionType,
		Timeout: seconds(in.TimeoutSec), HostKeys: true,
	})
	if errors.Is(err, nodescan.ErrTimeout) {
		return ScanNodeResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("scanning node %s at %s: %v", in.NodeID, in.Host, err), ErrTypeNodescan, err)
	}
	if err != nil {
		return ScanNodeResult{}, fmt.Errorf("scanning node %s at %s: %w", in.NodeID, in.Host, err)
	}
	if len(res.Skipped) > 0 {
		a.logger.Warn("host key types skipped", "node_id", in.NodeID, "types", res.Skipped)
	}
	a.logger.Info("scanned node", "node_id", in.NodeID, "host", in.Host, "keys", len(res.Keys), "attempts", res.Attempts)
	return ScanNodeResult{HostKeys: append([]string{}, res.Keys...)}, nil
}

// hostKeyChecking reports whether nodes of a provider's pool are scanned.
func (a *Activities) hostKeyChecking(provider, pool string) bool {
	d, ok := a.drivers[provider]
	if !ok {
		return false
	}
	if h, ok := d.(ScanHandler); ok && h.HandlesNodescan() {
		return false
	}
	if c, ok := d.(HostKeyChecker); ok {
		return c.HostKeyChecking(pool)
	}
	return false
}
