package webapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// DefaultCacheTTL is how long a listing is served from memory, upstream's cache
// expiry; it is also the responses' max-age.
const DefaultCacheTTL = time.Second

// shutdownTimeout bounds the wait for requests in flight when the app stops.
const shutdownTimeout = 5 * time.Second

// Options configure an App.
type Options struct {
	ZK *zookeeper.Client
	// Started reports whether the launcher has started everything it runs; /ready
	// answers 503 until it does. Nil means started.
	Started func() bool
	// Pools are the ids of the pools this launcher registers; /ready also waits until
	// every one of them is registered in ZooKeeper.
	Pools []string
	// Metrics serves /metrics; nil answers 404 there.
	Metrics http.Handler
	// CacheTTL is how long a listing is reused (DefaultCacheTTL when zero).
	CacheTTL time.Duration
	Logger   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// App is the launcher's web app. It serves upstream's status endpoints from
// ZooKeeper, /ready, and /metrics.
type App struct {
	opts  Options
	log   *slog.Logger
	ready atomic.Bool

	flight singleflight.Group
	mu     sync.Mutex
	cache  map[string]cached
	// reads counts the listings read from ZooKeeper.
	reads atomic.Int64
}

// cached is a listing and the time it was read.
type cached struct {
	at time.Time
	l  *listing
}

// New returns an App.
func New(opts Options) *App {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &App{opts: opts, log: opts.Logger, cache: map[string]cached{}}
}

// Listen opens the app's listening socket on addr ("host:port").
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web app: %w", err)
	}
	return ln, nil
}

// Serve serves on ln until ctx ends, then lets requests in flight finish (for a few
// seconds) and returns.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web app: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web app: %w", err)
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ready":
		a.serveReady(w, r)
		return
	case "/metrics":
		if a.opts.Metrics != nil {
			a.opts.Metrics.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	nodeID := ""
	switch r.URL.Path {
	case "/node-list":
		nodeID = q.Get("node_id")
	case "/request-list", "/label-list", "/image-list", "/dib-image-list", "/image-status":
	default:
		http.NotFound(w, r)
		return
	}
	c, err := a.listing(r.Context(), r.URL.Path, nodeID)
	if err != nil {
		a.log.Error("web app: reading ZooKeeper", "path", r.URL.Path, "error", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	var fields []string
	if f := q.Get("fields"); f != "" {
		fields = strings.Split(f, ",")
	}
	asJSON := wantsJSON(strings.Join(r.Header.Values("Accept"), ","))
	var body []byte
	contentType := "text/plain; charset=UTF-8"
	if asJSON {
		// As upstream, fields select the columns of the text table only.
		body = c.l.renderJSON()
		contentType = "application/json; charset=UTF-8"
	} else {
		body = c.l.renderText(fields)
	}
	a.respond(w, r, c.at, contentType, body)
}

// respond writes body with upstream's caching headers, or 304 Not Modified to a
// conditional request the listing at lastModified does not change.
func (a *App) respond(w http.ResponseWriter, r *http.Request, lastModified time.Time, contentType string, body []byte) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(a.opts.CacheTTL/time.Second)))
	h.Set("Last-Modified", lastModified.UTC().Format(http.TimeFormat))
	h.Set("Expires", lastModified.Add(a.opts.CacheTTL).UTC().Format(http.TimeFormat))
	if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil &&
		!lastModified.Truncate(time.Second).After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// listing returns the listing of path (and nodeID for /node-list) read at most
// CacheTTL ago. Concurrent requests for a listing that must be read share one read.
func (a *App) listing(ctx context.Context, path, nodeID string) (cached, error) {
	key := path + "?" + nodeID
	now := a.opts.Now()
	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok && !now.After(c.at.Add(a.opts.CacheTTL)) {
		return c, nil
	}
	v, err, _ := a.flight.Do(key, func() (any, error) {
		at := a.opts.Now()
		a.reads.Add(1)
		// The read outlives the first caller: the others wait for the same answer.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		l, err := a.read(rctx, path, nodeID, at)
		if err != nil {
			return cached{}, err
		}
		c := cached{at: at, l: l}
		a.mu.Lock()
		for k, old := range a.cache {
			if at.After(old.at.Add(a.opts.CacheTTL)) {
				delete(a.cache, k)
			}
		}
		a.cache[key] = c
		a.mu.Unlock()
		return c, nil
	})
	if err != nil {
		return cached{}, err
	}
	return v.(cached), nil
}

// read reads a listing from ZooKeeper.
func (a *App) read(ctx context.Context, path, nodeID string, now time.Time) (*listing, error) {
	switch path {
	case "/node-list":
		return nodeList(ctx, a.opts.ZK, nodeID, now)
	case "/request-list":
		return requestList(ctx, a.opts.ZK)
	case "/label-list":
		return labelList(ctx, a.opts.ZK)
	case "/image-list":
		// This launcher builds and uploads no images (labels use cloud images).
		return &listing{columns: imageColumns}, nil
	case "/dib-image-list":
		return &listing{columns: dibImageColumns}, nil
	case "/image-status":
		return &listing{columns: imageStatusColumn}, nil
	}
	return nil, fmt.Errorf("no listing at %s", path)
}

// serveReady answers 200 "OK" once the launcher has started and registered its
// pools, 503 before.
func (a *App) serveReady(w http.ResponseWriter, r *http.Request) {
	if !a.isReady(r.Context()) {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	a.respond(w, r, a.opts.Now(), "text/plain; charset=UTF-8", []byte("OK"))
}

// isReady reports readiness; once ready, the app stays ready.
func (a *App) isReady(ctx context.Context) bool {
	if a.ready.Load() {
		return true
	}
	if a.opts.Started != nil && !a.opts.Started() {
		return false
	}
	if len(a.opts.Pools) > 0 {
		pools, err := a.opts.ZK.ListPools(ctx)
		if err != nil {
			a.log.Warn("web app: reading pool registrations", "error", err)
			return false
		}
		registered := make(map[string]bool, len(pools))
		for _, p := range pools {
			registered[p.ID] = true
		}
		for _, id := range a.opts.Pools {
			if !registered[id] {
				return false
			}
		}
	}
	a.ready.Store(true)
	return true
}
