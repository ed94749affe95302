// Command simcloud serves a simulated cloud over HTTP, so that several launcher worker
// processes whose sim providers set "server" share one cloud.
//
// Usage:
//
//	simcloud --listen 127.0.0.1:8124 [--config cloud.yaml] [--seed N] [--log-level info]
//
// The configuration file holds the sim driver's cloud keys (seed, api-latency,
// boot-steps, delete-latency, quota, error-rate, rate-limit-rate, capacity-error-rate,
// lost-reply-rate, azs, region; see package drivers/sim). The driver keys flavors,
// cloud-images and pools are accepted and ignored, so a provider's sim section can be
// reused; server is rejected. --seed overrides the file's seed.
//
// Once listening, simcloud prints "simcloud listening on ADDR" on standard output. Besides
// the cloud API under /v1, it answers GET /stats (call, error and instance counters),
// GET /instances (every instance with its metadata), GET /creations (instances ever
// created per node id), POST /inject (make the next call of a kind fail), and GET and
// PUT /faults (read and change the error rates and API latency while it runs). It stops
// on SIGTERM or interrupt.
package main
