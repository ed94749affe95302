package openstack

import (
	"context"
	"maps"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/limits"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Resource types of ListResources.
const (
	ResourceServer     = "server"
	ResourceFloatingIP = "floatingip"
	ResourceVolume     = "volume"
)

// ListInstances returns the provider's servers (those whose metadata names it) from
// the shared listing.
func (d *Driver) ListInstances(ctx context.Context) ([]drivers.Instance, error) {
	ls, err := d.lister.get(ctx, zeroTime)
	if err != nil {
		return nil, err
	}
	var out []drivers.Instance
	for _, s := range ls.byID {
		if !s.ours(d.provider) {
			continue
		}
		inst, err := d.instance(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, *inst)
	}
	return out, nil
}

// zeroTime asks the lister for any listing younger than the poll interval: the
// state machines invalidate it after their own changes.
var zeroTime time.Time

// ListResources lists what the provider may have leaked, each with the metadata of
// the node it belongs to: its servers, the floating IPs bound to their ports and
// the volumes carrying its metadata.
func (d *Driver) ListResources(ctx context.Context) ([]drivers.Resource, error) {
	list, err := d.listServers(ctx, servers.ListOpts{})
	if err != nil {
		return nil, err
	}
	var out []drivers.Resource
	ourServers := map[string]map[string]string{}
	for _, s := range list {
		if !s.ours(d.provider) || s.deleting() {
			continue
		}
		ourServers[s.ID] = s.Metadata
		out = append(out, drivers.Resource{Type: ResourceServer, ID: s.ID, Metadata: maps.Clone(s.Metadata)})
	}
	if len(ourServers) > 0 {
		fips, err := d.floatingIPs(ctx, floatingips.ListOpts{})
		if err != nil {
			return nil, err
		}
		pages, err := ports.List(d.network, ports.ListOpts{}).AllPages(ctx)
		if err != nil {
			return nil, classify(opRead, "listing ports", err)
		}
		portList, err := ports.ExtractPorts(pages)
		if err != nil {
			return nil, classify(opRead, "decoding ports", err)
		}
		device := map[string]string{}
		for _, p := range portList {
			device[p.ID] = p.DeviceID
		}
		for _, f := range fips {
			if md, ok := ourServers[device[f.PortID]]; ok && f.PortID != "" {
				out = append(out, drivers.Resource{Type: ResourceFloatingIP, ID: f.ID, Metadata: maps.Clone(md)})
			}
		}
	}
	pages, err := volumes.List(d.volume, volumes.ListOpts{Metadata: map[string]string{drivers.MetaProviderName: d.provider}}).AllPages(ctx)
	if err != nil {
		return nil, classify(opRead, "listing volumes", err)
	}
	vols, err := volumes.ExtractVolumes(pages)
	if err != nil {
		return nil, classify(opRead, "decoding volumes", err)
	}
	for _, v := range vols {
		if v.Metadata[drivers.MetaProviderName] != d.provider || v.Status == "deleting" {
			continue
		}
		out = append(out, drivers.Resource{Type: ResourceVolume, ID: v.ID, Metadata: maps.Clone(v.Metadata)})
	}
	return out, nil
}

// DeleteResource deletes a listed resource; one already gone is not an error. A
// server's floating IPs are deleted with it.
func (d *Driver) DeleteResource(ctx context.Context, r drivers.Resource) error {
	switch r.Type {
	case ResourceServer:
		if err := d.deleteServerFloatingIPs(ctx, r.ID); err != nil {
			return err
		}
		if err := d.deleteServerCall(ctx, r.ID); err != nil && !isNotFound(err) {
			return err
		}
		d.lister.invalidate()
		return nil
	case ResourceFloatingIP:
		return d.deleteFloatingIP(ctx, r.ID)
	case ResourceVolume:
		return d.deleteVolume(ctx, r.ID)
	}
	return drivers.Permanent("unknown resource type %q", r.Type)
}

// QuotaLimits returns the project's compute limits (instances, cores, RAM in MiB)
// minus what servers not launched by this provider use. An unlimited (-1) limit is
// left out.
func (d *Driver) QuotaLimits(ctx context.Context) (drivers.Resources, error) {
	lim, err := limits.Get(ctx, d.compute, nil).Extract()
	if err != nil {
		return nil, classify(opRead, "reading compute limits", err)
	}
	out := drivers.Resources{}
	for k, v := range map[string]int{
		drivers.ResourceInstances: lim.Absolute.MaxTotalInstances,
		drivers.ResourceCores:     lim.Absolute.MaxTotalCores,
		drivers.ResourceRAM:       lim.Absolute.MaxTotalRAMSize,
	} {
		if v >= 0 {
			out[k] = int64(v)
		}
	}
	ls, err := d.lister.get(ctx, zeroTime)
	if err != nil {
		return nil, err
	}
	for _, s := range ls.byID {
		if s.ours(d.provider) {
			continue
		}
		for k, v := range d.serverQuota(ctx, s) {
			if _, ok := out[k]; ok {
				out[k] = max(0, out[k]-v)
			}
		}
	}
	return out, nil
}

// LabelQuota returns what one server of the label uses: one instance and its
// flavor's vCPUs and RAM.
func (d *Driver) LabelQuota(ctx context.Context, pool, label string) (drivers.Resources, error) {
	_, l, err := d.label(pool, label)
	if err != nil {
		return nil, err
	}
	f, err := d.catalogs.flavor(ctx, l)
	if err != nil {
		return nil, err
	}
	return drivers.Resources{drivers.ResourceInstances: 1, drivers.ResourceCores: int64(f.VCPUs), drivers.ResourceRAM: int64(f.RAM)}, nil
}

// IgnoresProviderQuota reports whether the pool ignores the cloud's limits.
func (d *Driver) IgnoresProviderQuota(pool string) bool {
	p, ok := d.pools[pool]
	return ok && p.cfg.IgnoreProviderQuota
}
