package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// DefaultSessionTimeout is Nodepool's default zookeeper-timeout.
const DefaultSessionTimeout = 10 * time.Second

// DefaultPort is the port Nodepool uses for a server entry without one.
const DefaultPort = 2281

// cleanupTimeout bounds best-effort cleanup (removing a lock contender or a
// half-created znode) that runs after the caller's context ended.
const cleanupTimeout = 10 * time.Second

// Options configures a Client.
type Options struct {
	// Servers lists "host:port" entries ("[v6addr]:port" for IPv6). An entry
	// without a port uses DefaultPort.
	Servers []string
	// Chroot is prepended to every path, e.g. "/nodepool-ci"; empty for none.
	// It is created if missing.
	Chroot string
	// SessionTimeout is the requested session timeout (DefaultSessionTimeout
	// when zero). The server may negotiate a different value.
	SessionTimeout time.Duration
	// TLS enables mutual TLS; nil means a plain connection.
	TLS *TLSConfig
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Dialer, when set, opens the TCP connections instead of net.DialTimeout
	// (TLS, if configured, runs on top of it). Tests use it to cut
	// connections or observe the session handshake.
	Dialer zk.Dialer
}

// Client is a ZooKeeper connection speaking Nodepool's schema. It is safe for
// concurrent use.
type Client struct {
	conn   *zk.Conn
	chroot string
	log    *slog.Logger

	// stop cancels the context background work (restoring registrations)
	// runs under; Close calls it.
	stop      context.CancelFunc
	closed    chan struct{}
	closeOnce sync.Once
	ready     chan struct{} // closed once conn is set
	done      chan struct{} // closed when the event loop exits

	// lastProblem remembers the latest connection failure, so that a
	// Connect that times out can say why.
	lastProblem atomic.Pointer[string]
	// warnedAt rate-limits "retrying zookeeper connection" warnings.
	warnedAt atomic.Int64

	// warned remembers the node versions whose corrected values were logged.
	wmu    sync.Mutex
	warned map[string]bool

	qmu    sync.Mutex
	queue  []zk.Event
	signal chan struct{}

	// lostReplies, when set (by tests), makes the server's answer to a create or
	// delete of a path it matches go missing, as when the connection drops after the
	// server applied the request: the caller gets zk.ErrConnectionClosed.
	lostReplies func(op, path string) bool

	// requests counts the requests sent to the server (see Requests).
	requests atomic.Uint64

	mu           sync.Mutex
	sessionID    int64
	hadSession   bool
	reconnected  chan struct{} // closed (and replaced) on every session (re)establishment
	listeners    map[int]func(context.Context)
	nextListener int
}

// Connect opens a client and waits until it has a session; ctx bounds the
// wait. The client keeps reconnecting in the background for its whole life.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	servers, err := normalizeServers(opts.Servers)
	if err != nil {
		return nil, err
	}
	chroot, ok := normalizeChroot(opts.Chroot)
	if !ok {
		return nil, fmt.Errorf("invalid zookeeper chroot %q: must be an absolute path", opts.Chroot)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.SessionTimeout
	if timeout <= 0 {
		timeout = DefaultSessionTimeout
	}
	dial := opts.Dialer
	if dial == nil {
		dial = net.DialTimeout
	}
	if opts.TLS != nil {
		cfg, err := opts.TLS.Load()
		if err != nil {
			return nil, err
		}
		dial = tlsDialer(cfg, dial, serverNames(servers))
	}

	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	c := &Client{
		stop:        stop,
		chroot:      chroot,
		log:         log.With("zookeeper", strings.Join(servers, ",")+chroot),
		closed:      make(chan struct{}),
		ready:       make(chan struct{}),
		done:        make(chan struct{}),
		signal:      make(chan struct{}, 1),
		reconnected: make(chan struct{}),
		listeners:   make(map[int]func(context.Context)),
	}
	conn, _, err := zk.Connect(servers, timeout,
		zk.WithDialer(c.recordingDialer(dial)),
		zk.WithLogger(zkLogger{c}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(c.enqueue),
	)
	if err != nil {
		stop()
		return nil, fmt.Errorf("connecting to zookeeper %s: %w", strings.Join(servers, ","), err)
	}
	c.conn = conn
	close(c.ready)
	go c.loop(life)

	for {
		c.mu.Lock()
		sid, wait := c.sessionID, c.reconnected
		c.mu.Unlock()
		if sid != 0 && c.Connected() {
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			c.Close()
			err := fmt.Errorf("connecting to zookeeper %s: %w", strings.Join(servers, ","), ctx.Err())
			if p := c.lastProblem.Load(); p != nil {
				err = fmt.Errorf("%w (last problem: %s)", err, *p)
			}
			return nil, err
		}
	}
	if chroot != "" {
		if err := c.makeAbsPath(ctx, chroot); err != nil {
			c.Close()
			return nil, fmt.Errorf("creating zookeeper chroot %s: %w", chroot, err)
		}
	}
	return c, nil
}

// normalizeServers checks the server list and adds DefaultPort where missing.
func normalizeServers(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New("connecting to zookeeper: no servers configured")
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, errors.New("connecting to zookeeper: empty server entry")
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
			s = net.JoinHostPort(host, strconv.Itoa(DefaultPort))
		}
		out = append(out, s)
	}
	return out, nil
}

