// Command npbench measures the launcher end to end, the way Zuul sees it: it starts its
// own ZooKeeper, Temporal dev server, simulated cloud and launcher process(es) on free
// loopback ports, writes their configuration, and then acts as Zuul through ZooKeeper.
//
//	npbench [--quick] [--scenarios latency,burst,waiting,cost,reuse]
//	        [--driver sim|aws|openstack|static] [--requests 20] [--burst 200]
//	        [--min-ready 5] [--static-hosts N] [--workers 1] [--boot-steps 0.5,1.5]
//	        [--burst-boot 0.1] [--delete-latency 0.1] [--poll-interval 1] [--shards 4]
//	        [--waiting N] [--cost 1,10,100] [--cluster] [--no-webapp]
//	        [--temporal-dynamic-config KEY=VALUE] [--json] [--json-out FILE] [--timeline]
//	        [--bin bin] [--keep]
//
// npbench -h lists every flag; docs/benchmarks.md explains the figures.
//
// By default two scenarios run, each on a freshly started stack so that the resource
// figures of one do not leak into the other:
//
//   - latency: K single-node requests one after another. For each, the time from
//     submitting the request to seeing it fulfilled, and the overhead above the cloud's
//     boot time (the sum of the boot steps). Each node is then returned as Zuul returns
//     it, and the time from "used" to the node's znode being gone is measured too.
//   - burst: N single-node requests submitted at once on a cloud with a short boot.
//     Submit-to-fulfilled percentiles and nodes per second (fulfilled nodes over the
//     time from the first submit to the last fulfilment). Then every node is returned
//     at once (lock, delete the request, in-use, used, unlock) and used-to-deleted is
//     measured.
//
// Other scenarios run when named in --scenarios (waiting and cost also by their own
// flags, see docs/benchmarks.md), among them:
//
//   - reuse: the label gets min-ready M (--min-ready). Once M ready, unallocated nodes
//     exist, K single-node requests that allow reuse are submitted one after another,
//     each once the previous one's node is returned and deleted and min-ready is
//     restored. Submit-to-fulfilled percentiles, the share of requests served with a
//     node that was ready before the request was submitted, and the time from a
//     fulfilment to min-ready restored.
//
// For every phase the report gives the cloud API calls per node by operation (from the
// simulated cloud's own counters), the CPU seconds (utime+stime from /proc/PID/stat) and
// the peak resident memory of the launcher, the Temporal server, ZooKeeper and the
// cloud, the CPU used by everything else on the machine, and the load average. A sample
// request workflow's history is summarised (events, activities, timers) to show where
// the launch's round trips go.
//
// With --driver aws the launcher uses the AWS driver against bin/ec2sim, an
// EC2-compatible endpoint, instead of the sim driver against bin/simcloud. With
// --driver openstack it uses the OpenStack driver against bin/ossim, an
// OpenStack-compatible endpoint, through a generated clouds.yaml
// (OS_CLIENT_CONFIG_FILE); ossim's boot time is the sum of the boot steps and its
// deletion time --delete-latency, and its call counters (/_stats) give the API calls.
// With --driver static the launcher hands out static hosts: --static-hosts loopback
// addresses from 127.0.0.2 on (the scenario's max-servers by default), one slot each,
// without host-key checking, each with connection-port at a TCP listener npbench
// holds on that address. No cloud runs, and the report says that no cloud API is
// called rather than counting calls.
//
// The benchmark is not a test and never runs from go test. Every process it starts is
// stopped when it ends, fails or is interrupted; all traffic stays on 127.0.0.1.
package main
