// Package zkready holds readiness checks of a launcher that read ZooKeeper, for
// devstack.LauncherOptions.ReadyCheck. It is apart from devstack because devstack
// must not import the project's ZooKeeper package (whose tests use devstack).
package zkready

import (
	"context"
	"fmt"
	"slices"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// PoolsRegistered returns a check that passes once every provider named has at least
// one pool registered under /nodepool/components/pool (a launcher running the poller
// registers its pools when it starts).
func PoolsRegistered(zk *zookeeper.Client, providers ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		pools, err := zk.ListPools(ctx)
		if err != nil {
			return fmt.Errorf("listing pools: %w", err)
		}
		for _, p := range providers {
			if !slices.ContainsFunc(pools, func(c zookeeper.PoolComponent) bool { return c.ProviderName == p }) {
				return fmt.Errorf("no pool of provider %s registered", p)
			}
		}
		return nil
	}
}
