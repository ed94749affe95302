package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/singleflight"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// LaunchTemplatePrefix begins the names of the launch templates the driver makes for
// fleet labels, as upstream names them.
const LaunchTemplatePrefix = "nodepool-launch-template"

// templateCache makes sure the launch template of a fleet label exists, once per
// template in the driver's life. A template's name is the hash of its content and
// provider, so that a changed label gets a new template and launchers sharing a
// provider share its templates.
type templateCache struct {
	d      *Driver
	flight singleflight.Group
	mu     sync.Mutex
	ready  map[string]bool
	// swept is set once the provider's templates that no fleet label uses any more
	// were deleted.
	swept bool
}

func newTemplateCache(d *Driver) *templateCache {
	return &templateCache{d: d, ready: map[string]bool{}}
}

// templateData returns the launch template data of a fleet label launching imageID:
// what RunInstances would be given apart from the image, the instance type, the
// market, the zone and the tags, which CreateFleet sets per launch.
func (d *Driver) templateData(ctx context.Context, pool *Pool, label *Label, imageID string) (*ec2types.RequestLaunchTemplateData, error) {
	nic := ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{
		DeviceIndex:              awssdk.Int32(0),
		AssociatePublicIpAddress: awssdk.Bool(pool.publicIPv4()),
		DeleteOnTermination:      awssdk.Bool(true),
	}
	if pool.SecurityGroupID != "" {
		nic.Groups = []string{pool.SecurityGroupID}
	}
	if pool.SubnetID != "" {
		nic.SubnetId = awssdk.String(pool.SubnetID)
	}
	if pool.publicIPv6() {
		nic.Ipv6AddressCount = awssdk.Int32(1)
	}
	data := &ec2types.RequestLaunchTemplateData{
		KeyName:           awssdk.String(label.KeyName),
		NetworkInterfaces: []ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{nic},
	}
	if label.EBSOptimized {
		data.EbsOptimized = awssdk.Bool(true)
	}
	if label.UserData != "" {
		data.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte(label.UserData)))
	}
	if p := label.IAMInstanceProfile; p != nil {
		data.IamInstanceProfile = &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{}
		if p.Arn != "" {
			data.IamInstanceProfile.Arn = awssdk.String(p.Arn)
		} else {
			data.IamInstanceProfile.Name = awssdk.String(p.Name)
		}
	}
	if label.IMDSv2 != "" {
		data.MetadataOptions = &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpTokens:   ec2types.LaunchTemplateHttpTokensState(label.IMDSv2),
			HttpEndpoint: ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
		}
	}
	// The root volume's settings are the label's; EC2 takes the rest (snapshot, and
	// the size when the label sets none) from the AMI's mapping of the same device,
	// so the template does not change with each new AMI of an image filter.
	im, err := d.images.image(ctx, imageID)
	if err != nil {
		return nil, err
	}
	if len(im.BlockDeviceMappings) > 0 && im.BlockDeviceMappings[0].Ebs != nil {
		ebs := &ec2types.LaunchTemplateEbsBlockDeviceRequest{DeleteOnTermination: awssdk.Bool(true)}
		if label.VolumeSize > 0 {
			ebs.VolumeSize = awssdk.Int32(label.VolumeSize)
		}
		if label.VolumeType != "" {
			ebs.VolumeType = ec2types.VolumeType(label.VolumeType)
		}
		if label.IOPS > 0 {
			ebs.Iops = awssdk.Int32(label.IOPS)
		}
		if label.Throughput > 0 {
			ebs.Throughput = awssdk.Int32(label.Throughput)
		}
		data.BlockDeviceMappings = []ec2types.LaunchTemplateBlockDeviceMappingRequest{{
			DeviceName: im.BlockDeviceMappings[0].DeviceName, Ebs: ebs,
		}}
	}
	return data, nil
}

// templateName names a launch template after its content and the provider.
func (d *Driver) templateName(data *ec2types.RequestLaunchTemplateData) (string, error) {
	b, err := json.Marshal(struct {
		Provider string
		Data     *ec2types.RequestLaunchTemplateData
	}{d.provider, data})
	if err != nil {
		return "", drivers.Permanent("naming launch template: %w", err)
	}
	sum := sha256.Sum256(b)
	return LaunchTemplatePrefix + "-" + hex.EncodeToString(sum[:]), nil
}

