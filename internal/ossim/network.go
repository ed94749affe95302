package ossim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// port is a Neutron port; every server network attachment has one.
type port struct {
	id, networkID, subnetID, serverID, projectID string
	mac, ip                                      string
	created                                      time.Time
}

// floatingIP is a Neutron floating IP.
type floatingIP struct {
	id, networkID, addr, portID, fixedIP, projectID, description string
	created                                                      time.Time
}

const networkV2 = networkPrefix + "/v2.0"

var networkRoutes = []route{
	{pattern: "GET " + networkPrefix, op: "Versions", svc: svcNetwork, public: true, h: (*Server).networkVersions},
	{pattern: "GET " + networkPrefix + "/{$}", op: "Versions", svc: svcNetwork, public: true, h: (*Server).networkVersions},
	{pattern: "GET " + networkV2, op: "Versions", svc: svcNetwork, public: true, h: (*Server).networkResources},
	{pattern: "GET " + networkV2 + "/{$}", op: "Versions", svc: svcNetwork, public: true, h: (*Server).networkResources},
	{pattern: "GET " + networkV2 + "/networks", op: "ListNetworks", svc: svcNetwork, h: (*Server).listNetworks},
	{pattern: "GET " + networkV2 + "/networks/{id}", op: "GetNetwork", svc: svcNetwork, h: (*Server).getNetwork},
	{pattern: "GET " + networkV2 + "/subnets", op: "ListSubnets", svc: svcNetwork, h: (*Server).listSubnets},
	{pattern: "GET " + networkV2 + "/ports", op: "ListPorts", svc: svcNetwork, h: (*Server).listPorts},
	{pattern: "GET " + networkV2 + "/ports/{id}", op: "GetPort", svc: svcNetwork, h: (*Server).getPort},
	{pattern: "POST " + networkV2 + "/floatingips", op: "CreateFloatingIP", svc: svcNetwork, h: (*Server).createFloatingIP},
	{pattern: "GET " + networkV2 + "/floatingips", op: "ListFloatingIPs", svc: svcNetwork, h: (*Server).listFloatingIPs},
	{pattern: "GET " + networkV2 + "/floatingips/{id}", op: "GetFloatingIP", svc: svcNetwork, h: (*Server).getFloatingIP},
	{pattern: "PUT " + networkV2 + "/floatingips/{id}", op: "UpdateFloatingIP", svc: svcNetwork, h: (*Server).updateFloatingIP},
	{pattern: "DELETE " + networkV2 + "/floatingips/{id}", op: "DeleteFloatingIP", svc: svcNetwork, h: (*Server).deleteFloatingIP},
}

func (s *Server) networkVersions(c *call) (*result, *apiError) {
	return ok(map[string]any{"versions": []any{versionDoc("v2.0", "CURRENT", c.base+networkV2+"/", nil)}})
}

// networkResources lists the resource collections of Neutron v2.0 the server has.
func (s *Server) networkResources(c *call) (*result, *apiError) {
	var out []any
	for _, r := range []struct{ name, collection string }{
		{"network", "networks"}, {"subnet", "subnets"}, {"port", "ports"}, {"floatingip", "floatingips"},
	} {
		out = append(out, map[string]any{"name": r.name, "collection": r.collection,
			"links": []map[string]string{{"rel": "self", "href": c.base + networkV2 + "/" + r.collection}}})
	}
	return ok(map[string]any{"resources": out})
}

// subnet returns the prefix and id of a network's only subnet: 172.24.4.0/22 (and
// following /22s) for external networks, 10.N.0.0/16 for the others.
func (s *Server) subnet(nw Network) (netip.Prefix, string) {
	i := slices.IndexFunc(s.networks, func(n Network) bool { return n.ID == nw.ID })
	id := hashID("subnet:" + nw.ID)
	if nw.External {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 24, byte(4 + 4*i), 0}), 22), id
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), id
}

// allocIP returns a free address of the network's subnet (the SSHAddr IP when set).
// Callers hold s.mu.
func (s *Server) allocIP(nw Network) (string, bool) {
	if s.sshIP.IsValid() {
		return s.sshIP.String(), true
	}
	prefix, _ := s.subnet(nw)
	size := uint32(1) << (32 - prefix.Bits())
	base := prefix.Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	usable := size - 3 // network, gateway (.1) and broadcast
	for range usable {
		off := 2 + s.ipNext[nw.ID]%usable
		s.ipNext[nw.ID]++
		a := start + off
		ip := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}).String()
		if !s.ipUsed[ip] {
			s.ipUsed[ip] = true
			return ip, true
		}
	}
	return "", false
}

