// Package chaos is the fault-injection suite. Each scenario starts a fresh deployment
// of separate processes (ZooKeeper, temporal-dev on a database file, a shared simulated
// cloud, one poller and two worker launcher processes), acts as Zuul through ZooKeeper
// with a burst of single- and multi-node requests, and injects one fault while the
// burst runs: a worker or the poller killed with kill -9, ZooKeeper or the Temporal
// server restarted, cloud errors (throttling, capacity, internal errors, slow calls) on
// the simulated cloud or the EC2-compatible endpoint, request workflows terminated or
// reset through the Temporal client, or one very large request.
//
// After every scenario the suite checks what a launcher must guarantee whatever
// happened: every request ended fulfilled or cleanly failed and none is left pending;
// every node was returned and deleted; the cloud has no instance left; no node id ever
// had two instances at once; no node was part of two fulfilled requests; and
// the pool's whole capacity is available again (a follow-up burst of max-servers
// requests is fulfilled at once).
//
// `go test -timeout 30m ./chaos` (and `make test`) runs the short version: about 40
// requests per scenario, some ten minutes in all. NODEPOOL_CHAOS=long (`make chaos`) runs the long one: 200 requests per
// scenario, a separate scenario per cloud error kind, and a 300-node request. With
// NODEPOOL_CHAOS_REPORT=FILE the figures of the run (what was injected, counts, wall
// times, which checks failed) are written to FILE as Markdown; `make chaos` writes
// docs/reliability.md. NODEPOOL_CHAOS_KEEP=1 keeps every scenario's directory
// (configuration and one log per process); a failed scenario's is always kept.
package chaos
