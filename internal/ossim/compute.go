package ossim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// noValidHostMessage is Nova's fault message for a scheduling failure.
const noValidHostMessage = "No valid host was found. There are not enough hosts available."

// server is a Nova server.
type server struct {
	id, name, projectID, keyName, az, imageID string
	accessIPv4, accessIPv6                    string
	userData                                  string
	flavor                                    Flavor
	secGroups                                 []string
	metadata                                  map[string]string
	configDrive                               bool
	created, bootAt                           time.Time
	fault                                     *fault
	deletedAt                                 time.Time
	portIDs                                   []string
	volumes                                   []attachment
}

type fault struct {
	code    int
	message string
	created time.Time
}

type attachment struct {
	volumeID            string
	deleteOnTermination bool
}

func (sv *server) deleting() bool { return !sv.deletedAt.IsZero() }

// status returns the Nova status of a server at now.
func (s *Server) status(sv *server, now time.Time) string {
	switch {
	case sv.fault != nil:
		return "ERROR"
	case now.Before(sv.bootAt):
		return "BUILD"
	}
	return "ACTIVE"
}

var computeRoutes = []route{
	{pattern: "GET /compute", op: "Versions", svc: svcCompute, public: true, h: (*Server).computeVersions},
	{pattern: "GET /compute/{$}", op: "Versions", svc: svcCompute, public: true, h: (*Server).computeVersions},
	{pattern: "GET " + computePrefix, op: "Versions", svc: svcCompute, public: true, h: (*Server).computeVersion},
	{pattern: "GET " + computePrefix + "/{$}", op: "Versions", svc: svcCompute, public: true, h: (*Server).computeVersion},
	{pattern: "POST " + computePrefix + "/servers", op: "CreateServer", svc: svcCompute, h: (*Server).createServer},
	{pattern: "GET " + computePrefix + "/servers", op: "ListServers", svc: svcCompute, h: (*Server).listServersBrief},
	{pattern: "GET " + computePrefix + "/servers/detail", op: "ListServers", svc: svcCompute, h: (*Server).listServers},
	{pattern: "GET " + computePrefix + "/servers/{id}", op: "GetServer", svc: svcCompute, h: (*Server).getServer},
	{pattern: "DELETE " + computePrefix + "/servers/{id}", op: "DeleteServer", svc: svcCompute, h: (*Server).deleteServer},
	{pattern: "GET " + computePrefix + "/servers/{id}/metadata", op: "GetServerMetadata", svc: svcCompute, h: (*Server).getServerMetadata},
	{pattern: "GET " + computePrefix + "/servers/{id}/os-interface", op: "ListServerInterfaces", svc: svcCompute, h: (*Server).listServerInterfaces},
	{pattern: "GET " + computePrefix + "/flavors", op: "ListFlavors", svc: svcCompute, h: (*Server).listFlavorsBrief},
	{pattern: "GET " + computePrefix + "/flavors/detail", op: "ListFlavors", svc: svcCompute, h: (*Server).listFlavors},
	{pattern: "GET " + computePrefix + "/flavors/{id}", op: "GetFlavor", svc: svcCompute, h: (*Server).getFlavor},
	{pattern: "GET " + computePrefix + "/limits", op: "GetLimits", svc: svcCompute, h: (*Server).getLimits},
	{pattern: "GET " + computePrefix + "/os-availability-zone", op: "ListAvailabilityZones", svc: svcCompute, h: (*Server).listAZs},
	{pattern: "GET " + computePrefix + "/os-availability-zone/detail", op: "ListAvailabilityZones", svc: svcCompute, h: (*Server).listAZs},
}

func (s *Server) computeV21Doc(c *call) map[string]any {
	return versionDoc("v2.1", "CURRENT", c.base+computePrefix+"/", map[string]any{
		"version": maxMicroversion, "min_version": minMicroversion,
	})
}

func (s *Server) computeVersions(c *call) (*result, *apiError) {
	return &result{status: http.StatusMultipleChoices, body: map[string]any{"versions": []any{s.computeV21Doc(c)}}}, nil
}

func (s *Server) computeVersion(c *call) (*result, *apiError) {
	return ok(map[string]any{"version": s.computeV21Doc(c)})
}

