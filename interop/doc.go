// Package interop checks that this launcher and upstream Nodepool's own launcher share
// one ZooKeeper as two upstream launchers do. Its test runs both side by side on a
// ZooKeeper that they, the CLIs and the test's Zuul client reach over mutual TLS (a
// throwaway CA from internal/testenv): upstream's nodepool-launcher in the foreground
// with its fake driver, from the source vendored in interop/upstream (see its README),
// and ours with the Temporal dev server and a simulated cloud.
//
// A Zuul client (internal/zuul) submits requests that only one side, or both, can
// serve, and the test checks:
//
//   - routing: a label only one launcher serves is fulfilled by it; a label both serve
//     is fulfilled exactly once, by either, and no node is ever allocated to two
//     requests (a watch reads every node record every 100 ms); a request first
//     offered to one side's preferred pool, which declines it, is served by the
//     other; a request no pool serves fails once the pools of both sides declined it
//     (each side reads the other's entries in declined_by);
//   - records: node records of both launchers carry the same keys, and our pool
//     registrations every key of upstream's;
//   - the CLIs: upstream's `nodepool list --detail` and `request-list` and ours show
//     the same nodes and requests cell for cell (but for the age, and the user data
//     that upstream prints as a Python dict), and both label lists name every
//     launcher's labels (upstream's from its web app's /label-list: its CLI has no
//     label-list command);
//   - clean-up: nodes that Zuul returns used are deleted by the launcher that made
//     them, and nothing is left in ZooKeeper or on the clouds.
//
// Upstream runs on the system python3 with Debian 12's Python packages
// (scripts/install-interop-deps.sh); without them the test skips and says so.
// interop/harness holds the entry points that run the vendored source
// (nodepool-launcher, nodepool) and the clouds.yaml that names the fake driver's cloud.
//
// Environment: NODEPOOL_BIN_DIR names built binaries (nodepool-launcher, nodepool,
// simcloud; otherwise they are built), TEMPORAL_DEV_BIN the Temporal dev server,
// NODEPOOL_INTEROP_PYTHON another interpreter than /usr/bin/python3, and
// NODEPOOL_INTEROP_LOGS a directory that keeps the components' logs.
package interop
