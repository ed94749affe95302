// Command nodepool is the administration tool of the launcher, upstream Nodepool's
// "nodepool" command, talking to ZooKeeper directly (and, for explain, to Temporal):
//
//	nodepool [-c CONFIG] [-s SECURE] [--json] [--debug] [--version] COMMAND [ARGS]
//
// -c names the configuration file (/etc/nodepool/nodepool.yaml by default), -s the
// optional secure file, --json asks for JSON instead of tables. These options may
// also follow the command, anywhere among its arguments ("nodepool config-validate
// -c FILE"); -l is accepted for compatibility. The configuration is loaded and
// validated, drivers' sections included, before any command that needs ZooKeeper
// runs; a bad file is reported problem by problem. A ZooKeeper that does not
// answer within 30 s is an error.
//
// Commands:
//
//	list [--detail]            table of nodes (--detail adds upstream's extra columns)
//	request-list               table of node requests
//	label-list                 labels of every registered pool
//	image-list                 image uploads (empty: the launcher builds no images)
//	delete ID [--now]          lock node ID (5 s), set it "deleting" for the launcher
//	                           to delete; --now waits until the node is gone
//	hold ID [--reason TEXT] [--hold-expiration SECONDS]
//	                           lock node ID (5 s), set it "hold" with the reason as
//	                           its comment and the expiry as its hold_expiration
//	                           (--comment and --expiry are the same)
//	info PROVIDER              image uploads and nodes ZooKeeper holds for a provider
//	erase PROVIDER [--force]   delete those records of a provider that is no longer
//	                           configured, after a [N/y] prompt unless --force
//	config-validate            check the configuration file; problems one per line
//	explain REQUEST [--web-url URL]
//	                           why a node request waits or failed
//	request LABEL [LABEL...]   request nodes exactly as Zuul does, use them, return them
//
// Tables are ASCII tables with left-aligned columns, as upstream prints them: ages
// are DD:HH:MM:SS since the last state change, lists are comma-joined, nulls are
// empty, and a connection port that is not an integer shows as "redacted". A znode
// whose data cannot be decoded is listed with the state "malformed" and a warning
// on standard error. With --json the listings print a JSON list of objects with
// upstream's keys (those of its web app: "age" is DD:HH:MM:SS for nodes, the unix
// state time for image uploads), every key present, nulls as null; the port is
// redacted there too.
//
// Long operations report progress on standard error: request (state changes,
// declines, each node's state as the launcher records it, and how long it has
// waited every 30 s), delete --now (the node's state until it is gone) and erase
// (records erased so far).
//
// # explain
//
//	explain REQUEST [--web-url URL] [--json]
//
// explain says in one line where a request stands and why, then the facts behind
// it: the request and its nodes; every pool's verdict, this launcher's judged from
// the configuration in the order the launcher prefers them (the requested provider,
// then priority) with the reason a pool declines (node types not offered,
// max-servers 0, more nodes than max-servers, a provider with max-concurrency 0, or
// already in declined_by), other launchers' from their registrations; the tenant's
// usage against tenant-resource-limits; and from Temporal, the request workflow's
// execution (status, pending activities with their attempts and last failure), its
// status query (phase, reason, each node's attempt, step and error) and the pool
// ledger's status (used and limits, the request's place among the waiting
// requests), with the workflow's address in Temporal Web (--web-url, else
// $TEMPORAL_WEB_URL, else http://127.0.0.1:8233). Temporal is reached as the
// launcher reaches it (the configuration's temporal section and the TEMPORAL_*
// variables); when it does not answer within 5 s, explain says so and reports
// ZooKeeper's facts only.
//
// # request
//
//	request LABEL [LABEL...] [--priority 200] [--tenant T] [--requestor NAME]
//	        [--timeout 10m] [--keep] [--json]
//
// request is a Zuul stand-in for trying a launcher by hand. It submits a persistent
// sequential request "/nodepool/requests/<priority>-" with the fields Zuul writes
// (pipeline "manual", job "nodepool-request"), and reports its state changes until
// a launcher fulfils or fails it. A failed request is deleted and its declined_by
// list printed. For a fulfilled request it does what Zuul's executor does: for each
// node, in the order of the request's nodes, it checks allocated_to, locks the node
// (30 s timeout) and checks again; it deletes the request, sets the nodes "in-use"
// with user_data, and prints them (a table, or the node records as JSON with
// --json). Then it returns them: "used" and unlocked, after which the launcher
// deletes them. With --keep it holds the nodes until interrupted (Ctrl-C or
// SIGTERM) and returns them then. Interrupting or timing out while waiting deletes
// the request, which is how Zuul cancels one. Progress goes to standard error, the
// nodes to standard output.
//
// Exit status: 0 on success, 1 on a failure (bad configuration, ZooKeeper
// unreachable, node or request not found, node locked, request failed or timed
// out), 2 on a usage error.
package main
