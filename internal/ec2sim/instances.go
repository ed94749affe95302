package ec2sim

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

var volumeTypes = []string{"standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"}

var taggableOnRun = []string{"instance", "volume", "network-interface", "spot-instances-request"}

// blockDevice is a parsed block device mapping of RunInstances.
type blockDevice struct {
	device              string
	size                int
	volumeType          string
	iops, throughput    int
	snapshotID          string
	deleteOnTermination bool
	noDevice            bool
}

// runRequest is a validated RunInstances request.
type runRequest struct {
	image        Image
	itype        InstanceType
	count        int
	spot         bool
	subnetID     string
	groups       []string
	assocPublic  bool
	ipv6Count    int
	az           string
	keyName      string
	userData     string
	iamProfile   string
	httpTokens   string
	httpEndpoint string
	ebsOptimized bool
	tags         map[string]map[string]string // resource type → tags
	devices      []blockDevice
	// host is the dedicated host the instances are placed on (Placement.Tenancy
	// "host" with Placement.HostId), or nil.
	host *host
}

func (s *Server) runInstances(p params, now time.Time) (any, *apiError) {
	token := p.str("ClientToken")
	if len(token) > 64 {
		return nil, invalidParameter("Value (%s) for parameter clientToken is invalid. Length exceeds maximum of 64 ASCII characters.", token)
	}
	fp := fingerprint(p.v)
	if token != "" {
		if r, ok := s.tokens[token]; ok {
			if r.fingerprint != fp {
				return nil, newError("IdempotentParameterMismatch",
					"Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
			}
			return s.runResponse(r, now), nil
		}
	}
	req, aerr := s.parseRun(p)
	if aerr != nil {
		return nil, aerr
	}
	r, aerr := s.launch(req, token, now)
	if aerr != nil {
		return nil, aerr
	}
	r.fingerprint = fp
	if token != "" {
		s.tokens[token] = r
	}
	return s.runResponse(r, now), nil
}

// launch starts the instances of a validated request, as RunInstances and CreateFleet
// do: it checks the offering's capacity, the host or the vCPU quota, and the public
// addresses, then creates the instances and their volumes. Callers hold s.mu.
func (s *Server) launch(req *runRequest, token string, now time.Time) (*reservation, *apiError) {
	market := "on-demand"
	if req.spot {
		market = "spot"
	}
	if s.blocked[offering{req.itype.Name, market}] {
		return nil, newError("InsufficientInstanceCapacity",
			"We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.",
			req.itype.Name, req.az)
	}
	if req.host != nil {
		if aerr := s.checkHostPlacement(req, now); aerr != nil {
			return nil, aerr
		}
	}
	code := quotaCode(req.itype.Name, req.spot)
	if req.host != nil {
		// Instances on a dedicated host use the host's capacity, not the account's
		// vCPU quota.
		code = ""
	}
	if limit, ok := s.limits[code]; ok && code != "" {
		used := 0
		for _, in := range s.instances {
			if in.quotaCode == code && s.stateOf(in, now) != StateTerminated {
				used += in.vcpus
			}
		}
		if used+req.itype.VCPUs*req.count > limit {
			if req.spot {
				return nil, newError("MaxSpotInstanceCountExceeded",
					"Max spot instance count exceeded: vCPU limit of %d for %s allows %d more", limit, code, limit-used)
			}
			return nil, newError("VcpuLimitExceeded",
				"You have requested more vCPU capacity than your current vCPU limit of %d allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.",
				limit)
		}
	}
	var publics []string
	if req.assocPublic {
		for range req.count {
			addr := s.allocatePublic()
			if addr == "" {
				for _, a := range publics {
					delete(s.publicUsed, a)
				}
				return nil, newError("AddressLimitExceeded", "The maximum number of public addresses has been reached.")
			}
			publics = append(publics, addr)
		}
	}

	resID, _ := s.nextID("r")
	r := &reservation{id: resID, groups: req.groups}
	for i := range req.count {
		id, seq := s.nextID("i")
		eni, _ := s.nextID("eni")
		in := &instance{
			id: id, reservationID: resID, seq: seq, imageID: req.image.ID, instanceType: req.itype.Name,
			keyName: req.keyName, az: req.az, subnetID: req.subnetID, groups: req.groups,
			privateIP: privateAddress(seq), spot: req.spot, tags: maps.Clone(req.tags["instance"]),
			clientToken: token, ebsOptimized: req.ebsOptimized, userData: req.userData, iamProfile: req.iamProfile,
			httpTokens: req.httpTokens, httpEndpoint: req.httpEndpoint, rootDevice: req.image.RootDevice,
			launch: now, eniID: eni, vcpus: req.itype.VCPUs, quotaCode: code, associatePublicIPs: req.assocPublic,
		}
		if in.tags == nil {
			in.tags = map[string]string{}
		}
		if in.subnetID != "" {
			in.vpcID = "vpc-" + strings.TrimPrefix(in.subnetID, "subnet-")
		}
		if req.assocPublic {
			in.publicIP = publics[i]
		}
		if req.ipv6Count > 0 {
			in.ipv6 = ipv6Address(seq)
		}
		for _, d := range req.devices {
			if d.noDevice {
				continue
			}
			vid, vseq := s.nextID("vol")
			s.volumes[vid] = &volume{
				id: vid, seq: vseq, size: d.size, volumeType: d.volumeType, iops: d.iops, throughput: d.throughput,
				az: req.az, snapshotID: d.snapshotID, tags: maps.Clone(req.tags["volume"]), status: "in-use",
				instanceID: id, device: d.device, deleteOnTermination: d.deleteOnTermination, created: now,
			}
			s.volOrder = append(s.volOrder, vid)
			in.attachments = append(in.attachments, attachment{device: d.device, volumeID: vid, deleteOnTermination: d.deleteOnTermination})
		}
		s.instances[id] = in
		s.order = append(s.order, id)
		r.instances = append(r.instances, id)
		s.created++
		if req.host != nil {
			in.hostID = req.host.id
			req.host.instances = append(req.host.instances, id)
		}
		if node := in.tags[s.opts.NodeTag]; node != "" {
			s.createdByNode[node]++
			s.liveByNode[node]++
			s.peakByNode[node] = max(s.peakByNode[node], s.liveByNode[node])
		}
	}
	return r, nil
}

func (s *Server) runResponse(r *reservation, now time.Time) *xmlRunInstancesResponse {
	out := &xmlRunInstancesResponse{Xmlns: ec2Namespace, ReservationID: r.id, OwnerID: s.opts.OwnerID, Groups: xmlGroups(r.groups)}
	for _, id := range r.instances {
		if in, ok := s.instances[id]; ok {
			x := s.xmlInstance(in, now)
			if x.State.Name == StateRunning {
				// RunInstances always answers with the instance still pending, as EC2 does.
				x.State = xmlState{Code: stateCodes[StatePending], Name: StatePending}
				x.IPAddress, x.DNSName = "", ""
				x.NetworkInterfaces[0].Association = nil
			}
			out.Instances = append(out.Instances, x)
		}
	}
	return out
}

// fingerprint identifies the arguments of an idempotent request.
func fingerprint(v url.Values) string {
	c := url.Values{}
	for k, vs := range v {
		switch k {
		case "Action", "Version", "ClientToken":
			continue
		}
		c[k] = vs
	}
	return c.Encode()
}

func (s *Server) parseRun(p params) (*runRequest, *apiError) {
	req := &runRequest{tags: map[string]map[string]string{}}
	imageID := p.str("ImageId")
	if imageID == "" {
		return nil, missingParameter("ImageId")
	}
	if !strings.HasPrefix(imageID, "ami-") {
		return nil, newError("InvalidAMIID.Malformed", "Invalid id: %q (expecting \"ami-...\")", imageID)
	}
	img, ok := s.images[imageID]
	if !ok {
		return nil, newError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", imageID)
	}
	req.image = img
	itype := p.str("InstanceType")
	t, ok := s.types[itype]
	if !ok {
		return nil, invalidParameter("Invalid value '%s' for InstanceType.", itype)
	}
	req.itype = t
	if !archCompatible(t.Arch, img.Arch) {
		return nil, invalidParameter("The architecture '%s' of the specified instance type does not match the architecture '%s' of the specified AMI.", t.Arch, img.Arch)
	}
	if !p.has("MinCount") {
		return nil, missingParameter("MinCount")
	}
	if !p.has("MaxCount") {
		return nil, missingParameter("MaxCount")
	}
	minCount, err := p.integer("MinCount", 1)
	if err != nil {
		return nil, err
	}
	maxCount, err := p.integer("MaxCount", 1)
	if err != nil {
		return nil, err
	}
	if minCount < 1 || maxCount < minCount || maxCount > 100 {
		return nil, invalidParameter("Invalid MinCount %d / MaxCount %d", minCount, maxCount)
	}
	req.count = maxCount

	mo := p.sub("InstanceMarketOptions")
	switch mt := mo.str("MarketType"); mt {
	case "":
	case "spot":
		req.spot = true
		switch st := mo.sub("SpotOptions").str("SpotInstanceType"); st {
		case "", "one-time", "persistent":
		default:
			return nil, invalidParameter("Invalid value '%s' for SpotInstanceType", st)
		}
	default:
		return nil, invalidParameter("Invalid value '%s' for MarketType", mt)
	}

	nis, aerr := p.structs("NetworkInterface")
	if aerr != nil {
		return nil, aerr
	}
	topGroups, aerr := p.list("SecurityGroupId")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case len(nis) > 1:
		return nil, invalidParameter("Only one network interface is supported")
	case len(nis) == 1:
		if p.has("SubnetId") || len(topGroups) > 0 {
			return nil, newError("InvalidParameterCombination",
				"Network interfaces and an instance-level subnet ID or security groups may not be specified on the same request")
		}
		ni := nis[0]
		if idx, err := ni.integer("DeviceIndex", 0); err != nil || idx != 0 {
			return nil, invalidParameter("Invalid value for DeviceIndex: the primary network interface must have device index 0")
		}
		req.subnetID = ni.str("SubnetId")
		if req.groups, aerr = ni.list("SecurityGroupId"); aerr != nil {
			return nil, aerr
		}
		assoc, err := ni.boolean("AssociatePublicIpAddress", false)
		if err != nil {
			return nil, err
		}
		req.assocPublic = assoc
		if req.ipv6Count, err = ni.integer("Ipv6AddressCount", 0); err != nil {
			return nil, err
		}
	default:
		req.subnetID = p.str("SubnetId")
		req.groups = topGroups
		n, err := p.integer("Ipv6AddressCount", 0)
		if err != nil {
			return nil, err
		}
		req.ipv6Count = n
	}
	for _, g := range req.groups {
		if !strings.HasPrefix(g, "sg-") {
			return nil, newError("InvalidGroupId.Malformed", "Invalid id: %q (expecting \"sg-...\")", g)
		}
	}
	if req.subnetID != "" && !strings.HasPrefix(req.subnetID, "subnet-") {
		return nil, newError("InvalidSubnetID.Malformed", "Invalid id: %q (expecting \"subnet-...\")", req.subnetID)
	}

	placement := p.sub("Placement")
	az := placement.str("AvailabilityZone")
	switch tenancy := placement.str("Tenancy"); tenancy {
	case "", "default":
		if placement.has("HostId") {
			return nil, newError("InvalidParameterCombination", "Placement.HostId requires Placement.Tenancy host")
		}
	case "host":
		h, aerr := s.placementHost(placement.str("HostId"), az)
		if aerr != nil {
			return nil, aerr
		}
		req.host = h
		az = h.az
	default:
		return nil, invalidParameter("Invalid value '%s' for Placement.Tenancy", tenancy)
	}
	switch {
	case az != "":
		if !slices.Contains(s.opts.AZs, az) {
			return nil, invalidParameter("Invalid availability zone: [%s]", az)
		}
	case req.subnetID != "":
		h := fnv.New32a()
		_, _ = h.Write([]byte(req.subnetID))
		az = s.opts.AZs[int(h.Sum32()%uint32(len(s.opts.AZs)))]
	default:
		az = s.opts.AZs[0]
	}
	req.az = az
	req.keyName = p.str("KeyName")

	if p.has("UserData") {
		raw, err := base64.StdEncoding.DecodeString(p.str("UserData"))
		if err != nil {
			return nil, invalidParameter("Invalid BASE64 encoding of user data.")
		}
		if len(raw) > 16*1024 {
			return nil, invalidParameter("User data is limited to 16384 bytes")
		}
		req.userData = string(raw)
	}
	iam := p.sub("IamInstanceProfile")
	switch name, arn := iam.str("Name"), iam.str("Arn"); {
	case name != "" && arn != "":
		return nil, newError("InvalidParameterCombination", "The parameter 'iamInstanceProfile.name' may not be used in combination with 'iamInstanceProfile.arn'")
	case name != "":
		req.iamProfile = "arn:aws:iam::" + s.opts.OwnerID + ":instance-profile/" + name
	case arn != "":
		if !strings.HasPrefix(arn, "arn:") {
			return nil, invalidParameter("Value (%s) for parameter iamInstanceProfile.arn is invalid.", arn)
		}
		req.iamProfile = arn
	}
	md := p.sub("MetadataOptions")
	req.httpTokens, req.httpEndpoint = md.str("HttpTokens"), md.str("HttpEndpoint")
	if !slices.Contains([]string{"", "optional", "required"}, req.httpTokens) {
		return nil, invalidParameter("Invalid value '%s' for HttpTokens", req.httpTokens)
	}
	if !slices.Contains([]string{"", "enabled", "disabled"}, req.httpEndpoint) {
		return nil, invalidParameter("Invalid value '%s' for HttpEndpoint", req.httpEndpoint)
	}
	if req.httpTokens == "" {
		req.httpTokens = "optional"
	}
	if req.httpEndpoint == "" {
		req.httpEndpoint = "enabled"
	}
	ebsOpt, err := p.boolean("EbsOptimized", false)
	if err != nil {
		return nil, err
	}
	req.ebsOptimized = ebsOpt

	specs, aerr := p.structs("TagSpecification")
	if aerr != nil {
		return nil, aerr
	}
	for _, spec := range specs {
		rt := spec.str("ResourceType")
		if !slices.Contains(taggableOnRun, rt) {
			return nil, invalidParameter("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		tags, err := spec.tags("Tag")
		if err != nil {
			return nil, err
		}
		for k := range tags {
			if strings.HasPrefix(k, "aws:") {
				return nil, invalidParameter("Tag keys starting with 'aws:' are reserved for internal use")
			}
		}
		if req.tags[rt] == nil {
			req.tags[rt] = map[string]string{}
		}
		maps.Copy(req.tags[rt], tags)
	}
	if aerr := s.parseDevices(p, req); aerr != nil {
		return nil, aerr
	}
	return req, nil
}

func archCompatible(typeArch, imageArch string) bool {
	return typeArch == imageArch || (typeArch == "x86_64_mac" && imageArch == "x86_64")
}

// parseDevices merges the image's root mapping with the requested block device mappings.
func (s *Server) parseDevices(p params, req *runRequest) *apiError {
	img := req.image
	devices := []blockDevice{{
		device: img.RootDevice, size: img.RootSizeGiB, volumeType: img.RootType,
		snapshotID: img.RootSnapshot, deleteOnTermination: true,
	}}
	bdms, aerr := p.structs("BlockDeviceMapping")
	if aerr != nil {
		return aerr
	}
	for _, b := range bdms {
		name := b.str("DeviceName")
		if name == "" {
			return missingParameter("BlockDeviceMapping.DeviceName")
		}
		i := slices.IndexFunc(devices, func(d blockDevice) bool { return d.device == name })
		if i < 0 {
			devices = append(devices, blockDevice{device: name, volumeType: "gp2", deleteOnTermination: true})
			i = len(devices) - 1
		}
		d := &devices[i]
		if b.has("NoDevice") {
			d.noDevice = true
			continue
		}
		e := b.sub("Ebs")
		var err *apiError
		if e.has("VolumeSize") {
			if d.size, err = e.integer("VolumeSize", 0); err != nil {
				return err
			}
		}
		if e.has("VolumeType") {
			d.volumeType = e.str("VolumeType")
		}
		if d.iops, err = e.integer("Iops", 0); err != nil {
			return err
		}
		if d.throughput, err = e.integer("Throughput", 0); err != nil {
			return err
		}
		if d.deleteOnTermination, err = e.boolean("DeleteOnTermination", d.deleteOnTermination); err != nil {
			return err
		}
		if e.has("SnapshotId") {
			d.snapshotID = e.str("SnapshotId")
		}
	}
	for i := range devices {
		d := &devices[i]
		if d.noDevice {
			continue
		}
		if !slices.Contains(volumeTypes, d.volumeType) {
			return invalidParameter("Value (%s) for parameter volumeType is invalid.", d.volumeType)
		}
		if d.size <= 0 {
			return newError("InvalidBlockDeviceMapping", "The volume size of %s must be specified", d.device)
		}
		if d.device == img.RootDevice && d.size < img.RootSizeGiB {
			return newError("InvalidBlockDeviceMapping",
				"Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", d.size, img.RootSnapshot, img.RootSizeGiB)
		}
		switch d.volumeType {
		case "io1", "io2":
			if d.iops <= 0 {
				return missingParameter("iops")
			}
		case "gp3":
			if d.iops == 0 {
				d.iops = 3000
			}
			if d.throughput == 0 {
				d.throughput = 125
			}
			if d.iops < 3000 || d.iops > 16000 {
				return invalidParameter("Volume iops of %d is out of range 3000-16000 for gp3", d.iops)
			}
			if d.throughput < 125 || d.throughput > 1000 {
				return invalidParameter("Throughput of %d is out of range 125-1000 for gp3", d.throughput)
			}
		default:
			if d.iops != 0 {
				return newError("InvalidParameterCombination", "The parameter iops is not supported for %s volumes.", d.volumeType)
			}
		}
		if d.throughput != 0 && d.volumeType != "gp3" {
			return newError("InvalidParameterCombination", "The parameter throughput is not supported for %s volumes.", d.volumeType)
		}
	}
	req.devices = devices
	return nil
}

func (s *Server) xmlInstance(in *instance, now time.Time) xmlInstance {
	state := s.stateOf(in, now)
	x := xmlInstance{
		InstanceID: in.id, ImageID: in.imageID, State: xmlState{Code: stateCodes[state], Name: state},
		KeyName: in.keyName, InstanceType: in.instanceType, LaunchTime: in.launch.UTC().Format(timeFormat),
		Placement: xmlPlacement{AvailabilityZone: in.az, Tenancy: "default", HostID: in.hostID}, SubnetID: in.subnetID, VpcID: in.vpcID,
		Groups: xmlGroups(in.groups), Architecture: s.types[in.instanceType].Arch, RootDeviceType: "ebs",
		RootDeviceName: in.rootDevice, VirtualizationTyp: "hvm", ClientToken: in.clientToken, Tags: xmlTags(in.tags),
		Hypervisor: "xen", EBSOptimized: in.ebsOptimized,
		MetadataOptions: &xmlMetadataOptions{State: "applied", HTTPTokens: in.httpTokens, HTTPEndpoint: in.httpEndpoint},
	}
	if in.spot {
		x.InstanceLifecycle = "spot"
	}
	if in.hostID != "" {
		x.Placement.Tenancy = "host"
		x.Placement.Affinity = "host"
	}
	if in.iamProfile != "" {
		x.IAMProfile = &xmlIAMProfile{Arn: in.iamProfile, ID: "AIPA" + strings.ToUpper(strconv.FormatUint(in.seq, 36))}
	}
	if state != StateTerminated {
		x.PrivateIPAddress = in.privateIP
		x.PrivateDNSName = "ip-" + strings.ReplaceAll(in.privateIP, ".", "-") + ".ec2.internal"
		x.IPv6Address = in.ipv6
		for _, a := range in.attachments {
			x.BlockDevices = append(x.BlockDevices, xmlInstanceBDM{DeviceName: a.device, EBS: xmlInstanceEBS{
				VolumeID: a.volumeID, Status: "attached", AttachTime: in.launch.UTC().Format(timeFormat),
				DeleteOnTermination: a.deleteOnTermination,
			}})
		}
		nic := xmlNIC{
			NetworkInterfaceID: in.eniID, SubnetID: in.subnetID, VpcID: in.vpcID, Status: "in-use",
			PrivateIPAddress: in.privateIP, Groups: xmlGroups(in.groups),
			Attachment: xmlNICAttachment{AttachmentID: "eni-attach-" + strings.TrimPrefix(in.eniID, "eni-"), Status: "attached", DeleteOnTermination: true},
		}
		if in.ipv6 != "" {
			nic.IPv6Addresses = []xmlIPv6{{Address: in.ipv6}}
		}
		if state == StateRunning && in.publicIP != "" {
			x.IPAddress = in.publicIP
			x.DNSName = "ec2-" + strings.ReplaceAll(in.publicIP, ".", "-") + ".compute-1.amazonaws.com"
			nic.Association = &xmlAssociation{PublicIP: in.publicIP, IPOwner: "amazon"}
		}
		x.NetworkInterfaces = []xmlNIC{nic}
	}
	if !in.terminateAt.IsZero() {
		x.StateReason = &xmlStateReason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}
		x.Reason = "User initiated (" + in.terminateAt.UTC().Format("2006-01-02 15:04:05 MST") + ")"
	}
	return x
}

func xmlGroups(ids []string) []xmlGroup {
	out := make([]xmlGroup, 0, len(ids))
	for _, id := range ids {
		out = append(out, xmlGroup{GroupID: id, GroupName: id})
	}
	return out
}

var instanceFilters = []string{
	"instance-state-name", "instance-id", "instance-type", "availability-zone", "image-id",
	"instance-lifecycle", "client-token", "subnet-id", "private-ip-address", "ip-address",
}

func (s *Server) describeInstances(p params, now time.Time) (any, *apiError) {
	ids, aerr := p.list("InstanceId")
	if aerr != nil {
		return nil, aerr
	}
	filters, err := p.filters()
	if err != nil {
		return nil, err
	}
	if aerr := checkFilters(filters, instanceFilters); aerr != nil {
		return nil, aerr
	}
	maxResults, offset, aerr := pagination(p, len(ids) > 0, 5, 1000)
	if aerr != nil {
		return nil, aerr
	}
	var candidates []*instance
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			if !validID(id, "i-") {
				return nil, newError("InvalidInstanceID.Malformed", "Invalid id: %q", id)
			}
			in, ok := s.instances[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			candidates = append(candidates, in)
		}
		if aerr := notFound("InvalidInstanceID.NotFound", "instance ID", missing); aerr != nil {
			return nil, aerr
		}
	} else {
		for _, id := range s.order {
			in := s.instances[id]
			if s.opts.ListingLag > 0 && now.Sub(in.launch) < s.opts.ListingLag {
				continue
			}
			candidates = append(candidates, in)
		}
	}
	var matched []*instance
	for _, in := range candidates {
		if s.instanceMatches(in, filters, now) {
			matched = append(matched, in)
		}
	}
	page, next := paginate(matched, maxResults, offset)
	out := &xmlDescribeInstancesResponse{Xmlns: ec2Namespace, NextToken: next}
	for _, in := range page {
		n := len(out.Reservations)
		if n == 0 || out.Reservations[n-1].ReservationID != in.reservationID {
			out.Reservations = append(out.Reservations, xmlReservation{ReservationID: in.reservationID, OwnerID: s.opts.OwnerID, Groups: xmlGroups(in.groups)})
			n++
		}
		out.Reservations[n-1].Instances = append(out.Reservations[n-1].Instances, s.xmlInstance(in, now))
	}
	return out, nil
}

