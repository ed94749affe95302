package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/uuid"
)

// contenderPattern matches kazoo lock contender names and captures the
// sequence the contenders are ordered by (kazoo accepts a negative sequence
// after the counter wraps).
var contenderPattern = regexp.MustCompile(lockNodeName + `(-?\d{10})$`)

// contender is one child of a lock directory.
type contender struct {
	name string
	seq  string
	// data and ephemeralOwner are filled only by contendersWithData.
	data           []byte
	ephemeralOwner int64
}

// sortContenders keeps the children that are lock contenders, ordered by
// sequence like kazoo (lowest holds the lock).
func sortContenders(children []string) []contender {
	out := make([]contender, 0, len(children))
	for _, name := range children {
		m := contenderPattern.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		out = append(out, contender{name: name, seq: m[1]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].seq != out[j].seq {
			return out[i].seq < out[j].seq
		}
		return out[i].name < out[j].name
	})
	return out
}

// contenders lists the contenders of lockPath in lock order; a missing lock
// directory has none.
func (c *Client) contenders(ctx context.Context, lockPath string) ([]contender, error) {
	children, err := c.children(ctx, lockPath)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return sortContenders(children), nil
}

// contendersWithData is contenders plus each contender's data and session;
// contenders that vanish while being read are dropped.
// known, when set, is a contender this client created and whose data it already
// has: it is not read back.
func (c *Client) contendersWithData(ctx context.Context, lockPath string, known *contender) ([]contender, error) {
	cs, err := c.contenders(ctx, lockPath)
	if err != nil {
		return nil, err
	}
	out := cs[:0]
	for _, ct := range cs {
		if known != nil && ct.name == known.name {
			ct.data, ct.ephemeralOwner = known.data, known.ephemeralOwner
			out = append(out, ct)
			continue
		}
		data, stat, err := c.get(ctx, lockPath+"/"+ct.name)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ct.data = data
		ct.ephemeralOwner = stat.EphemeralOwner
		out = append(out, ct)
	}
	return out, nil
}

// ensureLockDir creates the lock directory like kazoo's ensure_path, except
// for a node's lock: a deleted node is not re-created, ErrNotFound is
// returned instead.
func (c *Client) ensureLockDir(ctx context.Context, lockPath string) error {
	_, err := c.create(ctx, lockPath, nil, zk.FlagPersistent)
	switch {
	case err == nil, errors.Is(err, zk.ErrNodeExists):
		return nil
	case !errors.Is(err, zk.ErrNoNode):
		return err
	}
	if id := nodeIDOfLockPath(lockPath); id != "" {
		return fmt.Errorf("node %s: %w", id, ErrNotFound)
	}
	_, err = c.createMakePath(ctx, lockPath, nil, zk.FlagPersistent)
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return err
	}
	return nil
}

// newContender creates an ephemeral sequential kazoo contender with data and
// returns its name. The lock directory is created when it is missing (see
// ensureLockDir); it usually exists, so the contender is created first.
func (c *Client) newContender(ctx context.Context, lockPath, prefix string, data []byte) (string, error) {
	created, err := c.create(ctx, lockPath+"/"+prefix, data, zk.FlagEphemeralSequential)
	if errors.Is(err, zk.ErrNoNode) {
		// The lock directory is missing (never created, its node was deleted, or
		// lock cleanup ran): create it once.
		if err := c.ensureLockDir(ctx, lockPath); err != nil {
			return "", err
		}
		created, err = c.create(ctx, lockPath+"/"+prefix, data, zk.FlagEphemeralSequential)
	}
	if err != nil {
		return "", err
	}
	return path.Base(created), nil
}