func (s *Server) releaseIP(ip string) {
	if !s.sshIP.IsValid() {
		delete(s.ipUsed, ip)
	}
}

func ipVersion(ip string) int {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
		return 6
	}
	return 4
}

// attach gives a server one port on each network; a network without free addresses
// fails the build as Nova does. Callers hold s.mu.
func (s *Server) attach(sv *server, nets []Network, now time.Time) {
	for _, nw := range nets {
		ip, found := s.allocIP(nw)
		if !found {
			sv.fault = &fault{code: http.StatusInternalServerError, created: now, message: fmt.Sprintf(
				"Build of instance %s aborted: Failed to allocate the network(s), not rescheduling.", sv.id)}
			return
		}
		_, subnetID := s.subnet(nw)
		s.seq++
		p := &port{
			id: s.newID(), networkID: nw.ID, subnetID: subnetID, serverID: sv.id, projectID: sv.projectID, ip: ip,
			mac: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", byte(s.seq>>16), byte(s.seq>>8), byte(s.seq)), created: now,
		}
		s.ports[p.id] = p
		sv.portIDs = append(sv.portIDs, p.id)
	}
}

// removePort deletes a port; floating IPs on it stay, disassociated.
func (s *Server) removePort(id string) {
	p := s.ports[id]
	if p == nil {
		return
	}
	for _, f := range s.fips {
		if f.portID == id {
			f.portID, f.fixedIP = "", ""
		}
	}
	s.releaseIP(p.ip)
	delete(s.ports, id)
}

func (s *Server) portStatus(p *port, now time.Time) string {
	if sv := s.servers[p.serverID]; sv != nil && s.status(sv, now) == "ACTIVE" {
		return "ACTIVE"
	}
	return "DOWN"
}

func (s *Server) networkBody(nw Network) map[string]any {
	_, subnetID := s.subnet(nw)
	return map[string]any{
		"id": nw.ID, "name": nw.Name, "status": "ACTIVE", "admin_state_up": true, "subnets": []string{subnetID},
		"shared": nw.External, "router:external": nw.External, "tenant_id": projectID(DefaultProject),
		"project_id": projectID(DefaultProject), "mtu": 1450, "availability_zone_hints": []string{},
		"availability_zones": s.opts.AZs, "tags": []string{}, "description": "", "revision_number": 1,
		"port_security_enabled": true, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
	}
}

func (s *Server) listNetworks(c *call) (*result, *apiError) {
	var list []Network
	for _, nw := range s.networks {
		if filterValue(c, "name", nw.Name) && filterValue(c, "id", nw.ID) && filterBool(c, "router:external", nw.External) &&
			filterBool(c, "shared", nw.External) && filterValue(c, "status", "ACTIVE") {
			list = append(list, nw)
		}
	}
	p, e := paginate(c, list, func(n Network) string { return n.ID })
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, nw := range p.items {
		items = append(items, s.networkBody(nw))
	}
	return ok(pageBody(c, "networks", items, p, func(n Network) string { return n.ID }))
}

func (s *Server) getNetwork(c *call) (*result, *apiError) {
	id := c.r.PathValue("id")
	nw, found := s.findNetwork(id)
	if !found {
		return nil, notFound("NetworkNotFound", fmt.Sprintf("Network %s could not be found.", id))
	}
	return ok(map[string]any{"network": s.networkBody(nw)})
}

func (s *Server) listSubnets(c *call) (*result, *apiError) {
	items := []any{}
	for _, nw := range s.networks {
		prefix, id := s.subnet(nw)
		if !filterValue(c, "network_id", nw.ID) || !filterValue(c, "id", id) {
			continue
		}
		gw := prefix.Addr().Next()
		items = append(items, map[string]any{
			"id": id, "name": nw.Name + "-subnet", "network_id": nw.ID, "cidr": prefix.String(), "ip_version": 4,
			"gateway_ip": gw.String(), "enable_dhcp": true, "tenant_id": projectID(DefaultProject),
			"project_id": projectID(DefaultProject), "dns_nameservers": []string{}, "host_routes": []any{},
			"allocation_pools": []map[string]string{{"start": gw.Next().String(), "end": lastUsable(prefix).String()}},
			"tags":             []string{}, "description": "", "revision_number": 1,
			"created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
		})
	}
	return ok(map[string]any{"subnets": items})
}

