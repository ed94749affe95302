// Package nodescan waits for a node to answer on its connection port and collects its
// SSH host keys, as Nodepool's nodescan does before it marks a node ready.
//
// [Scan] connects to Target.Host on Target.Port until the connection succeeds or
// Target.Timeout (the provider's boot-timeout) has passed. Every failure is retried
// with a short backoff (100 ms, doubling up to 1 s): connection refused, host
// unreachable, resets, connection attempts that time out (each attempt is bounded by
// Target.AttemptTimeout, 10 s by default, as Nodepool's), name resolution errors, and
// SSH servers that close the connection or send no or a broken banner. When the
// timeout passes the error is a [*TimeoutError] (errors.Is(err, [ErrTimeout])), which
// the launcher treats as a failed launch attempt, as Nodepool does with its
// ConnectionTimeoutException.
//
// What counts as answering depends on what is asked for:
//
//   - Target.HostKeys set and connection type "ssh" (the default) or "network_cli": an
//     SSH key exchange must complete, and the scan then collects every host key the
//     server offers in the manner of ssh-keyscan: one key exchange per key type, with
//     the client's host key algorithms restricted to that type (RSA, offered as
//     rsa-sha2-512, rsa-sha2-256 and ssh-rsa; ECDSA on nistp256, nistp384 and
//     nistp521; Ed25519). The key is taken from the host key callback, after the server
//     proved it holds the private key, and the connection is dropped before
//     authentication. A type the server does not offer is skipped; a key exchange that
//     fails for another reason is tried again twice, then skipped, as Nodepool skips it.
//   - otherwise (any other connection type, such as "winrm", or Target.HostKeys
//     unset): the TCP connection succeeding is enough, and no keys are collected. This
//     is Nodepool's port check, which its static driver also uses to see whether a
//     host is alive.
//
// Keys are formatted as Nodepool stores them in a node's host_keys and as ssh-keyscan
// prints them without the host name: "<type> <base64>", for example
// "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...". They come in a fixed order: RSA, ECDSA
// nistp256, nistp384, nistp521, Ed25519. Host certificates are never asked for.
//
// Nodepool does not contact a node at all when host-key-checking is off (its node is
// ready as soon as the cloud says so); a caller that follows it calls Scan only when
// host-key-checking is on, with Target.HostKeys set.
//
// The package uses the standard library and golang.org/x/crypto/ssh only.
package nodescan
