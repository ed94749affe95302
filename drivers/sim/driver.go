package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Step is a state of the sim driver's create and delete state machines, in Nodepool's
// wording.
type Step string

// Steps of the create state machine: "" (start) creates the instance; then the step
// follows the instance's boot step (the first is StepSubmitCreate, the second
// StepCreating, any further one StepBooting) until it is StepComplete.
const (
	StepSubmitCreate Step = "submit creating instance"
	StepCreating     Step = "creating instance"
	StepBooting      Step = "booting instance"
	StepComplete     Step = "complete"
)

// StepDeleting is the step of the delete state machine while the cloud deletes the
// instance; "" (start) submits the deletion and StepComplete ends it.
const StepDeleting Step = "deleting instance"

// ResourceTypeInstance is the type of the resources ListResources returns.
const ResourceTypeInstance = "instance"

// cloudName is the Instance.Cloud of every sim instance.
const cloudName = "sim"

// CapacityRetryAfter is the retry hint (drivers.CapacityError.RetryAfter) of the
// cloud's insufficient capacity errors. The simulated cloud draws its shortages call
// by call, so any wait ends one; a short one keeps simulated launches moving.
const CapacityRetryAfter = 2 * time.Second

// Driver is the sim cloud driver, one per provider. It is safe for concurrent use.
type Driver struct {
	provider string
	api      API
	labels   map[poolLabel]labelInfo
	logger   *slog.Logger

	mu    sync.Mutex
	calls map[string]int64
}

var _ drivers.Driver = (*Driver)(nil)

type poolLabel struct{ pool, label string }

// labelInfo is what the driver needs to launch a label.
type labelInfo struct {
	flavor Flavor
	image  CloudImage
}

// New builds the driver of provider from its configuration. The cloud is, in order of
// preference, the one given with [WithCloud], a [Client] of cfg.Server, or a new
// in-process [Cloud].
func New(provider string, cfg Config, opts ...Option) (*Driver, error) {
	o := buildOptions(opts)
	if o.api != nil {
		// The cloud is given: its keys in cfg do not apply.
		cfg = cfg.withoutCloudKeys()
		cfg.Server = ""
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating sim provider %s: %w", provider, err)
	}
	flavors := map[string]Flavor{"": DefaultFlavor}
	for _, f := range cfg.Flavors {
		flavors[f.Name] = f
	}
	images := map[string]CloudImage{"": DefaultImage}
	for _, im := range cfg.CloudImages {
		images[im.Name] = im
	}
	labels := make(map[poolLabel]labelInfo)
	for _, p := range cfg.Pools {
		for _, l := range p.Labels {
			labels[poolLabel{p.Name, l.Name}] = labelInfo{flavor: flavors[l.Flavor], image: images[l.CloudImage]}
		}
	}
	api := o.api
	switch {
	case api != nil:
	case cfg.Server != "":
		c, err := NewClient(cfg.Server, opts...)
		if err != nil {
			return nil, fmt.Errorf("building sim provider %s: %w", provider, err)
		}
		api = c
	default:
		c, err := NewCloud(cfg, opts...)
		if err != nil {
			return nil, fmt.Errorf("building sim provider %s: %w", provider, err)
		}
		api = c
	}
	return &Driver{
		provider: provider,
		api:      api,
		labels:   labels,
		logger:   o.logger.With("provider", provider),
		calls:    make(map[string]int64),
	}, nil
}

// withoutCloudKeys returns c with the keys describing the cloud cleared.
func (c Config) withoutCloudKeys() Config {
	return Config{Flavors: c.Flavors, CloudImages: c.CloudImages, Server: c.Server, Pools: c.Pools}
}

// API returns the cloud the driver uses: a *Cloud in process, a *Client with a server.
func (d *Driver) API() API { return d.api }

// Stats returns the number of cloud calls this driver made, by kind (see the Call
// constants), failed ones included.
func (d *Driver) Stats() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.calls)
}

func (d *Driver) count(call string) {
	d.mu.Lock()
	d.calls[call]++
	d.mu.Unlock()
}

// Close implements drivers.Driver. The driver holds no background work.
func (d *Driver) Close() error { return nil }

// clientToken is the idempotency token of a create request: stable across retries of a
// step, different for every attempt of a node.
func (d *Driver) clientToken(req drivers.CreateRequest) string {
	return d.provider + "/" + req.NodeID + "/" + strconv.Itoa(req.Attempt)
}