type blockDevice struct {
	SourceType          string   `json:"source_type"`
	DestinationType     string   `json:"destination_type"`
	UUID                string   `json:"uuid"`
	BootIndex           *flexInt `json:"boot_index"`
	VolumeSize          flexInt  `json:"volume_size"`
	DeleteOnTermination flexBool `json:"delete_on_termination"`
	VolumeType          string   `json:"volume_type"`
}

// flexInt is an integer Nova accepts as a JSON number or a numeric string.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case nil:
		*n = 0
	case float64:
		*n = flexInt(t)
	case string:
		i, err := strconv.Atoi(t)
		if err != nil {
			return fmt.Errorf("%q is not an integer", t)
		}
		*n = flexInt(i)
	default:
		return fmt.Errorf("%s is not an integer", b)
	}
	return nil
}

// flexBool is a boolean Nova accepts as a JSON boolean or a string such as "true".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case nil:
		*f = false
	case bool:
		*f = flexBool(t)
	case string:
		p, err := strconv.ParseBool(t)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", t)
		}
		*f = flexBool(p)
	default:
		return fmt.Errorf("%s is not a boolean", b)
	}
	return nil
}

type createServerRequest struct {
	Server *struct {
		Name             string                  `json:"name"`
		ImageRef         string                  `json:"imageRef"`
		FlavorRef        string                  `json:"flavorRef"`
		Networks         json.RawMessage         `json:"networks"`
		KeyName          string                  `json:"key_name"`
		SecurityGroups   []struct{ Name string } `json:"security_groups"`
		AvailabilityZone string                  `json:"availability_zone"`
		UserData         *string                 `json:"user_data"`
		Metadata         map[string]string       `json:"metadata"`
		ConfigDrive      any                     `json:"config_drive"`
		BlockDevices     []blockDevice           `json:"block_device_mapping_v2"`
		AccessIPv4       string                  `json:"accessIPv4"`
		AccessIPv6       string                  `json:"accessIPv6"`
		MinCount         int                     `json:"min_count"`
		MaxCount         int                     `json:"max_count"`
	} `json:"server"`
}

