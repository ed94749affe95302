// Package poller connects ZooKeeper to Temporal. It watches Nodepool's request and node
// trees and starts one HandleRequest workflow per node request that this launcher may
// serve, and one DeleteNode workflow per node that must be deleted. It registers the
// launcher's pools in Nodepool's component registry and keeps their "paused" flag in
// step with the pool ledgers.
//
// The poller holds no state that matters: workflow ids derive from request and node ids
// and starts attach to a running workflow, so any number of replicas may run, restart
// or see duplicate events without a request being handled twice.
package poller
