package zookeeper

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

// waitTimeout is a generous deadline for conditions that normally hold
// within milliseconds.
const waitTimeout = 30 * time.Second

// testZK is one test's private corner of the shared test ZooKeeper.
type testZK struct {
	addr, chroot string
	log          *slog.Logger
}

func newTestZK(t *testing.T) testZK {
	t.Helper()
	log := testLogger(t)
	addr, chroot := testenv.ZooKeeperChroot(t)
	return testZK{addr: addr, chroot: chroot, log: log}
}

// connect opens a client in the test's chroot, closed when the test ends.
func (z testZK) connect(t *testing.T, mods ...func(*Options)) *Client {
	t.Helper()
	opts := Options{Servers: []string{z.addr}, Chroot: z.chroot, Logger: z.log}
	for _, m := range mods {
		m(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Connect(ctx, opts)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// connectTapped opens a client whose session the test can expire or whose
// connection it can cut.
func (z testZK) connectTapped(t *testing.T) (*Client, *testenv.ZKSessionTap) {
	t.Helper()
	tap := testenv.NewZKSessionTap()
	c := z.connect(t, func(o *Options) { o.Dialer = tap.Dial })
	return c, tap
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// contenderNames lists the raw children of a lock directory.
func contenderNames(t *testing.T, c *Client, lockPath string) []string {
	t.Helper()
	children, err := c.children(context.Background(), lockPath)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("listing %s: %v", lockPath, err)
	}
	return children
}

// testLogger sends client logs to the test log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)
