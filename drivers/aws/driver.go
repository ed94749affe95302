package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Defaults of the driver's timing options.
const (
	// DefaultPollInterval is how often the shared instance listing may be refreshed,
	// and the wait hint while an instance boots or terminates.
	DefaultPollInterval = 2 * time.Second
	// DefaultGracePeriod is how long an instance may be missing from the listing right
	// after it was created or terminated before that counts (EC2 listings are
	// eventually consistent).
	DefaultGracePeriod = time.Minute
	// DefaultBatchWindow is how long terminations are collected into one call.
	DefaultBatchWindow = 200 * time.Millisecond
	// DefaultUnavailableTTL is how long the launches of a pool avoid an offering
	// (type, zone, market) that reported insufficient capacity. It is short on purpose
	// (karpenter keeps such offerings for 3 minutes): while every offering of a label
	// is avoided its launches wait instead of asking EC2, and a shortage is often
	// over sooner.
	DefaultUnavailableTTL = 30 * time.Second
	// DefaultCacheTTL bounds the image-filter and Service Quotas caches.
	DefaultCacheTTL = 5 * time.Minute
	// MaxTerminateBatch is the most instance ids sent in one TerminateInstances call.
	MaxTerminateBatch = 50
	// callTimeout bounds calls made on behalf of several callers (shared listing,
	// batched terminations).
	callTimeout = 30 * time.Second
)

// ec2API lists the EC2 operations the driver uses, with the SDK's signatures, so that
// *ec2.Client satisfies it and tests can substitute a fake.
type ec2API interface {
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, optFns ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
	CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, optFns ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error)
	CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, optFns ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DeleteLaunchTemplate(ctx context.Context, in *ec2.DeleteLaunchTemplateInput, optFns ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
	AllocateHosts(ctx context.Context, in *ec2.AllocateHostsInput, optFns ...func(*ec2.Options)) (*ec2.AllocateHostsOutput, error)
	DescribeHosts(ctx context.Context, in *ec2.DescribeHostsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeHostsOutput, error)
	ReleaseHosts(ctx context.Context, in *ec2.ReleaseHostsInput, optFns ...func(*ec2.Options)) (*ec2.ReleaseHostsOutput, error)
}

// quotasAPI lists the Service Quotas operation the driver uses.
type quotasAPI interface {
	ListServiceQuotas(ctx context.Context, in *servicequotas.ListServiceQuotasInput, optFns ...func(*servicequotas.Options)) (*servicequotas.ListServiceQuotasOutput, error)
}

// Option configures a Driver.
type Option func(*options)

type options struct {
	ec2            ec2API
	quotas         quotasAPI
	credentials    awssdk.CredentialsProvider
	now            func() time.Time
	log            *slog.Logger
	pollInterval   time.Duration
	grace          time.Duration
	batchWindow    time.Duration
	unavailableTTL time.Duration
	cacheTTL       time.Duration
}

// WithEC2API replaces the EC2 client (for fakes). *ec2.Client satisfies it.
func WithEC2API(api ec2API) Option { return func(o *options) { o.ec2 = api } }

// WithQuotasAPI replaces the Service Quotas client (for fakes).
func WithQuotasAPI(api quotasAPI) Option { return func(o *options) { o.quotas = api } }

// WithCredentials replaces the SDK's default credential chain, for tests against an
// EC2-compatible endpoint.
func WithCredentials(p awssdk.CredentialsProvider) Option {
	return func(o *options) { o.credentials = p }
}

// WithClock replaces time.Now for cache ages, grace periods and listing freshness.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithPollInterval sets how often the shared instance listing may be refreshed.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.pollInterval = d } }

