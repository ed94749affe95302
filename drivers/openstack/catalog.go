package openstack

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// network is what the driver knows of a Neutron network.
type network struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	External bool   `json:"router:external"`
}

// catalogCache holds the cloud's flavors and networks and the images looked up by
// name, each for at most the cache TTL.
type catalogCache struct {
	d          *Driver
	mu         sync.Mutex
	flavors    []flavors.Flavor
	flavorsAt  time.Time
	networks   []network
	networksAt time.Time
	images     map[string]cachedImage
}

type cachedImage struct {
	id string
	at time.Time
}

func (c *catalogCache) fresh(at time.Time) bool {
	return !at.IsZero() && c.d.now().Sub(at) < c.d.opts.cacheTTL
}

// allFlavors returns the cloud's flavors.
func (c *catalogCache) allFlavors(ctx context.Context) ([]flavors.Flavor, error) {
	c.mu.Lock()
	if c.fresh(c.flavorsAt) {
		defer c.mu.Unlock()
		return c.flavors, nil
	}
	c.mu.Unlock()
	pages, err := flavors.ListDetail(c.d.compute, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	if err != nil {
		return nil, classify(opRead, "listing flavors", err)
	}
	list, err := flavors.ExtractFlavors(pages)
	if err != nil {
		return nil, classify(opRead, "decoding flavors", err)
	}
	c.mu.Lock()
	c.flavors, c.flavorsAt = list, c.d.now()
	c.mu.Unlock()
	return list, nil
}

// flavor returns a label's flavor: the one named (or with the id) flavor-name, else
// the smallest with at least min-ram MiB (by RAM, then vCPUs), as upstream picks it.
func (c *catalogCache) flavor(ctx context.Context, l *Label) (flavors.Flavor, error) {
	list, err := c.allFlavors(ctx)
	if err != nil {
		return flavors.Flavor{}, err
	}
	if l.FlavorName != "" {
		for _, f := range list {
			if f.Name == l.FlavorName || f.ID == l.FlavorName {
				if l.MinRAM > 0 && f.RAM < l.MinRAM {
					continue
				}
				return f, nil
			}
		}
		return flavors.Flavor{}, drivers.Permanent("no flavor named %q (with at least %d MiB) in the cloud", l.FlavorName, l.MinRAM)
	}
	sorted := slices.Clone(list)
	slices.SortStableFunc(sorted, func(a, b flavors.Flavor) int {
		if a.RAM != b.RAM {
			return a.RAM - b.RAM
		}
		return a.VCPUs - b.VCPUs
	})
	for _, f := range sorted {
		if f.RAM >= l.MinRAM {
			return f, nil
		}
	}
	return flavors.Flavor{}, drivers.Permanent("no flavor with at least %d MiB of RAM in the cloud", l.MinRAM)
}

// flavorByID returns the cached flavor with the id, if known.
func (c *catalogCache) flavorByID(ctx context.Context, id string) (flavors.Flavor, bool) {
	list, err := c.allFlavors(ctx)
	if err != nil {
		return flavors.Flavor{}, false
	}
	for _, f := range list {
		if f.ID == id || f.Name == id {
			return f, true
		}
	}
	return flavors.Flavor{}, false
}

// allNetworks returns the networks the project sees.
func (c *catalogCache) allNetworks(ctx context.Context) ([]network, error) {
	c.mu.Lock()
	if c.fresh(c.networksAt) {
		defer c.mu.Unlock()
		return c.networks, nil
	}
	c.mu.Unlock()
	pages, err := networks.List(c.d.network, networks.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, classify(opRead, "listing networks", err)
	}
	var list []network
	if err := networks.ExtractNetworksInto(pages, &list); err != nil {
		return nil, classify(opRead, "decoding networks", err)
	}
	c.mu.Lock()
	c.networks, c.networksAt = list, c.d.now()
	c.mu.Unlock()
	return list, nil
}

// networkIDs resolves network names or ids.
func (c *catalogCache) networkIDs(ctx context.Context, refs []string) ([]string, error) {
	list, err := c.allNetworks(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ref := range refs {
		i := slices.IndexFunc(list, func(n network) bool { return n.ID == ref || n.Name == ref })
		if i < 0 {
			return nil, drivers.Permanent("no network %q in the cloud", ref)
		}
		out = append(out, list[i].ID)
	}
	return out, nil
}

// externalNames returns the names of the external networks, which address lists
// are keyed by.
func (c *catalogCache) externalNames(ctx context.Context) (map[string]bool, error) {
	list, err := c.allNetworks(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, n := range list {
		if n.External {
			out[n.Name] = true
		}
	}
	return out, nil
}

// externalNetwork returns the first external network, where floating IPs come from.
func (c *catalogCache) externalNetwork(ctx context.Context) (string, bool, error) {
	list, err := c.allNetworks(ctx)
	if err != nil {
		return "", false, err
	}
	for _, n := range list {
		if n.External {
			return n.ID, true, nil
		}
	}
	return "", false, nil
}

// imageID resolves a cloud image to a Glance image id.
func (c *catalogCache) imageID(ctx context.Context, im *CloudImage) (string, error) {
	ref, isID := im.imageRef()
	if isID {
		return ref, nil
	}
	c.mu.Lock()
	if ci, ok := c.images[ref]; ok && c.fresh(ci.at) {
		c.mu.Unlock()
		return ci.id, nil
	}
	c.mu.Unlock()
	pages, err := images.List(c.d.image, images.ListOpts{Name: ref, Status: images.ImageStatusActive}).AllPages(ctx)
	if err != nil {
		return "", classify(opRead, "looking up image "+ref, err)
	}
	list, err := images.ExtractImages(pages)
	if err != nil {
		return "", classify(opRead, "decoding images", err)
	}
	if len(list) == 0 {
		// A name may also be an id.
		if img, err := images.Get(ctx, c.d.image, ref).Extract(); err == nil {
			list = append(list, *img)
		}
	}
	if len(list) == 0 {
		return "", drivers.Permanent("no active image named %q in the cloud", ref)
	}
	newest := slices.MaxFunc(list, func(a, b images.Image) int { return a.CreatedAt.Compare(b.CreatedAt) })
	c.mu.Lock()
	if c.images == nil {
		c.images = map[string]cachedImage{}
	}
	c.images[ref] = cachedImage{id: newest.ID, at: c.d.now()}
	c.mu.Unlock()
	return newest.ID, nil
}
