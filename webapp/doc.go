// Package webapp is the launcher's web app: upstream Nodepool's status endpoints,
// served from ZooKeeper, plus a readiness probe and Prometheus metrics.
//
//	/node-list        every node (?node_id=ID for one)
//	/request-list     every node request
//	/label-list       the labels of every registered pool (any launcher's)
//	/image-list       image uploads: always empty, this launcher builds no images
//	/dib-image-list   image builds: always empty
//	/image-status     image build requests: always empty
//	/ready            200 "OK" once the launcher has started and registered its pools, 503 before
//	/metrics          Prometheus metrics (when the launcher exposes them)
//
// As upstream, the format follows the Accept header: when application/json is the
// best match among text/html, text/plain and application/json the answer is a JSON
// list of objects keyed by upstream's column keys (node-list: id, provider, label,
// server_id, public_ipv4, ipv6, state, age, locked, pool, hostname, private_ipv4, AZ,
// username, connection_port, launcher, allocated_to, hold_job, comment, user_data,
// driver_data; request-list: id, relative_priority, state, requestor, node_types,
// nodes, declined_by, event_id; label-list: label), otherwise a text table;
// ?fields=a,b,c selects the columns of the text table. A listing is read from
// ZooKeeper at most once a second (concurrent requests share the read), and answers
// carry upstream's caching headers: Cache-Control "public, max-age=1", Last-Modified
// (when the listing was read), Expires, Access-Control-Allow-Origin "*"; a
// conditional GET (If-Modified-Since) gets 304. Unknown paths get 404.
//
// The package reads ZooKeeper only; it knows nothing of Temporal.
package webapp
