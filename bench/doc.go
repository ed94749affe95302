// Command npbench measures the launcher end to end, the way Zuul sees it: it starts its
// own ZooKeeper, Temporal dev server, simulated cloud and launcher process(es) on free
// loopback ports, writes their configuration, and then acts as Zuul through ZooKeeper.
//
//	npbench [--quick] [--scenarios latency,burst] [--driver sim|aws] [--requests 20]
//	        [--burst 200] [--workers 1] [--boot-steps 0.5,1.5] [--burst-boot 0.1]
//	        [--delete-latency 0.1] [--poll-interval 1] [--shards 4]
//	        [--temporal-dynamic-config KEY=VALUE] [--json] [--json-out FILE] [--timeline]
//	        [--bin bin] [--scripts scripts] [--keep]
//
// npbench -h lists every flag; docs/benchmarks.md explains the figures.
//
// Two scenarios run, each on a freshly started stack so that the resource figures of
// one do not leak into the other:
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
// For every phase the report gives the cloud API calls per node by operation (from the
// simulated cloud's own counters), the CPU seconds (utime+stime from /proc/PID/stat) and
// the peak resident memory of the launcher, the Temporal server, ZooKeeper and the
// cloud, the CPU used by everything else on the machine, and the load average. A sample
// request workflow's history is summarised (events, activities, timers) to show where
// the launch's round trips go.
//
// With --driver aws the launcher uses the AWS driver against bin/ec2sim, an
// EC2-compatible endpoint, instead of the sim driver against bin/simcloud.
//
// The benchmark is not a test and never runs from go test. Every process it starts is
// stopped when it ends, fails or is interrupted; all traffic stays on 127.0.0.1.
package main