// Close ends the session (its ephemeral znodes disappear at once) and stops
// reconnecting. Watch channels close.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.stop()
		c.conn.Close()
	})
	<-c.done
}

// Chroot returns the chroot prefix ("" for none).
func (c *Client) Chroot() string { return c.chroot }

// Requests returns how many requests this client has sent to the server (reads,
// writes, watches and transactions; not pings), so the cost of an operation in round
// trips can be measured.
func (c *Client) Requests() uint64 { return c.requests.Load() }

// Connected reports whether the client currently has a live session.
func (c *Client) Connected() bool { return c.conn.State() == zk.StateHasSession }

// SessionID returns the current session id (0 while there is none).
func (c *Client) SessionID() int64 { return c.conn.SessionID() }

// OnSession registers fn to run, in its own goroutine, every time the client
// establishes a new session after this call: after a session expiry the
// client reconnects with a fresh session, every ephemeral znode of the old
// one is gone, and fn can restore what it owns. Connect returns only once the
// first session exists, so state created right after Connect needs no
// callback for it.
func (c *Client) OnSession(fn func()) {
	c.addSessionListener(func(context.Context) { fn() })
}

// addSessionListener registers fn like OnSession; fn gets a context that
// ends when the client closes.
func (c *Client) addSessionListener(fn func(context.Context)) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextListener
	c.nextListener++
	c.listeners[id] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.listeners, id)
	}
}

// reconnectedChan returns a channel that is closed the next time the client
// (re)establishes a session, whether the same one after a reconnect or a
// new one after an expiry.
func (c *Client) reconnectedChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnected
}

// enqueue is go-zookeeper's event callback; it must not block.
func (c *Client) enqueue(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	c.qmu.Lock()
	c.queue = append(c.queue, ev)
	c.qmu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// loop handles session events in order, outside go-zookeeper's goroutines.
// life ends when the client closes; session listeners run under it.
func (c *Client) loop(life context.Context) {
	defer close(c.done)
	<-c.ready
	for {
		select {
		case <-c.signal:
		case <-c.closed:
			return
		}
		c.qmu.Lock()
		evs := c.queue
		c.queue = nil
		c.qmu.Unlock()
		for _, ev := range evs {
			c.handleSessionEvent(life, ev)
		}
	}
}

func (c *Client) handleSessionEvent(life context.Context, ev zk.Event) {
	switch ev.State {
	case zk.StateHasSession:
		sid := c.conn.SessionID()
		c.mu.Lock()
		fresh := sid != c.sessionID
		first := c.sessionID == 0 && !c.hadSession
		c.sessionID = sid
		c.hadSession = true
		close(c.reconnected)
		c.reconnected = make(chan struct{})
		var fns []func(context.Context)
		if fresh && !first {
			for _, fn := range c.listeners {
				fns = append(fns, fn)
			}
		}
		c.mu.Unlock()
		switch {
		case fresh:
			c.log.Info("zookeeper session established", "session_id", fmt.Sprintf("%#x", sid), "server", ev.Server)
		default:
			c.log.Info("zookeeper reconnected", "session_id", fmt.Sprintf("%#x", sid), "server", ev.Server)
		}
		for _, fn := range fns {
			go fn(life)
		}
	case zk.StateExpired:
		c.log.Warn("zookeeper session expired")
	case zk.StateDisconnected:
		c.mu.Lock()
		had := c.hadSession
		c.mu.Unlock()
		select {
		case <-c.closed:
			return
		default:
		}
		if had {
			c.log.Warn("zookeeper connection lost", "server", ev.Server)
		}
	}
}

// retryWarnInterval rate-limits connection failure warnings, as Nodepool
// does with "Retrying zookeeper connection".
const retryWarnInterval = 10 * time.Second

// recordingDialer wraps dial to remember and report connection failures.
func (c *Client) recordingDialer(dial zk.Dialer) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		conn, err := dial(network, address, timeout)
		if err != nil {
			c.problem(fmt.Sprintf("dialing %s: %v", address, err))
		}
		return conn, err
	}
}

// problem records a connection failure and warns, at most once per
// retryWarnInterval.
func (c *Client) problem(msg string) {
	c.lastProblem.Store(&msg)
	now := time.Now().UnixNano()
	last := c.warnedAt.Load()
	if now-last >= int64(retryWarnInterval) && c.warnedAt.CompareAndSwap(last, now) {
		c.log.Warn("retrying zookeeper connection", "error", msg)
	}
}

