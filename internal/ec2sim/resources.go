package ec2sim

import (
	"encoding/xml"
	"maps"
	"slices"
	"strings"
	"time"
)

func (s *Server) describeInstanceTypes(p params, _ time.Time) (any, *apiError) {
	names, aerr := p.list("InstanceType")
	if aerr != nil {
		return nil, aerr
	}
	filters, aerr := p.filters()
	if aerr != nil {
		return nil, aerr
	}
	if len(filters) > 0 {
		return nil, invalidParameter("The filter '%s' is invalid", filters[0].name)
	}
	maxResults, offset, aerr := pagination(p, len(names) > 0, 5, 100)
	if aerr != nil {
		return nil, aerr
	}
	var types []InstanceType
	if len(names) > 0 {
		var missing []string
		for _, n := range names {
			t, ok := s.types[n]
			if !ok {
				missing = append(missing, n)
				continue
			}
			types = append(types, t)
		}
		if len(missing) > 0 {
			return nil, newError("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(missing, ", "))
		}
	} else {
		for _, n := range slices.Sorted(maps.Keys(s.types)) {
			types = append(types, s.types[n])
		}
	}
	page, next := paginate(types, maxResults, offset)
	out := &xmlDescribeInstanceTypesResponse{Xmlns: ec2Namespace, NextToken: next}
	for _, t := range page {
		arch := t.Arch
		out.InstanceTypes = append(out.InstanceTypes, xmlInstanceTypeInfo{
			InstanceType: t.Name, CurrentGeneration: true, SupportedUsageClasses: []string{"on-demand", "spot"},
			ProcessorInfo: xmlProcessorInfo{SupportedArchitectures: []string{arch}},
			VCPUInfo:      xmlVCPUInfo{DefaultVCpus: t.VCPUs, DefaultCores: t.Cores, DefaultThreadsPerCore: max(1, t.VCPUs/max(1, t.Cores))},
			MemoryInfo:    xmlMemoryInfo{SizeInMiB: t.MemMiB},
		})
	}
	return out, nil
}

var imageFilters = []string{"name", "image-id", "owner-id", "state", "architecture", "is-public", "root-device-type", "virtualization-type"}

func (s *Server) describeImages(p params, _ time.Time) (any, *apiError) {
	ids, aerr := p.list("ImageId")
	if aerr != nil {
		return nil, aerr
	}
	owners, aerr := p.list("Owner")
	if aerr != nil {
		return nil, aerr
	}
	filters, aerr := p.filters()
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkFilters(filters, imageFilters); aerr != nil {
		return nil, aerr
	}
	maxResults, offset, aerr := pagination(p, len(ids) > 0, 5, 1000)
	if aerr != nil {
		return nil, aerr
	}
	var candidates []Image
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			if !strings.HasPrefix(id, "ami-") {
				return nil, newError("InvalidAMIID.Malformed", "Invalid id: %q (expecting \"ami-...\")", id)
			}
			im, ok := s.images[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			candidates = append(candidates, im)
		}
		if len(missing) > 0 {
			return nil, newError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", strings.Join(missing, ", "))
		}
	} else {
		for _, id := range slices.Sorted(maps.Keys(s.images)) {
			candidates = append(candidates, s.images[id])
		}
	}
	out := &xmlDescribeImagesResponse{Xmlns: ec2Namespace}
	var matched []Image
	for _, im := range candidates {
		if len(owners) > 0 && !slices.ContainsFunc(owners, func(o string) bool {
			return o == im.OwnerID || (o == "self" && im.OwnerID == s.opts.OwnerID)
		}) {
			continue
		}
		if imageMatches(im, filters) {
			matched = append(matched, im)
		}
	}
	page, next := paginate(matched, maxResults, offset)
	out.NextToken = next
	for _, im := range page {
		out.Images = append(out.Images, xmlImage{
			ImageID: im.ID, ImageLocation: im.OwnerID + "/" + im.Name, ImageState: "available", ImageOwnerID: im.OwnerID,
			CreationDate: im.Created.UTC().Format(timeFormat), IsPublic: true, Architecture: im.Arch, ImageType: "machine",
			Name: im.Name, RootDeviceType: "ebs", RootDeviceName: im.RootDevice, VirtualizationType: "hvm",
			Hypervisor: "xen", EnaSupport: true, Tags: xmlTags(im.Tags),
			BlockDevices: []xmlImageBDM{{DeviceName: im.RootDevice, EBS: &xmlImageEBS{
				SnapshotID: im.RootSnapshot, VolumeSize: im.RootSizeGiB, DeleteOnTermination: true, VolumeType: im.RootType,
			}}},
		})
	}
	return out, nil
}

