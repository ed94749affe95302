package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Step names of the create and delete state machines, in upstream Nodepool's wording.
const (
	StepStart                = "start"
	StepSubmitAllocatingHost = "submit allocating host"
	StepAllocatingHost       = "allocating host"
	StepSubmitCreating       = "submit creating instance"
	StepCreating             = "creating instance"
	StepDeletingInstance     = "deleting instance"
	StepDeletingVolumes      = "deleting volumes"
	StepReleasingHost        = "releasing host"
	StepComplete             = "complete"
)

// createData is the driver-private part of a CreateState.
type createData struct {
	// Offering counts positions in launchOfferings of the launch across rounds: the
	// offering being launched is launchOfferings[Offering % n], in round Offering / n.
	// A round tries each offering at most once; when every offering of a round ran
	// out of capacity the next launch starts a new round, whose client tokens are new.
	Offering int `json:"offering"`
	// ImageID is the AMI resolved at the start, so that every retry sends the same
	// arguments under the same client token.
	ImageID string `json:"image_id,omitempty"`
	// InstanceID and SubmittedAt are set once RunInstances succeeded.
	InstanceID  string    `json:"instance_id,omitempty"`
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
	// HostID and HostSubmittedAt are set once AllocateHosts succeeded (dedicated-host
	// labels); the host is kept across rounds of offerings.
	HostID          string    `json:"host_id,omitempty"`
	HostSubmittedAt time.Time `json:"host_submitted_at,omitzero"`
	// FleetID and InstanceType are set once CreateFleet launched the instance (fleet
	// labels): the fleet and the instance type EC2 picked.
	FleetID      string `json:"fleet_id,omitempty"`
	InstanceType string `json:"instance_type,omitempty"`
	// Unavailable lists the offerings that reported insufficient capacity in the
	// current round (for people reading the state; the driver does not use it).
	Unavailable []string `json:"unavailable,omitempty"`
}

func decodeData[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(raw) == 0 || string(raw) == "null" {
		return v, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, drivers.Permanent("decoding driver state %s: %w", string(raw), err)
	}
	return v, nil
}

func encodeData(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// The data structs hold only strings, ints and times.
		return nil
	}
	return b
}

// AdvanceCreate advances a create state machine by one step:
//
//   - "start" resolves the image and picks the first offering of the round not known
//     to be out of capacity, or fails with a *drivers.CapacityError whose RetryAfter
//     is the time until the first offering is expected back;
//   - "submit creating instance" calls RunInstances with a client token derived from
//     the node id, the attempt and the offering's position, so that a repeated step
//     returns the instance the first call started; on insufficient capacity it moves to
//     the next offering of the round (recorded in Data), or, when none is left, fails
//     with a *drivers.CapacityError carrying RetryAfter and returns the state of a new
//     round at "start";
//   - "creating instance" waits in the shared listing for the instance to run and get
//     its addresses;
//   - "complete" carries the Instance.
func (d *Driver) AdvanceCreate(ctx context.Context, st drivers.CreateState) (drivers.CreateState, error) {
	if st.Complete {
		return st, nil
	}
	pool, label, err := d.label(st.Request.Pool, st.Request.Label)
	if err != nil {
		return st, err
	}
	data, err := decodeData[createData](st.Data)
	if err != nil {
		return st, err
	}
	log := d.log.With("node_id", st.Request.NodeID, "pool", st.Request.Pool, "label", st.Request.Label, "step", st.Step)
	switch st.Step {
	case "", StepStart:
		return d.createStart(ctx, st, pool, label, data)
	case StepSubmitAllocatingHost:
		return d.hostSubmit(ctx, log, st, pool, label, data)
	case StepAllocatingHost:
		return d.hostWait(ctx, log, st, data)
	case StepSubmitCreating:
		return d.createSubmit(ctx, log, st, pool, label, data)
	case StepCreating:
		return d.createWait(ctx, log, st, pool, label, data)
	case StepComplete:
		st.Complete = st.Instance != nil
		return st, nil
	}
	return st, drivers.Permanent("advancing create of node %s: unknown step %q", st.Request.NodeID, st.Step)
}