// ensure makes sure the named template exists: it is looked up, and created when
// missing (a template another launcher created in between counts as made). The
// first ensure of the driver's life also deletes the provider's templates that no
// fleet label uses any more (see sweep), as upstream does at start.
func (c *templateCache) ensure(ctx context.Context, name string, data *ec2types.RequestLaunchTemplateData) error {
	c.mu.Lock()
	ok, swept := c.ready[name], c.swept
	c.mu.Unlock()
	if !swept {
		_, _, _ = c.flight.Do("\x00sweep", func() (any, error) {
			c.sweep(ctx)
			return nil, nil
		})
	}
	if ok {
		return nil
	}
	_, err, _ := c.flight.Do(name, func() (any, error) {
		out, err := c.d.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{
			Filters: []ec2types.Filter{{Name: awssdk.String("launch-template-name"), Values: []string{name}}},
		})
		if err != nil {
			return nil, classify(opRead, "looking up launch template "+name, err)
		}
		if len(out.LaunchTemplates) == 0 {
			_, err := c.d.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
				LaunchTemplateName: awssdk.String(name),
				LaunchTemplateData: data,
				TagSpecifications: []ec2types.TagSpecification{{
					ResourceType: ec2types.ResourceTypeLaunchTemplate,
					Tags: []ec2types.Tag{
						{Key: awssdk.String("nodepool_managed"), Value: awssdk.String("True")},
						{Key: awssdk.String(drivers.MetaProviderName), Value: awssdk.String(c.d.provider)},
					},
				}},
			})
			if err != nil && apiErrorCode(err) != "InvalidLaunchTemplateName.AlreadyExistsException" {
				return nil, classify(opCreate, "creating launch template "+name, err)
			}
			if err == nil {
				c.d.log.Info("created launch template", "name", name)
			}
		}
		c.mu.Lock()
		c.ready[name] = true
		c.mu.Unlock()
		return nil, nil
	})
	return err
}

// sweep deletes the launch templates named with LaunchTemplatePrefix and tagged with
// the provider that none of the driver's fleet labels uses. It gives up, to try again
// at the next ensure, when a label's template cannot be named (its image cannot be
// resolved now) or a call fails, so that a template in use is never deleted for
// want of knowing it.
func (c *templateCache) sweep(ctx context.Context) {
	d := c.d
	used := map[string]bool{}
	for _, p := range d.pools {
		for _, l := range p.labels {
			if l.Fleet == nil {
				continue
			}
			ci := d.cloudImage(l.CloudImage)
			if ci == nil {
				continue
			}
			imageID, err := d.images.resolve(ctx, ci)
			if err != nil {
				d.log.Warn("not sweeping launch templates: an image cannot be resolved", "cloud_image", ci.Name, "error", err)
				return
			}
			data, err := d.templateData(ctx, p.cfg, l, imageID)
			if err != nil {
				d.log.Warn("not sweeping launch templates", "error", err)
				return
			}
			name, err := d.templateName(data)
			if err != nil {
				d.log.Warn("not sweeping launch templates", "error", err)
				return
			}
			used[name] = true
		}
	}
	var stale []string
	pages := ec2.NewDescribeLaunchTemplatesPaginator(d.ec2, &ec2.DescribeLaunchTemplatesInput{
		Filters: []ec2types.Filter{
			{Name: awssdk.String("launch-template-name"), Values: []string{LaunchTemplatePrefix + "-*"}},
			{Name: awssdk.String("tag:" + drivers.MetaProviderName), Values: []string{d.provider}},
		},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			d.log.Warn("not sweeping launch templates", "error", classify(opRead, "listing launch templates", err))
			return
		}
		for _, t := range page.LaunchTemplates {
			if name := awssdk.ToString(t.LaunchTemplateName); !used[name] {
				stale = append(stale, name)
			}
		}
	}
	for _, name := range stale {
		_, err := d.ec2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: awssdk.String(name)})
		if err != nil && apiErrorCode(err) != "InvalidLaunchTemplateName.NotFoundException" {
			d.log.Warn("not sweeping launch templates", "error", classify(opDelete, "deleting launch template "+name, err))
			return
		}
		d.log.Info("deleted unused launch template", "name", name)
	}
	c.mu.Lock()
	c.swept = true
	c.mu.Unlock()
}

// forget makes the next ensure of the template look it up again.
func (c *templateCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ready, name)
}

