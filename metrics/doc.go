// Package metrics reports what the launcher does to statsd, under upstream Nodepool's
// metric names, and to Prometheus, with labels instead of name parts.
//
// Events are recorded through a Recorder as they happen:
//
//	Launch(provider, az, requestor, result, d)  statsd: nodepool.launch.<result>,
//	                                                    nodepool.launch.provider.<provider>.<result>,
//	                                                    nodepool.launch.provider.<provider>.<az>.<result>,
//	                                                    nodepool.launch.requestor.<requestor>.<result>
//	                                                    (a counter and a timer in ms each)
//	                                            Prometheus: nodepool_launches_total,
//	                                                    nodepool_launch_duration_seconds{provider,az,requestor,result}
//	Leaked(provider, type)                      statsd: nodepool.provider.<provider>.leaked.<type>s
//	                                            Prometheus: nodepool_provider_leaked_total{provider,type}
//	Activity(type, attempt, failed)             Prometheus: nodepool_activity_executions_total{activity,outcome},
//	                                                    nodepool_activity_retries_total{activity}
//
// Workflows record launches through the Temporal SDK's metrics handler (SDKHandler,
// LaunchTimer); activities are counted by ActivityInterceptor.
//
// A Collector publishes gauges. Every collector sends the configured limits
// (nodepool.provider.<provider>.max_servers, nodepool.tenant_limits.<tenant>.<resource>;
// nodepool_provider_max_servers, nodepool_tenant_limits). The one that holds the stats
// election (ElectionPath, upstream's) also reads ZooKeeper every few seconds for
// nodepool.nodes.<state>, nodepool.provider.<provider>.nodes.<state>,
// nodepool.label.<label>.nodes.<state> and
// nodepool.provider.<provider>.pool.<pool>.addressable_requests (nodepool_nodes,
// nodepool_requests, nodepool_addressable_requests), and asks Temporal, through Facts,
// for the open request workflows by phase and the pool ledgers' state
// (nodepool_request_workflows, nodepool_ledger_*).
//
// The package sits below activities, which may record through it: it imports neither
// the workflows nor the configuration (package metrics/facts answers from those).
package metrics
