// Package openstack is the OpenStack driver: it launches nodes as Nova servers of an
// OpenStack cloud through gophercloud, with upstream Nodepool's openstack provider
// configuration (and that of upstream's fake driver, which has the same schema and
// here talks to the real OpenStack-compatible API its cloud key names).
//
// # Configuration
//
// Provider keys: cloud (required: an entry of clouds.yaml, found as the openstack
// tools find it — OS_CLIENT_CONFIG_FILE, ./clouds.yaml,
// ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml, with secure.yaml
// beside it; without any clouds.yaml the OS_* environment variables authenticate),
// region-name, cloud-images (name; image-id, or image-name, else the name itself is
// looked up in Glance, the newest active image winning; username, python-path,
// shell-type, connection-type, connection-port, config-drive). Nodepool's common
// keys (boot-timeout, launch-timeout, launch-retries, rate, max-servers, max-cores,
// max-ram) are the launcher's. image-name-format, nodepool-id, clean-floating-ips
// and port-cleanup-interval are accepted; diskimages, image-upload-timeout and
// post-upload-hook, and a label's diskimage, are reported as not supported: this
// launcher builds and uploads no images.
//
// Pool keys: networks (names or ids; none lets Nova choose), auto-floating-ip
// (default true), availability-zones (nodes are spread over them by node id),
// security-groups, host-key-checking (default true), ignore-provider-quota,
// max-volumes and max-volume-gb (accepted, not enforced). Label keys: cloud-image,
// flavor-name (by name or id) or min-ram (the smallest flavor with that much RAM),
// key-name, boot-from-volume with volume-size (GiB, default 50), userdata,
// instance-properties, dynamic-instance-properties (formatted with the request, e.g.
// "{request.tenant_name}"), networks (replacing the pool's), host-key-checking and
// console-log (accepted).
//
// # Launch
//
// The create state machine follows upstream's adapter: the server is created with
// the request's metadata (the nodepool_node_id, nodepool_pool_name and
// nodepool_provider_name keys), the label's properties and nodepool_attempt, named
// after the request's hostname; it is polled until ACTIVE; a floating IP from the
// first external network is bound to its port when auto-floating-ip is on and it has
// no public IPv4 address; the instance's interface address is its public IPv6
// address if any, else its public IPv4, else its private IPv4.
//
// Nova has no idempotency token. Before creating, the create step lists the servers
// named after the node and adopts one whose metadata carries the node id and the
// attempt (MetaAttempt) and that is neither failed nor being deleted, so a step
// retried after a lost reply never makes a second server. A retried floating-ip
// step keeps the floating IP already bound to the server's port.
//
// A server in ERROR with Nova's "No valid host was found" fault is deleted and
// reported as a drivers.CapacityError with a retry hint (WithCapacityBackoff);
// the create step waits up to WithSchedulingWait for Nova to schedule a new server,
// so that such a failure is the create step's own and leaves no server behind. Other
// ERROR servers fail the attempt with a permanent error. Errors are typed once
// (classify): 404 not found; Nova's and Neutron's "Quota exceeded" answers to a
// create are quota errors; 429, 413, 409, 401, 5xx and network errors transient;
// other 4xx permanent.
//
// # Polling and inventory
//
// Every poll of a launch or delete reads one shared detailed server listing of the
// project, refreshed at most once per poll interval (WithPollInterval) and fetched by
// one caller at a time. ListInstances reads the same listing (servers whose
// nodepool_provider_name is the provider; those being deleted are Deleted).
// ListResources lists the provider's servers, the floating IPs bound to their ports
// and the volumes carrying its metadata, each with the node's metadata; deleting a
// server resource deletes its floating IPs first.
//
// QuotaLimits are Nova's absolute limits (instances, cores, RAM; unlimited ones left
// out) minus what servers not launched by this provider use; LabelQuota is one
// instance and the label's flavor's vCPUs and RAM.
//
// # Delete
//
// The delete state machine deletes the floating IPs bound to the server's ports,
// deletes the server, waits until a listing started after the delete no longer shows
// it, then deletes the volumes the server had that remain (boot volumes Nova did not
// delete with it).
package openstack