// removeContender deletes a contender, tolerating its absence, even after
// ctx ended. A delete whose answer was lost (the connection dropped) is sent again
// until it is answered or the cleanup time runs out: a contender left behind would
// hold its lock for as long as our session lives.
func (c *Client) removeContender(ctx context.Context, lockPath, name string) error {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	for {
		err := c.delete(ctx, lockPath+"/"+name, -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if !replyLost(err) || !sleepCtx(ctx, lostReplyRetry) {
			return err
		}
	}
}

// findContender returns our contender in lockPath (the child named with prefix), or
// "" when there is none.
func (c *Client) findContender(ctx context.Context, lockPath, prefix string) (string, error) {
	children, err := c.children(ctx, lockPath)
	if errors.Is(err, zk.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, ch := range children {
		if strings.HasPrefix(ch, prefix) {
			return ch, nil
		}
	}
	return "", nil
}

// lostReplyRetry is the pause between attempts to learn the outcome of a request
// whose answer was lost.
const lostReplyRetry = 200 * time.Millisecond

// replyLost reports whether err leaves open whether the server applied the request:
// the connection dropped (or no server could be reached) before the answer came.
func replyLost(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionMoved)
}

// sleepCtx waits d, or less when ctx ends first; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newContenderPrefix returns "<uuid4 hex>__lock__", kazoo's contender name
// before the sequence suffix.
func newContenderPrefix() string {
	return strings.ReplaceAll(uuid.NewString(), "-", "") + lockNodeName
}

// Lock is a lock in kazoo's Lock recipe, held by this client's session:
// Python Nodepool and Zuul see it as a normal lock and this process sees
// theirs. The ephemeral contender disappears with the session, so a Lock
// never assumes it is still held after a session change; check with Held.
//
// A Lock is not safe for concurrent use; create one per holder.
type Lock struct {
	c          *Client
	path       string
	identifier []byte
	prefix     string
	node       string // our contender while we have one
}

// NewLock returns a lock on the lock directory path (relative to the chroot,
// e.g. RequestLockPath(id) or NodeLockPath(id)). identifier is written as the
// contender's data, as kazoo's identifier; it may be empty.
func (c *Client) NewLock(path, identifier string) *Lock {
	return &Lock{c: c, path: path, identifier: []byte(identifier), prefix: newContenderPrefix()}
}

// Path returns the lock directory.
func (l *Lock) Path() string { return l.path }

// contend creates our contender and returns its name. When the create's answer was
// lost (the connection dropped, for instance while the ensemble changed leader), the
// contender may exist all the same, holding or queueing for the lock under our
// session: as kazoo does, it is looked for by its unique prefix once the ensemble
// answers again, and taken as ours when found.
func (l *Lock) contend(ctx context.Context) (string, error) {
	name, err := l.c.newContender(ctx, l.path, l.prefix, l.identifier)
	if err == nil || !replyLost(err) {
		return name, err
	}
	fctx, cancel := cleanupContext(ctx)
	defer cancel()
	for {
		found, ferr := l.c.findContender(fctx, l.path, l.prefix)
		if ferr == nil {
			if found != "" {
				l.c.log.Info("lock contender created without an answer found again", "path", l.path, "contender", found)
				return found, nil
			}
			return "", err // the create was not applied
		}
		if !replyLost(ferr) || !sleepCtx(fctx, lostReplyRetry) {
			l.c.log.Warn("lock contender whose create lost its answer not looked up; it may hold the lock until the session ends",
				"path", l.path, "prefix", l.prefix, "error", ferr)
			return "", err
		}
	}
}

// errContenderGone reports that our own contender vanished (session loss).
var errContenderGone = errors.New("lock contender vanished")

// predecessor returns the contender immediately before ours, or "" when ours
// is the lowest and the lock is held.
func (l *Lock) predecessor(ctx context.Context) (string, error) {
	cs, err := l.c.contenders(ctx, l.path)
	if err != nil {
		return "", err
	}
	prev := ""
	for _, ct := range cs {
		if ct.name == l.node {
			return prev, nil
		}
		prev = ct.name
	}
	return "", errContenderGone
}

// TryAcquire takes the lock without waiting: it creates a contender and,
// unless that contender is the lowest, removes it again and returns false.
// Calling it while the lock is held returns true. For a node lock whose node
// is gone it returns ErrNotFound.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	if l.node != "" {
		held, err := l.Held(ctx)
		if err != nil || held {
			return held, err
		}
	}
	for range 3 {
		name, err := l.contend(ctx)
		if err != nil {
			return false, fmt.Errorf("locking %s: %w", l.path, err)
		}
		l.node = name
		prev, err := l.predecessor(ctx)
		switch {
		case errors.Is(err, errContenderGone):
			l.node = ""
			continue
		case err != nil:
			l.abandon(ctx)
			return false, fmt.Errorf("locking %s: %w", l.path, err)
		case prev == "":
			return true, nil
		default:
			l.abandon(ctx)
			return false, nil
		}
	}
	return false, fmt.Errorf("locking %s: %w", l.path, errContenderGone)
}

