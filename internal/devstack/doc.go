// Package devstack starts and stops the processes of a nodepool-temporal deployment
// on one machine: ZooKeeper (from the Debian zookeeper package), the Temporal dev
// server (bin/temporal-dev), the simulated clouds (bin/simcloud, bin/ec2sim) and
// launchers (bin/nodepool-launcher). `make run` (cmd/devstack), the benchmark
// (bench/), the end-to-end tests (e2e/), the chaos suite (chaos/) and the shared test
// servers of internal/testenv all start their processes through it.
//
// Every component is a [Proc]: a child process in its own process group, with its
// output in a log file, that counts as started only once it really serves (a ready
// line on its output and, where one is given, a readiness check such as ZooKeeper's
// "ruok"/"srvr" or a launcher's pool registration). A Proc can be stopped (SIGTERM,
// then SIGKILL), killed (SIGKILL, as kill -9 does) and started again with the same
// command line, so a restarted ZooKeeper or Temporal server comes back on the same
// port with the same data. Children get a parent-death signal, so nothing outlives
// the process that started them.
//
// A [Stack] groups the components of one deployment under a directory (data,
// configuration, and one log per component in its log directory), names them, and
// stops them in reverse start order. [LauncherConfig] writes the launcher's
// nodepool.yaml for a set of providers, pools and labels.
//
// [StartCluster] starts the production topology instead (`make run-cluster`, see
// docs/cluster.md): a PostgreSQL server of its own ([StartPostgres]; as the postgres
// user when run as root), the Temporal schema set up by Temporal's SQL tool
// ([SetupTemporalSchema]), the frontend, history, matching and worker services as
// separate `temporal-dev service` processes ([StartTemporalCluster]), a ZooKeeper
// ensemble ([Stack.StartZooKeeperEnsemble]), a sim cloud, pollers and workers, every one
// named in the Stack so that it can be killed and restarted by name.
//
// The package imports no other package of this module, so that the tests of any
// package may use it (through internal/testenv) without an import cycle.
package devstack
