package ec2sim

import (
	"encoding/xml"
	"maps"
	"slices"
	"strings"
	"time"
)

// Dedicated host states, as EC2 names them.
const (
	HostAvailable = "available"
	HostReleased  = "released"
)

// hostVCPUs is the vCPUs of a simulated dedicated host; a host of an instance type
// holds as many instances of the type as fit.
const hostVCPUs = 96

// host is a dedicated host.
type host struct {
	id           string
	instanceType string
	az           string
	tags         map[string]string
	clientToken  string
	autoPlace    string
	allocated    time.Time
	released     time.Time // zero while allocated
	instances    []string  // ids of the instances ever placed on the host
}

// hostToken is one AllocateHosts call under a client token.
type hostToken struct {
	fingerprint string
	ids         []string
}

// slots returns how many instances of its type the host holds.
func (s *Server) slots(h *host) int {
	if t, ok := s.types[h.instanceType]; ok && t.VCPUs > 0 {
		return max(1, hostVCPUs/t.VCPUs)
	}
	return 1
}

// liveOn returns the instances on the host that are not terminated. Callers hold s.mu.
func (s *Server) liveOn(h *host, now time.Time) []string {
	var out []string
	for _, id := range h.instances {
		if in, ok := s.instances[id]; ok && s.stateOf(in, now) != StateTerminated {
			out = append(out, id)
		}
	}
	return out
}

func (h *host) state() string {
	if h.released.IsZero() {
		return HostAvailable
	}
	return HostReleased
}

// placementHost returns the host a RunInstances placement names. Callers hold s.mu.
func (s *Server) placementHost(id, az string) (*host, *apiError) {
	if id == "" {
		return nil, missingParameter("Placement.HostId")
	}
	if !validID(id, "h-") {
		return nil, newError("InvalidHostID.Malformed", "Invalid id: %q (expecting \"h-...\")", id)
	}
	h, ok := s.hosts[id]
	if !ok {
		return nil, newError("InvalidHostID.NotFound", "The host ID '%s' does not exist", id)
	}
	if h.state() != HostAvailable {
		return nil, newError("IncorrectHostState", "Host '%s' is not available; it is %s", id, h.state())
	}
	if az != "" && az != h.az {
		return nil, invalidParameter("The availability zone %s does not match the zone %s of host %s", az, h.az, id)
	}
	return h, nil
}

// checkHostPlacement checks that the request's instances fit on its host. Callers hold
// s.mu.
func (s *Server) checkHostPlacement(req *runRequest, now time.Time) *apiError {
	h := req.host
	if req.spot {
		return newError("InvalidParameterCombination", "Spot instances cannot be launched on a dedicated host")
	}
	if req.itype.Name != h.instanceType {
		return invalidParameter("Instance type %s does not match the instance type %s of host %s", req.itype.Name, h.instanceType, h.id)
	}
	if len(s.liveOn(h, now))+req.count > s.slots(h) {
		return newError("InsufficientHostCapacity", "Host %s does not have enough capacity for %d more %s instances", h.id, req.count, req.itype.Name)
	}
	return nil
}

