// Package ossim is an HTTP server that speaks enough of the OpenStack APIs (Keystone
// v3, Nova v2.1, Glance v2, Neutron v2.0 and Cinder v3) for the OpenStack driver, the
// gophercloud client and the openstack command-line tools to run against it
// unchanged.
//
// One listener serves every service under a path prefix, as devstack lays them out,
// and the Keystone catalog advertises them (public and internal interfaces, in
// Options.Region) at the address the client reached the server by:
//
//	/identity       Keystone v3 (auth_url http://ADDR/identity/v3)
//	/compute/v2.1   Nova (microversions 2.1 to 2.96, echoed; others are refused with 406)
//	/image          Glance v2
//	/networking     Neutron v2.0
//	/volume/v3/ID   Cinder v3 (types block-storage and volumev3)
//
// Any credentials are accepted: passwords (user id, or name and domain), application
// credentials and tokens, scoped to a project by name or id; the server records the
// project names (Stats.Projects, Projects). Tokens live for Options.TokenTTL; every
// call but the version documents and POST /identity/v3/auth/tokens needs a valid
// X-Auth-Token and is answered 401 otherwise, so clients authenticate again.
//
// Servers: POST /servers (name, flavorRef, imageRef or block_device_mapping_v2 —
// images, blank and existing volumes; volumes of image and blank mappings are created
// with the server's metadata and deleted with it when delete_on_termination —,
// networks as a list of uuids, "auto" or "none", key_name, security_groups,
// availability_zone, base64 user_data, metadata, config_drive, min_count/max_count);
// GET /servers and /servers/detail (filters name as a regular expression, status,
// flavor, image, availability_zone, key_name; limit/marker pagination with
// servers_links, newest first); GET and DELETE /servers/{id}; GET
// /servers/{id}/os-interface and /metadata; GET /flavors, /flavors/detail,
// /flavors/{id}, /limits and /os-availability-zone. A server is BUILD for
// Options.BootTime, then ACTIVE; a deleted one keeps its status with task_state
// "deleting" for Options.DeleteTime, then disappears with its ports (its floating IPs
// stay, unbound). Servers count against the limits (instances, cores, RAM) in every
// state until they are gone, whether Nodepool made them (nodepool_* metadata) or not
// (AddUnmanagedServer); a create beyond a limit is refused with Nova's 403 "Quota
// exceeded for cores: Requested 2, but already used 200 of 200 cores".
//
// Images: GET /v2/images (filters name, id, status, visibility; limit/marker with a
// next link) and /v2/images/{id}. Networks: GET /v2.0/networks (filters name, id,
// router:external, shared), /v2.0/subnets, /v2.0/ports (filters device_id,
// network_id, device_owner...), and floating IPs: POST, GET, PUT (bind or unbind a
// port) and DELETE /v2.0/floatingips (list filters port_id, floating_network_id,
// floating_ip_address, status). A bound floating IP shows in the server's addresses
// with OS-EXT-IPS:type "floating". Volumes: GET /v3/{project}/volumes and
// /volumes/detail (filters name, status, metadata), GET and DELETE
// /v3/{project}/volumes/{id} (attached volumes are refused with 400).
//
// Fixed addresses come from 10.N.0.0/16 for tenant networks and 172.24.4.0/22 for
// external ones, where floating IPs are allocated too; with Options.SSHAddr every
// address is that host's IP instead. Errors use each service's own format: Nova's and
// Cinder's {"itemNotFound": {"code": 404, "message": ...}} (badRequest, forbidden,
// conflictingRequest, overLimit, computeFault), Keystone's {"error": {...}},
// Neutron's {"NeutronError": {"type", "message", "detail"}} and Glance's plain text.
// Unknown paths are answered 404 with a JSON body.
//
// Faults: errors can be injected at configured rates from a seeded random source
// (ErrorRates: rate limiting with 429 and Retry-After and internal errors on every
// call, quota errors and "No valid host was found" scheduling failures on server
// creation, the latter as an ERROR server with Nova's fault after a 202), one-shot by
// operation (InjectError with a Kind), as response delays by operation (SetDelay),
// and by limits (SetLimits). ExpireTokens invalidates every token.
//
// Operation names, for Stats.Calls, InjectError and SetDelay: Authenticate,
// ValidateToken, RevokeToken, Versions, CreateServer, ListServers, GetServer,
// DeleteServer, GetServerMetadata, ListServerInterfaces, ListFlavors, GetFlavor,
// GetLimits, ListAvailabilityZones, ListImages, GetImage, ListNetworks, GetNetwork,
// ListSubnets, ListPorts, GetPort, CreateFloatingIP, ListFloatingIPs, GetFloatingIP,
// UpdateFloatingIP, DeleteFloatingIP, ListVolumes, GetVolume, DeleteVolume.
//
// Besides the API, the server answers GET /_stats with a JSON count of calls by
// operation, errors by kind, servers by status, floating IPs, volumes by status,
// authentications by project and servers created (in total and per node: the value
// of the nodepool_node_id metadata); POST /_stats/reset clears the call counts; POST
// /_inject (form fields op, kind, count) injects one-shot errors; GET and PUT /_faults
// read and replace the error rates and per-operation delays; PUT /_limits replaces
// the limits; POST /_tokens/expire invalidates every token; GET /_creations lists the
// servers created per node.
//
// To point the openstack tools or gophercloud (through its clouds.yaml support) at a
// server listening on ADDR, use a clouds.yaml such as:
//
//	clouds:
//	  ossim:
//	    auth:
//	      auth_url: http://ADDR/identity/v3
//	      username: admin
//	      password: secret
//	      project_name: demo
//	      user_domain_name: Default
//	      project_domain_name: Default
//	    region_name: RegionOne
//	    interface: public
//	    identity_api_version: 3
//
// and run, for example, OS_CLOUD=ossim openstack server list.
package ossim