// WithGracePeriod sets how long a missing instance is waited for after it was
// created or terminated.
func WithGracePeriod(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithBatchWindow sets how long terminations are collected into one call.
func WithBatchWindow(d time.Duration) Option { return func(o *options) { o.batchWindow = d } }

// WithUnavailableTTL sets how long the launches of a pool avoid an offering that ran
// out of capacity.
func WithUnavailableTTL(d time.Duration) Option { return func(o *options) { o.unavailableTTL = d } }

// WithCacheTTL sets the lifetime of the image-filter and Service Quotas caches.
func WithCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// Driver is the EC2 driver of one provider. It is safe for concurrent use; the
// instance listing, image and instance-type caches and the termination batcher are
// shared by every launch and delete of the provider in this process, and the
// out-of-capacity offerings by every launch of a pool.
type Driver struct {
	provider    string
	cfg         Config
	pools       map[string]*poolInfo
	region      string
	ec2         ec2API
	quotas      quotasAPI
	log         *slog.Logger
	now         func() time.Time
	opts        options
	tokenSuffix string

	lister      *instanceLister
	terminator  *terminator
	images      *imageCache
	types       *typeCache
	serviceQ    *quotaCache
	unavailable *offeringCache
	templates   *templateCache
	// pendingHosts are leaked hosts to release once their instances are gone.
	pendingHosts hostReleases

	bg      context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once
}

var _ drivers.Driver = (*Driver)(nil)

type poolInfo struct {
	name   string
	cfg    *Pool
	labels map[string]*Label
}

// New validates cfg and returns the driver of provider. pools names the pools and
// labels of cfg in the same order. Unless WithEC2API is given, the EC2 and Service
// Quotas clients are built from the SDK's default configuration chain (environment,
// shared files with ProfileName, instance role) for RegionName and Endpoint, with the
// SDK's own retries turned off: the caller retries.
func New(ctx context.Context, provider string, cfg Config, pools []PoolSpec, opts ...Option) (*Driver, error) {
	if provider == "" {
		return nil, drivers.Permanent("creating aws driver: empty provider name")
	}
	if pools == nil {
		pools = []PoolSpec{}
	}
	if err := cfg.Validate(pools); err != nil {
		return nil, &drivers.PermanentError{Err: fmt.Errorf("validating aws provider %s: %w", provider, err)}
	}
	o := options{
		now: time.Now, pollInterval: DefaultPollInterval, grace: DefaultGracePeriod, batchWindow: DefaultBatchWindow,
		unavailableTTL: DefaultUnavailableTTL, cacheTTL: DefaultCacheTTL,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.ec2 == nil || o.quotas == nil {
		sdkCfg, err := loadSDKConfig(ctx, cfg, o.credentials)
		if err != nil {
			return nil, &drivers.PermanentError{Err: fmt.Errorf("loading aws configuration for provider %s: %w", provider, err)}
		}
		if o.ec2 == nil {
			o.ec2 = ec2.NewFromConfig(sdkCfg, func(eo *ec2.Options) {
				if cfg.Endpoint != "" {
					eo.BaseEndpoint = awssdk.String(cfg.Endpoint)
				}
			})
		}
		if o.quotas == nil {
			o.quotas = servicequotas.NewFromConfig(sdkCfg, func(qo *servicequotas.Options) {
				if cfg.Endpoint != "" {
					qo.BaseEndpoint = awssdk.String(cfg.Endpoint)
				}
			})
		}
	}
	sum := sha256.Sum256([]byte(provider))
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &Driver{
		provider:    provider,
		cfg:         cfg,
		pools:       map[string]*poolInfo{},
		region:      cfg.RegionName,
		ec2:         o.ec2,
		quotas:      o.quotas,
		log:         o.log.With("provider", provider),
		now:         o.now,
		opts:        o,
		tokenSuffix: hex.EncodeToString(sum[:4]),
		bg:          bg,
		cancel:      cancel,
	}
	for i := range d.cfg.Pools {
		p := &d.cfg.Pools[i]
		pi := &poolInfo{name: pools[i].Name, cfg: p, labels: map[string]*Label{}}
		for j := range p.Labels {
			pi.labels[pools[i].Labels[j]] = &p.Labels[j]
		}
		d.pools[pi.name] = pi
	}
	d.lister = newInstanceLister(d)
	d.terminator = newTerminator(d)
	d.images = newImageCache(d)
	d.types = newTypeCache(d)
	d.serviceQ = newQuotaCache(d)
	d.unavailable = newOfferingCache(o.now, o.unavailableTTL)
	d.templates = newTemplateCache(d)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.terminator.run(bg)
	}()
	return d, nil
}

func loadSDKConfig(ctx context.Context, cfg Config, creds awssdk.CredentialsProvider) (awssdk.Config, error) {
	loaders := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.RegionName),
		awsconfig.WithRetryer(func() awssdk.Retryer { return awssdk.NopRetryer{} }),
	}
	if cfg.ProfileName != "" {
		loaders = append(loaders, awsconfig.WithSharedConfigProfile(cfg.ProfileName))
	}
	if creds != nil {
		loaders = append(loaders, awsconfig.WithCredentialsProvider(creds))
	}
	c, err := awsconfig.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return awssdk.Config{}, fmt.Errorf("loading default aws config: %w", err)
	}
	// Wrapped after loading, so that the loader's own settings (a custom CA bundle)
	// apply to the client underneath.
	c.HTTPClient = wrapHTTPClient(c.HTTPClient)
	return c, nil
}

// Close stops the termination batcher; pending terminations fail with a transient
// error.
func (d *Driver) Close() error {
	d.closeMu.Do(func() {
		d.cancel()
		d.wg.Wait()
	})
	return nil
}

// Provider returns the provider name.
func (d *Driver) Provider() string { return d.provider }

// HostKeyChecking reports whether nodes of the pool should have their SSH host keys
// scanned (the pool's host-key-checking, default true). Unknown pools report the
// default.
func (d *Driver) HostKeyChecking(pool string) bool {
	if p, ok := d.pools[pool]; ok {
		return p.cfg.hostKeyChecking()
	}
	return DefaultHostKeyChecking
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
