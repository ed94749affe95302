package aws

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// ResourceHost is the resource type of dedicated hosts reported by ListResources.
const ResourceHost = "host"

// hostSubmit allocates the node's dedicated host with AllocateHosts, under a client
// token derived like RunInstances', so that a repeated step gets back the host the
// first call allocated. The host is recorded in the state's Data; it enters the
// external id together with the instance (an external id never changes once set).
// The host carries the node's tags, so that a host left by a launch that ended before
// its instance existed is found as a leak; a launch whose instance fails for good
// releases its host at once (see releaseAfterFailure).
func (d *Driver) hostSubmit(ctx context.Context, log *slog.Logger, st drivers.CreateState, pool *poolInfo, label *Label, data createData) (drivers.CreateState, error) {
	offs := launchOfferings(st.Request, pool.cfg, label)
	if data.Offering < 0 {
		return st, drivers.Permanent("allocating host for node %s: offering %d out of range", st.Request.NodeID, data.Offering)
	}
	off := offs[data.Offering%len(offs)]
	zone := off.az
	if zone == "" {
		zone = pool.cfg.hostZone()
	}
	tags, skipped := instanceTags(label, st.Request)
	for k, err := range skipped {
		log.Warn("skipping tag", "tag", k, "error", err)
	}
	token := d.clientTokenOf("nh", st.Request, data.Offering)
	out, err := d.ec2.AllocateHosts(ctx, &ec2.AllocateHostsInput{
		AvailabilityZone: awssdk.String(zone),
		InstanceType:     awssdk.String(label.InstanceType),
		Quantity:         awssdk.Int32(1),
		AutoPlacement:    ec2types.AutoPlacementOff,
		HostRecovery:     ec2types.HostRecoveryOff,
		HostMaintenance:  ec2types.HostMaintenanceOff,
		ClientToken:      awssdk.String(token),
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeDedicatedHost, Tags: ec2Tags(tags)},
		},
	})
	if err != nil {
		cerr := classify(opCreate, fmt.Sprintf("allocating %s host in %s for node %s", label.InstanceType, zone, st.Request.NodeID), err)
		if drivers.KindOf(cerr) != drivers.KindCapacity {
			return st, cerr
		}
		return d.outOfCapacity(log, st, pool, offs, data, off, cerr)
	}
	if len(out.HostIds) == 0 {
		return st, drivers.Transient("allocating host for node %s: empty answer", st.Request.NodeID)
	}
	data.HostID = out.HostIds[0]
	data.HostSubmittedAt = d.now()
	st.Step = StepAllocatingHost
	st.Data = encodeData(data)
	st.Wait = 0
	log.Info("host allocated", "host_id", data.HostID, "instance_type", label.InstanceType, "zone", zone, "client_token", token)
	return st, nil
}

// hostWait waits for the node's host to become available.
func (d *Driver) hostWait(ctx context.Context, log *slog.Logger, st drivers.CreateState, data createData) (drivers.CreateState, error) {
	if data.HostID == "" {
		return st, drivers.Permanent("waiting for the host of node %s: no host recorded", st.Request.NodeID)
	}
	h, err := d.describeHost(ctx, data.HostID)
	switch {
	case drivers.KindOf(err) == drivers.KindNotFound:
		if d.now().Sub(data.HostSubmittedAt) < d.opts.grace {
			st.Wait = d.opts.pollInterval
			return st, nil
		}
		return st, drivers.Permanent("waiting for host %s of node %s: the host disappeared: %w", data.HostID, st.Request.NodeID, err)
	case err != nil:
		return st, err
	}
	switch state := h.State; state {
	case ec2types.AllocationStateAvailable:
		log.Info("host available", "host_id", data.HostID)
		st.Step = StepSubmitCreating
		st.Wait = 0
		return st, nil
	case ec2types.AllocationStatePending:
		st.Wait = d.opts.pollInterval
		return st, nil
	default:
		return st, drivers.Permanent("host %s of node %s is %s while launching", data.HostID, st.Request.NodeID, state)
	}
}

