package ec2sim

import (
	"fmt"
	"maps"
	"time"
)

// Instance states, with EC2's state codes.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
)

var stateCodes = map[string]int{StatePending: 0, StateRunning: 16, StateShuttingDown: 32, StateTerminated: 48}

type attachment struct {
	device              string
	volumeID            string
	deleteOnTermination bool
}

type instance struct {
	id, reservationID  string
	seq                uint64
	imageID            string
	instanceType       string
	keyName            string
	az                 string
	subnetID, vpcID    string
	groups             []string
	privateIP          string
	publicIP           string
	ipv6               string
	spot               bool
	tags               map[string]string
	clientToken        string
	ebsOptimized       bool
	userData           string
	iamProfile         string
	httpTokens         string
	httpEndpoint       string
	attachments        []attachment
	rootDevice         string
	launch             time.Time
	terminateAt        time.Time // zero until termination is requested
	finalized          bool      // terminated side effects applied
	eniID              string
	vcpus              int
	quotaCode          string
	associatePublicIPs bool
	hostID             string // the dedicated host, or ""
}

type volume struct {
	id                  string
	seq                 uint64
	size                int
	volumeType          string
	iops, throughput    int
	az                  string
	snapshotID          string
	tags                map[string]string
	status              string // "in-use", "available"
	instanceID          string
	device              string
	deleteOnTermination bool
	created             time.Time
}

type reservation struct {
	id          string
	fingerprint string
	instances   []string
	groups      []string
}

// stateOf computes an instance's state at now. Callers hold s.mu.
func (s *Server) stateOf(in *instance, now time.Time) string {
	if !in.terminateAt.IsZero() {
		if now.Sub(in.terminateAt) >= s.opts.TerminateTime {
			return StateTerminated
		}
		return StateShuttingDown
	}
	if now.Sub(in.launch) >= s.opts.BootTime {
		return StateRunning
	}
	return StatePending
}

// settle applies the side effects of instances that reached terminated (their volumes
// are deleted or released, their public address is freed) and forgets instances that
// were terminated longer ago than the retention. Callers hold s.mu.
func (s *Server) settle(now time.Time) {
	keep := s.order[:0]
	for _, id := range s.order {
		in := s.instances[id]
		if !in.terminateAt.IsZero() && !in.finalized && s.stateOf(in, now) == StateTerminated {
			s.finalize(in)
		}
		if in.finalized && now.Sub(in.terminateAt.Add(s.opts.TerminateTime)) >= s.opts.TerminatedRetention {
			delete(s.instances, id)
			continue
		}
		keep = append(keep, id)
	}
	clear(s.order[len(keep):])
	s.order = keep
	s.forgetReleasedHosts(now)
}

func (s *Server) finalize(in *instance) {
	in.finalized = true
	if in.publicIP != "" {
		delete(s.publicUsed, in.publicIP)
	}
	for _, a := range in.attachments {
		v, ok := s.volumes[a.volumeID]
		if !ok {
			continue
		}
		if a.deleteOnTermination {
			s.removeVolume(v.id)
			continue
		}
		v.status = "available"
		v.instanceID = ""
		v.device = ""
	}
}

func (s *Server) removeVolume(id string) {
	delete(s.volumes, id)
	for i, vid := range s.volOrder {
		if vid == id {
			s.volOrder = append(s.volOrder[:i], s.volOrder[i+1:]...)
			return
		}
	}
}

// nextID returns an id with the given prefix and a fresh sequence number.
func (s *Server) nextID(prefix string) (string, uint64) {
	s.seq++
	return fmt.Sprintf("%s-%017x", prefix, s.seq), s.seq
}

// privateAddress returns the private IPv4 address for a sequence number, from the RFC
// 2544 range 198.18.0.0/15 (131,070 usable addresses before they repeat).
func privateAddress(n uint64) string {
	h := n%131070 + 1
	return fmt.Sprintf("198.%d.%d.%d", 18+h/65536, (h/256)%256, h%256)
}