func (d *Driver) createStart(ctx context.Context, st drivers.CreateState, pool *poolInfo, label *Label, data createData) (drivers.CreateState, error) {
	data.ImageID = st.Request.ImageID
	if data.ImageID == "" {
		ci := d.cloudImage(label.CloudImage)
		if ci == nil {
			return st, drivers.Permanent("starting node %s: unknown cloud image %q", st.Request.NodeID, label.CloudImage)
		}
		id, err := d.images.resolve(ctx, ci)
		if err != nil {
			return st, err
		}
		data.ImageID = id
	}
	offs := launchOfferings(st.Request, pool.cfg, label)
	if data.Offering < 0 {
		return st, drivers.Permanent("starting node %s: offering %d out of range", st.Request.NodeID, data.Offering)
	}
	round := data.Offering / len(offs) * len(offs)
	next, wait := d.pickOffering(pool.name, offs, round, round+len(offs))
	if next < 0 {
		return st, drivers.CapacityRetryAfter(wait, "starting node %s: every offering of label %s in pool %s (%s) recently reported insufficient capacity",
			st.Request.NodeID, st.Request.Label, pool.name, offeringList(offs))
	}
	data.Offering = next
	st.Step = StepSubmitCreating
	if label.DedicatedHost && data.HostID == "" {
		st.Step = StepSubmitAllocatingHost
	}
	st.Data = encodeData(data)
	st.Wait = 0
	return st, nil
}

// minRetryAfter is the shortest retry hint of a capacity error.
const minRetryAfter = time.Second

// pickOffering returns the first position in [from, to) whose offering (the position
// modulo len(offs)) the pool does not know to be out of capacity. When there is none
// it returns -1 and how long until the first of them may be used again.
func (d *Driver) pickOffering(pool string, offs []offering, from, to int) (int, time.Duration) {
	var wait time.Duration
	for i := from; i < to; i++ {
		left := d.unavailable.remaining(keyOf(pool, offs[i%len(offs)]))
		if left == 0 {
			return i, 0
		}
		if wait == 0 || left < wait {
			wait = left
		}
	}
	return -1, max(wait, minRetryAfter)
}

// capacityWait returns how long until the first of the offerings may be used again.
func (d *Driver) capacityWait(pool string, offs []offering) time.Duration {
	_, wait := d.pickOffering(pool, offs, 0, len(offs))
	return max(wait, minRetryAfter)
}

func offeringList(offs []offering) string {
	parts := make([]string, 0, len(offs))
	for _, o := range offs {
		parts = append(parts, o.String())
	}
	return strings.Join(parts, ", ")
}

// clientToken derives the RunInstances idempotency token from the node, the attempt,
// the offering's position (which counts on across rounds, see createData) and the
// provider. EC2 returns the instance started under a token instead of starting
// another, so a repeated step never launches twice, while a new attempt, offering or
// round launches anew.
func (d *Driver) clientToken(req drivers.CreateRequest, offeringIndex int) string {
	return d.clientTokenOf("np", req, offeringIndex)
}

// clientTokenOf derives an idempotency token as clientToken does, with a prefix of
// its own per operation ("np" RunInstances, "nf" CreateFleet, "nh" AllocateHosts).
func (d *Driver) clientTokenOf(prefix string, req drivers.CreateRequest, offeringIndex int) string {
	t := fmt.Sprintf("%s-%s-%d-%d-%s", prefix, req.NodeID, req.Attempt, offeringIndex, d.tokenSuffix)
	if len(t) > 64 {
		sum := sha256.Sum256([]byte(t))
		t = prefix + "-" + hex.EncodeToString(sum[:20])
	}
	return t
}

func (d *Driver) createSubmit(ctx context.Context, log *slog.Logger, st drivers.CreateState, pool *poolInfo, label *Label, data createData) (drivers.CreateState, error) {
	offs := launchOfferings(st.Request, pool.cfg, label)
	if data.Offering < 0 {
		return st, drivers.Permanent("submitting node %s: offering %d out of range", st.Request.NodeID, data.Offering)
	}
	// The recorded offering is submitted whatever the cache says: a repeated step must
	// send the same request under the same client token, or a call that started an
	// instance but whose answer was lost would be followed by a second instance.
	off := offs[data.Offering%len(offs)]
	if off.fleet {
		return d.fleetSubmit(ctx, log, st, pool, label, data, off)
	}
	in, err := d.runInput(ctx, log, st.Request, pool.cfg, label, data, off)
	if err != nil {
		return st, err
	}
	out, err := d.ec2.RunInstances(ctx, in)
	if err != nil {
		cerr := classify(opCreate, fmt.Sprintf("running %s instance for node %s", off, st.Request.NodeID), err)
		switch drivers.KindOf(cerr) {
		case drivers.KindCapacity:
			return d.outOfCapacity(log, st, pool, offs, data, off, cerr)
		case drivers.KindPermanent:
			if data.HostID != "" {
				d.releaseAfterFailure(ctx, log, data.HostID, cerr)
			}
		}
		return st, cerr
	}
	if len(out.Instances) == 0 || out.Instances[0].InstanceId == nil {
		return st, drivers.Transient("running instance for node %s: empty answer", st.Request.NodeID)
	}
	id := awssdk.ToString(out.Instances[0].InstanceId)
	data.InstanceID = id
	data.SubmittedAt = d.now()
	st.ExternalID = formatExternalIDs(id, data.HostID)
	st.Step = StepCreating
	st.Data = encodeData(data)
	st.Wait = d.opts.pollInterval
	log.Info("instance submitted", "external_id", id, "offering", off.String(), "client_token", awssdk.ToString(in.ClientToken))
	return st, nil
}

