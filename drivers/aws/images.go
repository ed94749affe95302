package aws

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/singleflight"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// imageCache resolves cloud images to AMI ids (filters cached for the cache TTL, since
// new AMIs appear) and AMI ids to their descriptions (cached for the driver's life,
// since an AMI does not change).
type imageCache struct {
	d *Driver
	// flight makes concurrent first lookups of one filter set or image share a call.
	flight   singleflight.Group
	mu       sync.Mutex
	byFilter map[string]filterHit
	byID     map[string]ec2types.Image
}

type filterHit struct {
	id string
	at time.Time
}

func newImageCache(d *Driver) *imageCache {
	return &imageCache{d: d, byFilter: map[string]filterHit{}, byID: map[string]ec2types.Image{}}
}

// resolve returns the AMI id of a cloud image: its image-id, or the newest AMI (by
// creation date) matching its image-filters.
func (c *imageCache) resolve(ctx context.Context, ci *CloudImage) (string, error) {
	if ci.ImageID != "" {
		return ci.ImageID, nil
	}
	key := filterKey(ci.ImageFilters)
	now := c.d.now()
	c.mu.Lock()
	hit, ok := c.byFilter[key]
	c.mu.Unlock()
	if ok && now.Sub(hit.at) < c.d.opts.cacheTTL {
		return hit.id, nil
	}
	v, err, _ := c.flight.Do("filters:"+key, func() (any, error) { return c.newest(ctx, ci, key, now) })
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// newest asks EC2 for the newest AMI matching the cloud image's filters.
func (c *imageCache) newest(ctx context.Context, ci *CloudImage, key string, now time.Time) (string, error) {
	filters := make([]ec2types.Filter, 0, len(ci.ImageFilters))
	for _, f := range ci.ImageFilters {
		filters = append(filters, ec2types.Filter{Name: awssdk.String(f.Name), Values: f.Values})
	}
	var newest ec2types.Image
	p := ec2.NewDescribeImagesPaginator(c.d.ec2, &ec2.DescribeImagesInput{Filters: filters, MaxResults: awssdk.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", classify(opCreate, "finding the image of cloud image "+ci.Name, err)
		}
		for _, im := range page.Images {
			// EC2 creation dates are ISO 8601 in UTC, so they order as strings.
			if newest.ImageId == nil || awssdk.ToString(im.CreationDate) > awssdk.ToString(newest.CreationDate) {
				newest = im
			}
		}
	}
	if newest.ImageId == nil {
		return "", drivers.Permanent("finding the image of cloud image %s: no image matches %s", ci.Name, key)
	}
	id := awssdk.ToString(newest.ImageId)
	c.mu.Lock()
	c.byFilter[key] = filterHit{id: id, at: now}
	c.byID[id] = newest
	c.mu.Unlock()
	return id, nil
}

// image returns the description of an AMI.
func (c *imageCache) image(ctx context.Context, id string) (ec2types.Image, error) {
	c.mu.Lock()
	im, ok := c.byID[id]
	c.mu.Unlock()
	if ok {
		return im, nil
	}
	v, err, _ := c.flight.Do("id:"+id, func() (any, error) {
		out, err := c.d.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil {
			return ec2types.Image{}, classify(opCreate, "describing image "+id, err)
		}
		for _, im := range out.Images {
			if awssdk.ToString(im.ImageId) == id {
				c.mu.Lock()
				c.byID[id] = im
				c.mu.Unlock()
				return im, nil
			}
		}
		return ec2types.Image{}, drivers.Permanent("describing image %s: no such image", id)
	})
	if err != nil {
		return ec2types.Image{}, err
	}
	return v.(ec2types.Image), nil
}

func filterKey(filters []ImageFilter) string {
	parts := make([]string, 0, len(filters))
	for _, f := range filters {
		parts = append(parts, fmt.Sprintf("%s=%s", f.Name, strings.Join(f.Values, "|")))
	}
	return strings.Join(parts, ",")
}