// publicRanges are the RFC 5737 documentation ranges public IPv4 addresses come from.
var publicRanges = []string{"203.0.113", "198.51.100"}

// allocatePublic returns a free public IPv4 address, or "" when all 508 are in use.
// Callers hold s.mu.
func (s *Server) allocatePublic() string {
	const perRange = 254
	total := perRange * len(publicRanges)
	for range total {
		i := s.publicNext % total
		s.publicNext++
		addr := fmt.Sprintf("%s.%d", publicRanges[i/perRange], i%perRange+1)
		if !s.publicUsed[addr] {
			s.publicUsed[addr] = true
			return addr
		}
	}
	return ""
}

// ipv6Address returns an IPv6 address from 2001:db8::/32 for a sequence number.
func ipv6Address(n uint64) string {
	return fmt.Sprintf("2001:db8:0:1::%x", n)
}

// InstanceInfo is a snapshot of one simulated instance, for tests.
type InstanceInfo struct {
	ID                 string
	State              string
	InstanceType       string
	ImageID            string
	KeyName            string
	AZ                 string
	SubnetID           string
	SecurityGroups     []string
	PrivateIP          string
	PublicIP           string
	IPv6               string
	Spot               bool
	Tags               map[string]string
	ClientToken        string
	UserData           string
	IAMInstanceProfile string
	HTTPTokens         string
	EBSOptimized       bool
	HostID             string
	Volumes            []VolumeInfo
}

// VolumeInfo is a snapshot of one simulated volume, for tests.
type VolumeInfo struct {
	ID                  string
	Status              string
	Size                int
	Type                string
	IOPS                int
	Throughput          int
	Device              string
	InstanceID          string
	DeleteOnTermination bool
	Tags                map[string]string
}

// Instances returns a snapshot of every instance the server still shows, in creation
// order.
func (s *Server) Instances() []InstanceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.settle(now)
	out := make([]InstanceInfo, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.info(s.instances[id], now))
	}
	return out
}

// Instance returns a snapshot of one instance.
func (s *Server) Instance(id string) (InstanceInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.settle(now)
	in, ok := s.instances[id]
	if !ok {
		return InstanceInfo{}, false
	}
	return s.info(in, now), true
}

// Volumes returns a snapshot of every volume, in creation order.
func (s *Server) Volumes() []VolumeInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	out := make([]VolumeInfo, 0, len(s.volOrder))
	for _, id := range s.volOrder {
		out = append(out, volumeInfo(s.volumes[id]))
	}
	return out
}

func (s *Server) info(in *instance, now time.Time) InstanceInfo {
	info := InstanceInfo{
		ID: in.id, State: s.stateOf(in, now), InstanceType: in.instanceType, ImageID: in.imageID,
		KeyName: in.keyName, AZ: in.az, SubnetID: in.subnetID, SecurityGroups: append([]string(nil), in.groups...),
		PrivateIP: in.privateIP, PublicIP: in.publicIP, IPv6: in.ipv6, Spot: in.spot, Tags: maps.Clone(in.tags),
		ClientToken: in.clientToken, UserData: in.userData, IAMInstanceProfile: in.iamProfile,
		HTTPTokens: in.httpTokens, EBSOptimized: in.ebsOptimized, HostID: in.hostID,
	}
	for _, a := range in.attachments {
		if v, ok := s.volumes[a.volumeID]; ok {
			info.Volumes = append(info.Volumes, volumeInfo(v))
		}
	}
	return info
}

func volumeInfo(v *volume) VolumeInfo {
	return VolumeInfo{
		ID: v.id, Status: v.status, Size: v.size, Type: v.volumeType, IOPS: v.iops, Throughput: v.throughput,
		Device: v.device, InstanceID: v.instanceID, DeleteOnTermination: v.deleteOnTermination, Tags: maps.Clone(v.tags),
	}
}
