package testenv

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
)

const (
	// TemporalAddressEnv names an existing Temporal frontend (host:port) for
	// Temporal to return instead of starting a server.
	TemporalAddressEnv = "TEMPORAL_TEST_ADDRESS"
	// TemporalDevBinEnv names the temporal-dev binary to run, overriding the
	// search for bin/temporal-dev in the repository.
	TemporalDevBinEnv = devstack.TemporalDevBinEnv

	// temporalStartTimeout bounds the start of the shared test server.
	temporalStartTimeout = 2 * time.Minute
)

// TemporalOptions configures StartTemporalDev. The zero value starts a
// headless, in-memory server on a free loopback port.
type TemporalOptions = devstack.TemporalOptions

// Server is a running temporal-dev process.
type Server struct {
	// Addr is the frontend's gRPC address, host:port.
	Addr string
	// UIAddr is the web UI's address, host:port; empty when the UI is off.
	UIAddr string

	proc *devstack.Temporal
}

// UIURL returns the web UI's base URL, or "" when the UI is off.
func (s *Server) UIURL() string { return s.proc.UIURL() }

// Stop terminates the server: SIGTERM, then SIGKILL if it has not exited
// within 10 s. It waits for the process to exit and may be called more than
// once.
func (s *Server) Stop() { _ = s.proc.Stop() }

// StartTemporalDev starts temporal-dev and returns once it serves requests.
// The server runs until Stop is called or the calling process exits (it gets
// SIGTERM when its parent dies). If ctx ends first, the process is killed.
func StartTemporalDev(ctx context.Context, opts TemporalOptions) (*Server, error) {
	t, err := devstack.StartTemporal(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Server{Addr: t.Addr, UIAddr: t.UIAddr, proc: t}, nil
}

// TemporalDevBinary returns the temporal-dev executable to run: the file
// named by TEMPORAL_DEV_BIN, or bin/temporal-dev in the repository that
// contains the working directory. The error names the command that builds
// the binary.
func TemporalDevBinary() (string, error) { return devstack.TemporalDevBinary() }

var (
	temporalOnce sync.Once
	temporalSrv  *Server
	temporalErr  error
)

// Temporal returns the host:port of a Temporal frontend for tests. If
// TEMPORAL_TEST_ADDRESS is set, that address is returned. Otherwise the first
// call starts bin/temporal-dev (see TemporalDevBinary) headless, in memory, on
// a free loopback port, and later calls return the same server; Main stops it
// after the tests. The server has the "default" namespace and the project's
// search attributes. When the binary is missing the test fails with the
// command that builds it.
func Temporal(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv(TemporalAddressEnv); addr != "" {
		return addr
	}
	temporalOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), temporalStartTimeout)
		defer cancel()
		temporalSrv, temporalErr = StartTemporalDev(ctx, TemporalOptions{})
		if temporalErr == nil {
			registerStop(temporalSrv.Stop)
		}
	})
	if temporalErr != nil {
		tb.Fatalf("testenv: starting Temporal dev server: %v", temporalErr)
	}
	return temporalSrv.Addr
}
