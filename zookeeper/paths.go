package zookeeper

import (
	"path"
	"strings"
)

// Znode paths of Nodepool's schema, relative to the chroot.
const (
	// RequestsPath is the parent of node requests ("<prio>-<seq>" children).
	RequestsPath = "/nodepool/requests"
	// RequestLockRoot holds one lock directory per request. It is a separate
	// tree so that deleting a request does not delete its lock.
	RequestLockRoot = "/nodepool/requests-lock"
	// NodesPath is the parent of node records (10-digit sequence children).
	NodesPath = "/nodepool/nodes"
	// PoolComponentsPath is the parent of pool worker registrations.
	PoolComponentsPath = "/nodepool/components/pool"
	// LauncherComponentsPath is the parent of launcher process registrations.
	LauncherComponentsPath = "/nodepool/components/launcher"
)

// lockNodeName separates the contender's uuid from its sequence number in
// kazoo's lock recipe.
const lockNodeName = "__lock__"

// RequestPath returns the znode path of request id.
func RequestPath(id string) string { return RequestsPath + "/" + id }

// RequestLockPath returns the lock directory of request id.
func RequestLockPath(id string) string { return RequestLockRoot + "/" + id }

// NodePath returns the znode path of node id.
func NodePath(id string) string { return NodesPath + "/" + id }

// NodeLockPath returns the lock directory of node id. It is a child of the
// node, so deleting the node recursively also removes its lock.
func NodeLockPath(id string) string { return NodePath(id) + "/lock" }

// IsNodepoolRequestID reports whether id has the shape of a Nodepool request
// id, "<3-digit priority>-<sequence>". Zuul tells Nodepool requests from its
// own UUID-named nodeset requests by the '-' at index 3.
func IsNodepoolRequestID(id string) bool {
	if len(id) < 5 || id[3] != '-' {
		return false
	}
	return allDigits(id[:3]) && allDigits(id[4:])
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// nodeIDOfLockPath returns the node id when lockPath is a node's lock
// directory (NodesPath/<id>/lock), and "" otherwise.
func nodeIDOfLockPath(lockPath string) string {
	rest, ok := strings.CutPrefix(lockPath, NodesPath+"/")
	if !ok {
		return ""
	}
	id, ok := strings.CutSuffix(rest, "/lock")
	if !ok || id == "" || strings.Contains(id, "/") {
		return ""
	}
	return id
}

// normalizeChroot validates and cleans a chroot: "" and "/" mean none, other
// values must be absolute and lose any trailing slash.
func normalizeChroot(chroot string) (string, bool) {
	if chroot == "" || chroot == "/" {
		return "", true
	}
	if !strings.HasPrefix(chroot, "/") {
		return "", false
	}
	cleaned := path.Clean(chroot)
	if cleaned == "/" {
		return "", true
	}
	return cleaned, true
}
