// Package worker is the launcher's composition root. It reads nodepool.yaml, builds the
// cloud drivers, connects to ZooKeeper and Temporal, and runs the poller and the Temporal
// workers (all, or one role per process so each can be scaled on its own). Nothing but
// the commands in cmd/ imports it.
package worker