func (s *Server) instanceMatches(in *instance, filters []filter, now time.Time) bool {
	for _, f := range filters {
		if m, ok := matchTags(f, in.tags); ok {
			if !m {
				return false
			}
			continue
		}
		var v string
		switch f.name {
		case "instance-state-name":
			v = s.stateOf(in, now)
		case "instance-id":
			v = in.id
		case "instance-type":
			v = in.instanceType
		case "availability-zone":
			v = in.az
		case "image-id":
			v = in.imageID
		case "instance-lifecycle":
			if in.spot {
				v = "spot"
			}
		case "client-token":
			v = in.clientToken
		case "subnet-id":
			v = in.subnetID
		case "private-ip-address":
			v = in.privateIP
		case "ip-address":
			v = in.publicIP
		}
		if !matchAny(f.values, v) {
			return false
		}
	}
	return true
}

func (s *Server) terminateInstances(p params, now time.Time) (any, *apiError) {
	ids, aerr := p.list("InstanceId")
	if aerr != nil {
		return nil, aerr
	}
	if len(ids) == 0 {
		return nil, missingParameter("InstanceId")
	}
	var missing []string
	for _, id := range ids {
		if !validID(id, "i-") {
			return nil, newError("InvalidInstanceID.Malformed", "Invalid id: %q", id)
		}
		if _, ok := s.instances[id]; !ok {
			missing = append(missing, id)
		}
	}
	if aerr := notFound("InvalidInstanceID.NotFound", "instance ID", missing); aerr != nil {
		return nil, aerr
	}
	out := &xmlTerminateInstancesResponse{Xmlns: ec2Namespace}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		in := s.instances[id]
		prev := s.stateOf(in, now)
		if in.terminateAt.IsZero() {
			in.terminateAt = now
			if node := in.tags[s.opts.NodeTag]; node != "" {
				s.liveByNode[node]--
			}
		}
		cur := s.stateOf(in, now)
		out.Instances = append(out.Instances, xmlStateChange{
			InstanceID:    id,
			CurrentState:  xmlState{Code: stateCodes[cur], Name: cur},
			PreviousState: xmlState{Code: stateCodes[prev], Name: prev},
		})
	}
	s.settle(now)
	return out, nil
}

