// Package aws is the Amazon EC2 driver: the Go form of upstream Nodepool's AWS adapter
// on aws-sdk-go-v2. It is the only package that imports the AWS SDK; SDK types stop at
// its edge.
//
// # Configuration
//
// Config holds the AWS keys of a provider section (region-name, profile-name,
// cloud-images, pools with subnet-id, security-group-id, public-ipv4, ...; labels with
// instance-type, key-name, volume settings, userdata, iam-instance-profile, tags,
// dynamic-tags, use-spot, imdsv2). Four keys are additions to upstream's: `endpoint`
// points the clients at an EC2-compatible cloud (or the simulator in internal/ec2sim),
// `instance-types` lists instance types in order of preference,
// `on-demand-fallback` launches on demand after spot capacity errors, and a pool's
// `availability-zones` (named as upstream's OpenStack pools have it) lists zones in
// order of preference. Credentials come
// only from the SDK's default chain (environment, shared files, instance role); they
// are never part of the configuration and never logged.
//
// # Fleets and dedicated hosts
//
// A label's `fleet` (instance-types, allocation-strategy, and market-type, an addition
// to upstream's keys that defaults to the label's use-spot) launches through
// CreateFleet of type instant: EC2 picks the instance type by the allocation strategy
// (price-capacity-optimized, capacity-optimized, diversified or lowest-price for spot;
// prioritized, in the listed order, or lowest-price on demand) and falls through to
// the next type when one has no capacity. The label's settings (key, network
// interface, root volume, userdata, profile, metadata options) go into a launch
// template named nodepool-launch-template-<hash of its content and the provider>,
// made the first time a launch needs it (upstream makes them at start), and made
// again when it was deleted behind the driver's back; the image, zone and tags are
// given per launch. The first fleet launch of a driver also deletes the provider's
// templates of that name form that no fleet label uses any more, as upstream's start
// does. The node's instance type is the one the fleet
// launched; the label's quota before a launch is the largest of its instance types.
// CreateFleet carries a client token like RunInstances', and a fleet that launched
// nothing because no type had capacity is an offering out of capacity like any
// other. `instance-requirements` is not supported.
//
// A label with `dedicated-host: true` (one instance-type, on demand, in a pool with
// one availability zone) allocates a host for each node (AllocateHosts, tagged like
// the instance, under a client token), waits for it to be available ("submit
// allocating host", "allocating host"), and runs the instance on it (Placement tenancy
// host); the external id names both, {"instance":"i-...","host":"h-..."}, as
// upstream's does. Deleting releases the host after the instance is gone ("releasing
// host"); a launch whose instance fails for good releases its host at once, and hosts
// whose node is gone are listed and released as leaks. A node on a dedicated host
// counts one instance, its cores and memory, and one host under the family's
// dedicated-host quota code (upstream's table), not vCPUs.
//
// # Create and delete
//
// Create steps are named as upstream's: "start" (resolve the image, pick an offering),
// "submit creating instance" (RunInstances, or CreateFleet for fleet labels),
// "creating instance" (wait for running and addresses), "complete". RunInstances carries a ClientToken derived from the node id,
// the attempt, the offering and the provider, so a step repeated after a timeout gets
// back the instance the first call started instead of a second one; the external id
// ({"instance":"i-..."}, upstream's format) is set as soon as RunInstances answers.
//
// # Capacity
//
// A launch's offerings are the label's instance types in the spot market (with
// use-spot) and then on demand (without use-spot, or with on-demand-fallback), each
// in every zone the launch may use (the zone the core chose for the request, else the
// pool's availability-zones in order, else the pool's availability-zone or EC2's
// choice). After an InsufficientInstanceCapacity answer the next offering is tried
// within the same create (the position is kept in the state's Data, so that a retried
// step continues where it was), and the pool's launches in this process avoid the
// failing offering (type, zone, market) for a short while (DefaultUnavailableTTL).
// When no offering is left, the step fails with a *drivers.CapacityError whose
// RetryAfter is the time until the first offering may be tried again, and returns a
// state that starts a new round of offerings, with new client tokens: the core waits
// and goes on with the same attempt. A capacity error is never turned into a
// permanent one. An instance that EC2 stops for lack of capacity while it boots (a
// spot instance reclaimed) fails its attempt: that capacity error has no RetryAfter.
//
// Delete steps: "start" (TerminateInstances; an unknown instance counts as deleted),
// "deleting instance" (wait for terminated), "deleting volumes" (delete volumes tagged
// with the node id that the instance left behind), "releasing host" (dedicated hosts
// only), "complete".
//
// # API budget
//
// Polling cost does not grow with the number of nodes: whether an instance runs (or is
// terminated) is answered from one DescribeInstances listing of the provider's
// instances (filtered by the nodepool_provider_name tag), shared by every launch and
// delete in the process, fetched by one caller at a time and refreshed at most once
// per poll interval. An instance missing from that listing right after it was created
// or terminated is given a grace period (EC2 listings are eventually consistent)
// before one direct DescribeInstances settles it. Terminations are collected for a
// short window and sent up to 50 ids per call. Image filters, instance types and
// Service Quotas answers are cached. The SDK's own retries are off, because the
// activities calling the driver already retry.
//
// # Errors and quota
//
// errors.go maps AWS errors to the kinds of package drivers in one place: insufficient
// capacity → *drivers.CapacityError; vCPU, instance, spot and volume limits →
// *drivers.QuotaError; throttling, 5xx answers, timeouts, refused or reset
// connections, credentials that cannot be retrieved or are not accepted →
// *drivers.TransientError; unknown instances and volumes → drivers.ErrNotFound; bad
// parameters, unknown images or instance types, missing subnets or key pairs, AMIs the
// account may not use and operations the IAM policy does not allow →
// *drivers.PermanentError. Only the latter make the launcher decline requests.
//
// A label's quota is its instance type's cores, memory (MiB), one instance and its
// vCPUs under the Service Quotas code of its family and market (L-1216C47A for
// standard on-demand, L-34B43A08 for standard spot, ...); a failure to ask EC2 for it
// is transient and not remembered. QuotaLimits reports those codes' values from
// Service Quotas; when the account cannot use that API it reports no limits and logs
// once, so that only the pools' limits apply, and when the API fails for a passing
// reason it keeps the limits last read (or, before any, returns a transient error).
package aws
