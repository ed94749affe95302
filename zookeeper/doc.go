// Package zookeeper speaks Nodepool's ZooKeeper protocol: the znode layout,
// the JSON records for node requests, nodes and pool registrations, the
// kazoo-compatible lock recipe, and watches that survive reconnects.
//
// Everything here is wire format shared with Zuul and with the upstream
// Python Nodepool, which may run side by side with this implementation:
//
//   - Records decode every field Nodepool defines, with Nodepool's reader
//     defaults (a request without "reuse" reuses nodes, a node's "type" may be
//     a legacy bare string, "hold_expiration" is coerced to an integer), and
//     keep every key they do not model in an Extra map so that a rewrite never
//     drops what Zuul wrote.
//   - Node records are written with every Nodepool key, nulls included, as
//     upstream does; "host_keys" is always a list and "ssh_port" mirrors an
//     integer "connection_port".
//   - Times (state_time, created_time) are float unix seconds, as Python's
//     time.time(); [Timestamp] and [TimeOf] convert them.
//   - A node's resource amounts are not trusted: decoding reads NaN, infinite
//     and negative amounts as 0 and caps the rest at [MaxResource], noting
//     every change in [Node.Corrected]; [Node.ResourceCounts] gives the
//     amounts quota is counted in.
//   - Locks use kazoo's Lock recipe on the wire: ephemeral sequential
//     contenders named "<uuid4 hex>__lock__<10-digit sequence>" under the lock
//     directory, the lowest sequence holds the lock. Python Nodepool and Zuul
//     see our locks and we see theirs.
//
// Records are rewritten with a version check. [Client.ModifyRequest] and
// [Client.ModifyNode] are the read-modify-write loop: apply a change, write
// it, and on a concurrent write read again and re-apply the change.
//
// Paths are relative to the chroot given in [Options]; the client prefixes
// the chroot itself because the underlying go-zookeeper client has no chroot
// support.
//
// # Sessions
//
// Ephemeral znodes (lock contenders, pool registrations, ephemeral requests)
// live as long as the ZooKeeper session that created them. When a session
// expires the client connects again with a new session: pool registrations
// made with [Client.RegisterPool] are re-created automatically and
// [Client.WatchChildren] channels re-list their path, but locks are not
// re-taken. A [Lock] never assumes it is still held after a session change
// (use [Lock.Held]); owner-identified locks ([Client.EnsureLock]) exist for
// callers that must keep a lock across crashes and session changes and
// re-assert it themselves.
//
// go-zookeeper has no persistent recursive watches (ZooKeeper's addWatch), so
// watches are ordinary one-shot watches re-armed after every event and after
// every reconnect.
package zookeeper