func (s *Server) describeAvailabilityZones(p params, _ time.Time) (any, *apiError) {
	names, aerr := p.list("ZoneName")
	if aerr != nil {
		return nil, aerr
	}
	out := &xmlDescribeAvailabilityZonesResponse{Xmlns: ec2Namespace}
	for i, az := range s.opts.AZs {
		if len(names) > 0 && !slices.Contains(names, az) {
			continue
		}
		out.Zones = append(out.Zones, xmlAvailabilityZone{
			ZoneName: az, ZoneState: "available", RegionName: s.opts.Region,
			ZoneID: fmt.Sprintf("%s-az%d", s.opts.Region, i+1), ZoneType: "availability-zone",
			OptInStatus: "opt-in-not-required", GroupName: s.opts.Region, NetworkBorderGroup: s.opts.Region,
		})
	}
	return out, nil
}

func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func notFound(code, what string, missing []string) *apiError {
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return newError(code, "The %s '%s' does not exist", what, missing[0])
	}
	return newError(code, "The %ss '%s' do not exist", what, strings.Join(missing, ", "))
}

func checkFilters(filters []filter, known []string) *apiError {
	for _, f := range filters {
		if strings.HasPrefix(f.name, "tag:") || f.name == "tag-key" || f.name == "tag-value" || slices.Contains(known, f.name) {
			continue
		}
		return invalidParameter("The filter '%s' is invalid", f.name)
	}
	return nil
}

// pagination parses MaxResults and NextToken. MaxResults may not be combined with an id
// list, and must lie within [lo, hi].
func pagination(p params, withIDs bool, lo, hi int) (maxResults, offset int, aerr *apiError) {
	if p.has("MaxResults") {
		if withIDs {
			return 0, 0, newError("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		n, err := p.integer("MaxResults", 0)
		if err != nil {
			return 0, 0, err
		}
		if n < lo || n > hi {
			return 0, 0, invalidParameter("Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.", n, lo, hi)
		}
		maxResults = n
	}
	if tok := p.str("NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if err != nil || !strings.HasPrefix(tok, "page-") || n < 0 {
			return 0, 0, invalidParameter("Invalid value '%s' for nextToken", tok)
		}
		offset = n
	}
	return maxResults, offset, nil
}

// paginate returns the page of items starting at offset, and the next token.
func paginate[T any](items []T, maxResults, offset int) ([]T, string) {
	if offset > len(items) {
		offset = len(items)
	}
	items = items[offset:]
	if maxResults == 0 || len(items) <= maxResults {
		return items, ""
	}
	return items[:maxResults], "page-" + strconv.Itoa(offset+maxResults)
}
