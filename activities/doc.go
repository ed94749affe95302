// Package activities holds the launcher's Temporal activities: every ZooKeeper read and
// write and every cloud call that a workflow needs.
//
// An Activities value carries the injected dependencies (the ZooKeeper client, the
// drivers by provider name, the launcher's settings, a Temporal client for signalling
// the pool ledgers, a logger and a clock). Its methods are the activities; workflows
// name them through a typed nil pointer (var a *activities.Activities).
//
// This is the only package where Temporal error types appear. Driver error kinds are
// translated exactly once, in errors.go, into application errors whose types are the
// ErrType* constants; workflows branch on those types.
//
// Every activity is safe to retry: it re-reads what it is about to change, writes with
// ZooKeeper's version check, and returns the same result when its work was already done.
package activities
