// Package driverstest is the conformance suite every cloud driver passes.
//
// A driver's tests call [Run] with a [Harness] that builds a fresh driver (and, where the
// cloud is simulated, a fresh cloud) for each subtest:
//
//	func TestConformance(t *testing.T) {
//		var cloud *fakeCloud
//		driverstest.Run(t, driverstest.Harness{
//			New: func(t *testing.T) drivers.Driver {
//				cloud = newFakeCloud()
//				return newDriver(cloud)
//			},
//			Pool:  "main",
//			Label: "small",
//			InjectQuotaError: func(t *testing.T) { cloud.failNextCreate(quotaErr) },
//		})
//	}
//
// The suite checks the contract written in package drivers: state machines reach
// completion within a bounded number of steps, honour their Wait hints and survive a
// JSON round trip of their state between steps (as Temporal records it); every step can
// be repeated with the same input state without starting a second instance; the
// external id is on the state as soon as the cloud lists an instance for the node;
// deleting completes for instances that are gone or unknown, and twice; metadata comes
// back on the instance, on ListInstances and on ListResources; DeleteResource removes a
// leaked instance; label quota and error kinds are right; a capacity error raised
// before any instance exists carries a retry hint, leaves no instance behind, and the
// launch goes on in the same attempt (from the state returned with the error or from
// the failed step's input state, every step repeated) to exactly one instance; and a
// second launch attempt of a node starts a new instance.
//
// Listing may lag a creation (the suite waits for a new instance to be listed) but not
// a deletion: once a delete state machine completes, ListInstances must not return the
// instance unless it is marked Deleted.
//
// Subtests never run in parallel and use one driver at a time, so the fault injection
// hooks of the harness act on the cloud of the driver most recently returned by New.
package driverstest
