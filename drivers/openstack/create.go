package openstack

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// MetaAttempt is the server metadata key holding the launch attempt. Nova has no
// idempotency token, so a retried create step looks for a server with the node's
// name (the request's hostname) and the node id and attempt in its metadata before
// it creates one: a create whose reply was lost is adopted, never repeated.
const MetaAttempt = "nodepool_attempt"

// Steps of the create state machine.
const (
	stepCreate     = ""
	stepBoot       = "boot"
	stepFloatingIP = "floating-ip"
)

// createData is the driver's part of a create state.
type createData struct {
	// FloatingIP is the address of the server's floating IP, once attached.
	FloatingIP string `json:"floating_ip,omitempty"`
}

// AdvanceCreate runs one step of the create state machine: create (or adopt) the
// server, wait until it is ACTIVE, attach a floating IP when the pool asks for one
// and the server has no public IPv4 address, and return the instance.
func (d *Driver) AdvanceCreate(ctx context.Context, st drivers.CreateState) (drivers.CreateState, error) {
	if st.Complete {
		return st, nil
	}
	p, l, err := d.label(st.Request.Pool, st.Request.Label)
	if err != nil {
		return st, err
	}
	var data createData
	if len(st.Data) > 0 {
		if err := json.Unmarshal(st.Data, &data); err != nil {
			return st, drivers.Permanent("decoding create state of node %s: %v", st.Request.NodeID, err)
		}
	}
	switch st.Step {
	case stepCreate:
		return d.createServer(ctx, st, p, l)
	case stepBoot:
		return d.waitActive(ctx, st, p)
	case stepFloatingIP:
		return d.attachFloatingIP(ctx, st, data)
	}
	return st, drivers.Permanent("unknown create step %q", st.Step)
}

// findServer returns the live server of the node's attempt, if there is one.
func (d *Driver) findServer(ctx context.Context, req drivers.CreateRequest) (*server, error) {
	list, err := d.listServers(ctx, servers.ListOpts{Name: "^" + regexp.QuoteMeta(serverName(req)) + "$"})
	if err != nil {
		return nil, err
	}
	for i := range list {
		s := &list[i]
		if s.ours(d.provider) && s.Metadata[drivers.MetaNodeID] == req.NodeID &&
			s.Metadata[MetaAttempt] == strconv.Itoa(req.Attempt) && !s.deleting() && s.Status != "ERROR" {
			return s, nil
		}
	}
	return nil, nil
}

// serverName is the name of a node's servers: the request's hostname, as upstream
// names them.
func serverName(req drivers.CreateRequest) string {
	if req.Hostname != "" {
		return req.Hostname
	}
	return "np" + req.NodeID
}

// createOpts adds the key pair to the server create request.
type createOpts struct {
	servers.CreateOpts
	KeyName string
}

func (o createOpts) ToServerCreateMap() (map[string]any, error) {
	m, err := o.CreateOpts.ToServerCreateMap()
	if err != nil {
		return nil, err
	}
	if o.KeyName != "" {
		m["server"].(map[string]any)["key_name"] = o.KeyName
	}
	return m, nil
}

