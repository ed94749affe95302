// Package config loads, defaults and validates the launcher's configuration file,
// upstream Nodepool's nodepool.yaml plus two sections of this project's own.
//
// # Loading
//
// Loading is a pipeline:
//
//  1. Every %(NODEPOOL_XYZ) in the file text is replaced with the value of the
//     environment variable NODEPOOL_XYZ (only names starting with NODEPOOL_; a
//     reference to an unset variable is an error; whole-line comments are left
//     alone). This happens before YAML parsing, as upstream does, so a value may be
//     written unquoted: "host: %(NODEPOOL_ZK_HOST)".
//  2. The YAML is decoded strictly on top of Default(): an unknown key, a value of
//     the wrong type (1.5 or "1" for an integer), or a duplicate key is an error.
//     Anchors, aliases and "<<" merge keys work.
//  3. The optional secure file (-s) is merged in (see Config.MergeSecure).
//  4. The temporal section is overridden from the environment (Temporal.WithEnv).
//  5. Config.Validate checks required keys, unique names, cross-references and
//     ranges; Config.ValidateDrivers adds each driver's checks of its own keys.
//
// Decoding and validation each report every problem at once, as a
// *ValidationError whose Problems carry file, line and key path, printed as
//
//	nodepool.yaml:31: providers[0].pools[1].labels[0]: field foo not found
//
// # The file
//
// Top-level keys, as upstream (defaults in parentheses):
//
//   - zookeeper-servers: list of {host (required), port (2281), chroot}. At least
//     one server; all entries must name the same chroot, which must be absolute.
//   - zookeeper-tls: {cert, key, ca}, PEM file paths, all three required when the
//     section is present. Without it the ZooKeeper connection is plain: upstream
//     refuses that, this launcher allows it for a local ZooKeeper.
//   - zookeeper-timeout: session timeout in seconds (10).
//   - labels: list of {name (required, unique), min-ready (0; <= 0 disables
//     pre-launching), max-ready-age (seconds, 0 = never)}.
//   - providers: list of providers, below.
//   - diskimages: upstream's image-builder entries. Accepted and checked for unique
//     names and existing parents; the launcher reads only username, python-path and
//     shell-type.
//   - max-hold-age: seconds a held node may stay held (0 = unlimited).
//   - tenant-resource-limits: list of {tenant-name (required, unique), max-servers,
//     max-cores, max-ram, max-volumes, max-volume-gb, and any other key: integer}.
//     They are stored under Nodepool's resource names: instances, cores, ram,
//     volumes, volume-gb, other keys verbatim. An absent resource is unlimited.
//   - webapp: {port (8005), listen_address (0.0.0.0)}.
//   - elements-dir, images-dir, images-dir-required-free, build-log-dir,
//     build-log-retention: builder settings, accepted and unused.
//
// # Providers
//
// Every provider has the keys this package decodes for all drivers: name
// (required, unique), driver (default openstack, as upstream; upstream's fake
// driver, which has the OpenStack schema, is accepted as openstack and talks to
// the real OpenStack-compatible API its cloud key names), max-concurrency (-1 =
// unlimited, 0 = no new launches), priority (pool default, 100), rate (API calls per second as written; absent means the driver's
// default), launch-timeout (3600 s), boot-timeout (180 s), launch-retries (3), and
// provider-level max-servers, max-cores, max-ram and max-resources that pools
// inherit. Each of its pools has name (required, unique in the provider),
// max-servers (absent = unlimited; <= 0 disables the pool), max-cores, max-ram,
// max-resources, priority, node-attributes and labels; each pool label has a name
// that must be one of the top-level labels.
//
// Every other key, at provider, pool or label level, belongs to the driver. This
// package keeps each provider's, pool's and label's whole YAML mapping (the Raw
// fields) and never rejects those keys; the driver decodes them strictly with
// Provider.DecodeDriver (whole section, common keys removed),
// Provider.DecodeDriverPositional (the same, pool and label names removed too, for
// drivers that match pools and labels by position) or Pool.DecodeDriver and
// PoolLabel.DecodeDriver (one level), and problems keep their file, line and key
// path. Provider.DriverProblems locates a driver's own validation errors at the
// provider. CommonProviderKeys, CommonPoolKeys and CommonLabelKeys list the keys
// removed. Config.ValidateDrivers runs a validator per driver name and reports
// providers whose driver is unknown.
//
// # The temporal section
//
//	temporal:
//	  address: 127.0.0.1:7233     # TEMPORAL_ADDRESS
//	  namespace: default          # TEMPORAL_NAMESPACE
//	  task-queue: nodepool        # TEMPORAL_TASK_QUEUE
//	  tls:
//	    enabled: false            # TEMPORAL_TLS (implied by any other TLS setting)
//	    cert: /path/client.pem    # TEMPORAL_TLS_CLIENT_CERT_PATH
//	    key: /path/client.key     # TEMPORAL_TLS_CLIENT_KEY_PATH
//	    ca: /path/ca.pem          # TEMPORAL_TLS_SERVER_CA_CERT_PATH
//	    server-name: temporal     # TEMPORAL_TLS_SERVER_NAME
//
// The environment variables named in the comments override the file when set to a
// non-empty value. An API key is taken from TEMPORAL_API_KEY only: secrets do not
// belong in the file.
//
// # The launcher section
//
//	launcher:
//	  poll-interval: 1.0      # seconds between two steps of a create or delete
//	  delete-interval: 5      # seconds between sweeps for nodes to delete
//	  cleanup-interval: 60    # seconds between leaked-resource cleanups
//	  hostname: launcher-01   # identity in ZooKeeper; the OS host name by default
//
// Every key of both sections is optional.
package config
