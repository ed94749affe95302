// Package sim is a simulated cloud and the driver that launches nodes on it.
//
// The simulated cloud ([Cloud]) behaves like a small IaaS API: instances get ids
// ("sim-<seq>") and addresses from the documentation ranges (192.0.2.0/24 private,
// 198.51.100.0/24 and 203.0.113.0/24 public, 2001:db8::/32), boot through a configurable
// number of steps that each take a configured time, and take a configured time to delete.
// The cloud enforces its own quota (instances, cores, RAM), answers create calls with
// capacity errors, throttles calls and fails them at configured rates, loses the replies
// of calls that took effect at a configured rate, and counts every call by kind. Create calls carry an idempotency token, as EC2's ClientToken: repeating a
// create with the same token returns the instance that the first call started. All random
// choices come from one seeded generator and all times from one clock, so a run with the
// same seed and the same sequence of calls gives the same instances, addresses and errors.
//
// The instances are not machines: their addresses are not reachable and they have no
// host keys.
//
// The [Driver] implements drivers.Driver on top of the cloud's small [API]. By default
// the cloud lives in the driver's process; that is right for tests, demos and a single
// launcher worker process. With the provider key "server" the driver talks HTTP/JSON to a
// simcloud server (cmd/simcloud, serving [NewHandler]) that holds the one cloud all
// launcher worker processes share. Several worker processes must use a server: in-process
// clouds are separate, and their instance ids would collide.
//
// A provider section of nodepool.yaml for this driver looks like:
//
//	providers:
//	  - name: sim
//	    driver: sim
//	    seed: 42
//	    api-latency: 0.01        # seconds per API call
//	    boot-steps: [0.5, 2.0]   # "submit creating instance", then "creating instance"
//	    delete-latency: 0.5
//	    quota: {instances: 100, cores: 400, ram: 819200}
//	    error-rate: {create: 0.01, delete: 0, list: 0, describe: 0}
//	    rate-limit-rate: 0.01
//	    capacity-error-rate: 0.01
//	    lost-reply-rate: 0.01    # the call takes effect, the reply is an error
//	    azs: [sim-a, sim-b]
//	    region: sim-region
//	    flavors:
//	      - {name: small, cores: 2, ram: 2048}
//	    cloud-images:
//	      - {name: debian, username: zuul, python-path: /usr/bin/python3}
//	    pools:
//	      - name: main
//	        max-servers: 10
//	        labels:
//	          - {name: debian-small, flavor: small, cloud-image: debian}
//
// The keys seed, api-latency, boot-steps, delete-latency, quota, error-rate,
// rate-limit-rate, capacity-error-rate, lost-reply-rate, azs and region describe the
// cloud. With "server" set they belong in the server's configuration file instead, and
// the driver rejects them. A label without flavor gets [DefaultFlavor], one without
// cloud-image [DefaultImage], so a provider that lists only pools and labels works.
// Nodepool's common keys (driver, max-servers, priority, ...) are removed from the
// section before it is decoded into [Config]; see [ParseProvider].
package sim
