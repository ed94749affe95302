package zookeeper

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

// kazooPython is the interpreter with the distribution's python3-kazoo.
const kazooPython = "/usr/bin/python3"

// kazooLock drives testdata/kazoo_lock.py: a real kazoo client taking the
// same lock as the Go code.
type kazooLock struct {
	t      *testing.T
	stdin  io.WriteCloser
	lines  chan string
	stderr *syncBuffer
}

func startKazoo(t *testing.T, z testZK, lockPath string) *kazooLock {
	t.Helper()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=")
	})
	check := exec.Command(kazooPython, "-c", "import kazoo.recipe.lock")
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("python3-kazoo is not available to %s (%v: %s); install it with scripts/install-deps.sh", kazooPython, err, out)
	}

	cmd := exec.Command(kazooPython, filepath.Join("testdata", "kazoo_lock.py"), z.addr+z.chroot, lockPath)
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	k := &kazooLock{t: t, stdin: stdin, lines: make(chan string, 16), stderr: &syncBuffer{}}
	cmd.Stderr = k.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(k.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			k.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_, _ = io.WriteString(stdin, "quit\n")
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	var ready struct{ Ready bool }
	k.reply(&ready)
	if !ready.Ready {
		t.Fatal("kazoo client did not start")
	}
	return k
}

// send writes one command.
func (k *kazooLock) send(cmd string) {
	k.t.Helper()
	if _, err := io.WriteString(k.stdin, cmd+"\n"); err != nil {
		k.t.Fatalf("sending %q to kazoo: %v (stderr: %s)", cmd, err, k.stderr)
	}
}

// reply decodes the next answer into v.
func (k *kazooLock) reply(v any) {
	k.t.Helper()
	select {
	case line, ok := <-k.lines:
		if !ok {
			k.t.Fatalf("kazoo script exited; stderr:\n%s", k.stderr)
		}
		if err := json.Unmarshal([]byte(line), v); err != nil {
			k.t.Fatalf("kazoo answered %q: %v", line, err)
		}
	case <-time.After(waitTimeout):
		k.t.Fatalf("no answer from kazoo; stderr:\n%s", k.stderr)
	}
}

func (k *kazooLock) acquire(identifier, timeout string) bool {
	k.t.Helper()
	k.send("acquire " + identifier + " " + timeout)
	var r struct{ Acquired bool }
	k.reply(&r)
	return r.Acquired
}

func (k *kazooLock) contenders() []string {
	k.t.Helper()
	k.send("contenders")
	var r struct{ Contenders []string }
	k.reply(&r)
	return r.Contenders
}

func (k *kazooLock) release() {
	k.t.Helper()
	k.send("release")
	var r struct{ Released bool }
	k.reply(&r)
}

func TestKazooLockInterop(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)
	path := RequestLockPath("200-0000000099")
	kz := startKazoo(t, z, path)

	// kazoo holds the lock: our non-blocking attempts fail and leave nothing
	// behind, and we see kazoo's identifier as the holder.
	if !kz.acquire("kazoo-holder", "0") {
		t.Fatal("kazoo could not take a free lock")
	}
	if ok, err := c.NewLock(path, "go").TryAcquire(ctx); err != nil || ok {
		t.Fatalf("TryAcquire while kazoo holds: %v %v, want false", ok, err)
	}
	if held, err := c.EnsureLock(ctx, path, "go-owner"); err != nil || held {
		t.Fatalf("EnsureLock while kazoo holds: %v %v, want false", held, err)
	}
	assertEqual(t, "contenders while kazoo holds", len(contenderNames(t, c, path)), 1)
	locked, holder, err := c.LockHolder(ctx, path)
	if err != nil || !locked || holder != "kazoo-holder" {
		t.Fatalf("LockHolder: %v %q %v, want kazoo-holder", locked, holder, err)
	}

	// Our blocking acquire wakes when kazoo releases.
	waiter := c.NewLock(path, "go-waiter")
	done := make(chan error, 1)
	go func() { done <- waiter.Acquire(ctx, waitTimeout) }()
	waitUntil(t, "our waiting contender", func() bool { return len(contenderNames(t, c, path)) == 2 })
	kz.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Acquire after kazoo released: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("our Acquire did not wake when kazoo released")
	}
	if err := waiter.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// We hold the lock: kazoo's non-blocking acquire fails, and kazoo lists
	// our contender with our identifier.
	if held, err := c.EnsureLock(ctx, path, "go-owner"); err != nil || !held {
		t.Fatalf("EnsureLock on a free lock: %v %v", held, err)
	}
	if kz.acquire("kazoo-probe", "0") {
		t.Fatal("kazoo acquired a lock we hold")
	}
	assertEqual(t, "kazoo's view of the contenders", kz.contenders(), []string{"go-owner"})

	// kazoo's blocking acquire wakes when we release.
	kz.send("acquire kazoo-waiter 30")
	waitUntil(t, "kazoo's waiting contender", func() bool { return len(contenderNames(t, c, path)) == 2 })
	if err := c.ReleaseOwned(ctx, path, "go-owner"); err != nil {
		t.Fatal(err)
	}
	var r struct{ Acquired bool }
	kz.reply(&r)
	if !r.Acquired {
		t.Fatal("kazoo's blocking acquire failed after we released")
	}
	locked, holder, err = c.LockHolder(ctx, path)
	if err != nil || !locked || holder != "kazoo-waiter" {
		t.Fatalf("LockHolder: %v %q %v, want kazoo-waiter", locked, holder, err)
	}
	kz.release()
}

// syncBuffer collects output written by another goroutine.
type syncBuffer = testenv.SyncBuffer