// outOfCapacity goes on after the offering reported insufficient capacity (cerr)
// and nothing was started: it marks the offering unavailable for the pool and moves
// to the next offering of the round at once, or, when none is left, fails with a
// *drivers.CapacityError carrying RetryAfter and returns the state of a new round at
// "start".
func (d *Driver) outOfCapacity(log *slog.Logger, st drivers.CreateState, pool *poolInfo, offs []offering, data createData, off offering, cerr error) (drivers.CreateState, error) {
	// Nothing was started: try the next offering of the round at once.
	d.unavailable.mark(keyOf(pool.name, off))
	data.Unavailable = append(data.Unavailable, off.String())
	roundEnd := (data.Offering/len(offs) + 1) * len(offs)
	next, _ := d.pickOffering(pool.name, offs, data.Offering+1, roundEnd)
	if next < 0 {
		// Every offering of the round is out of capacity. The launch goes on from a
		// new round, once the first offering is expected back.
		wait := d.capacityWait(pool.name, offs)
		log.Info("every offering out of capacity", "offering", off.String(), "retry_after", wait, "error", cerr)
		data.Offering = roundEnd
		data.Unavailable = nil
		retry := st
		retry.Step = StepStart
		retry.Data = encodeData(data)
		retry.Wait = wait
		return retry, withRetryAfter(cerr, wait)
	}
	log.Info("offering out of capacity, trying the next", "offering", off.String(), "next", offs[next%len(offs)].String(), "error", cerr)
	data.Offering = next
	st.Data = encodeData(data)
	st.Wait = 0
	return st, nil
}

// runInput builds the RunInstances arguments, as upstream does (§4.4 of the protocol
// notes), for one offering.
func (d *Driver) runInput(ctx context.Context, log *slog.Logger, req drivers.CreateRequest, pool *Pool, label *Label, data createData, off offering) (*ec2.RunInstancesInput, error) {
	tags, skipped := instanceTags(label, req)
	for k, err := range skipped {
		log.Warn("skipping tag", "tag", k, "error", err)
	}
	nic := ec2types.InstanceNetworkInterfaceSpecification{
		DeviceIndex:              awssdk.Int32(0),
		AssociatePublicIpAddress: awssdk.Bool(pool.publicIPv4()),
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
	in := &ec2.RunInstancesInput{
		ImageId:           awssdk.String(data.ImageID),
		InstanceType:      ec2types.InstanceType(off.instanceType),
		MinCount:          awssdk.Int32(1),
		MaxCount:          awssdk.Int32(1),
		KeyName:           awssdk.String(label.KeyName),
		ClientToken:       awssdk.String(d.clientToken(req, data.Offering)),
		NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{nic},
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: ec2Tags(tags)},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: ec2Tags(tags)},
		},
	}
	if label.EBSOptimized {
		in.EbsOptimized = awssdk.Bool(true)
	}
	if label.UserData != "" {
		in.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte(label.UserData)))
	}
	if p := label.IAMInstanceProfile; p != nil {
		in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{}
		if p.Arn != "" {
			in.IamInstanceProfile.Arn = awssdk.String(p.Arn)
		} else {
			in.IamInstanceProfile.Name = awssdk.String(p.Name)
		}
	}
	if off.spot {
		in.InstanceMarketOptions = &ec2types.InstanceMarketOptionsRequest{
			MarketType: ec2types.MarketTypeSpot,
			SpotOptions: &ec2types.SpotMarketOptions{
				SpotInstanceType:             ec2types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: ec2types.InstanceInterruptionBehaviorTerminate,
			},
		}
	}
	if label.IMDSv2 != "" {
		in.MetadataOptions = &ec2types.InstanceMetadataOptionsRequest{
			HttpTokens:   ec2types.HttpTokensState(label.IMDSv2),
			HttpEndpoint: ec2types.InstanceMetadataEndpointStateEnabled,
		}
	}
	if off.az != "" {
		in.Placement = &ec2types.Placement{AvailabilityZone: awssdk.String(off.az)}
	}
	if data.HostID != "" {
		if in.Placement == nil {
			in.Placement = &ec2types.Placement{}
		}
		in.Placement.Tenancy = ec2types.TenancyHost
		in.Placement.HostId = awssdk.String(data.HostID)
		in.Placement.Affinity = awssdk.String("host")
	}
	bdm, err := d.rootDevice(ctx, data.ImageID, label)
	if err != nil {
		return nil, err
	}
	if bdm != nil {
		in.BlockDeviceMappings = []ec2types.BlockDeviceMapping{*bdm}
	}
	return in, nil
}