func (d *Driver) createServer(ctx context.Context, st drivers.CreateState, p *poolInfo, l *Label) (drivers.CreateState, error) {
	req := st.Request
	if s, err := d.findServer(ctx, req); err != nil {
		return st, err
	} else if s != nil {
		d.log.Info("adopting server created by an earlier try", "node", req.NodeID, "server", s.ID)
		st.ExternalID, st.Step, st.Wait = s.ID, stepBoot, d.opts.pollInterval
		return st, nil
	}
	im := d.cloudImage(l.CloudImage)
	if im == nil {
		return st, drivers.Permanent("label %s: unknown cloud image %q", req.Label, l.CloudImage)
	}
	imageID, err := d.catalogs.imageID(ctx, im)
	if err != nil {
		return st, err
	}
	fl, err := d.catalogs.flavor(ctx, l)
	if err != nil {
		return st, err
	}
	opts := servers.CreateOpts{
		Name:           serverName(req),
		FlavorRef:      fl.ID,
		SecurityGroups: p.cfg.SecurityGroups,
		Metadata:       d.metadata(req, l),
		ConfigDrive:    im.ConfigDrive,
	}
	if l.UserData != "" {
		opts.UserData = []byte(l.UserData)
	}
	opts.AvailabilityZone = firstNonEmpty(req.AZ, zoneFor(p.cfg.AvailabilityZones, req.NodeID))
	if nets := p.cfg.networks(l); len(nets) > 0 {
		ids, err := d.catalogs.networkIDs(ctx, nets)
		if err != nil {
			return st, err
		}
		var list []servers.Network
		for _, id := range ids {
			list = append(list, servers.Network{UUID: id})
		}
		opts.Networks = list
	} else {
		opts.Networks = "auto"
	}
	if l.BootFromVolume {
		opts.BlockDevice = []servers.BlockDevice{{
			SourceType: servers.SourceImage, UUID: imageID, DestinationType: servers.DestinationVolume,
			VolumeSize: l.volumeSize(), DeleteOnTermination: true, BootIndex: 0,
		}}
	} else {
		opts.ImageRef = imageID
	}
	var created struct {
		ID string `json:"id"`
	}
	err = servers.Create(ctx, d.compute, createOpts{CreateOpts: opts, KeyName: l.KeyName}, nil).ExtractInto(&created)
	if err != nil {
		// The create may have happened with its reply lost: the step's retry adopts
		// the server then.
		return st, classify(opCreate, fmt.Sprintf("creating server for node %s", req.NodeID), err)
	}
	d.lister.invalidate()
	// A scheduling failure is known within seconds: wait for it here, so that a
	// capacity error leaves no server behind and the state names none.
	sv, err := d.awaitScheduled(ctx, created.ID)
	if err != nil {
		return st, err
	}
	if sv != nil && sv.Status == "ERROR" {
		reset := drivers.CreateState{Request: req}
		return reset, d.failedServer(ctx, sv, req.NodeID)
	}
	st.ExternalID, st.Step, st.Wait = created.ID, stepBoot, d.opts.pollInterval
	return st, nil
}

// awaitScheduled reads a new server until Nova has scheduled it (its task state is
// no longer "scheduling") or it failed, for at most the scheduling wait. It returns
// nil when the server is still being scheduled.
func (d *Driver) awaitScheduled(ctx context.Context, id string) (*server, error) {
	deadline := time.Now().Add(d.opts.schedulingWait)
	for {
		sv, err := d.getServer(ctx, id)
		if err != nil {
			return nil, err
		}
		scheduling := sv.Status == "BUILD" && sv.TaskState != nil && *sv.TaskState == "scheduling"
		if !scheduling {
			return sv, nil
		}
		if !time.Now().Before(deadline) {
			return nil, nil
		}
		t := time.NewTimer(schedulingPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, classify(opRead, "waiting for server "+id+" to be scheduled", ctx.Err())
		case <-t.C:
		}
	}
}

// failedServer returns the error of a server in ERROR: a capacity error for a
// scheduling failure, after deleting the server (no instance of the node remains,
// and the launch goes on after the backoff with a new server), else a permanent
// error (a failed attempt).
func (d *Driver) failedServer(ctx context.Context, sv *server, nodeID string) error {
	fault := ""
	if sv.Fault != nil {
		fault = sv.Fault.Message
	}
	if !noValidHost(fault) {
		return drivers.Permanent("server %s of node %s failed: %s", sv.ID, nodeID, firstNonEmpty(fault, "status ERROR"))
	}
	if err := d.deleteServerCall(ctx, sv.ID); err != nil && !isNotFound(err) {
		return err
	}
	d.lister.invalidate()
	return drivers.CapacityRetryAfter(d.opts.capacityBackoff, "server %s of node %s: %s", sv.ID, nodeID, fault)
}

// metadata returns a server's metadata: the request's (which carries the
// nodepool_* keys of node, pool and provider), the attempt, the label's
// instance-properties and its dynamic-instance-properties formatted with the
// request.
func (d *Driver) metadata(req drivers.CreateRequest, l *Label) map[string]string {
	md := map[string]string{}
	for k, v := range l.InstanceProperties {
		md[k] = v
	}
	for k, f := range l.DynamicInstanceProperties {
		if v, ok := formatRequest(f, req.Request); ok {
			md[k] = v
		} else {
			d.log.Warn("skipping dynamic instance property", "key", k, "format", f, "node", req.NodeID)
		}
	}
	for k, v := range req.Metadata {
		md[k] = v
	}
	md[drivers.MetaProviderName] = d.provider
	md[drivers.MetaPoolName] = req.Pool
	md[drivers.MetaNodeID] = req.NodeID
	md[MetaAttempt] = strconv.Itoa(req.Attempt)
	return md
}

