// Package drivers defines the contract between the launcher core and the cloud drivers.
//
// It is the Go form of Nodepool's state-machine driver framework: a driver creates and
// deletes instances through state machines that the core advances one step per call.
// Unlike Nodepool, the state is a plain value that is passed in and returned, so that a
// step can run as a retried Temporal activity on any worker process, and the state can
// be recorded in workflow history, heartbeats and queries. Every state type is JSON
// encodable and must stay so: workflow histories persist across upgrades.
//
// The contract every driver must honour (the conformance suite in
// drivers/driverstest checks it):
//
//   - Steps are idempotent. AdvanceCreate and AdvanceDelete may be called again with the
//     same input state, because an activity can time out after the cloud call succeeded
//     and Temporal then retries it. A repeated step must not start a second instance:
//     use the node id and the attempt number (CreateRequest.NodeID, CreateRequest.Attempt)
//     as an idempotency token where the cloud supports one (EC2's ClientToken), or look
//     the instance up by its metadata before creating it.
//   - ExternalID is set on the returned state as soon as the cloud knows the instance, so
//     that a failed or cancelled launch can always be cleaned up.
//   - AdvanceDelete of an instance that is already gone completes successfully. Deleting
//     is only complete once the instance no longer uses quota.
//   - Metadata given at create time (CreateRequest.Metadata, at least the keys
//     MetaProviderName, MetaPoolName and MetaNodeID) comes back on ListInstances and
//     ListResources, which is how leaked instances are found.
//   - ListInstances returns every instance visible to the account, including those of
//     other systems, so that quota accounting can subtract unmanaged usage.
//   - Errors are classified with the kinds in errors.go: a quota error, a capacity error,
//     not found, transient (throttling, network) and permanent (bad request or config).
//     Anything else is treated as transient.
//
// Cloud SDK types never appear in this package or in its callers: drivers convert at
// their edge.
package drivers