// createServer accepts a server (202) after checking its flavor, image, networks,
// availability zone, block devices and the quota; it boots in the background of the
// clock (BUILD until BootTime has passed).
func (s *Server) createServer(c *call) (*result, *apiError) {
	var req createServerRequest
	if e := c.decode(&req); e != nil {
		return nil, e
	}
	in := req.Server
	if in == nil {
		return nil, badRequest("Invalid input for field/attribute server. Value: None. 'server' is a required property")
	}
	if in.Name == "" || len(in.Name) > 255 {
		return nil, badRequest("Invalid input for field/attribute name. Value: " + in.Name + ". 'name' must be 1 to 255 characters")
	}
	fl, found := s.findFlavor(in.FlavorRef)
	if !found {
		return nil, badRequest(fmt.Sprintf("Flavor %s could not be found.", in.FlavorRef))
	}
	bootVolume := slices.ContainsFunc(in.BlockDevices, func(b blockDevice) bool {
		return b.DestinationType == "volume" && b.BootIndex != nil && *b.BootIndex == 0
	})
	imageID := ""
	if in.ImageRef != "" {
		im, found := s.findImage(in.ImageRef)
		if !found {
			return nil, badRequest(fmt.Sprintf("Image %s could not be found.", in.ImageRef))
		}
		imageID = im.ID
	} else if !bootVolume {
		return nil, badRequest("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.")
	}
	for _, b := range in.BlockDevices {
		if e := s.checkBlockDevice(b); e != nil {
			return nil, e
		}
	}
	nets, e := s.requestedNetworks(in.Networks)
	if e != nil {
		return nil, e
	}
	az := in.AvailabilityZone
	if az == "" {
		az = s.opts.AZs[0]
	} else if !slices.Contains(s.opts.AZs, az) {
		return nil, badRequest("The requested availability zone is not available")
	}
	userData := ""
	if in.UserData != nil {
		if _, err := base64.StdEncoding.DecodeString(*in.UserData); err != nil {
			return nil, badRequest("User data needs to be valid base 64.")
		}
		userData = *in.UserData
	}
	for k, v := range in.Metadata {
		if len(k) > 255 || len(v) > 255 {
			return nil, badRequest("Invalid input for field/attribute metadata. Keys and values must be at most 255 characters")
		}
	}
	count := max(in.MaxCount, in.MinCount, 1)
	if in.MinCount > count {
		return nil, badRequest("min_count must be <= max_count")
	}
	if e := s.checkQuota(fl, count); e != nil {
		return nil, e
	}
	secGroups := []string{}
	for _, g := range in.SecurityGroups {
		secGroups = append(secGroups, g.Name)
	}
	if len(secGroups) == 0 {
		secGroups = []string{"default"}
	}
	var first *server
	for i := range count {
		name := in.Name
		if count > 1 {
			name = fmt.Sprintf("%s-%d", in.Name, i+1)
		}
		sv := &server{
			id: s.newID(), name: name, projectID: c.tok.projectID, keyName: in.KeyName, az: az, imageID: imageID,
			accessIPv4: in.AccessIPv4, accessIPv6: in.AccessIPv6, userData: userData, flavor: fl,
			secGroups: secGroups, metadata: cloneMap(in.Metadata), configDrive: truthy(in.ConfigDrive),
			created: c.now, bootAt: c.now.Add(s.opts.BootTime),
		}
		if c.noValidHost {
			sv.fault = &fault{code: http.StatusInternalServerError, message: noValidHostMessage, created: c.now}
		} else {
			s.attach(sv, nets, c.now)
			for _, b := range in.BlockDevices {
				s.attachBlockDevice(sv, b, c.now)
			}
		}
		s.servers[sv.id] = sv
		s.order = append(s.order, sv.id)
		s.created++
		if node := sv.metadata[DefaultNodeMetadata]; node != "" {
			s.byNode[node]++
		}
		if first == nil {
			first = sv
		}
	}
	groups := []map[string]string{}
	for _, g := range secGroups {
		groups = append(groups, map[string]string{"name": g})
	}
	self := c.base + computePrefix + "/servers/" + first.id
	return &result{
		status: http.StatusAccepted,
		header: map[string]string{"Location": self},
		body: map[string]any{"server": map[string]any{
			"id": first.id, "OS-DCF:diskConfig": "MANUAL", "security_groups": groups, "adminPass": hashID(first.id)[:12],
			"links": []map[string]string{{"rel": "self", "href": self}, {"rel": "bookmark", "href": self}},
		}},
	}, nil
}

func truthy(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		b, _ := strconv.ParseBool(t)
		return b
	}
	return false
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *Server) findFlavor(ref string) (Flavor, bool) {
	for _, f := range s.flavors {
		if f.ID == ref || f.Name == ref {
			return f, true
		}
	}
	return Flavor{}, false
}

func (s *Server) findImage(ref string) (Image, bool) {
	for _, im := range s.images {
		if im.ID == ref {
			return im, true
		}
	}
	return Image{}, false
}

func (s *Server) findNetwork(ref string) (Network, bool) {
	for _, n := range s.networks {
		if n.ID == ref {
			return n, true
		}
	}
	return Network{}, false
}