// AdvanceCreate implements drivers.Launcher.
func (d *Driver) AdvanceCreate(ctx context.Context, st drivers.CreateState) (drivers.CreateState, error) {
	if st.Complete {
		return st, nil
	}
	req := st.Request
	st.Wait = 0
	var (
		info InstanceInfo
		err  error
	)
	switch Step(st.Step) {
	case "":
		li, ok := d.labels[poolLabel{req.Pool, req.Label}]
		if !ok {
			return st, drivers.Permanent("creating node %s: pool %q has no label %q", req.NodeID, req.Pool, req.Label)
		}
		if req.NodeID == "" {
			return st, drivers.Permanent("creating instance %s: the request has no node id", req.Hostname)
		}
		image := req.ImageID
		if image == "" {
			image = li.image.Name
		}
		d.count(CallCreate)
		info, err = d.api.CreateInstance(ctx, CreateInstanceInput{
			ClientToken: d.clientToken(req),
			Name:        req.Hostname,
			Flavor:      li.flavor,
			Image:       image,
			AZ:          req.AZ,
			Metadata:    req.Metadata,
		})
		if err != nil {
			// A refused create started nothing: a capacity error says when to try the
			// same state again.
			return st, fmt.Errorf("creating instance for node %s: %w", req.NodeID, withRetryAfter(classify(err)))
		}
		st.ExternalID = info.ID
		d.logger.Debug("instance created", "node_id", req.NodeID, "external_id", info.ID, "status", info.Status)
	case StepSubmitCreate, StepCreating, StepBooting:
		if st.ExternalID == "" {
			return st, drivers.Permanent("describing instance of node %s: state %q has no external id", req.NodeID, st.Step)
		}
		d.count(CallDescribe)
		info, err = d.api.DescribeInstance(ctx, st.ExternalID)
		if err != nil {
			return st, fmt.Errorf("describing instance %s of node %s: %w", st.ExternalID, req.NodeID, classify(err))
		}
	default:
		return st, drivers.Permanent("advancing creation of node %s: unknown step %q", req.NodeID, st.Step)
	}

	switch info.Status {
	case StatusBuilding:
		st.Step = string(bootStep(info.BootStep))
		st.Wait = info.Remaining
	case StatusActive:
		li := d.labels[poolLabel{req.Pool, req.Label}]
		inst := d.instance(info, &li)
		st.Step = string(StepComplete)
		st.Complete = true
		st.Instance = &inst
		d.logger.Debug("instance ready", "node_id", req.NodeID, "external_id", info.ID)
	default:
		return st, fmt.Errorf("creating instance %s of node %s: instance is %s: %w",
			info.ID, req.NodeID, info.Status, drivers.ErrNotFound)
	}
	return st, nil
}

// withRetryAfter gives a capacity error of a create call its retry hint.
func withRetryAfter(err error) error {
	var c *drivers.CapacityError
	if errors.As(err, &c) && c.RetryAfter <= 0 {
		c.RetryAfter = CapacityRetryAfter
	}
	return err
}

// bootStep names the create step of an instance in its i-th boot step.
func bootStep(i int) Step {
	switch i {
	case 0:
		return StepSubmitCreate
	case 1:
		return StepCreating
	}
	return StepBooting
}

// AdvanceDelete implements drivers.Launcher.
func (d *Driver) AdvanceDelete(ctx context.Context, st drivers.DeleteState) (drivers.DeleteState, error) {
	if st.Complete {
		return st, nil
	}
	st.Wait = 0
	if st.ExternalID == "" {
		st.Step = string(StepComplete)
		st.Complete = true
		return st, nil
	}
	var (
		info InstanceInfo
		err  error
	)
	switch Step(st.Step) {
	case "":
		d.count(CallDelete)
		info, err = d.api.DeleteInstance(ctx, DeleteInstanceInput{ID: st.ExternalID, NodeID: st.NodeID})
		if err != nil && !isCode(err, CodeNotFound) {
			return st, fmt.Errorf("deleting instance %s of node %s: %w", st.ExternalID, st.NodeID, classify(err))
		}
	case StepDeleting:
		d.count(CallDescribe)
		info, err = d.api.DescribeInstance(ctx, st.ExternalID)
		if err != nil && !isCode(err, CodeNotFound) {
			return st, fmt.Errorf("describing instance %s of node %s: %w", st.ExternalID, st.NodeID, classify(err))
		}
	default:
		return st, drivers.Permanent("advancing deletion of instance %s: unknown step %q", st.ExternalID, st.Step)
	}
	if err != nil || info.Status == StatusDeleted {
		st.Step = string(StepComplete)
		st.Complete = true
		d.logger.Debug("instance deleted", "node_id", st.NodeID, "external_id", st.ExternalID)
		return st, nil
	}
	if info.Status != StatusDeleting {
		// The instance exists and is not being deleted: someone else's deletion cannot
		// have been undone, so the delete call did not happen. Start over.
		st.Step = ""
		return st, nil
	}
	st.Step = string(StepDeleting)
	st.Wait = info.Remaining
	return st, nil
}