func lastUsable(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += (uint32(1) << (32 - p.Bits())) - 2
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (s *Server) portBody(p *port, now time.Time) map[string]any {
	owner := ""
	if sv := s.servers[p.serverID]; sv != nil {
		owner = "compute:" + sv.az
	}
	ts := p.created.UTC().Format(neutronTime)
	return map[string]any{
		"id": p.id, "name": "", "network_id": p.networkID, "tenant_id": p.projectID, "project_id": p.projectID,
		"mac_address": p.mac, "admin_state_up": true, "status": s.portStatus(p, now), "device_id": p.serverID,
		"device_owner": owner, "fixed_ips": []map[string]string{{"subnet_id": p.subnetID, "ip_address": p.ip}},
		"security_groups": []string{hashID("secgroup:default")}, "allowed_address_pairs": []any{}, "tags": []string{},
		"description": "", "revision_number": 1, "created_at": ts, "updated_at": ts, "binding:vnic_type": "normal",
		"port_security_enabled": true,
	}
}

func (s *Server) listPorts(c *call) (*result, *apiError) {
	var list []*port
	for _, id := range s.order {
		for _, pid := range s.servers[id].portIDs {
			p := s.ports[pid]
			if p == nil {
				continue
			}
			owner := "compute:" + s.servers[id].az
			if filterValue(c, "device_id", p.serverID) && filterValue(c, "network_id", p.networkID) &&
				filterValue(c, "id", p.id) && filterValue(c, "device_owner", owner) &&
				filterValue(c, "mac_address", p.mac) && filterValue(c, "status", s.portStatus(p, c.now)) {
				list = append(list, p)
			}
		}
	}
	pg, e := paginate(c, list, func(p *port) string { return p.id })
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, p := range pg.items {
		items = append(items, s.portBody(p, c.now))
	}
	return ok(pageBody(c, "ports", items, pg, func(p *port) string { return p.id }))
}

func (s *Server) getPort(c *call) (*result, *apiError) {
	id := c.r.PathValue("id")
	p := s.ports[id]
	if p == nil {
		return nil, notFound("PortNotFound", fmt.Sprintf("Port %s could not be found.", id))
	}
	return ok(map[string]any{"port": s.portBody(p, c.now)})
}

func (s *Server) fipBody(f *floatingIP) map[string]any {
	status := "DOWN"
	var portID, fixedIP, routerID any
	if f.portID != "" {
		status, portID, fixedIP, routerID = "ACTIVE", f.portID, f.fixedIP, hashID("router:"+f.networkID)
	}
	ts := f.created.UTC().Format(neutronTime)
	return map[string]any{
		"id": f.id, "floating_network_id": f.networkID, "floating_ip_address": f.addr, "port_id": portID,
		"fixed_ip_address": fixedIP, "router_id": routerID, "status": status, "tenant_id": f.projectID,
		"project_id": f.projectID, "description": f.description, "tags": []string{}, "revision_number": 1,
		"created_at": ts, "updated_at": ts, "port_details": nil,
	}
}

// bindFloatingIP associates f with the port portID ("" disassociates it).
func (s *Server) bindFloatingIP(f *floatingIP, portID string) *apiError {
	if portID == "" {
		f.portID, f.fixedIP = "", ""
		return nil
	}
	p := s.ports[portID]
	if p == nil {
		return notFound("PortNotFound", fmt.Sprintf("Port %s could not be found.", portID))
	}
	if nw, _ := s.findNetwork(p.networkID); nw.External {
		return badRequest(fmt.Sprintf("Bad floatingip request: Port %s is on the external network %s; it needs no floating IP.", p.id, nw.ID))
	}
	for _, other := range s.fips {
		if other != f && other.portID == portID {
			return conflict("FloatingIPPortAlreadyAssociated", fmt.Sprintf(
				"Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
				f.addr, f.id, p.id, p.ip, other.networkID))
		}
	}
	f.portID, f.fixedIP = p.id, p.ip
	return nil
}

func (s *Server) createFloatingIP(c *call) (*result, *apiError) {
	var req struct {
		FloatingIP *struct {
			FloatingNetworkID string `json:"floating_network_id"`
			PortID            string `json:"port_id"`
			Description       string `json:"description"`
		} `json:"floatingip"`
	}
	if e := c.decode(&req); e != nil {
		return nil, e
	}
	in := req.FloatingIP
	if in == nil || in.FloatingNetworkID == "" {
		return nil, badRequest("Invalid input for operation: 'floating_network_id' is required.")
	}
	nw, found := s.findNetwork(in.FloatingNetworkID)
	if !found {
		return nil, notFound("NetworkNotFound", fmt.Sprintf("Network %s could not be found.", in.FloatingNetworkID))
	}
	if !nw.External {
		return nil, badRequest(fmt.Sprintf("Bad floatingip request: Network %s is not a valid external network.", nw.ID))
	}
	f := &floatingIP{id: s.newID(), networkID: nw.ID, projectID: c.tok.projectID, description: in.Description, created: c.now}
	if e := s.bindFloatingIP(f, in.PortID); e != nil {
		return nil, e
	}
	addr, found := s.allocIP(nw)
	if !found {
		return nil, conflict("IpAddressGenerationFailure", fmt.Sprintf("No more IP addresses available on network %s.", nw.ID))
	}
	f.addr = addr
	s.fips[f.id] = f
	s.fipOrder = append(s.fipOrder, f.id)
	return &result{status: http.StatusCreated, body: map[string]any{"floatingip": s.fipBody(f)}}, nil
}

func (s *Server) listFloatingIPs(c *call) (*result, *apiError) {
	var list []*floatingIP
	for _, id := range s.fipOrder {
		f := s.fips[id]
		status := "DOWN"
		if f.portID != "" {
			status = "ACTIVE"
		}
		if filterValue(c, "port_id", f.portID) && filterValue(c, "floating_network_id", f.networkID) &&
			filterValue(c, "floating_ip_address", f.addr) && filterValue(c, "id", f.id) &&
			filterValue(c, "fixed_ip_address", f.fixedIP) && filterValue(c, "status", status) &&
			filterValue(c, "description", f.description) {
			list = append(list, f)
		}
	}
	pg, e := paginate(c, list, func(f *floatingIP) string { return f.id })
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, f := range pg.items {
		items = append(items, s.fipBody(f))
	}
	return ok(pageBody(c, "floatingips", items, pg, func(f *floatingIP) string { return f.id }))
}

func (s *Server) lookupFloatingIP(c *call) (*floatingIP, *apiError) {
	id := c.r.PathValue("id")
	f := s.fips[id]
	if f == nil {
		return nil, notFound("FloatingIPNotFound", fmt.Sprintf("Floating IP %s could not be found", id))
	}
	return f, nil
}

func (s *Server) getFloatingIP(c *call) (*result, *apiError) {
	f, e := s.lookupFloatingIP(c)
	if e != nil {
		return nil, e
	}
	return ok(map[string]any{"floatingip": s.fipBody(f)})
}

func (s *Server) updateFloatingIP(c *call) (*result, *apiError) {
	f, e := s.lookupFloatingIP(c)
	if e != nil {
		return nil, e
	}
	// port_id null unbinds the floating IP; an absent port_id leaves it as it is.
	var req struct {
		FloatingIP map[string]json.RawMessage `json:"floatingip"`
	}
	if e := c.decode(&req); e != nil {
		return nil, e
	}
	if req.FloatingIP == nil {
		return nil, badRequest("Invalid input for operation: 'floatingip' is required.")
	}
	if raw, found := req.FloatingIP["port_id"]; found {
		var portID *string
		if err := json.Unmarshal(raw, &portID); err != nil {
			return nil, badRequest("Invalid input for port_id: " + err.Error())
		}
		bind := ""
		if portID != nil {
			bind = *portID
		}
		if e := s.bindFloatingIP(f, bind); e != nil {
			return nil, e
		}
	}
	if raw, found := req.FloatingIP["description"]; found {
		if err := json.Unmarshal(raw, &f.description); err != nil {
			return nil, badRequest("Invalid input for description: " + err.Error())
		}
	}
	return ok(map[string]any{"floatingip": s.fipBody(f)})
}

func (s *Server) deleteFloatingIP(c *call) (*result, *apiError) {
	f, e := s.lookupFloatingIP(c)
	if e != nil {
		return nil, e
	}
	s.releaseIP(f.addr)
	delete(s.fips, f.id)
	s.fipOrder = slices.DeleteFunc(s.fipOrder, func(id string) bool { return id == f.id })
	return noContent()
}