// rootDevice copies the AMI's first block device mapping with DeleteOnTermination set,
// the label's volume settings applied and Encrypted removed (EC2 refuses it on a copy
// of an encrypted snapshot's mapping), as upstream does. It returns nil when the AMI
// has no EBS mapping.
func (d *Driver) rootDevice(ctx context.Context, imageID string, label *Label) (*ec2types.BlockDeviceMapping, error) {
	im, err := d.images.image(ctx, imageID)
	if err != nil {
		return nil, err
	}
	if len(im.BlockDeviceMappings) == 0 || im.BlockDeviceMappings[0].Ebs == nil {
		return nil, nil
	}
	src := im.BlockDeviceMappings[0]
	ebs := *src.Ebs
	ebs.DeleteOnTermination = awssdk.Bool(true)
	ebs.Encrypted = nil
	if label.VolumeSize > 0 {
		ebs.VolumeSize = awssdk.Int32(label.VolumeSize)
	}
	if label.VolumeType != "" {
		ebs.VolumeType = ec2types.VolumeType(label.VolumeType)
		if label.VolumeType != "gp3" && label.VolumeType != "io1" && label.VolumeType != "io2" {
			// Only these types take provisioned IOPS; drop the AMI's figure.
			ebs.Iops = nil
		}
		if label.VolumeType != "gp3" {
			ebs.Throughput = nil
		}
	}
	if label.IOPS > 0 {
		ebs.Iops = awssdk.Int32(label.IOPS)
	}
	if label.Throughput > 0 {
		ebs.Throughput = awssdk.Int32(label.Throughput)
	}
	return &ec2types.BlockDeviceMapping{DeviceName: src.DeviceName, Ebs: &ebs}, nil
}

func (d *Driver) createWait(ctx context.Context, log *slog.Logger, st drivers.CreateState, pool *poolInfo, label *Label, data createData) (drivers.CreateState, error) {
	if data.InstanceID == "" {
		return st, drivers.Permanent("waiting for node %s: no instance recorded", st.Request.NodeID)
	}
	lst, err := d.lister.get(ctx)
	if err != nil {
		return st, err
	}
	in, ok := lst.byID[data.InstanceID]
	if !ok {
		if d.now().Sub(data.SubmittedAt) < d.opts.grace {
			// EC2 listings are eventually consistent: a new instance may not be listed yet.
			st.Wait = d.waitHint()
			return st, nil
		}
		in, err = d.describeInstance(ctx, data.InstanceID)
		if err != nil {
			if drivers.KindOf(err) == drivers.KindNotFound {
				return st, drivers.Permanent("waiting for instance %s of node %s: the instance disappeared: %w", data.InstanceID, st.Request.NodeID, err)
			}
			return st, err
		}
	}
	switch lifecycleOf(d.log, in) {
	case lifeBooting:
		st.Wait = d.waitHint()
		return st, nil
	case lifeRunning:
		if !addressesOf(in).ready(pool.cfg) {
			st.Wait = d.waitHint()
			return st, nil
		}
	default:
		return st, d.launchFailure(st, pool, label, data, in)
	}
	info, err := d.types.get(ctx, string(in.InstanceType))
	if err != nil {
		return st, err
	}
	inst := d.toInstance(in, pool.cfg, d.cloudImage(label.CloudImage), instanceQuota(info, in))
	st.Instance = &inst
	st.Complete = true
	st.Step = StepComplete
	st.Wait = 0
	log.Info("instance ready", "external_id", data.InstanceID, "interface_ip", inst.InterfaceIP)
	return st, nil
}

// launchFailure turns an instance that stopped or terminated while launching into an
// error: a capacity error when EC2 says so (spot interruptions, capacity shortfalls),
// which also marks the offering unavailable; a permanent error (for this attempt)
// otherwise.
func (d *Driver) launchFailure(st drivers.CreateState, pool *poolInfo, label *Label, data createData, in ec2types.Instance) error {
	reason := stateReason(in)
	state := stateName(in)
	if strings.Contains(reason, "Capacity") || strings.Contains(reason, "Spot") {
		// The instance is lost, so this attempt failed: no retry hint. The next
		// attempt avoids the offering for a while.
		offs := launchOfferings(st.Request, pool.cfg, label)
		if data.Offering >= 0 {
			d.unavailable.mark(keyOf(pool.name, offs[data.Offering%len(offs)]))
		}
		return drivers.Capacity("instance %s of node %s is %s while launching: %s", data.InstanceID, st.Request.NodeID, state, reason)
	}
	return drivers.Permanent("instance %s of node %s is %s while launching: %s", data.InstanceID, st.Request.NodeID, state, reason)
}

// waitHint is how long to wait before asking the listing again.
func (d *Driver) waitHint() time.Duration {
	return max(d.lister.nextRefresh(), d.opts.pollInterval/4)
}