// requestedNetworks returns the networks a create asked for: the "networks" list,
// "none", or (absent or "auto") the default networks.
func (s *Server) requestedNetworks(raw json.RawMessage) ([]Network, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return s.defaultNetworks(), nil
	}
	var word string
	if json.Unmarshal(raw, &word) == nil {
		switch word {
		case "auto":
			return s.defaultNetworks(), nil
		case "none":
			return nil, nil
		}
		return nil, badRequest("Invalid input for field/attribute networks. Value: " + word + ". 'networks' must be a list, 'auto' or 'none'")
	}
	var list []struct {
		UUID string `json:"uuid"`
		Port string `json:"port"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, badRequest("Invalid input for field/attribute networks: " + err.Error())
	}
	var out []Network
	for _, n := range list {
		if n.Port != "" {
			return nil, badRequest(fmt.Sprintf("Port %s could not be found.", n.Port))
		}
		nw, found := s.findNetwork(n.UUID)
		if !found {
			return nil, badRequest(fmt.Sprintf("Network %s could not be found.", n.UUID))
		}
		out = append(out, nw)
	}
	return out, nil
}

// defaultNetworks is where a server without a network list is attached: the first
// tenant (non-external) network, else the first network.
func (s *Server) defaultNetworks() []Network {
	for _, n := range s.networks {
		if !n.External {
			return []Network{n}
		}
	}
	return s.networks[:1]
}

func (s *Server) checkBlockDevice(b blockDevice) *apiError {
	switch b.SourceType {
	case "image":
		if _, found := s.findImage(b.UUID); !found {
			return badRequest(fmt.Sprintf("Image %s could not be found.", b.UUID))
		}
		if b.DestinationType == "volume" && b.VolumeSize <= 0 {
			return badRequest("Block Device Mapping is Invalid: Images with destination_type 'volume' need to have a non-zero size specified")
		}
	case "blank":
		if b.VolumeSize <= 0 {
			return badRequest("Block Device Mapping is Invalid: You specified more local devices than the limit allows")
		}
	case "volume":
		v := s.volumes[b.UUID]
		if v == nil {
			return badRequest(fmt.Sprintf("Block Device Mapping is Invalid: failed to get volume %s.", b.UUID))
		}
		if v.status != "available" {
			return badRequest(fmt.Sprintf("Invalid volume: volume '%s' status must be 'available'. Currently in '%s'", b.UUID, v.status))
		}
	default:
		return badRequest(fmt.Sprintf("Block Device Mapping is Invalid: source_type %q is not supported.", b.SourceType))
	}
	return nil
}

// attachBlockDevice creates (or takes) the volume of a block device mapping that
// lands on a volume and attaches it to the server.
func (s *Server) attachBlockDevice(sv *server, b blockDevice, now time.Time) {
	if b.DestinationType != "volume" && b.SourceType != "volume" {
		return
	}
	device := fmt.Sprintf("/dev/vd%c", 'a'+len(sv.volumes))
	var v *volume
	if b.SourceType == "volume" {
		v = s.volumes[b.UUID]
	} else {
		v = &volume{
			id: s.newID(), size: int(b.VolumeSize), az: sv.az, created: now, projectID: sv.projectID,
			volumeType: firstNonEmpty(b.VolumeType, "lvmdriver-1"), metadata: cloneMap(sv.metadata),
		}
		if b.SourceType == "image" {
			im, _ := s.findImage(b.UUID)
			v.bootable = true
			v.imageMeta = map[string]string{"image_id": im.ID, "image_name": im.Name}
		}
		s.volumes[v.id] = v
		s.volOrder = append(s.volOrder, v.id)
	}
	v.status = "in-use"
	v.serverID = sv.id
	v.device = device
	v.attachedAt = now
	sv.volumes = append(sv.volumes, attachment{volumeID: v.id, deleteOnTermination: bool(b.DeleteOnTermination)})
}

type usage struct{ instances, cores, ram int }

// usage returns what the servers (managed or not, in any state until they are gone)
// use of the limits. Callers hold s.mu.
func (s *Server) usage() usage {
	var u usage
	for _, sv := range s.servers {
		u.instances++
		u.cores += sv.flavor.VCPUs
		u.ram += sv.flavor.RAM
	}
	return u
}

func quotaExceeded(resource string, requested, used, limit int) *apiError {
	return newError(http.StatusForbidden, KindQuota, fmt.Sprintf(
		"Quota exceeded for %s: Requested %d, but already used %d of %d %s", resource, requested, used, limit, resource))
}

// checkQuota answers Nova's 403 when count servers of fl would exceed a limit.
func (s *Server) checkQuota(fl Flavor, count int) *apiError {
	u := s.usage()
	for _, q := range []struct {
		name             string
		req, used, limit int
	}{
		{"instances", count, u.instances, s.limits.MaxInstances},
		{"cores", count * fl.VCPUs, u.cores, s.limits.MaxCores},
		{"ram", count * fl.RAM, u.ram, s.limits.MaxRAM},
	} {
		if q.limit >= 0 && q.used+q.req > q.limit {
			return quotaExceeded(q.name, q.req, q.used, q.limit)
		}
	}
	return nil
}

func (s *Server) lookupServer(c *call) (*server, *apiError) {
	id := c.r.PathValue("id")
	sv := s.servers[id]
	if sv == nil {
		return nil, notFound("NotFound", fmt.Sprintf("Instance %s could not be found.", id))
	}
	return sv, nil
}

func (s *Server) getServer(c *call) (*result, *apiError) {
	sv, e := s.lookupServer(c)
	if e != nil {
		return nil, e
	}
	return ok(map[string]any{"server": s.serverBody(c, sv)})
}

func (s *Server) getServerMetadata(c *call) (*result, *apiError) {
	sv, e := s.lookupServer(c)
	if e != nil {
		return nil, e
	}
	return ok(map[string]any{"metadata": sv.metadata})
}

// deleteServer starts deleting a server: it stays listed with task_state "deleting"
// for DeleteTime, then disappears with its ports and delete-on-termination volumes.
func (s *Server) deleteServer(c *call) (*result, *apiError) {
	sv, e := s.lookupServer(c)
	if e != nil {
		return nil, e
	}
	if sv.deletedAt.IsZero() {
		sv.deletedAt = c.now
		s.settle(c.now)
	}
	return noContent()
}

// matchingServers returns the servers the list filters of c select, newest first.
func (s *Server) matchingServers(c *call) (page[*server], *apiError) {
	var nameRE *regexp.Regexp
	if n := c.query("name"); n != "" {
		re, err := regexp.Compile(n)
		if err != nil {
			return page[*server]{}, badRequest(fmt.Sprintf("Invalid input for query parameters name. Value: %s. %v", n, err))
		}
		nameRE = re
	}
	status := strings.ToUpper(c.query("status"))
	var out []*server
	for _, id := range slices.Backward(s.order) {
		sv := s.servers[id]
		switch {
		case nameRE != nil && !nameRE.MatchString(sv.name),
			status != "" && s.status(sv, c.now) != status,
			!filterValue(c, "flavor", sv.flavor.ID),
			!filterValue(c, "image", sv.imageID),
			!filterValue(c, "availability_zone", sv.az),
			!filterValue(c, "key_name", sv.keyName):
			continue
		}
		out = append(out, sv)
	}
	return paginate(c, out, func(sv *server) string { return sv.id })
}

func (s *Server) listServers(c *call) (*result, *apiError) {
	list, e := s.matchingServers(c)
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, sv := range list.items {
		items = append(items, s.serverBody(c, sv))
	}
	return ok(pageBody(c, "servers", items, list, func(sv *server) string { return sv.id }))
}

func (s *Server) listServersBrief(c *call) (*result, *apiError) {
	list, e := s.matchingServers(c)
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, sv := range list.items {
		items = append(items, map[string]any{"id": sv.id, "name": sv.name, "links": s.serverLinks(c, sv)})
	}
	return ok(pageBody(c, "servers", items, list, func(sv *server) string { return sv.id }))
}

// page is one page of a list: the items, and whether more follow.
type page[T any] struct {
	items []T
	more  bool
}

// paginate applies the marker and limit query parameters to list.
func paginate[T any](c *call, list []T, id func(T) string) (page[T], *apiError) {
	if m := c.query("marker"); m != "" {
		i := slices.IndexFunc(list, func(t T) bool { return id(t) == m })
		if i < 0 {
			return page[T]{}, badRequest(fmt.Sprintf("marker [%s] not found", m))
		}
		list = list[i+1:]
	}
	if l := c.query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return page[T]{}, badRequest("Invalid input for query parameters limit. Value: " + l)
		}
		if n < len(list) {
			return page[T]{items: list[:n:n], more: true}, nil
		}
	}
	return page[T]{items: list}, nil
}

// pageBody returns a list body, with a next link (KEY_links) when more items follow.
func pageBody[T any](c *call, key string, items []any, p page[T], id func(T) string) map[string]any {
	body := map[string]any{key: items}
	if p.more && len(p.items) > 0 {
		q := c.r.URL.Query()
		q.Set("marker", id(p.items[len(p.items)-1]))
		next := url.URL{Path: c.r.URL.Path, RawQuery: q.Encode()}
		body[key+"_links"] = []map[string]string{{"rel": "next", "href": c.base + next.String()}}
	}
	return body
}

func (s *Server) serverLinks(c *call, sv *server) []map[string]string {
	self := c.base + computePrefix + "/servers/" + sv.id
	return []map[string]string{{"rel": "self", "href": self}, {"rel": "bookmark", "href": self}}
}

// serverBody renders a server as Nova's detailed view does.
func (s *Server) serverBody(c *call, sv *server) map[string]any {
	status := s.status(sv, c.now)
	vmState := map[string]string{"BUILD": "building", "ACTIVE": "active", "ERROR": "error"}[status]
	var taskState any
	switch {
	case sv.deleting():
		taskState = "deleting"
	case status == "BUILD":
		taskState = "spawning"
	}
	power, progress := 0, 0
	if status == "ACTIVE" {
		power, progress = 1, 100
	}
	var image any = ""
	if sv.imageID != "" {
		image = map[string]any{"id": sv.imageID, "links": []map[string]string{{"rel": "bookmark", "href": c.base + computePrefix + "/images/" + sv.imageID}}}
	}
	var keyName any
	if sv.keyName != "" {
		keyName = sv.keyName
	}
	groups := []map[string]string{}
	for _, g := range sv.secGroups {
		groups = append(groups, map[string]string{"name": g})
	}
	vols := []map[string]any{}
	for _, a := range sv.volumes {
		vols = append(vols, map[string]any{"id": a.volumeID, "delete_on_termination": a.deleteOnTermination})
	}
	configDrive := ""
	if sv.configDrive {
		configDrive = "True"
	}
	hostID := ""
	if sv.fault == nil {
		hostID = strings.ReplaceAll(hashID("host:"+sv.az+sv.projectID), "-", "")
	}
	body := map[string]any{
		"id": sv.id, "name": sv.name, "status": status, "tenant_id": sv.projectID, "user_id": hashID("user:" + sv.projectID),
		"created": sv.created.UTC().Format(novaTime), "updated": sv.created.UTC().Format(novaTime),
		"hostId": hostID, "progress": progress, "accessIPv4": sv.accessIPv4, "accessIPv6": sv.accessIPv6,
		"addresses": s.addresses(sv), "image": image,
		"flavor": map[string]any{
			"id": sv.flavor.ID, "original_name": sv.flavor.Name, "vcpus": sv.flavor.VCPUs, "ram": sv.flavor.RAM,
			"disk": sv.flavor.Disk, "ephemeral": 0, "swap": 0, "extra_specs": map[string]string{},
		},
		"metadata": sv.metadata, "key_name": keyName, "links": s.serverLinks(c, sv), "security_groups": groups,
		"OS-EXT-AZ:availability_zone": sv.az, "OS-EXT-STS:vm_state": vmState, "OS-EXT-STS:task_state": taskState,
		"OS-EXT-STS:power_state": power, "os-extended-volumes:volumes_attached": vols, "config_drive": configDrive,
		"OS-DCF:diskConfig": "MANUAL", "OS-SRV-USG:terminated_at": nil, "tags": []string{}, "locked": false,
		"description": nil, "host_status": "UP",
	}
	if status == "ACTIVE" {
		body["OS-SRV-USG:launched_at"] = sv.bootAt.UTC().Format(cinderTime)
	}
	if sv.fault != nil {
		body["fault"] = map[string]any{"code": sv.fault.code, "message": sv.fault.message, "created": sv.fault.created.UTC().Format(novaTime)}
	}
	return body
}

// addresses renders the server's ports and their floating IPs by network name.
func (s *Server) addresses(sv *server) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, pid := range sv.portIDs {
		p := s.ports[pid]
		if p == nil {
			continue
		}
		nw, _ := s.findNetwork(p.networkID)
		out[nw.Name] = append(out[nw.Name], map[string]any{
			"version": ipVersion(p.ip), "addr": p.ip, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": p.mac,
		})
		for _, fid := range s.fipOrder {
			if f := s.fips[fid]; f.portID == p.id {
				out[nw.Name] = append(out[nw.Name], map[string]any{
					"version": ipVersion(f.addr), "addr": f.addr, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": p.mac,
				})
			}
		}
	}
	return out
}

func (s *Server) listServerInterfaces(c *call) (*result, *apiError) {
	sv, e := s.lookupServer(c)
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, pid := range sv.portIDs {
		p := s.ports[pid]
		if p == nil {
			continue
		}
		items = append(items, map[string]any{
			"port_state": s.portStatus(p, c.now), "port_id": p.id, "net_id": p.networkID, "mac_addr": p.mac,
			"fixed_ips": []map[string]string{{"subnet_id": p.subnetID, "ip_address": p.ip}},
		})
	}
	return ok(map[string]any{"interfaceAttachments": items})
}

func (s *Server) flavorBody(c *call, f Flavor) map[string]any {
	self := c.base + computePrefix + "/flavors/" + f.ID
	return map[string]any{
		"id": f.ID, "name": f.Name, "vcpus": f.VCPUs, "ram": f.RAM, "disk": f.Disk, "swap": "",
		"OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": false, "os-flavor-access:is_public": true,
		"rxtx_factor": 1.0, "description": nil, "extra_specs": map[string]string{},
		"links": []map[string]string{{"rel": "self", "href": self}, {"rel": "bookmark", "href": self}},
	}
}

func (s *Server) matchingFlavors(c *call) (page[Flavor], *apiError) {
	minDisk, _ := strconv.Atoi(c.query("minDisk"))
	minRAM, _ := strconv.Atoi(c.query("minRam"))
	var out []Flavor
	for _, f := range s.flavors {
		if f.Disk >= minDisk && f.RAM >= minRAM {
			out = append(out, f)
		}
	}
	return paginate(c, out, func(f Flavor) string { return f.ID })
}

func (s *Server) listFlavors(c *call) (*result, *apiError) {
	list, e := s.matchingFlavors(c)
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, f := range list.items {
		items = append(items, s.flavorBody(c, f))
	}
	return ok(pageBody(c, "flavors", items, list, func(f Flavor) string { return f.ID }))
}

func (s *Server) listFlavorsBrief(c *call) (*result, *apiError) {
	list, e := s.matchingFlavors(c)
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, f := range list.items {
		b := s.flavorBody(c, f)
		items = append(items, map[string]any{"id": f.ID, "name": f.Name, "links": b["links"], "description": nil})
	}
	return ok(pageBody(c, "flavors", items, list, func(f Flavor) string { return f.ID }))
}

func (s *Server) getFlavor(c *call) (*result, *apiError) {
	id := c.r.PathValue("id")
	for _, f := range s.flavors {
		if f.ID == id {
			return ok(map[string]any{"flavor": s.flavorBody(c, f)})
		}
	}
	return nil, notFound("NotFound", fmt.Sprintf("Flavor %s could not be found.", id))
}

func (s *Server) getLimits(c *call) (*result, *apiError) {
	u := s.usage()
	return ok(map[string]any{"limits": map[string]any{
		"rate": []any{},
		"absolute": map[string]any{
			"maxTotalInstances": s.limits.MaxInstances, "maxTotalCores": s.limits.MaxCores, "maxTotalRAMSize": s.limits.MaxRAM,
			"totalInstancesUsed": u.instances, "totalCoresUsed": u.cores, "totalRAMUsed": u.ram,
			"maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
			"maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
			"maxTotalFloatingIps": -1, "totalFloatingIpsUsed": len(s.fips), "maxSecurityGroups": -1,
			"maxSecurityGroupRules": -1, "totalSecurityGroupsUsed": 0, "totalServerGroupsUsed": 0,
		},
	}})
}

func (s *Server) listAZs(c *call) (*result, *apiError) {
	items := []any{}
	for _, az := range s.opts.AZs {
		items = append(items, map[string]any{"zoneName": az, "zoneState": map[string]bool{"available": true}, "hosts": nil})
	}
	return ok(map[string]any{"availabilityZoneInfo": items})
}

// settle removes the servers whose deletion has finished, with their ports; floating
// IPs on those ports are disassociated, volumes marked delete-on-termination are
// deleted and the others detached. Callers hold s.mu.
func (s *Server) settle(now time.Time) {
	kept := s.order[:0]
	for _, id := range s.order {
		sv := s.servers[id]
		if sv.deletedAt.IsZero() || now.Before(sv.deletedAt.Add(s.opts.DeleteTime)) {
			kept = append(kept, id)
			continue
		}
		for _, pid := range sv.portIDs {
			s.removePort(pid)
		}
		for _, a := range sv.volumes {
			v := s.volumes[a.volumeID]
			if v == nil {
				continue
			}
			if a.deleteOnTermination {
				s.removeVolume(v.id)
				continue
			}
			v.status, v.serverID, v.device = "available", "", ""
		}
		delete(s.servers, id)
	}
	clear(s.order[len(kept):])
	s.order = kept
}
