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
// InsufficientInstanceCapacity), and by vCPU limits per quota code, which make
// RunInstances fail with VcpuLimitExceeded as the real service does. ListingLag hides new
// instances from filtered listings for a while, as EC2's eventual consistency does.
//
// Besides the API, the server answers GET /_stats with a JSON count of calls by
// operation, of instances by state, and of instances launched (in total and per node:
// the value of the nodepool_node_id tag); POST /_stats/reset clears the call counts;
// POST /_inject (form fields action, code, count) injects one-shot errors; GET and PUT
// /_faults read and replace the error rates and per-operation response delays while the
// server runs; GET /_creations lists the instances launched per node.
package ec2sim
