package openstack

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gcopenstack "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Defaults of the driver's timing options.
const (
	// DefaultPollInterval is how often the shared server listing may be refreshed,
	// and the wait hint while a server boots or is deleted.
	DefaultPollInterval = 2 * time.Second
	// DefaultCapacityBackoff is the retry hint of a capacity error ("No valid host
	// was found"): how long the launch waits before it tries again.
	DefaultCapacityBackoff = 30 * time.Second
	// DefaultCacheTTL bounds the flavor, image and network caches.
	DefaultCacheTTL = 5 * time.Minute
	// ComputeMicroversion is the Nova API microversion the driver speaks: 2.47 embeds
	// the flavor (vcpus, ram) in a server's details.
	ComputeMicroversion = "2.47"
	// DefaultSchedulingWait bounds the wait of a create step for Nova to schedule the
	// new server.
	DefaultSchedulingWait = 10 * time.Second
	// schedulingPoll is the pause between two reads of a server being scheduled.
	schedulingPoll = 500 * time.Millisecond
	// callTimeout bounds calls made on behalf of several callers (shared listing).
	callTimeout = 30 * time.Second
)

// Option configures a Driver.
type Option func(*options)

type options struct {
	cloudsYAML      []byte
	httpClient      *http.Client
	now             func() time.Time
	log             *slog.Logger
	pollInterval    time.Duration
	capacityBackoff time.Duration
	cacheTTL        time.Duration
	schedulingWait  time.Duration
}

// WithCloudsYAML gives the text of a clouds.yaml instead of searching the usual
// locations (for tests and tools).
func WithCloudsYAML(data []byte) Option { return func(o *options) { o.cloudsYAML = data } }

// WithHTTPClient replaces the HTTP client of every API call.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithClock replaces time.Now for cache ages and listing freshness.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithPollInterval sets how often the shared server listing may be refreshed.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.pollInterval = d } }

// WithCapacityBackoff sets the retry hint of capacity errors.
func WithCapacityBackoff(d time.Duration) Option {
	return func(o *options) { o.capacityBackoff = d }
}

// WithSchedulingWait sets how long a create step waits for Nova to schedule the
// new server, so that a scheduling failure is a capacity error of that step.
func WithSchedulingWait(d time.Duration) Option { return func(o *options) { o.schedulingWait = d } }

// WithCacheTTL sets the lifetime of the flavor, image and network caches.
func WithCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// Driver is the OpenStack driver of one provider. It is safe for concurrent use; the
// server listing and the flavor, image and network caches are shared by every launch
// and delete of the provider in this process.
type Driver struct {
	provider string
	cfg      Config
	pools    map[string]*poolInfo
	region   string
	compute  *gophercloud.ServiceClient
	network  *gophercloud.ServiceClient
	image    *gophercloud.ServiceClient
	volume   *gophercloud.ServiceClient
	log      *slog.Logger
	now      func() time.Time
	opts     options

	lister   *serverLister
	catalogs *catalogCache

	bg      context.Context
	cancel  context.CancelFunc
	closeMu sync.Once
}

var _ drivers.Driver = (*Driver)(nil)

type poolInfo struct {
	name   string
	cfg    *Pool
	labels map[string]*Label
}

