package sim

import (
	"log/slog"
	"net/http"
	"time"
)

// Option configures [New], [NewCloud] and [NewClient]. An option that does not concern
// a constructor is ignored by it.
type Option func(*options)

type options struct {
	now        func() time.Time
	logger     *slog.Logger
	api        API
	httpClient *http.Client
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler), httpClient: defaultHTTPClient}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithClock makes the cloud read the time from now instead of the wall clock, so that
// tests can move time forward by hand. API latency (api-latency) still passes in real
// time.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithCloud makes [New] use api as the cloud instead of building one from the
// configuration, for example a [Cloud] that several drivers in one process share. The
// configuration's cloud keys and server are then ignored.
func WithCloud(api API) Option {
	return func(o *options) { o.api = api }
}

// defaultHTTPClient keeps enough idle connections for many concurrent state machines
// of one worker process to reuse them (http.DefaultTransport keeps two per host).
var defaultHTTPClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}()

// WithHTTPClient sets the HTTP client used to reach a simcloud server; the default
// keeps up to 64 idle connections to the server. Requests are bounded by their context.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.httpClient = c }
}
