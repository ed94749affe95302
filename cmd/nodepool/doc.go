// Command nodepool is the administration tool of the launcher, upstream Nodepool's
// "nodepool" command, talking to ZooKeeper directly:
//
//	nodepool [-c CONFIG] [-s SECURE] [--debug] [--version] COMMAND [ARGS]
//
// -c names the configuration file (/etc/nodepool/nodepool.yaml by default), -s the
// optional secure file. The configuration is loaded and validated, drivers'
// sections included, before any command that needs ZooKeeper runs; a bad file is
// reported problem by problem. A ZooKeeper that does not answer within 30 s is an
// error.
//
// Commands:
//
//	list [--detail]            table of nodes (--detail adds upstream's extra columns)
//	request-list               table of node requests
//	delete ID [--now]          lock node ID (5 s), set it "deleting" for the launcher
//	                           to delete; --now waits until the node is gone
//	hold ID [--reason TEXT]    lock node ID (5 s), set it "hold" with the reason
//	info PROVIDER              image uploads and nodes ZooKeeper holds for a provider
//	config-validate            check the configuration file; problems one per line
//	request LABEL [LABEL...]   request nodes exactly as Zuul does, use them, return them
//
// Tables are ASCII tables with left-aligned columns, as upstream prints them: ages
// are DD:HH:MM:SS since the last state change, lists are comma-joined, nulls are
// empty, and a connection port that is not an integer shows as "redacted". A znode
// whose data cannot be decoded is listed with the state "malformed" and a warning
// on standard error.
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
// unreachable, node not found or locked, request failed or timed out), 2 on a
// usage error.
package main
