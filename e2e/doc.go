// Package e2e holds the end-to-end tests. They start a real ZooKeeper, the Temporal
// dev server, simulated clouds and the built launcher binary as separate processes,
// and act as Zuul does: through ZooKeeper only (plus the Temporal client where an
// operator would use it, to cancel or signal a launch).
package e2e