// fleetSubmit launches the node through CreateFleet of type instant over the label's
// fleet instance types, with the label's launch template, under a client token
// derived like RunInstances', so that a repeated step gets back the instance the
// first call launched. When every instance type failed for lack of capacity, the
// fleet offering is out of capacity like any other (see outOfCapacity).
func (d *Driver) fleetSubmit(ctx context.Context, log *slog.Logger, st drivers.CreateState, pool *poolInfo, label *Label, data createData, off offering) (drivers.CreateState, error) {
	offs := launchOfferings(st.Request, pool.cfg, label)
	tdata, err := d.templateData(ctx, pool.cfg, label, data.ImageID)
	if err != nil {
		return st, err
	}
	name, err := d.templateName(tdata)
	if err != nil {
		return st, err
	}
	if err := d.templates.ensure(ctx, name, tdata); err != nil {
		return st, err
	}
	tags, skipped := instanceTags(label, st.Request)
	for k, err := range skipped {
		log.Warn("skipping tag", "tag", k, "error", err)
	}
	f := label.Fleet
	var overrides []ec2types.FleetLaunchTemplateOverridesRequest
	for i, t := range f.InstanceTypes {
		o := ec2types.FleetLaunchTemplateOverridesRequest{
			InstanceType: ec2types.InstanceType(t),
			ImageId:      awssdk.String(data.ImageID),
		}
		if off.az != "" {
			o.AvailabilityZone = awssdk.String(off.az)
		}
		if f.AllocationStrategy == "prioritized" {
			o.Priority = awssdk.Float64(float64(i))
		}
		overrides = append(overrides, o)
	}
	token := d.clientTokenOf("nf", st.Request, data.Offering)
	in := &ec2.CreateFleetInput{
		Type:        ec2types.FleetTypeInstant,
		ClientToken: awssdk.String(token),
		LaunchTemplateConfigs: []ec2types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &ec2types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateName: awssdk.String(name), Version: awssdk.String("$Latest"),
			},
			Overrides: overrides,
		}},
		TargetCapacitySpecification: &ec2types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity:       awssdk.Int32(1),
			DefaultTargetCapacityType: ec2types.DefaultTargetCapacityTypeOnDemand,
		},
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: ec2Tags(tags)},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: ec2Tags(tags)},
		},
	}
	if off.spot {
		in.TargetCapacitySpecification.DefaultTargetCapacityType = ec2types.DefaultTargetCapacityTypeSpot
		in.SpotOptions = &ec2types.SpotOptionsRequest{AllocationStrategy: ec2types.SpotAllocationStrategy(f.AllocationStrategy)}
	} else {
		in.OnDemandOptions = &ec2types.OnDemandOptionsRequest{AllocationStrategy: ec2types.FleetOnDemandAllocationStrategy(f.AllocationStrategy)}
	}
	what := fmt.Sprintf("creating %s for node %s", off, st.Request.NodeID)
	out, err := d.ec2.CreateFleet(ctx, in)
	if err != nil {
		if code := apiErrorCode(err); code == "InvalidLaunchTemplateName.NotFoundException" || code == "InvalidLaunchTemplateId.NotFound" {
			// The template was deleted behind the driver's back (by hand, or by a
			// cleanup of another launcher): the retry makes it again.
			d.templates.forget(name)
			return st, drivers.Transient("%s: launch template %s is gone: %w", what, name, err)
		}
		cerr := classify(opCreate, what, err)
		if drivers.KindOf(cerr) != drivers.KindCapacity {
			return st, cerr
		}
		return d.outOfCapacity(log, st, pool, offs, data, off, cerr)
	}
	for _, fi := range out.Instances {
		if len(fi.InstanceIds) == 0 {
			continue
		}
		id := fi.InstanceIds[0]
		data.InstanceID = id
		data.FleetID = awssdk.ToString(out.FleetId)
		data.InstanceType = string(fi.InstanceType)
		data.SubmittedAt = d.now()
		st.ExternalID = formatExternalID(id)
		st.Step = StepCreating
		st.Data = encodeData(data)
		st.Wait = d.opts.pollInterval
		log.Info("instance submitted", "external_id", id, "offering", off.String(), "instance_type", data.InstanceType,
			"fleet_id", data.FleetID, "client_token", token)
		return st, nil
	}
	cerr := fleetError(what, out.Errors)
	if drivers.KindOf(cerr) != drivers.KindCapacity {
		return st, cerr
	}
	return d.outOfCapacity(log, st, pool, offs, data, off, cerr)
}

// fleetError turns the errors of a fleet that launched nothing into one error: a
// capacity error when every instance type lacked capacity, else the error of the
// first instance type that failed for another reason.
func fleetError(what string, errs []ec2types.CreateFleetError) error {
	if len(errs) == 0 {
		return drivers.Transient("%s: the fleet launched no instance and reported no error", what)
	}
	var first error
	for _, e := range errs {
		t := ""
		if lo := e.LaunchTemplateAndOverrides; lo != nil && lo.Overrides != nil {
			t = string(lo.Overrides.InstanceType)
		}
		err := classify(opCreate, fmt.Sprintf("%s: %s", what, t), &smithy.GenericAPIError{
			Code: awssdk.ToString(e.ErrorCode), Message: awssdk.ToString(e.ErrorMessage),
		})
		if drivers.KindOf(err) != drivers.KindCapacity {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}