// ListInstances implements drivers.Inventory.
func (d *Driver) ListInstances(ctx context.Context) ([]drivers.Instance, error) {
	d.count(CallList)
	infos, err := d.api.ListInstances(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", classify(err))
	}
	out := make([]drivers.Instance, len(infos))
	for i, info := range infos {
		out[i] = d.instance(info, nil)
	}
	return out, nil
}

// ListResources implements drivers.Inventory: every instance with metadata that is not
// already being deleted.
func (d *Driver) ListResources(ctx context.Context) ([]drivers.Resource, error) {
	d.count(CallList)
	infos, err := d.api.ListInstances(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing resources: %w", classify(err))
	}
	var out []drivers.Resource
	for _, info := range infos {
		if len(info.Metadata) == 0 || info.Status == StatusDeleting {
			continue
		}
		out = append(out, drivers.Resource{Type: ResourceTypeInstance, ID: info.ID, Metadata: maps.Clone(info.Metadata)})
	}
	return out, nil
}

// DeleteResource implements drivers.Inventory. It starts the deletion and returns; the
// instance is gone once the cloud's delete latency has passed.
func (d *Driver) DeleteResource(ctx context.Context, r drivers.Resource) error {
	if r.Type != ResourceTypeInstance {
		return drivers.Permanent("deleting %s %s: unknown resource type", r.Type, r.ID)
	}
	d.count(CallDelete)
	_, err := d.api.DeleteInstance(ctx, DeleteInstanceInput{ID: r.ID, NodeID: r.Metadata[drivers.MetaNodeID]})
	if err != nil && !isCode(err, CodeNotFound) {
		return fmt.Errorf("deleting leaked instance %s: %w", r.ID, classify(err))
	}
	return nil
}

// QuotaLimits implements drivers.QuotaReporter with the quota the cloud reports.
func (d *Driver) QuotaLimits(ctx context.Context) (drivers.Resources, error) {
	d.count(CallLimits)
	l, err := d.api.Limits(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading quota limits: %w", classify(err))
	}
	if l.Quota == nil {
		return drivers.Resources{}, nil
	}
	return l.Quota, nil
}

// LabelQuota implements drivers.QuotaReporter from the label's flavor.
func (d *Driver) LabelQuota(_ context.Context, pool, label string) (drivers.Resources, error) {
	li, ok := d.labels[poolLabel{pool, label}]
	if !ok {
		return nil, drivers.Permanent("reading quota of label %q: pool %q has no such label", label, pool)
	}
	return InstanceInfo{Flavor: li.flavor}.Quota(), nil
}

// instance converts the cloud's view to the drivers' one. li, when known, adds the
// label's image connection details.
func (d *Driver) instance(info InstanceInfo, li *labelInfo) drivers.Instance {
	inst := drivers.Instance{
		ExternalID:  info.ID,
		Ready:       info.Status == StatusActive,
		Deleted:     info.Status == StatusDeleting || info.Status == StatusDeleted,
		InterfaceIP: info.PublicIPv4,
		PublicIPv4:  info.PublicIPv4,
		PrivateIPv4: info.PrivateIPv4,
		PublicIPv6:  info.PublicIPv6,
		Cloud:       cloudName,
		Region:      info.Region,
		AZ:          info.AZ,
		HostID:      info.HostID,
		Metadata:    maps.Clone(info.Metadata),
		Quota:       info.Quota(),
		ImageName:   info.Image,
	}
	if li != nil {
		inst.Username = li.image.Username
		inst.PythonPath = li.image.PythonPath
		inst.ShellType = li.image.ShellType
		inst.ConnectionType = li.image.ConnectionType
		inst.ConnectionPort = li.image.ConnectionPort
	}
	return inst
}
