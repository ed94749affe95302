// Package static is the driver of Nodepool's static provider: hosts that exist
// outside Nodepool (real hardware, long-lived machines) and are handed out to jobs.
//
// # Configuration
//
// The provider section is upstream's:
//
//	providers:
//	  - name: static-rack
//	    driver: static
//	    pools:
//	      - name: main
//	        nodes:
//	          - name: trusty.example.com      # host name or address (required)
//	            labels: trusty-static         # a string of labels or a list (required)
//	            username: zuul                # default zuul
//	            host-key: "ssh-ed25519 AAAA..." # a key or a list of keys
//	            host-key-checking: true       # default true
//	            timeout: 13                   # scan timeout in seconds, default 5
//	            connection-type: ssh          # default ssh
//	            connection-port: 22022        # default 22, for every connection type
//	            python-path: /usr/bin/python3 # default auto
//	            shell-type: sh
//	            max-parallel-jobs: 2          # slots, default 1
//
// Keys are decoded strictly: an unknown key, or a value of the wrong type, is reported
// with its file, line and key path. A static pool has no pool-level "labels" list: the
// labels it offers are its nodes' ([Config.PoolLabels]). A node's name must be unique
// in the provider (upstream also allows the same name with another username or port;
// this driver tells nodes apart by name). Nodepool's common keys (max-servers,
// priority, node-attributes, ...) are the config package's, and are removed before
// the section is decoded into [Config].
//
// # Slots and the state machines
//
// A node with max-parallel-jobs N has N slots, numbered from 0. Its slots' external
// ids are "<name>" when N is 1 and "<name>#<slot>" otherwise. Creating an instance
// claims a free slot of a node of the pool that offers the label; the instance is
// ready at once: its interface_ip is the node's name, its public_ipv4 and public_ipv6
// the name's addresses, and it carries the node's username, python-path, shell-type,
// connection-type and connection-port. Its host keys are, with host-key-checking, the
// keys the last scan of the host found (every key the host offers, which must include
// the configured host-key), and without it the configured host-key as it is. Among
// the hosts with a free slot, the one with the fewest slots in use is chosen.
//
// Claims are keyed by the create request's node id and attempt, so a repeated create
// step returns the slot it claimed before, and a second attempt of a node claims a
// second slot. Deleting frees the slot, unless the deletion names another node than
// the one holding the slot (a late or repeated deletion after the slot was handed out
// again). In Nodepool a used static node is re-registered as ready rather than
// deleted; here the node record is deleted, which frees the slot, and the launcher
// hands the slot out again to the next request.
//
// When no slot of the label is free on a host that answers, a create fails with a
// capacity error that carries a retry hint ([DefaultRetryAfter]): the launch waits
// for a slot in the same attempt, as an upstream request for a busy static label
// waits. The ledger does not know static slots; giving a static pool max-servers equal
// to its slot count ([Config.PoolSlots]) makes requests queue in the ledger instead.
//
// # Host checks
//
// Every host with host-key-checking is scanned with package nodescan when the driver
// starts and then every check interval ([DefaultCheckInterval]; the launcher uses its
// cleanup-interval, as upstream re-registers static nodes in its cleanup loop), with
// the node's timeout: an ssh or network_cli host must complete SSH key exchanges and
// its keys must include the configured host-key; any other connection type must
// accept a TCP connection. A host that fails a check is taken out: its free slots are
// not offered and QuotaLimits no longer counts them. Its claimed slots stay claimed.
// The next check that succeeds brings it back. Before a slot is handed out, a host
// whose last successful check is older than [DefaultHandoutCheckAge] gets a port check
// first (Nodepool's liveness check before it hands out a static node); meanwhile the
// create state waits in step "waiting for host check", a step that claims nothing.
// A host without host-key-checking is never contacted, as upstream assumes it is up;
// its name must resolve, though.
//
// The driver thus checks its nodes and finds their host keys itself
// ([Driver.HandlesNodescan]): the launcher must not scan its nodes again after a
// create completes, as it does for cloud drivers.
//
// # Claims live in memory
//
// Which node holds which slot is known from the node records in ZooKeeper, which this
// package cannot read. The driver keeps the claims it made in memory, with the
// metadata of each create (for ListInstances, ListResources and so leak detection). A
// restart forgets them. Claims are therefore rebuilt from the node records: whoever
// builds the driver reads every node record of the provider (any state, "deleting"
// and "hold" included) and passes each one's external_id, id and label to
// [Driver.RestoreClaims] before the driver serves a create. Until RestoreClaims is
// called, a create fails with a capacity error whose retry hint is
// [RestoreRetryAfter], so no slot that a node holds is handed out twice; the option
// [WithoutPriorClaims] skips the wait where no node can exist yet (tests, a new
// deployment). A claim whose node record is gone and that no restore knows is found by
// the leak sweep like any leaked instance, since ListResources lists it with the node
// id it was made for.
//
// A node recorded under another node id than the one that claimed its slot (a failed
// launch kept for inspection under a new id) keeps the slot until the leak sweep frees
// it after that record is deleted.
//
// Because claims are per process, the activities of a static provider must run in one
// worker process: two processes would each hand out the same slots.
package static