var formatField = regexp.MustCompile(`\{\{|\}\}|\{([^{}]*)\}`)

// formatRequest formats a dynamic property with the request's attributes, as
// Python's str.format does with request=<the node request>: "{request.tenant_name}".
// It fails on an unknown field.
func formatRequest(format string, r drivers.RequestInfo) (string, bool) {
	fields := map[string]string{
		"request.id": r.ID, "request.requestor": r.Requestor, "request.tenant_name": r.TenantName,
		"request.event_id": r.EventID, "request.relative_priority": strconv.Itoa(r.RelativePriority),
		"request.node_types": "[" + quoteList(r.Labels) + "]", "request.requestor_data": string(r.RequestorData),
	}
	ok := true
	out := formatField.ReplaceAllStringFunc(format, func(m string) string {
		switch m {
		case "{{":
			return "{"
		case "}}":
			return "}"
		}
		v, known := fields[m[1:len(m)-1]]
		if !known {
			ok = false
		}
		return v
	})
	return out, ok
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

// zoneFor spreads nodes over the pool's zones by node id; "" leaves it to Nova.
func zoneFor(zones []string, nodeID string) string {
	if len(zones) == 0 {
		return ""
	}
	n, _ := strconv.ParseUint(strings.TrimLeft(nodeID, "0"), 10, 64)
	return zones[n%uint64(len(zones))]
}

func (d *Driver) waitActive(ctx context.Context, st drivers.CreateState, p *poolInfo) (drivers.CreateState, error) {
	ls, err := d.lister.get(ctx, time.Time{})
	if err != nil {
		return st, err
	}
	s, ok := ls.byID[st.ExternalID]
	if !ok {
		// Not in the listing (which may predate the create): ask for it.
		if s, err = d.getServer(ctx, st.ExternalID); err != nil {
			if isNotFound(err) {
				return st, drivers.Permanent("server %s of node %s disappeared while booting", st.ExternalID, st.Request.NodeID)
			}
			return st, err
		}
	}
	switch {
	case s.deleting():
		return st, drivers.Permanent("server %s of node %s is being deleted while booting", s.ID, st.Request.NodeID)
	case s.Status == "ERROR":
		err := d.failedServer(ctx, s, st.Request.NodeID)
		if drivers.KindOf(err) == drivers.KindCapacity {
			// The server is deleted: the launch starts over at the create step.
			return drivers.CreateState{Request: st.Request}, err
		}
		return st, err
	case s.Status != "ACTIVE":
		st.Wait = d.opts.pollInterval
		return st, nil
	}
	external, err := d.catalogs.externalNames(ctx)
	if err != nil {
		return st, err
	}
	if p.cfg.autoFloatingIP() && d.serverIPs(s, external).publicV4 == "" {
		if _, ok, err := d.catalogs.externalNetwork(ctx); err != nil {
			return st, err
		} else if ok {
			st.Step, st.Wait = stepFloatingIP, 0
			return st, nil
		}
	}
	return d.complete(ctx, st, s, "")
}

// attachFloatingIP gives the server a floating IP on the external network, bound to
// its port; a floating IP already bound to the port (a retried step) is kept.
func (d *Driver) attachFloatingIP(ctx context.Context, st drivers.CreateState, data createData) (drivers.CreateState, error) {
	s, err := d.getServer(ctx, st.ExternalID)
	if err != nil {
		return st, err
	}
	portList, err := d.serverPorts(ctx, s.ID)
	if err != nil {
		return st, err
	}
	if len(portList) == 0 {
		st.Wait = d.opts.pollInterval
		return st, nil
	}
	fips, err := d.floatingIPs(ctx, floatingips.ListOpts{PortID: portList[0].ID})
	if err != nil {
		return st, err
	}
	addr := ""
	if len(fips) > 0 {
		addr = fips[0].FloatingIP
	} else {
		netID, _, err := d.catalogs.externalNetwork(ctx)
		if err != nil {
			return st, err
		}
		fip, err := floatingips.Create(ctx, d.network, floatingips.CreateOpts{FloatingNetworkID: netID, PortID: portList[0].ID}).Extract()
		if err != nil {
			return st, classify(opCreate, "creating floating ip for server "+s.ID, err)
		}
		addr = fip.FloatingIP
	}
	data.FloatingIP = addr
	st.Data, _ = json.Marshal(data)
	return d.complete(ctx, st, s, addr)
}

// serverPorts lists the server's Neutron ports.
func (d *Driver) serverPorts(ctx context.Context, serverID string) ([]ports.Port, error) {
	pages, err := ports.List(d.network, ports.ListOpts{DeviceID: serverID}).AllPages(ctx)
	if err != nil {
		return nil, classify(opRead, "listing ports of server "+serverID, err)
	}
	list, err := ports.ExtractPorts(pages)
	if err != nil {
		return nil, classify(opRead, "decoding ports", err)
	}
	return list, nil
}

// floatingIPs lists floating IPs.
func (d *Driver) floatingIPs(ctx context.Context, opts floatingips.ListOpts) ([]floatingips.FloatingIP, error) {
	pages, err := floatingips.List(d.network, opts).AllPages(ctx)
	if err != nil {
		return nil, classify(opRead, "listing floating ips", err)
	}
	list, err := floatingips.ExtractFloatingIPs(pages)
	if err != nil {
		return nil, classify(opRead, "decoding floating ips", err)
	}
	return list, nil
}

// complete finishes the create state with the server's instance.
func (d *Driver) complete(ctx context.Context, st drivers.CreateState, s *server, floatingIP string) (drivers.CreateState, error) {
	_, l, err := d.label(st.Request.Pool, st.Request.Label)
	if err != nil {
		return st, err
	}
	inst, err := d.instance(ctx, s)
	if err != nil {
		return st, err
	}
	if floatingIP != "" {
		inst.PublicIPv4 = floatingIP
		inst.InterfaceIP = firstNonEmpty(inst.PublicIPv6, floatingIP)
	}
	inst.Ready = true
	if im := d.cloudImage(l.CloudImage); im != nil {
		inst.ImageName = im.Name
		inst.Username = im.Username
		inst.PythonPath = im.PythonPath
		inst.ShellType = im.ShellType
		inst.ConnectionType = im.ConnectionType
		inst.ConnectionPort = im.ConnectionPort
	}
	st.Instance, st.Complete, st.Wait = inst, true, 0
	return st, nil
}

// instance converts a server.
func (d *Driver) instance(ctx context.Context, s *server) (*drivers.Instance, error) {
	external, err := d.catalogs.externalNames(ctx)
	if err != nil {
		return nil, err
	}
	ip := d.serverIPs(s, external)
	md := map[string]string{}
	for k, v := range s.Metadata {
		md[k] = v
	}
	return &drivers.Instance{
		ExternalID:  s.ID,
		Ready:       s.Status == "ACTIVE" && !s.deleting(),
		Deleted:     s.deleting(),
		InterfaceIP: ip.interfaceIP(),
		PublicIPv4:  ip.publicV4,
		PrivateIPv4: ip.privateV4,
		PublicIPv6:  ip.publicV6,
		PrivateIPv6: ip.privateV6,
		Cloud:       d.cfg.Cloud,
		Region:      d.region,
		AZ:          s.AZ,
		HostID:      s.HostID,
		Metadata:    md,
		Quota:       d.serverQuota(ctx, s),
	}, nil
}

// serverQuota is what a server counts against the compute limits.
func (d *Driver) serverQuota(ctx context.Context, s *server) drivers.Resources {
	cores, ram := s.Flavor.VCPUs, s.Flavor.RAM
	if cores == 0 && ram == 0 {
		if f, ok := d.catalogs.flavorByID(ctx, firstNonEmpty(s.Flavor.ID, s.Flavor.OriginalName)); ok {
			cores, ram = int64(f.VCPUs), int64(f.RAM)
		}
	}
	return drivers.Resources{drivers.ResourceInstances: 1, drivers.ResourceCores: cores, drivers.ResourceRAM: ram}
}