func imageMatches(im Image, filters []filter) bool {
	for _, f := range filters {
		if m, ok := matchTags(f, im.Tags); ok {
			if !m {
				return false
			}
			continue
		}
		var v string
		switch f.name {
		case "name":
			v = im.Name
		case "image-id":
			v = im.ID
		case "owner-id":
			v = im.OwnerID
		case "state":
			v = "available"
		case "architecture":
			v = im.Arch
		case "is-public":
			v = "true"
		case "root-device-type":
			v = "ebs"
		case "virtualization-type":
			v = "hvm"
		}
		if !matchAny(f.values, v) {
			return false
		}
	}
	return true
}

var volumeFilters = []string{"status", "volume-id", "attachment.instance-id", "attachment.status", "availability-zone", "volume-type"}

func (s *Server) describeVolumes(p params, _ time.Time) (any, *apiError) {
	ids, aerr := p.list("VolumeId")
	if aerr != nil {
		return nil, aerr
	}
	filters, aerr := p.filters()
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkFilters(filters, volumeFilters); aerr != nil {
		return nil, aerr
	}
	maxResults, offset, aerr := pagination(p, len(ids) > 0, 5, 500)
	if aerr != nil {
		return nil, aerr
	}
	var candidates []*volume
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			if !validID(id, "vol-") {
				return nil, newError("InvalidVolumeID.Malformed", "Invalid id: %q (expecting \"vol-...\")", id)
			}
			v, ok := s.volumes[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			candidates = append(candidates, v)
		}
		if aerr := notFound("InvalidVolume.NotFound", "volume", missing); aerr != nil {
			return nil, aerr
		}
	} else {
		for _, id := range s.volOrder {
			candidates = append(candidates, s.volumes[id])
		}
	}
	var matched []*volume
	for _, v := range candidates {
		if volumeMatches(v, filters) {
			matched = append(matched, v)
		}
	}
	page, next := paginate(matched, maxResults, offset)
	out := &xmlDescribeVolumesResponse{Xmlns: ec2Namespace, NextToken: next}
	for _, v := range page {
		out.Volumes = append(out.Volumes, xmlVolumeOf(v))
	}
	return out, nil
}

func xmlVolumeOf(v *volume) xmlVolume {
	x := xmlVolume{
		VolumeID: v.id, Size: v.size, SnapshotID: v.snapshotID, AvailabilityZone: v.az, Status: v.status,
		CreateTime: v.created.UTC().Format(timeFormat), Tags: xmlTags(v.tags), VolumeType: v.volumeType,
		IOPS: v.iops, Throughput: v.throughput,
	}
	if v.instanceID != "" {
		x.Attachments = []xmlVolumeAttachment{{
			VolumeID: v.id, InstanceID: v.instanceID, Device: v.device, Status: "attached",
			AttachTime: v.created.UTC().Format(timeFormat), DeleteOnTermination: v.deleteOnTermination,
		}}
	}
	return x
}

func volumeMatches(v *volume, filters []filter) bool {
	for _, f := range filters {
		if m, ok := matchTags(f, v.tags); ok {
			if !m {
				return false
			}
			continue
		}
		var val string
		switch f.name {
		case "status":
			val = v.status
		case "volume-id":
			val = v.id
		case "attachment.instance-id":
			val = v.instanceID
		case "attachment.status":
			if v.instanceID != "" {
				val = "attached"
			}
		case "availability-zone":
			val = v.az
		case "volume-type":
			val = v.volumeType
		}
		if !matchAny(f.values, val) {
			return false
		}
	}
	return true
}