// describeHost asks for one host; drivers.ErrNotFound (as classified) when EC2 does
// not know it.
func (d *Driver) describeHost(ctx context.Context, id string) (ec2types.Host, error) {
	out, err := d.ec2.DescribeHosts(ctx, &ec2.DescribeHostsInput{HostIds: []string{id}})
	if err != nil {
		return ec2types.Host{}, classify(opRead, "describing host "+id, err)
	}
	for _, h := range out.Hosts {
		if awssdk.ToString(h.HostId) == id {
			return h, nil
		}
	}
	return ec2types.Host{}, classify(opRead, "describing host "+id, drivers.ErrNotFound)
}

// releaseHost releases a dedicated host. It reports done when the host is released
// or EC2 does not know it, and not done (without an error) while instances still
// occupy it.
func (d *Driver) releaseHost(ctx context.Context, id string) (bool, error) {
	out, err := d.ec2.ReleaseHosts(ctx, &ec2.ReleaseHostsInput{HostIds: []string{id}})
	if err != nil {
		err = classify(opDelete, "releasing host "+id, err)
		if drivers.KindOf(err) == drivers.KindNotFound {
			return true, nil
		}
		return false, err
	}
	for _, u := range out.Unsuccessful {
		if awssdk.ToString(u.ResourceId) != id || u.Error == nil {
			continue
		}
		code := awssdk.ToString(u.Error.Code)
		if strings.Contains(code, "NotFound") {
			return true, nil
		}
		d.log.Info("host not released yet", "host_id", id, "code", code, "message", awssdk.ToString(u.Error.Message))
		return false, nil
	}
	return true, nil
}

// deleteHost is the delete step "releasing host": the instance is gone, so the host
// can be released. While EC2 still sees instances on it, the step waits.
func (d *Driver) deleteHost(ctx context.Context, log *slog.Logger, st drivers.DeleteState, data deleteData) (drivers.DeleteState, error) {
	done, err := d.releaseHost(ctx, data.HostID)
	if err != nil {
		return st, err
	}
	if !done {
		st.Wait = d.opts.pollInterval
		return st, nil
	}
	log.Info("host released", "host_id", data.HostID)
	st.Step, st.Complete, st.Wait = StepComplete, true, 0
	st.Data = encodeData(data)
	return st, nil
}

// listHosts returns the dedicated hosts tagged with the provider's name that are not
// released.
func (d *Driver) listHosts(ctx context.Context) ([]ec2types.Host, error) {
	var out []ec2types.Host
	p := ec2.NewDescribeHostsPaginator(d.ec2, &ec2.DescribeHostsInput{
		Filter:     []ec2types.Filter{{Name: awssdk.String("tag:" + drivers.MetaProviderName), Values: []string{d.provider}}},
		MaxResults: awssdk.Int32(500),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(opRead, "listing hosts of provider "+d.provider, err)
		}
		for _, h := range page.Hosts {
			switch h.State {
			case ec2types.AllocationStateReleased, ec2types.AllocationStateReleasedPermanentFailure:
				continue
			}
			out = append(out, h)
		}
	}
	return out, nil
}

// releaseAfterFailure releases the host of a launch whose instance could not be
// started for good, so that the host does not wait for the leak sweep. The launch's
// error stands whatever happens here; a host that cannot be released now is left to
// the sweep.
func (d *Driver) releaseAfterFailure(ctx context.Context, log *slog.Logger, hostID string, cause error) {
	done, err := d.releaseHost(ctx, hostID)
	switch {
	case err != nil:
		log.Warn("releasing the host of a failed launch failed; leaving it to leak cleanup", "host_id", hostID, "error", err, "cause", cause)
	case !done:
		log.Warn("the host of a failed launch is still occupied; leaving it to leak cleanup", "host_id", hostID, "cause", cause)
	default:
		log.Info("released the host of a failed launch", "host_id", hostID, "cause", cause)
	}
}