// Acquire takes the lock, waiting for the contender before ours to go away,
// as kazoo's blocking acquire does. A timeout <= 0 waits until ctx ends. On
// timeout it returns an error wrapping ErrLockTimeout, on cancellation
// ctx's error; either way our contender is removed. Calling it while the
// lock is held returns nil.
func (l *Lock) Acquire(ctx context.Context, timeout time.Duration) error {
	if l.node != "" {
		held, err := l.Held(ctx)
		if err != nil {
			return err
		}
		if held {
			return nil
		}
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		if l.node == "" {
			name, err := l.contend(ctx)
			if err != nil {
				return fmt.Errorf("locking %s: %w", l.path, err)
			}
			l.node = name
		}
		prev, err := l.predecessor(ctx)
		switch {
		case errors.Is(err, errContenderGone):
			l.node = ""
			continue
		case err != nil:
			l.abandon(ctx)
			return fmt.Errorf("locking %s: %w", l.path, err)
		case prev == "":
			return nil
		}
		reconnected := l.c.reconnectedChan()
		watch, err := l.c.watchData(ctx, l.path+"/"+prev)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			l.abandon(ctx)
			return fmt.Errorf("locking %s: %w", l.path, err)
		}
		select {
		case <-watch:
		case <-reconnected:
		case <-deadline:
			l.abandon(ctx)
			return fmt.Errorf("locking %s after %s: %w", l.path, timeout, ErrLockTimeout)
		case <-ctx.Done():
			l.abandon(ctx)
			return fmt.Errorf("locking %s: %w", l.path, ctx.Err())
		case <-l.c.closed:
			return fmt.Errorf("locking %s: %w", l.path, zk.ErrClosing)
		}
	}
}

// abandon removes our contender after a failed or cancelled acquisition.
func (l *Lock) abandon(ctx context.Context) {
	if l.node == "" {
		return
	}
	if err := l.c.removeContender(ctx, l.path, l.node); err != nil {
		l.c.log.Warn("removing lock contender", "path", l.path, "contender", l.node, "error", err)
	}
	l.node = ""
}

// Release gives the lock up by deleting our contender. Releasing a lock that
// is not held (or whose contender vanished with a session) is not an error.
func (l *Lock) Release(ctx context.Context) error {
	if l.node == "" {
		return nil
	}
	if err := l.c.removeContender(ctx, l.path, l.node); err != nil {
		return fmt.Errorf("unlocking %s: %w", l.path, err)
	}
	l.node = ""
	return nil
}

// Held reports whether our contender still exists and is the lowest. After
// a session expiry the contender is gone and Held returns false.
func (l *Lock) Held(ctx context.Context) (bool, error) {
	if l.node == "" {
		return false, nil
	}
	prev, err := l.predecessor(ctx)
	switch {
	case errors.Is(err, errContenderGone):
		l.node = ""
		return false, nil
	case err != nil:
		return false, fmt.Errorf("checking lock %s: %w", l.path, err)
	}
	return prev == "", nil
}

// watchData sets a data watch on p; it returns zk.ErrNoNode (and no watch)
// when p does not exist.
func (c *Client) watchData(ctx context.Context, p string) (<-chan zk.Event, error) {
	return do(c, ctx, func() (<-chan zk.Event, error) {
		_, _, ch, err := c.conn.GetW(c.abs(p))
		return ch, err
	})
}
