// Package deploy holds the Kubernetes manifests of a launcher deployment (apply them
// with `kubectl apply -k deploy/`; see docs/deploy.md). It has no code: its test
// checks the manifests, the container image definition in docker/ and the compose
// stack against the launcher's flags and configuration loader.
package deploy
