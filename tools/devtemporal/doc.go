// Command temporal-dev runs a single-process Temporal server for development
// and tests: the frontend, history, matching and worker services on SQLite
// (in memory or in a file), with the Temporal web UI served from the same
// process. It is not for production: SQLite has a single writer and the
// server has no replicas.
//
// Usage:
//
//	temporal-dev [server start-dev] [--ip 127.0.0.1] [--port 7233] [--ui-port PORT|0] [--headless]
//	             [--db FILE|:memory:] [--namespace NS]... [--shards N] [--log-level warn]
//	             [--log-format pretty|json] [--search-attribute NAME=TYPE]...
//	             [--dynamic-config-value KEY=VALUE]...
//
// The "server start-dev" prefix and the flag names of the Temporal CLI's dev
// server (--db-filename for --db, --headless, --log-format, ...) are
// accepted, so the Go SDK's testsuite.StartDevServer can start this binary
// through DevServerOptions.ExistingPath.
//
// Behaviour:
//
//   - The frontend listens on --ip:--port (0 picks a free port). The history,
//     matching and worker services listen on free loopback ports. Services
//     find each other through static addresses rather than gossip
//     membership, so no membership ports are opened and a restarted server
//     never probes the members of an earlier run.
//   - The UI listens on --ip:--ui-port; by default that is the frontend port
//     plus 1000, or a free port when --port is 0. --ui-port 0 or --headless
//     disables it.
//   - A file database uses WAL journaling with synchronous=normal and a single
//     connection (more connections make SQLite fail with SQLITE_BUSY under
//     load). The schema is created on the first run only, so workflows,
//     timers and history survive restarts. The shard count is fixed when the
//     file is created.
//   - The "default" namespace and every --namespace are created when missing,
//     with 24 h retention. The project's search attributes (NodepoolRequestID,
//     NodepoolLabel, NodepoolProvider, NodepoolPool, NodepoolNodeID,
//     NodepoolTenant, NodepoolState) and every --search-attribute are
//     registered on each namespace, also on a database from an earlier run.
//   - SIGINT or SIGTERM stops the UI and the server and exits with status 0.
//
// Once the frontend answers health checks, every namespace accepts queries on
// every search attribute and the UI (when enabled) answers HTTP, exactly one
// line is printed on stdout; ui=none when the UI is disabled. Server logs go
// to stderr.
//
//	temporal-dev ready grpc=127.0.0.1:7233 ui=http://127.0.0.1:8233
//
// Two subcommands run Temporal as a multi-process cluster on PostgreSQL instead (see
// docs/cluster.md):
//
//	temporal-dev service --service frontend|history|matching|worker|all [--pg-host H] [--pg-port P]
//	             [--pg-user U] [--db temporal] [--visibility-db temporal_visibility] [--shards 4]
//	             [--NAME-port P] [--NAME-membership-port P]... [--ui-port P] [--ip IP]
//	             [--broadcast-address IP] [--frontend-address HOST:PORT] [--namespace NS]...
//	temporal-dev sql-tool [temporal-sql-tool arguments]
//
// "service" runs the selected services of the go.temporal.io/server version this
// module pins, with persistence and SQL visibility on PostgreSQL (the postgres12
// plugin) and ringpop membership over the database; every process of a cluster gets
// the same ports and databases. Membership ports must not exceed 32767 (the SQL
// schema keeps them in a smallint). A process running the frontend registers the
// namespaces and the project's search attributes and serves the UI with --ui-port.
// Once its services report SERVING it prints one line on stdout:
//
//	temporal-dev service ready frontend=127.0.0.1:7233 ui=http://127.0.0.1:8233
//
// "sql-tool" is Temporal's temporal-sql-tool with the PostgreSQL plugin and the
// server's embedded schema files (--schema-name postgresql/v12/temporal and
// postgresql/v12/visibility).
package main
