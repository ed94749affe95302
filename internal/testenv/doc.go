// Package testenv provides real backing services for tests: a Temporal dev server
// (temporal.go) and a ZooKeeper server (zookeeper.go), started as processes by
// internal/devstack, plus test helpers (chroots, session taps, TLS certificates, a
// manual clock, a goroutine-safe buffer).
//
// Test helpers such as Temporal and ZooKeeper start their server once per test
// process, on free loopback ports, and reuse it for every test of the
// package. Tests therefore share one server and must isolate themselves (a
// unique task queue and workflow IDs, a unique ZooKeeper chroot).
//
// A package whose tests use these helpers stops the servers after its tests
// by calling Main from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without Main the servers still stop when the test process exits (they are
// started with a parent-death signal), just less gracefully.
//
// Missing prerequisites fail the test with the command that provides them
// (scripts/build-temporal-dev.sh, scripts/install-deps.sh); tests never skip.
//
// StartTemporalDev and StartZooKeeper start a private server and return a handle
// with a Stop method instead of registering cleanup. Harnesses that run whole
// deployments (make run, the benchmark, the end-to-end and chaos suites) use
// internal/devstack directly.
package testenv

import (
	"os"
	"sync"
	"testing"
)

var (
	stopMu sync.Mutex
	stops  []func()
)

// registerStop records f to be called by stopAll. Helpers register the stop
// function of every server they start for the whole test process.
func registerStop(f func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stops = append(stops, f)
}

// stopAll calls the registered stop functions, most recent first, and
// forgets them.
func stopAll() {
	stopMu.Lock()
	fs := stops
	stops = nil
	stopMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// Main runs the tests of m, stops every server the helpers of this package
// started, and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stopAll()
	os.Exit(code)
}