// zkLogger sends go-zookeeper's own messages to slog at debug level; the
// client logs the session transitions that matter itself. Failed
// handshakes (a server rejecting our TLS certificate shows up only there)
// are recorded as connection problems.
type zkLogger struct{ c *Client }

// Printf implements zk.Logger.
func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "authentication failed") {
		l.c.problem(msg)
	}
	l.c.log.Debug("zookeeper client: " + msg)
}

// abs turns a chroot-relative path into the server's absolute path.
func (c *Client) abs(p string) string {
	if p == "/" && c.chroot != "" {
		return c.chroot
	}
	return c.chroot + p
}

// rel strips the chroot from an absolute path returned by the server.
func (c *Client) rel(p string) string {
	if c.chroot == "" {
		return p
	}
	r := strings.TrimPrefix(p, c.chroot)
	if r == "" {
		return "/"
	}
	return r
}

// do runs a blocking go-zookeeper call of c, returning early when ctx ends. The
// call itself still completes in the background.
func do[T any](c *Client, ctx context.Context, f func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	c.requests.Add(1)
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

type dataStat struct {
	data []byte
	stat *zk.Stat
}

func (c *Client) get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	r, err := do(c, ctx, func() (dataStat, error) {
		d, s, err := c.conn.Get(c.abs(p))
		return dataStat{d, s}, err
	})
	return r.data, r.stat, err
}

func (c *Client) set(ctx context.Context, p string, data []byte, version int32) (*zk.Stat, error) {
	return do(c, ctx, func() (*zk.Stat, error) { return c.conn.Set(c.abs(p), data, version) })
}

func (c *Client) children(ctx context.Context, p string) ([]string, error) {
	return do(c, ctx, func() ([]string, error) {
		ch, _, err := c.conn.Children(c.abs(p))
		return ch, err
	})
}

func (c *Client) exists(ctx context.Context, p string) (*zk.Stat, error) {
	return do(c, ctx, func() (*zk.Stat, error) {
		ok, st, err := c.conn.Exists(c.abs(p))
		if err == nil && !ok {
			return nil, zk.ErrNoNode
		}
		return st, err
	})
}

// multi runs ops (go-zookeeper request values with absolute paths) as one
// transaction. A failed transaction's error is its first failed operation's.
func (c *Client) multi(ctx context.Context, ops ...any) error {
	_, err := do(c, ctx, func() (struct{}, error) {
		res, err := c.conn.Multi(ops...)
		for _, r := range res {
			if r.Error != nil {
				return struct{}{}, r.Error
			}
		}
		return struct{}{}, err
	})
	return err
}

func (c *Client) delete(ctx context.Context, p string, version int32) error {
	_, err := do(c, ctx, func() (struct{}, error) {
		err := c.conn.Delete(c.abs(p), version)
		if err == nil && c.lostReplies != nil && c.lostReplies("delete", p) {
			err = zk.ErrConnectionClosed
		}
		return struct{}{}, err
	})
	return err
}

// create creates p and returns the created path relative to the chroot. If
// ctx ends before the server answers, a successful creation is undone in the
// background: the caller cannot know the name of a sequential znode, and
// an orphaned lock contender would hold its lock.
func (c *Client) create(ctx context.Context, p string, data []byte, flags int32) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	c.requests.Add(1)
	type result struct {
		p   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		created, err := c.conn.Create(c.abs(p), data, flags, zk.WorldACL(zk.PermAll))
		if err == nil && c.lostReplies != nil && c.lostReplies("create", p) {
			created, err = "", zk.ErrConnectionClosed
		}
		ch <- result{created, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", r.err
		}
		return c.rel(r.p), nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.err == nil {
				if err := c.conn.Delete(r.p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
					c.log.Warn("removing abandoned znode", "path", c.rel(r.p), "error", err)
				}
			}
		}()
		return "", ctx.Err()
	}
}

// createMakePath creates p, creating missing parents first (kazoo's
// makepath).
func (c *Client) createMakePath(ctx context.Context, p string, data []byte, flags int32) (string, error) {
	created, err := c.create(ctx, p, data, flags)
	if !errors.Is(err, zk.ErrNoNode) {
		return created, err
	}
	if err := c.makeAbsPath(ctx, c.abs(path.Dir(p))); err != nil {
		return "", err
	}
	return c.create(ctx, p, data, flags)
}

// makeAbsPath creates every missing component of the absolute path p.
func (c *Client) makeAbsPath(ctx context.Context, p string) error {
	if p == "/" || p == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := ""
	for _, part := range parts {
		cur += "/" + part
		_, err := do(c, ctx, func() (string, error) {
			return c.conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", cur, err)
		}
	}
	return nil
}

// EnsurePath creates p (relative to the chroot) and any missing parents as
// empty persistent znodes.
func (c *Client) EnsurePath(ctx context.Context, p string) error {
	return c.makeAbsPath(ctx, c.abs(p))
}

// cleanupContext returns a context for best-effort cleanup that outlives the
// caller's cancellation but not the client.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}