// New validates cfg and returns the driver of provider. pools names the pools and
// labels of cfg in the same order. It authenticates against the cloud's Keystone
// (clouds.yaml entry cfg.Cloud, or the OS_* environment when there is no
// clouds.yaml) and finds the compute, network, image and block-storage endpoints of
// the region in the catalog.
func New(ctx context.Context, provider string, cfg Config, pools []PoolSpec, opts ...Option) (*Driver, error) {
	if provider == "" {
		return nil, drivers.Permanent("creating openstack driver: empty provider name")
	}
	if pools == nil {
		pools = []PoolSpec{}
	}
	if err := cfg.Validate(pools); err != nil {
		return nil, &drivers.PermanentError{Err: fmt.Errorf("validating openstack provider %s: %w", provider, err)}
	}
	o := options{now: time.Now, pollInterval: DefaultPollInterval, capacityBackoff: DefaultCapacityBackoff, cacheTTL: DefaultCacheTTL,
		schedulingWait: DefaultSchedulingWait}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	auth, eo, tlsCfg, err := authOptions(cfg, o.cloudsYAML)
	if err != nil {
		return nil, &drivers.PermanentError{Err: fmt.Errorf("openstack provider %s: %w", provider, err)}
	}
	pc, err := gcopenstack.NewClient(auth.IdentityEndpoint)
	if err != nil {
		return nil, &drivers.PermanentError{Err: fmt.Errorf("openstack provider %s: %w", provider, err)}
	}
	switch {
	case o.httpClient != nil:
		pc.HTTPClient = *o.httpClient
	case tlsCfg != nil:
		pc.HTTPClient = http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}}
	}
	if err := gcopenstack.Authenticate(ctx, pc, auth); err != nil {
		return nil, classify(opRead, fmt.Sprintf("authenticating openstack provider %s at %s", provider, auth.IdentityEndpoint), err)
	}
	d := &Driver{
		provider: provider,
		cfg:      cfg,
		pools:    map[string]*poolInfo{},
		region:   eo.Region,
		log:      o.log.With("provider", provider),
		now:      o.now,
		opts:     o,
	}
	if d.compute, err = gcopenstack.NewComputeV2(pc, eo); err == nil {
		d.compute.Microversion = ComputeMicroversion
		if d.network, err = gcopenstack.NewNetworkV2(pc, eo); err == nil {
			if d.image, err = gcopenstack.NewImageV2(pc, eo); err == nil {
				d.volume, err = gcopenstack.NewBlockStorageV3(pc, eo)
			}
		}
	}
	if err != nil {
		return nil, &drivers.PermanentError{Err: fmt.Errorf("openstack provider %s: finding endpoints in the catalog: %w", provider, err)}
	}
	for i := range d.cfg.Pools {
		p := &d.cfg.Pools[i]
		pi := &poolInfo{name: pools[i].Name, cfg: p, labels: map[string]*Label{}}
		for j := range p.Labels {
			pi.labels[pools[i].Labels[j]] = &p.Labels[j]
		}
		d.pools[pi.name] = pi
	}
	d.bg, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	d.lister = &serverLister{d: d}
	d.catalogs = &catalogCache{d: d}
	return d, nil
}

// authOptions reads the cloud's authentication: its clouds.yaml entry, or the OS_*
// environment variables when no clouds.yaml exists.
func authOptions(cfg Config, cloudsYAML []byte) (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tls.Config, error) {
	popts := []clouds.ParseOption{clouds.WithCloudName(cfg.Cloud)}
	if cfg.RegionName != "" {
		popts = append(popts, clouds.WithRegion(cfg.RegionName))
	}
	if cloudsYAML != nil {
		popts = append(popts, clouds.WithCloudsYAML(bytes.NewReader(cloudsYAML)))
	}
	auth, eo, tlsCfg, err := clouds.Parse(popts...)
	var notFound clouds.ErrFileNotFound
	if errors.As(err, &notFound) {
		auth, err = authFromEnv()
		if err != nil {
			return auth, eo, nil, fmt.Errorf("%v, and no usable OS_* environment: %w", notFound, err)
		}
		eo = gophercloud.EndpointOpts{Region: firstNonEmpty(cfg.RegionName, os.Getenv("OS_REGION_NAME"))}
	} else if err != nil {
		return auth, eo, nil, fmt.Errorf("reading cloud %q of clouds.yaml: %w", cfg.Cloud, err)
	}
	auth.AllowReauth = true
	return auth, eo, tlsCfg, nil
}

