package ec2sim

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// launchTemplate is a launch template with its single version.
type launchTemplate struct {
	id, name string
	seq      uint64
	// data holds the LaunchTemplateData members under the names RunInstances uses
	// ("KeyName", "NetworkInterface.1.SubnetId", ...).
	data    url.Values
	tags    map[string]string
	token   string
	created time.Time
}

// fleetToken is the first answer of a CreateFleet call under a client token.
type fleetToken struct {
	fingerprint string
	resp        xmlCreateFleetResponse
}

var templateNameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_]{3,128}$`)

const templateDataPrefix = "LaunchTemplateData."

func (s *Server) createLaunchTemplate(p params, now time.Time) (any, *apiError) {
	token := p.str("ClientToken")
	if token != "" {
		for _, t := range s.templates {
			if t.token == token {
				return s.templateResponse("CreateLaunchTemplateResponse", t), nil
			}
		}
	}
	name := p.str("LaunchTemplateName")
	if name == "" {
		return nil, missingParameter("LaunchTemplateName")
	}
	if !templateNameRE.MatchString(name) {
		return nil, newError("InvalidLaunchTemplateName.MalformedException",
			"A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.")
	}
	if s.templateByName(name) != nil {
		return nil, newError("InvalidLaunchTemplateName.AlreadyExistsException",
			"Launch template name already in use.")
	}
	data := url.Values{}
	for k, v := range p.v {
		if rest, ok := strings.CutPrefix(k, templateDataPrefix); ok {
			data[rest] = slices.Clone(v)
		}
	}
	if len(data) == 0 {
		return nil, missingParameter("LaunchTemplateData")
	}
	if id := data.Get("ImageId"); id != "" {
		if _, ok := s.images[id]; !ok {
			return nil, newError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
	}
	if it := data.Get("InstanceType"); it != "" {
		if _, ok := s.types[it]; !ok {
			return nil, invalidParameter("Invalid value '%s' for InstanceType.", it)
		}
	}
	tags := map[string]string{}
	specs, aerr := p.structs("TagSpecification")
	if aerr != nil {
		return nil, aerr
	}
	for _, spec := range specs {
		if rt := spec.str("ResourceType"); rt != "launch-template" {
			return nil, invalidParameter("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		t, aerr := spec.tags("Tag")
		if aerr != nil {
			return nil, aerr
		}
		maps.Copy(tags, t)
	}
	id, seq := s.nextID("lt")
	t := &launchTemplate{id: id, name: name, seq: seq, data: data, tags: tags, token: token, created: now}
	s.templates[id] = t
	return s.templateResponse("CreateLaunchTemplateResponse", t), nil
}

func (s *Server) templateByName(name string) *launchTemplate {
	for _, t := range s.templates {
		if t.name == name {
			return t
		}
	}
	return nil
}

// templateList returns the templates in creation order.
func (s *Server) templateList() []*launchTemplate {
	out := slices.Collect(maps.Values(s.templates))
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (s *Server) xmlTemplate(t *launchTemplate) xmlLaunchTemplate {
	return xmlLaunchTemplate{
		ID: t.id, Name: t.name, CreateTime: t.created.UTC().Format(timeFormat),
		CreatedBy: "arn:aws:iam::" + s.opts.OwnerID + ":root", DefaultVersion: 1, LatestVersion: 1, Tags: xmlTags(t.tags),
	}
}

func (s *Server) templateResponse(name string, t *launchTemplate) *xmlLaunchTemplateResponse {
	return &xmlLaunchTemplateResponse{XMLName: xml.Name{Local: name}, Xmlns: ec2Namespace, Template: s.xmlTemplate(t)}
}

var templateFilters = []string{"launch-template-name", "create-time"}

func (s *Server) describeLaunchTemplates(p params, _ time.Time) (any, *apiError) {
	names, aerr := p.list("LaunchTemplateName")
	if aerr != nil {
		return nil, aerr
	}
	ids, aerr := p.list("LaunchTemplateId")
	if aerr != nil {
		return nil, aerr
	}
	filters, aerr := p.filters()
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkFilters(filters, templateFilters); aerr != nil {
		return nil, aerr
	}
	maxResults, offset, aerr := pagination(p, len(names)+len(ids) > 0, 1, 200)
	if aerr != nil {
		return nil, aerr
	}
	for _, n := range names {
		if s.templateByName(n) == nil {
			return nil, newError("InvalidLaunchTemplateName.NotFoundException",
				"At least one of the launch templates specified in the request does not exist.")
		}
	}
	for _, id := range ids {
		if _, ok := s.templates[id]; !ok {
			return nil, newError("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
	}
	var matched []*launchTemplate
	for _, t := range s.templateList() {
		if len(names) > 0 && !slices.Contains(names, t.name) {
			continue
		}
		if len(ids) > 0 && !slices.Contains(ids, t.id) {
			continue
		}
		if templateMatches(t, filters) {
			matched = append(matched, t)
		}
	}
	page, next := paginate(matched, maxResults, offset)
	out := &xmlDescribeLaunchTemplatesResponse{Xmlns: ec2Namespace, NextToken: next}
	for _, t := range page {
		out.Templates = append(out.Templates, s.xmlTemplate(t))
	}
	return out, nil
}

func templateMatches(t *launchTemplate, filters []filter) bool {
	for _, f := range filters {
		if m, ok := matchTags(f, t.tags); ok {
			if !m {
				return false
			}
			continue
		}
		var v string
		switch f.name {
		case "launch-template-name":
			v = t.name
		case "create-time":
			v = t.created.UTC().Format(timeFormat)
		}
		if !matchAny(f.values, v) {
			return false
		}
	}
	return true
}

// findTemplate resolves a template named by id or by name.
func (s *Server) findTemplate(id, name string) (*launchTemplate, *apiError) {
	switch {
	case id != "" && name != "":
		return nil, newError("InvalidParameterCombination", "LaunchTemplateId and LaunchTemplateName are exclusive")
	case id != "":
		if t, ok := s.templates[id]; ok {
			return t, nil
		}
		return nil, newError("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
	case name != "":
		if t := s.templateByName(name); t != nil {
			return t, nil
		}
		return nil, newError("InvalidLaunchTemplateName.NotFoundException",
			"The specified launch template, with template name %s, does not exist.", name)
	}
	return nil, missingParameter("LaunchTemplateId or LaunchTemplateName")
}

func (s *Server) deleteLaunchTemplate(p params, _ time.Time) (any, *apiError) {
	t, aerr := s.findTemplate(p.str("LaunchTemplateId"), p.str("LaunchTemplateName"))
	if aerr != nil {
		return nil, aerr
	}
	delete(s.templates, t.id)
	return s.templateResponse("DeleteLaunchTemplateResponse", t), nil
}

// Allocation strategies of CreateFleet by market.
var (
	spotStrategies     = []string{"lowest-price", "diversified", "capacity-optimized", "capacity-optimized-prioritized", "price-capacity-optimized"}
	onDemandStrategies = []string{"lowest-price", "prioritized"}
)

// fleetCandidate is one launch template with one override.
type fleetCandidate struct {
	tmpl        *launchTemplate
	version     string
	itype       string
	imageID     string
	subnetID    string
	az          string
	priority    float64
	hasPriority bool
}

func (c fleetCandidate) xml() xmlTemplateAndOverrides {
	x := xmlTemplateAndOverrides{
		Spec:      xmlFleetTemplateSpec{ID: c.tmpl.id, Name: c.tmpl.name, Version: c.version},
		Overrides: xmlFleetOverrides{InstanceType: c.itype, ImageID: c.imageID, SubnetID: c.subnetID, AvailabilityZone: c.az},
	}
	if c.hasPriority {
		x.Overrides.Priority = strconv.FormatFloat(c.priority, 'f', -1, 64)
	}
	return x
}

// createFleet answers CreateFleet of type instant: it launches the target capacity
// from the candidates (each launch template with each of its overrides), in the order
// of the allocation strategy, one candidate after another until the capacity is
// reached. A candidate that fails (no capacity, a bad parameter) is listed among the
// answer's errors and the next is tried; when none launches, the answer has errors
// and no instances, as EC2's. "lowest-price" and "price-capacity-optimized" order the
// candidates by size (vCPUs, then memory), the simulator's stand-in for a price list;
// "prioritized" and "capacity-optimized-prioritized" by the overrides' Priority.
func (s *Server) createFleet(p params, now time.Time) (any, *apiError) {
	token := p.str("ClientToken")
	if len(token) > 64 {
		return nil, invalidParameter("Value (%s) for parameter clientToken is invalid. Length exceeds maximum of 64 ASCII characters.", token)
	}
	fp := fingerprint(p.v)
	if token != "" {
		if f, ok := s.fleets[token]; ok {
			if f.fingerprint != fp {
				return nil, newError("IdempotentParameterMismatch",
					"Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
			}
			resp := f.resp
			return &resp, nil
		}
	}
	if t := p.str("Type"); t != "instant" {
		return nil, invalidParameter("Fleet type '%s' is not supported by this endpoint; use instant", t)
	}
	tc := p.sub("TargetCapacitySpecification")
	if !tc.has("TotalTargetCapacity") {
		return nil, missingParameter("TargetCapacitySpecification.TotalTargetCapacity")
	}
	total, aerr := tc.integer("TotalTargetCapacity", 0)
	if aerr != nil {
		return nil, aerr
	}
	if total < 1 || total > 100 {
		return nil, invalidParameter("TotalTargetCapacity must be between 1 and 100, got %d", total)
	}
	market := tc.str("DefaultTargetCapacityType")
	var strategy string
	switch market {
	case "spot":
		strategy = p.sub("SpotOptions").str("AllocationStrategy")
		if strategy == "" {
			strategy = "lowest-price"
		}
		if !slices.Contains(spotStrategies, strategy) {
			return nil, invalidParameter("Invalid value '%s' for SpotOptions.AllocationStrategy", strategy)
		}
	case "on-demand":
		strategy = p.sub("OnDemandOptions").str("AllocationStrategy")
		if strategy == "" {
			strategy = "lowest-price"
		}
		if !slices.Contains(onDemandStrategies, strategy) {
			return nil, invalidParameter("Invalid value '%s' for OnDemandOptions.AllocationStrategy", strategy)
		}
	case "":
		return nil, missingParameter("TargetCapacitySpecification.DefaultTargetCapacityType")
	default:
		return nil, invalidParameter("Invalid value '%s' for DefaultTargetCapacityType", market)
	}
	candidates, aerr := s.fleetCandidates(p)
	if aerr != nil {
		return nil, aerr
	}
	switch strategy {
	case "prioritized", "capacity-optimized-prioritized":
		sort.SliceStable(candidates, func(i, j int) bool {
			a, b := candidates[i], candidates[j]
			if a.hasPriority != b.hasPriority {
				return a.hasPriority
			}
			return a.priority < b.priority
		})
	case "lowest-price", "price-capacity-optimized":
		sort.SliceStable(candidates, func(i, j int) bool {
			a, b := s.types[candidates[i].itype], s.types[candidates[j].itype]
			if a.VCPUs != b.VCPUs {
				return a.VCPUs < b.VCPUs
			}
			return a.MemMiB < b.MemMiB
		})
	}
	var runTags []params
	specs, aerr := p.structs("TagSpecification")
	if aerr != nil {
		return nil, aerr
	}
	for _, spec := range specs {
		switch rt := spec.str("ResourceType"); rt {
		case "instance", "volume":
			runTags = append(runTags, spec)
		case "fleet":
		default:
			return nil, invalidParameter("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		if _, aerr := spec.tags("Tag"); aerr != nil {
			return nil, aerr
		}
	}

	out := xmlCreateFleetResponse{Xmlns: ec2Namespace, FleetID: s.fleetID()}
	remaining := total
	for _, c := range candidates {
		if remaining == 0 {
			break
		}
		fail := func(e *apiError) {
			s.errs[e.Code]++
			out.Errors = append(out.Errors, xmlFleetError{
				TemplateAndOverrides: c.xml(), Lifecycle: market, Code: e.Code, Message: e.Message,
			})
		}
		// Random capacity shortfalls hit each candidate, as they hit RunInstances.
		if s.rates.Capacity > 0 && s.rng.Float64() < s.rates.Capacity {
			fail(&apiError{Code: "InsufficientInstanceCapacity", Message: defaultMessage("InsufficientInstanceCapacity")})
			continue
		}
		req, aerr := s.parseRun(newParams(c.runValues(market, remaining, runTags)))
		if aerr != nil {
			fail(aerr)
			continue
		}
		r, aerr := s.launch(req, "", now)
		if aerr != nil {
			fail(aerr)
			continue
		}
		remaining -= len(r.instances)
		out.Instances = append(out.Instances, xmlFleetInstance{
			TemplateAndOverrides: c.xml(), Lifecycle: market, InstanceIDs: slices.Clone(r.instances),
			InstanceType: req.itype.Name, AvailabilityZone: req.az, SubnetID: req.subnetID,
		})
	}
	if token != "" {
		s.fleets[token] = &fleetToken{fingerprint: fp, resp: out}
	}
	return &out, nil
}

// fleetID returns a fleet id in EC2's form, fleet- and a UUID.
func (s *Server) fleetID() string {
	s.seq++
	n := s.seq
	return fmt.Sprintf("fleet-5ec2f1ee-%04x-4%03x-8%03x-%012x", (n>>48)&0xffff, (n>>36)&0xfff, (n>>24)&0xfff, n&0xffffffffffff)
}

// fleetCandidates lists each launch template configuration with each of its
// overrides (or alone, without overrides).
func (s *Server) fleetCandidates(p params) ([]fleetCandidate, *apiError) {
	configs, aerr := p.structs("LaunchTemplateConfigs")
	if aerr != nil {
		return nil, aerr
	}
	if len(configs) == 0 {
		return nil, missingParameter("LaunchTemplateConfigs")
	}
	var out []fleetCandidate
	for _, cfg := range configs {
		spec := cfg.sub("LaunchTemplateSpecification")
		t, aerr := s.findTemplate(spec.str("LaunchTemplateId"), spec.str("LaunchTemplateName"))
		if aerr != nil {
			return nil, aerr
		}
		version := spec.str("Version")
		switch version {
		case "$Latest", "$Default", "1":
		case "":
			return nil, missingParameter("LaunchTemplateSpecification.Version")
		default:
			return nil, newError("InvalidLaunchTemplateVersion.NotFound", "Version %s of launch template %s does not exist", version, t.id)
		}
		overrides, aerr := cfg.structs("Overrides")
		if aerr != nil {
			return nil, aerr
		}
		if len(overrides) == 0 {
			out = append(out, fleetCandidate{tmpl: t, version: version, itype: t.data.Get("InstanceType"), imageID: t.data.Get("ImageId")})
			continue
		}
		for _, o := range overrides {
			c := fleetCandidate{
				tmpl: t, version: version, itype: o.str("InstanceType"), imageID: o.str("ImageId"),
				subnetID: o.str("SubnetId"), az: o.str("AvailabilityZone"),
			}
			if c.itype == "" {
				c.itype = t.data.Get("InstanceType")
			}
			if c.imageID == "" {
				c.imageID = t.data.Get("ImageId")
			}
			if o.has("Priority") {
				f, err := strconv.ParseFloat(o.str("Priority"), 64)
				if err != nil {
					return nil, invalidParameter("Invalid value '%s' for Priority", o.str("Priority"))
				}
				c.priority, c.hasPriority = f, true
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// runValues are the RunInstances arguments of one candidate: the template's data with
// the override applied, the market, the count and the fleet's tags.
func (c fleetCandidate) runValues(market string, count int, tagSpecs []params) url.Values {
	v := url.Values{}
	for k, vs := range c.tmpl.data {
		v[k] = slices.Clone(vs)
	}
	v.Set("ImageId", c.imageID)
	v.Set("InstanceType", c.itype)
	if c.subnetID != "" {
		if _, ok := v["NetworkInterface.1.DeviceIndex"]; ok {
			v.Set("NetworkInterface.1.SubnetId", c.subnetID)
		} else {
			v.Set("SubnetId", c.subnetID)
		}
	}
	if c.az != "" {
		v.Set("Placement.AvailabilityZone", c.az)
	}
	if market == "spot" {
		v.Set("InstanceMarketOptions.MarketType", "spot")
	}
	v.Set("MinCount", strconv.Itoa(count))
	v.Set("MaxCount", strconv.Itoa(count))
	next := 1
	for k := range v {
		if rest, ok := strings.CutPrefix(k, "TagSpecification."); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ".", 2)[0])
			next = max(next, n+1)
		}
	}
	for _, spec := range tagSpecs {
		prefix := fmt.Sprintf("TagSpecification.%d.", next)
		next++
		for k, vs := range spec.v {
			if rest, ok := strings.CutPrefix(k, spec.prefix); ok {
				v[prefix+rest] = slices.Clone(vs)
			}
		}
	}
	return v
}

type xmlLaunchTemplate struct {
	ID             string   `xml:"launchTemplateId"`
	Name           string   `xml:"launchTemplateName"`
	CreateTime     string   `xml:"createTime"`
	CreatedBy      string   `xml:"createdBy"`
	DefaultVersion int      `xml:"defaultVersionNumber"`
	LatestVersion  int      `xml:"latestVersionNumber"`
	Tags           []xmlTag `xml:"tagSet>item"`
}

type xmlLaunchTemplateResponse struct {
	XMLName   xml.Name
	Xmlns     string            `xml:"xmlns,attr"`
	RequestID string            `xml:"requestId"`
	Template  xmlLaunchTemplate `xml:"launchTemplate"`
}

type xmlDescribeLaunchTemplatesResponse struct {
	XMLName   xml.Name            `xml:"DescribeLaunchTemplatesResponse"`
	Xmlns     string              `xml:"xmlns,attr"`
	RequestID string              `xml:"requestId"`
	Templates []xmlLaunchTemplate `xml:"launchTemplates>item"`
	NextToken string              `xml:"nextToken,omitempty"`
}

type xmlFleetTemplateSpec struct {
	ID      string `xml:"launchTemplateId"`
	Name    string `xml:"launchTemplateName"`
	Version string `xml:"version"`
}

type xmlFleetOverrides struct {
	InstanceType     string `xml:"instanceType,omitempty"`
	ImageID          string `xml:"imageId,omitempty"`
	SubnetID         string `xml:"subnetId,omitempty"`
	AvailabilityZone string `xml:"availabilityZone,omitempty"`
	Priority         string `xml:"priority,omitempty"`
}

type xmlTemplateAndOverrides struct {
	Spec      xmlFleetTemplateSpec `xml:"launchTemplateSpecification"`
	Overrides xmlFleetOverrides    `xml:"overrides"`
}

type xmlFleetError struct {
	TemplateAndOverrides xmlTemplateAndOverrides `xml:"launchTemplateAndOverrides"`
	Lifecycle            string                  `xml:"lifecycle"`
	Code                 string                  `xml:"errorCode"`
	Message              string                  `xml:"errorMessage"`
}

type xmlFleetInstance struct {
	TemplateAndOverrides xmlTemplateAndOverrides `xml:"launchTemplateAndOverrides"`
	Lifecycle            string                  `xml:"lifecycle"`
	InstanceIDs          []string                `xml:"instanceIds>item"`
	InstanceType         string                  `xml:"instanceType"`
	AvailabilityZone     string                  `xml:"availabilityZone"`
	SubnetID             string                  `xml:"subnetId,omitempty"`
}

type xmlCreateFleetResponse struct {
	XMLName   xml.Name           `xml:"CreateFleetResponse"`
	Xmlns     string             `xml:"xmlns,attr"`
	RequestID string             `xml:"requestId"`
	FleetID   string             `xml:"fleetId"`
	Errors    []xmlFleetError    `xml:"errorSet>item"`
	Instances []xmlFleetInstance `xml:"fleetInstanceSet>item"`
}