func (s *Server) allocateHosts(p params, now time.Time) (any, *apiError) {
	token := p.str("ClientToken")
	if len(token) > 64 {
		return nil, invalidParameter("Value (%s) for parameter clientToken is invalid. Length exceeds maximum of 64 ASCII characters.", token)
	}
	fp := fingerprint(p.v)
	if token != "" {
		if t, ok := s.hostTokens[token]; ok {
			if t.fingerprint != fp {
				return nil, newError("IdempotentParameterMismatch",
					"Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
			}
			return &xmlAllocateHostsResponse{Xmlns: ec2Namespace, HostIDs: slices.Clone(t.ids)}, nil
		}
	}
	itype := p.str("InstanceType")
	family := p.str("InstanceFamily")
	switch {
	case itype == "" && family == "":
		return nil, missingParameter("InstanceType")
	case itype != "" && family != "":
		return nil, newError("InvalidParameterCombination", "InstanceType and InstanceFamily are exclusive")
	case family != "":
		// Hosts of a family may take several types; the simulator places only
		// instances of one type on a host.
		return nil, invalidParameter("InstanceFamily hosts are not offered; name an InstanceType")
	}
	if _, ok := s.types[itype]; !ok {
		return nil, invalidParameter("Invalid value '%s' for InstanceType.", itype)
	}
	az := p.str("AvailabilityZone")
	if az == "" {
		return nil, missingParameter("AvailabilityZone")
	}
	if !slices.Contains(s.opts.AZs, az) {
		return nil, invalidParameter("Invalid availability zone: [%s]", az)
	}
	qty, aerr := p.integer("Quantity", 1)
	if aerr != nil {
		return nil, aerr
	}
	if qty < 1 || qty > 100 {
		return nil, invalidParameter("Quantity must be between 1 and 100, got %d", qty)
	}
	autoPlace := p.str("AutoPlacement")
	switch autoPlace {
	case "":
		autoPlace = "off"
	case "on", "off":
	default:
		return nil, invalidParameter("Invalid value '%s' for AutoPlacement", autoPlace)
	}
	tags := map[string]string{}
	specs, aerr := p.structs("TagSpecification")
	if aerr != nil {
		return nil, aerr
	}
	for _, spec := range specs {
		if rt := spec.str("ResourceType"); rt != "dedicated-host" {
			return nil, invalidParameter("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		t, aerr := spec.tags("Tag")
		if aerr != nil {
			return nil, aerr
		}
		maps.Copy(tags, t)
	}
	if s.rates.Capacity > 0 && s.rng.Float64() < s.rates.Capacity {
		return nil, newError("InsufficientHostCapacity",
			"There is no Dedicated Host capacity available for instance type %s in the Availability Zone %s.", itype, az)
	}
	if s.blocked[offering{itype, "host"}] {
		return nil, newError("InsufficientHostCapacity",
			"There is no Dedicated Host capacity available for instance type %s in the Availability Zone %s.", itype, az)
	}
	if limit, ok := s.hostLimits[hostFamily(itype)]; ok {
		live := 0
		for _, h := range s.hosts {
			if h.state() == HostAvailable && hostFamily(h.instanceType) == hostFamily(itype) {
				live++
			}
		}
		if live+qty > limit {
			return nil, newError("HostLimitExceeded", "You have requested more Dedicated Hosts of family %s than your current limit of %d allows.", hostFamily(itype), limit)
		}
	}
	out := &xmlAllocateHostsResponse{Xmlns: ec2Namespace}
	for range qty {
		id, _ := s.nextID("h")
		s.hosts[id] = &host{
			id: id, instanceType: itype, az: az, tags: maps.Clone(tags), clientToken: token,
			autoPlace: autoPlace, allocated: now,
		}
		s.hostOrder = append(s.hostOrder, id)
		out.HostIDs = append(out.HostIDs, id)
	}
	if token != "" {
		s.hostTokens[token] = &hostToken{fingerprint: fp, ids: slices.Clone(out.HostIDs)}
	}
	return out, nil
}

// hostFamily returns the family of an instance type, the part before the dot
// ("m5" of "m5.large").
func hostFamily(instanceType string) string {
	f, _, _ := strings.Cut(instanceType, ".")
	return f
}

var hostFilters = []string{"state", "instance-type", "availability-zone", "auto-placement", "client-token"}

func (s *Server) describeHosts(p params, now time.Time) (any, *apiError) {
	ids, aerr := p.list("HostId")
	if aerr != nil {
		return nil, aerr
	}
	filters, aerr := p.filters()
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkFilters(filters, hostFilters); aerr != nil {
		return nil, aerr
	}
	maxResults, offset, aerr := pagination(p, len(ids) > 0, 5, 500)
	if aerr != nil {
		return nil, aerr
	}
	var candidates []*host
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			if !validID(id, "h-") {
				return nil, newError("InvalidHostID.Malformed", "Invalid id: %q", id)
			}
			h, ok := s.hosts[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			candidates = append(candidates, h)
		}
		if aerr := notFound("InvalidHostID.NotFound", "host ID", missing); aerr != nil {
			return nil, aerr
		}
	} else {
		for _, id := range s.hostOrder {
			candidates = append(candidates, s.hosts[id])
		}
	}
	var matched []*host
	for _, h := range candidates {
		if hostMatches(h, filters) {
			matched = append(matched, h)
		}
	}
	page, next := paginate(matched, maxResults, offset)
	out := &xmlDescribeHostsResponse{Xmlns: ec2Namespace, NextToken: next}
	for _, h := range page {
		out.Hosts = append(out.Hosts, s.xmlHost(h, now))
	}
	return out, nil
}

func hostMatches(h *host, filters []filter) bool {
	for _, f := range filters {
		if m, ok := matchTags(f, h.tags); ok {
			if !m {
				return false
			}
			continue
		}
		var v string
		switch f.name {
		case "state":
			v = h.state()
		case "instance-type":
			v = h.instanceType
		case "availability-zone":
			v = h.az
		case "auto-placement":
			v = h.autoPlace
		case "client-token":
			v = h.clientToken
		}
		if !matchAny(f.values, v) {
			return false
		}
	}
	return true
}

func (s *Server) xmlHost(h *host, now time.Time) xmlHost {
	x := xmlHost{
		HostID: h.id, State: h.state(), AvailabilityZone: h.az, AutoPlacement: h.autoPlace,
		HostRecovery: "off", HostMaintenance: "off", ClientToken: h.clientToken, OwnerID: s.opts.OwnerID,
		AllocationTime: h.allocated.UTC().Format(timeFormat), Tags: xmlTags(h.tags),
		Properties: xmlHostProperties{InstanceType: h.instanceType, InstanceFamily: hostFamily(h.instanceType), Sockets: 2, Cores: hostVCPUs / 2, TotalVCPUs: hostVCPUs},
	}
	if !h.released.IsZero() {
		x.ReleaseTime = h.released.UTC().Format(timeFormat)
	}
	live := s.liveOn(h, now)
	for _, id := range live {
		x.Instances = append(x.Instances, xmlHostInstance{InstanceID: id, InstanceType: h.instanceType, OwnerID: s.opts.OwnerID})
	}
	if h.state() == HostAvailable {
		x.AvailableCapacity = &xmlHostCapacity{Instances: []xmlHostTypeCapacity{{
			InstanceType: h.instanceType, Available: s.slots(h) - len(live), Total: s.slots(h),
		}}, AvailableVCPUs: hostVCPUs - len(live)*hostVCPUs/s.slots(h)}
	}
	return x
}

func (s *Server) releaseHosts(p params, now time.Time) (any, *apiError) {
	ids, aerr := p.list("HostId")
	if aerr != nil {
		return nil, aerr
	}
	if len(ids) == 0 {
		return nil, missingParameter("HostId")
	}
	out := &xmlReleaseHostsResponse{Xmlns: ec2Namespace}
	fail := func(id, code, format string, args ...any) {
		e := newError(code, format, args...)
		out.Unsuccessful = append(out.Unsuccessful, xmlUnsuccessful{ResourceID: id, Error: xmlUnsuccessfulError{Code: e.Code, Message: e.Message}})
	}
	for _, id := range ids {
		if !validID(id, "h-") {
			return nil, newError("InvalidHostID.Malformed", "Invalid id: %q", id)
		}
		h, ok := s.hosts[id]
		switch {
		case !ok:
			fail(id, "Client.InvalidHostID.NotFound", "The host ID '%s' does not exist", id)
		case h.state() != HostAvailable:
			fail(id, "Client.InvalidHostID.NotFound", "The host ID '%s' was already released", id)
		case len(s.liveOn(h, now)) > 0:
			fail(id, "Client.HostHasInstances", "Host %s still has running instances: %s", id, strings.Join(s.liveOn(h, now), ", "))
		default:
			h.released = now
			out.Successful = append(out.Successful, id)
		}
	}
	return out, nil
}

// forgetReleasedHosts drops hosts released longer ago than the retention. Callers
// hold s.mu.
func (s *Server) forgetReleasedHosts(now time.Time) {
	keep := s.hostOrder[:0]
	for _, id := range s.hostOrder {
		h := s.hosts[id]
		if !h.released.IsZero() && now.Sub(h.released) >= s.opts.TerminatedRetention {
			delete(s.hosts, id)
			continue
		}
		keep = append(keep, id)
	}
	clear(s.hostOrder[len(keep):])
	s.hostOrder = keep
}

// HostInfo is a snapshot of one dedicated host, for tests.
type HostInfo struct {
	ID           string
	State        string
	InstanceType string
	AZ           string
	Tags         map[string]string
	ClientToken  string
	// Instances are the instances on the host that are not terminated.
	Instances []string
}

// Hosts returns a snapshot of every dedicated host the server still shows, in
// allocation order.
func (s *Server) Hosts() []HostInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.settle(now)
	out := make([]HostInfo, 0, len(s.hostOrder))
	for _, id := range s.hostOrder {
		h := s.hosts[id]
		out = append(out, HostInfo{
			ID: h.id, State: h.state(), InstanceType: h.instanceType, AZ: h.az, Tags: maps.Clone(h.tags),
			ClientToken: h.clientToken, Instances: s.liveOn(h, now),
		})
	}
	return out
}

// SetHostLimit sets how many dedicated hosts of an instance family ("m5") may be
// allocated at once; a negative n removes the limit.
func (s *Server) SetHostLimit(family string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		delete(s.hostLimits, family)
		return
	}
	s.hostLimits[family] = n
}

