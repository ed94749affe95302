// Package ec2sim is an HTTP server that speaks enough of the Amazon EC2 Query API (and
// the Service Quotas JSON API) for the EC2 driver to run against it unchanged, through
// the real aws-sdk-go-v2 client.
//
// Requests are form-encoded POSTs (Action=...&Version=2016-11-15); responses are XML in
// the EC2 namespace, and errors use EC2's error document
// (<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors><RequestID>..</RequestID></Response>)
// with the HTTP status EC2 uses for the code. Service Quotas requests are recognised by
// their X-Amz-Target header and answered in the awsJson1_1 protocol on the same path.
// Signatures are not checked.
//
// Supported operations: RunInstances (ClientToken idempotency, TagSpecifications,
// network interfaces, block device mappings, market options, metadata options),
// DescribeInstances (filters tag:KEY, tag-key, instance-state-name, instance-id,
// instance-type, availability-zone; MaxResults/NextToken pagination), TerminateInstances,
// DescribeInstanceTypes, DescribeImages (by id, owner and filters over a few canned AMIs),
// DescribeVolumes, DeleteVolume, CreateTags, DescribeAvailabilityZones, and Service Quotas
// ListServiceQuotas.
//
// Fleets: CreateLaunchTemplate, DescribeLaunchTemplates (by name, id, and the filters
// launch-template-name and tag:KEY) and DeleteLaunchTemplate keep single-version
// launch templates, whose data holds RunInstances arguments. CreateFleet of type
// instant (ClientToken idempotency) launches its target capacity from the templates'
// overrides in the order of the allocation strategy (prioritized by Priority;
// lowest-price and price-capacity-optimized by size, vCPUs then memory, in place of a
// price list; the others in the order given), trying the next override after one
// fails; the failures are the answer's errors, and a fleet that launched nothing
// answers with errors and no instances, as EC2 does.
//
// Dedicated hosts: AllocateHosts (ClientToken idempotency, tags, one instance type
// per host), DescribeHosts (by id, filters state, instance-type, availability-zone and
// tag:KEY) and ReleaseHosts (which refuses, per host, hosts that still hold
// instances). RunInstances with Placement.Tenancy host and Placement.HostId places
// instances on a host of their type, as many as fit in 96 vCPUs; such instances do not
// count against the vCPU limits. Released hosts stay visible for the terminated
// instances' retention.
//
// Instances move pending → running → shutting-down → terminated after configurable
// durations measured on the server's clock; the state is computed when it is read, so
// no background goroutines run. Private addresses come from 198.18.0.0/15 (the RFC 2544
// benchmarking range), public IPv4 addresses from the RFC 5737 documentation ranges
// 203.0.113.0/24 and 198.51.100.0/24, and IPv6 addresses from 2001:db8::/32.
//
// Faults: errors can be injected at configured rates from a seeded random source
// (throttling, capacity, vCPU quota, internal errors; a RunInstances repeating a known
// client token is spared the capacity and quota ones, as EC2 answers it with the first
// call's instances), one-shot by operation
// (InjectError), by offering (BlockOffering makes an instance type and market report
// InsufficientInstanceCapacity, to RunInstances and in CreateFleet's errors, or, for
// the market "host", makes AllocateHosts report InsufficientHostCapacity), by vCPU
// limits per quota code, which make RunInstances fail with VcpuLimitExceeded as the
// real service does, and by dedicated-host limits per instance family (SetHostLimit,
// HostLimitExceeded). ListingLag hides new
// instances from filtered listings for a while, as EC2's eventual consistency does.
//
// Besides the API, the server answers GET /_stats with a JSON count of calls by
// operation, of instances by state, and of instances launched (in total and per node:
// the value of the nodepool_node_id tag); POST /_stats/reset clears the call counts;
// POST /_inject (form fields action, code, count) injects one-shot errors; GET and PUT
// /_faults read and replace the error rates and per-operation response delays while the
// server runs; GET /_creations lists the instances launched per node.
package ec2sim
