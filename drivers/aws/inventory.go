package aws

import (
	"context"
	"sort"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Resource types reported by ListResources.
const (
	ResourceInstance = "instance"
	ResourceVolume   = "volume"
)

// liveStates are the instance states that use quota.
var liveStates = []string{"pending", "running", "shutting-down", "stopping", "stopped"}

// ListInstances returns every instance of the account in the region that is not
// terminated, ours or not, with its tags and what it consumes (by instance type and
// market), for quota accounting.
func (d *Driver) ListInstances(ctx context.Context) ([]drivers.Instance, error) {
	instances, err := d.describeInstances(ctx, []ec2types.Filter{
		{Name: awssdk.String("instance-state-name"), Values: liveStates},
	})
	if err != nil {
		return nil, classify(opRead, "listing instances", err)
	}
	var names []string
	for _, in := range instances {
		names = append(names, string(in.InstanceType))
	}
	types, err := d.types.getAll(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]drivers.Instance, 0, len(instances))
	for _, in := range instances {
		if lifecycleOf(d.log, in) == lifeGone {
			continue
		}
		quota := drivers.Resources{drivers.ResourceInstances: 1}
		if info, ok := types[string(in.InstanceType)]; ok {
			quota = instanceQuota(info, in)
		}
		out = append(out, d.toInstance(in, nil, nil, quota))
	}
	return out, nil
}

// ListResources returns the instances (not terminated), the unattached volumes (not
// deleted) and the dedicated hosts (not released) that carry this provider's tag,
// with their tags as metadata, for leak detection.
func (d *Driver) ListResources(ctx context.Context) ([]drivers.Resource, error) {
	lst, err := d.lister.get(ctx)
	if err != nil {
		return nil, err
	}
	var out []drivers.Resource
	for id, in := range lst.byID {
		if lifecycleOf(d.log, in) == lifeGone {
			continue
		}
		out = append(out, drivers.Resource{Type: ResourceInstance, ID: id, Metadata: tagMap(in.Tags)})
	}
	vols, err := d.describeVolumes(ctx, []ec2types.Filter{
		{Name: awssdk.String("tag:" + drivers.MetaProviderName), Values: []string{d.provider}},
	})
	if err != nil {
		return nil, classify(opRead, "listing volumes of provider "+d.provider, err)
	}
	for _, v := range vols {
		// Attached volumes go with their instance (terminating it deletes or detaches
		// them); a volume is a leak of its own once nothing holds it.
		if v.State == ec2types.VolumeStateDeleted || v.State == ec2types.VolumeStateDeleting || len(v.Attachments) > 0 {
			continue
		}
		out = append(out, drivers.Resource{Type: ResourceVolume, ID: awssdk.ToString(v.VolumeId), Metadata: tagMap(v.Tags)})
	}
	d.pendingHosts.retry(ctx, d)
	hosts, err := d.listHosts(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		out = append(out, drivers.Resource{Type: ResourceHost, ID: awssdk.ToString(h.HostId), Metadata: tagMap(h.Tags)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// DeleteResource terminates a leaked instance (at once, not batched), deletes a
// leaked volume or releases a leaked dedicated host. A resource that is already gone
// counts as deleted. A host that still holds instances (leaked with it, and
// terminating) cannot be released yet: its release is retried by every ListResources
// of this driver until it succeeds, and a sweep after a restart finds the host again.
func (d *Driver) DeleteResource(ctx context.Context, r drivers.Resource) error {
	var err error
	switch r.Type {
	case ResourceInstance:
		_, err = d.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{r.ID}})
		err = classify(opDelete, "terminating leaked instance "+r.ID, err)
	case ResourceVolume:
		_, err = d.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: awssdk.String(r.ID)})
		err = classify(opDelete, "deleting leaked volume "+r.ID, err)
	case ResourceHost:
		var done bool
		done, err = d.releaseHost(ctx, r.ID)
		if err == nil && !done {
			// The host's instances (leaked with it) are being terminated: the release
			// is retried by the next listings until they are gone.
			d.pendingHosts.add(r.ID)
			d.log.Info("leaked host still occupied; releasing it once its instances are gone", "host_id", r.ID)
			return nil
		}
	default:
		return drivers.Permanent("deleting leaked %s %s: unknown resource type", r.Type, r.ID)
	}
	if drivers.KindOf(err) == drivers.KindNotFound {
		return nil
	}
	if err == nil {
		d.log.Info("deleted leaked resource", "type", r.Type, "id", r.ID)
	}
	return err
}

// hostReleases are leaked hosts whose release waits for their instances to be gone.
type hostReleases struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (h *hostReleases) add(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ids == nil {
		h.ids = map[string]bool{}
	}
	h.ids[id] = true
}

// retry tries the waiting releases once; those done (or failing for good) are
// forgotten.
func (h *hostReleases) retry(ctx context.Context, d *Driver) {
	h.mu.Lock()
	ids := make([]string, 0, len(h.ids))
	for id := range h.ids {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		done, err := d.releaseHost(ctx, id)
		switch {
		case err != nil && drivers.KindOf(err) == drivers.KindTransient:
			d.log.Warn("releasing leaked host failed; retrying later", "host_id", id, "error", err)
			continue
		case err != nil:
			d.log.Warn("releasing leaked host failed", "host_id", id, "error", err)
		case !done:
			continue
		default:
			d.log.Info("deleted leaked resource", "type", ResourceHost, "id", id)
		}
		h.mu.Lock()
		delete(h.ids, id)
		h.mu.Unlock()
	}
}