type xmlAllocateHostsResponse struct {
	XMLName   xml.Name `xml:"AllocateHostsResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	RequestID string   `xml:"requestId"`
	HostIDs   []string `xml:"hostIdSet>item"`
}

type xmlHostProperties struct {
	InstanceType   string `xml:"instanceType"`
	InstanceFamily string `xml:"instanceFamily"`
	Sockets        int    `xml:"sockets"`
	Cores          int    `xml:"cores"`
	TotalVCPUs     int    `xml:"totalVCpus"`
}

type xmlHostInstance struct {
	InstanceID   string `xml:"instanceId"`
	InstanceType string `xml:"instanceType"`
	OwnerID      string `xml:"ownerId"`
}

type xmlHostTypeCapacity struct {
	InstanceType string `xml:"instanceType"`
	Available    int    `xml:"availableCapacity"`
	Total        int    `xml:"totalCapacity"`
}

type xmlHostCapacity struct {
	Instances      []xmlHostTypeCapacity `xml:"availableInstanceCapacity>item"`
	AvailableVCPUs int                   `xml:"availableVCpus"`
}

type xmlHost struct {
	HostID            string            `xml:"hostId"`
	State             string            `xml:"state"`
	AvailabilityZone  string            `xml:"availabilityZone"`
	AutoPlacement     string            `xml:"autoPlacement"`
	HostRecovery      string            `xml:"hostRecovery"`
	HostMaintenance   string            `xml:"hostMaintenance"`
	ClientToken       string            `xml:"clientToken,omitempty"`
	OwnerID           string            `xml:"ownerId"`
	AllocationTime    string            `xml:"allocationTime"`
	ReleaseTime       string            `xml:"releaseTime,omitempty"`
	Properties        xmlHostProperties `xml:"hostProperties"`
	Instances         []xmlHostInstance `xml:"instances>item"`
	AvailableCapacity *xmlHostCapacity  `xml:"availableCapacity,omitempty"`
	Tags              []xmlTag          `xml:"tagSet>item"`
}

type xmlDescribeHostsResponse struct {
	XMLName   xml.Name  `xml:"DescribeHostsResponse"`
	Xmlns     string    `xml:"xmlns,attr"`
	RequestID string    `xml:"requestId"`
	Hosts     []xmlHost `xml:"hostSet>item"`
	NextToken string    `xml:"nextToken,omitempty"`
}

type xmlUnsuccessfulError struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xmlUnsuccessful struct {
	ResourceID string               `xml:"resourceId"`
	Error      xmlUnsuccessfulError `xml:"error"`
}

type xmlReleaseHostsResponse struct {
	XMLName      xml.Name          `xml:"ReleaseHostsResponse"`
	Xmlns        string            `xml:"xmlns,attr"`
	RequestID    string            `xml:"requestId"`
	Successful   []string          `xml:"successful>item"`
	Unsuccessful []xmlUnsuccessful `xml:"unsuccessful>item"`
}