// authFromEnv reads the OS_* variables the openstack tools read: OS_AUTH_URL,
// OS_USERNAME or OS_USER_ID with OS_PASSWORD and OS_USER_DOMAIN_NAME or
// OS_USER_DOMAIN_ID (else OS_DOMAIN_*), or OS_APPLICATION_CREDENTIAL_ID or _NAME
// with _SECRET; the project from OS_PROJECT_NAME or OS_PROJECT_ID (else
// OS_TENANT_*) in OS_PROJECT_DOMAIN_NAME or OS_PROJECT_DOMAIN_ID (else the user's
// domain).
func authFromEnv() (gophercloud.AuthOptions, error) {
	env := os.Getenv
	a := gophercloud.AuthOptions{
		IdentityEndpoint:            env("OS_AUTH_URL"),
		Username:                    env("OS_USERNAME"),
		UserID:                      firstNonEmpty(env("OS_USER_ID"), env("OS_USERID")),
		Password:                    env("OS_PASSWORD"),
		DomainName:                  firstNonEmpty(env("OS_USER_DOMAIN_NAME"), env("OS_DOMAIN_NAME")),
		DomainID:                    firstNonEmpty(env("OS_USER_DOMAIN_ID"), env("OS_DOMAIN_ID")),
		ApplicationCredentialID:     env("OS_APPLICATION_CREDENTIAL_ID"),
		ApplicationCredentialName:   env("OS_APPLICATION_CREDENTIAL_NAME"),
		ApplicationCredentialSecret: env("OS_APPLICATION_CREDENTIAL_SECRET"),
	}
	switch {
	case a.IdentityEndpoint == "":
		return a, errors.New("OS_AUTH_URL is not set")
	case a.ApplicationCredentialID == "" && a.ApplicationCredentialName == "" && a.Password == "":
		return a, errors.New("neither OS_PASSWORD nor OS_APPLICATION_CREDENTIAL_ID or _NAME is set")
	case (a.ApplicationCredentialID != "" || a.ApplicationCredentialName != "") && a.ApplicationCredentialSecret == "":
		return a, errors.New("OS_APPLICATION_CREDENTIAL_SECRET is not set")
	case a.ApplicationCredentialID == "" && a.Username == "" && a.UserID == "":
		return a, errors.New("neither OS_USERNAME nor OS_USER_ID is set")
	}
	projectName := firstNonEmpty(env("OS_PROJECT_NAME"), env("OS_TENANT_NAME"))
	projectID := firstNonEmpty(env("OS_PROJECT_ID"), env("OS_TENANT_ID"))
	if a.ApplicationCredentialID == "" && a.ApplicationCredentialName == "" && (projectName != "" || projectID != "") {
		a.Scope = &gophercloud.AuthScope{ProjectName: projectName, ProjectID: projectID}
		if projectID == "" {
			a.Scope.DomainName = firstNonEmpty(env("OS_PROJECT_DOMAIN_NAME"), a.DomainName)
			a.Scope.DomainID = firstNonEmpty(env("OS_PROJECT_DOMAIN_ID"), a.DomainID)
			if a.Scope.DomainID != "" {
				a.Scope.DomainName = ""
			}
		}
	}
	if a.DomainID != "" {
		a.DomainName = ""
	}
	if a.UserID != "" || a.ApplicationCredentialID != "" {
		// A user id needs no domain.
		a.DomainName, a.DomainID = "", ""
	}
	return a, nil
}

// Close stops the driver's background work.
func (d *Driver) Close() error {
	d.closeMu.Do(d.cancel)
	return nil
}

// Provider returns the provider name.
func (d *Driver) Provider() string { return d.provider }

// HostKeyChecking reports whether nodes of the pool should have their SSH host keys
// scanned (the pool's host-key-checking, default true). Unknown pools report the
// default.
func (d *Driver) HostKeyChecking(pool string) bool {
	if p, ok := d.pools[pool]; ok {
		return p.cfg.hostKeyChecking(nil)
	}
	return DefaultHostKeyChecking
}

// LabelHostKeyChecking reports whether nodes of the pool's label should have their
// SSH host keys scanned: the label's host-key-checking, else the pool's.
func (d *Driver) LabelHostKeyChecking(pool, label string) bool {
	p, ok := d.pools[pool]
	if !ok {
		return DefaultHostKeyChecking
	}
	return p.cfg.hostKeyChecking(p.labels[label])
}

// label returns the configuration of a pool label.
func (d *Driver) label(pool, label string) (*poolInfo, *Label, error) {
	p, ok := d.pools[pool]
	if !ok {
		return nil, nil, drivers.Permanent("provider %s has no pool %q", d.provider, pool)
	}
	l, ok := p.labels[label]
	if !ok {
		return nil, nil, drivers.Permanent("pool %s of provider %s has no label %q", pool, d.provider, label)
	}
	return p, l, nil
}

// cloudImage returns the named cloud image.
func (d *Driver) cloudImage(name string) *CloudImage {
	for i := range d.cfg.CloudImages {
		if d.cfg.CloudImages[i].Name == name {
			return &d.cfg.CloudImages[i]
		}
	}
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