func (s *Server) createVolume(p params, now time.Time) (any, *apiError) {
	az := p.str("AvailabilityZone")
	if az == "" {
		return nil, missingParameter("AvailabilityZone")
	}
	if !slices.Contains(s.opts.AZs, az) {
		return nil, invalidParameter("Invalid availability zone: [%s]", az)
	}
	size, aerr := p.integer("Size", 0)
	if aerr != nil {
		return nil, aerr
	}
	if size <= 0 {
		return nil, missingParameter("Size")
	}
	vt := p.str("VolumeType")
	if vt == "" {
		vt = "gp2"
	}
	if !slices.Contains(volumeTypes, vt) {
		return nil, invalidParameter("Value (%s) for parameter volumeType is invalid.", vt)
	}
	tags := map[string]string{}
	specs, aerr := p.structs("TagSpecification")
	if aerr != nil {
		return nil, aerr
	}
	for _, spec := range specs {
		if rt := spec.str("ResourceType"); rt != "volume" {
			return nil, invalidParameter("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		t, aerr := spec.tags("Tag")
		if aerr != nil {
			return nil, aerr
		}
		maps.Copy(tags, t)
	}
	id, seq := s.nextID("vol")
	v := &volume{id: id, seq: seq, size: size, volumeType: vt, az: az, tags: tags, status: "available", created: now}
	s.volumes[id] = v
	s.volOrder = append(s.volOrder, id)
	return &xmlCreateVolumeResponse{Xmlns: ec2Namespace, xmlVolume: xmlVolumeOf(v)}, nil
}

func (s *Server) deleteVolume(p params, _ time.Time) (any, *apiError) {
	id := p.str("VolumeId")
	if id == "" {
		return nil, missingParameter("VolumeId")
	}
	if !validID(id, "vol-") {
		return nil, newError("InvalidVolumeID.Malformed", "Invalid id: %q (expecting \"vol-...\")", id)
	}
	v, ok := s.volumes[id]
	if !ok {
		return nil, newError("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	if v.status == "in-use" {
		return nil, newError("VolumeInUse", "Volume %s is currently attached to %s", id, v.instanceID)
	}
	s.removeVolume(id)
	return &xmlReturnResponse{XMLName: xml.Name{Local: "DeleteVolumeResponse"}, Xmlns: ec2Namespace, Return: true}, nil
}

func (s *Server) createTags(p params, _ time.Time) (any, *apiError) {
	ids, aerr := p.list("ResourceId")
	if aerr != nil {
		return nil, aerr
	}
	if len(ids) == 0 {
		return nil, missingParameter("ResourceId")
	}
	tags, aerr := p.tags("Tag")
	if aerr != nil {
		return nil, aerr
	}
	var targets []map[string]string
	for _, id := range ids {
		switch {
		case strings.HasPrefix(id, "i-"):
			in, ok := s.instances[id]
			if !ok {
				return nil, newError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
			}
			targets = append(targets, in.tags)
		case strings.HasPrefix(id, "vol-"):
			v, ok := s.volumes[id]
			if !ok {
				return nil, newError("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
			}
			if v.tags == nil {
				v.tags = map[string]string{}
			}
			targets = append(targets, v.tags)
		default:
			return nil, newError("InvalidID", "The ID '%s' is not valid", id)
		}
	}
	for _, t := range targets {
		maps.Copy(t, tags)
	}
	return &xmlReturnResponse{XMLName: xml.Name{Local: "CreateTagsResponse"}, Xmlns: ec2Namespace, Return: true}, nil
}

// quotaName returns a readable name for a vCPU quota code.
func quotaName(code string) string {
	switch code {
	case QuotaStandardOnDemand:
		return "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"
	case QuotaStandardSpot:
		return "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"
	}
	return "vCPU quota " + code
}
