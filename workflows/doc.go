// Package workflows holds the launcher's Temporal workflows: HandleRequest (one per
// node request), DeleteNode (one per node to delete), PoolLedger (one per provider
// pool, the single writer of that pool's capacity) and LeakSweep (one per provider,
// deleting cloud resources that no node record knows).
//
// Workflows only orchestrate. Their code is replayed from history, so it must make the
// same decisions every time it runs:
//
//   - no I/O of any kind: every ZooKeeper read or write and every cloud call is an
//     activity (package activities);
//   - no wall clock, randomness, goroutines, Go channels or select statements: use
//     workflow.Now, workflow.Go, workflow channels and workflow.Selector;
//   - no iteration over maps where the order changes what happens: sort keys first;
//   - no configuration reads: what shapes the orchestration (pool, limits, timeouts,
//     poll interval) arrives in the workflow input or in the plan returned by an
//     activity, so a configuration change cannot change a replay;
//   - logging through workflow.GetLogger only.
//
// Inputs, results, signal payloads and query results are JSON and recorded in
// histories: treat their field names as a wire format. Changes to the sequence of
// commands a workflow issues must be gated with workflow.GetVersion, and the replay test
// (testdata/*.json histories) must keep passing.
package workflows
