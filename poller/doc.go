// Package poller connects ZooKeeper to Temporal. It watches Nodepool's request and node
// trees and starts one HandleRequest workflow per node request that this launcher may
// serve, and one DeleteNode workflow per node that must be deleted. It registers the
// launcher's pools in Nodepool's component registry and keeps their "paused" flag in
// step with the pool ledgers.
//
// The poller holds no state that matters: workflow ids derive from request and node ids
// and starts attach to a running workflow, so any number of replicas may run, restart
// or see duplicate events without a request being handled twice. What it remembers
// (which request versions it acted on, since when a lock has been held, ...) is keyed
// by the requests, nodes and lock directories that exist and forgotten with them.
//
// What it reads (requests.go, nodes.go): children watches on the request and node
// directories, a data watch on every listed request and node and a watch on every node's
// lock keep the decoded records and lock states in memory. A znode is read when it
// appears and each time it changes, never otherwise, so the cost of watching follows the
// changes, not the number of waiting requests or nodes. The periodic scan (every
// delete-interval) acts on what changes with time from the kept records: workflows that
// ended too early, pending requests' locks, lost requests, nodes' ages. Every five
// minutes one pass re-reads every unsettled request, as a safety net under the watches.
// Stats counts the reads; Records gives the kept records to other readers.
//
// Requests (requests.go):
//
//   - A "requested" request that not all of our pools declined gets a workflow. When
//     Zuul revises its relative_priority the running workflow is signalled
//     (request-updated), not restarted.
//   - Such a request must keep a running workflow: a few seconds after each start, and
//     then every half minute, the periodic scan asks Temporal whether it still runs
//     (a bounded number of questions per scan) and starts a new run when it does not
//     (an operator terminated it, or it ended after finding the request locked for a
//     moment). A workflow that keeps ending is restarted less and less often.
//   - A request record that cannot be decoded (an empty body, not a JSON object, a field
//     of the wrong type) is left alone, as Zuul skips it, and logged once per version.
//     Declining it would mean overwriting a record nobody can read, perhaps while its
//     writer is still filling it in; its requestor deletes it. A record that decodes but
//     cannot be served (no node types, unknown labels) gets a workflow, whose plan
//     declines it.
//
// Lost and stale state (stale.go, cleanup.go), as Nodepool's cleanup handles it:
//
//   - A request left "pending" by an ended run of its own workflow gets a new run, which
//     takes the request and its nodes over; other locks of ended workflows of ours are
//     released.
//   - A "pending" request that nobody holds locked belongs to a launcher that died: its
//     nodes are deallocated ("init" ones marked for deletion) and it goes back to
//     "requested", unless a workflow of ours still runs for it.
//   - A node znode without a record (empty or not a JSON object) for a minute, and
//     unlocked, is removed with its lock directory (nodes.go).
//   - The lock directory of a request that no longer exists is removed when it is 8 hours
//     old and has no contender.
package poller
