package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/go-zookeeper/zk"
)

// maxDeleteAttempts bounds recursive deletes racing with new children (a lock
// contender appearing while the tree is removed).
const maxDeleteAttempts = 5

// listChildren returns the sorted children of p; a missing p has none.
func (c *Client) listChildren(ctx context.Context, p string) ([]string, error) {
	ch, err := c.children(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(ch)
	return ch, nil
}

// ListRequests returns the ids of all node requests, sorted. A missing
// requests directory yields an empty list.
func (c *Client) ListRequests(ctx context.Context) ([]string, error) {
	ids, err := c.listChildren(ctx, RequestsPath)
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", err)
	}
	return ids, nil
}

// GetRequest reads request id. A missing request yields ErrNotFound, bad JSON
// a *DecodeError.
func (c *Client) GetRequest(ctx context.Context, id string) (*NodeRequest, error) {
	data, stat, err := c.get(ctx, RequestPath(id))
	if err != nil {
		return nil, fmt.Errorf("reading request %s: %w", id, mapErr(err))
	}
	r, err := DecodeRequest(id, data)
	if err != nil {
		return nil, fmt.Errorf("reading request %s: %w", id, err)
	}
	r.Version = stat.Version
	return r, nil
}

// GetRequestW reads request id like GetRequest and sets a one-shot data watch
// on it, which fires on a change or deletion of the request and with
// zk.EventNotWatching when the session is lost. A missing request yields
// ErrNotFound and no watch; a record that does not decode yields a
// *DecodeError along with the watch.
func (c *Client) GetRequestW(ctx context.Context, id string) (*NodeRequest, <-chan zk.Event, error) {
	type result struct {
		data  []byte
		stat  *zk.Stat
		watch <-chan zk.Event
	}
	res, err := do(c, ctx, func() (result, error) {
		data, stat, watch, err := c.conn.GetW(c.abs(RequestPath(id)))
		return result{data, stat, watch}, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading request %s: %w", id, mapErr(err))
	}
	r, err := DecodeRequest(id, res.data)
	if err != nil {
		return nil, res.watch, fmt.Errorf("reading request %s: %w", id, err)
	}
	r.Version = res.stat.Version
	return r, res.watch, nil
}

// UpdateRequest writes r if its znode still has r.Version and updates
// r.Version. It returns ErrBadVersion when someone else wrote the request in
// between and ErrNotFound when it was deleted.
func (c *Client) UpdateRequest(ctx context.Context, r *NodeRequest) error {
	if r.ID == "" {
		return errors.New("updating request: empty id")
	}
	data, err := r.Encode()
	if err != nil {
		return fmt.Errorf("updating request %s: %w", r.ID, err)
	}
	stat, err := c.set(ctx, RequestPath(r.ID), data, r.Version)
	if err != nil {
		return fmt.Errorf("updating request %s: %w", r.ID, mapErr(err))
	}
	r.Version = stat.Version
	return nil
}

// SubmitRequest creates r the way Zuul does: a sequential child
// "<priority>-" of the requests directory (created if missing), persistent
// or ephemeral. It sets r.ID and r.Version and returns the id.
func (c *Client) SubmitRequest(ctx context.Context, r *NodeRequest, priority string, ephemeral bool) (string, error) {
	if priority == "" || strings.ContainsAny(priority, "/-") {
		return "", fmt.Errorf("submitting request: invalid priority %q", priority)
	}
	data, err := r.Encode()
	if err != nil {
		return "", fmt.Errorf("submitting request: %w", err)
	}
	flags := int32(zk.FlagSequence)
	if ephemeral {
		flags |= zk.FlagEphemeral
	}
	created, err := c.createMakePath(ctx, RequestsPath+"/"+priority+"-", data, flags)
	if err != nil {
		return "", fmt.Errorf("submitting request: %w", err)
	}
	r.ID = path.Base(created)
	r.Version = 0
	return r.ID, nil
}

// DeleteRequest removes request id; a missing request is not an error. The
// delete is not recursive, as Zuul's: requests never have children.
func (c *Client) DeleteRequest(ctx context.Context, id string) error {
	err := c.delete(ctx, RequestPath(id), -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("deleting request %s: %w", id, err)
	}
	return nil
}

// ListNodes returns the ids of all nodes, sorted. A missing nodes directory
// yields an empty list.
func (c *Client) ListNodes(ctx context.Context) ([]string, error) {
	ids, err := c.listChildren(ctx, NodesPath)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	return ids, nil
}

// GetNode reads node id. A missing node yields ErrNotFound, an empty or bad
// record a *DecodeError (wrapping ErrEmptyRecord for an empty znode).
func (c *Client) GetNode(ctx context.Context, id string) (*Node, error) {
	data, stat, err := c.get(ctx, NodePath(id))
	if err != nil {
		return nil, fmt.Errorf("reading node %s: %w", id, mapErr(err))
	}
	n, err := DecodeNode(id, data)
	if err != nil {
		return nil, fmt.Errorf("reading node %s: %w", id, err)
	}
	n.Version = stat.Version
	if len(n.Corrected) > 0 {
		c.warnCorrected(id, n)
	}
	return n, nil
}

// CreateNode stores a new node as a persistent sequential child of the nodes
// directory (created if missing) and sets n.ID and n.Version. As Nodepool
// does on first store, a zero StateTime becomes now and a zero CreatedTime
// becomes StateTime.
func (c *Client) CreateNode(ctx context.Context, n *Node) (string, error) {
	if n.StateTime == 0 {
		n.StateTime = unixNow()
	}
	if n.CreatedTime == 0 {
		n.CreatedTime = n.StateTime
	}
	data, err := n.Encode()
	if err != nil {
		return "", fmt.Errorf("creating node: %w", err)
	}
	created, err := c.createMakePath(ctx, NodesPath+"/", data, zk.FlagSequence)
	if err != nil {
		return "", fmt.Errorf("creating node: %w", err)
	}
	n.ID = path.Base(created)
	n.Version = 0
	return n.ID, nil
}

// UpdateNode writes n if its znode still has n.Version and updates
// n.Version. It returns ErrBadVersion on a concurrent write and ErrNotFound
// when the node was deleted.
func (c *Client) UpdateNode(ctx context.Context, n *Node) error {
	if n.ID == "" {
		return errors.New("updating node: empty id")
	}
	data, err := n.Encode()
	if err != nil {
		return fmt.Errorf("updating node %s: %w", n.ID, err)
	}
	stat, err := c.set(ctx, NodePath(n.ID), data, n.Version)
	if err != nil {
		return fmt.Errorf("updating node %s: %w", n.ID, mapErr(err))
	}
	n.Version = stat.Version
	return nil
}

// DeleteNode removes node id the way Nodepool does: it first writes state
// "deleted" (best effort, so that a cleaner that grabbed the lock meanwhile
// notices), then deletes the znode recursively, lock contenders included. A
// missing node is not an error.
func (c *Client) DeleteNode(ctx context.Context, id string) error {
	p := NodePath(id)
	data, stat, err := c.get(ctx, p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil
	case err != nil:
		return fmt.Errorf("deleting node %s: %w", id, err)
	}
	if n, derr := DecodeNode(id, data); derr == nil && n.State != NodeDeleted {
		n.State = NodeDeleted
		n.StateTime = unixNow()
		if enc, eerr := n.Encode(); eerr == nil {
			if _, serr := c.set(ctx, p, enc, stat.Version); serr != nil && ctx.Err() == nil {
				c.log.Debug("marking node deleted", "node_id", id, "error", serr)
			}
		}
	}
	if err := c.deleteRecursive(ctx, p); err != nil {
		return fmt.Errorf("deleting node %s: %w", id, err)
	}
	return nil
}

// RemoveHeldNode removes node id in one transaction with its lock: contender (the
// name EnsureLockContender returned for the lock's holder), the lock directory and
// the node znode go together or not at all, so no one ever sees the node unlocked
// or half removed, and the removal costs one request instead of a lock re-check, a
// state write and a walk of the tree. removed is false, with nothing changed, when
// that transaction cannot apply: the contender is gone (the lock was lost, or the
// node was removed already), or the lock or the node has other children (contenders
// queued behind the holder). The caller then removes the node the general way:
// re-assert the lock and DeleteNode.
func (c *Client) RemoveHeldNode(ctx context.Context, id, contender string) (removed bool, err error) {
	p := NodePath(id)
	lock := NodeLockPath(id)
	err = c.multi(ctx,
		&zk.DeleteRequest{Path: c.abs(lock + "/" + contender), Version: -1},
		&zk.DeleteRequest{Path: c.abs(lock), Version: -1},
		&zk.DeleteRequest{Path: c.abs(p), Version: -1},
	)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNotEmpty):
		return false, nil
	default:
		return false, fmt.Errorf("removing node %s: %w", id, err)
	}
}

// DeleteRecursive removes p (relative to the chroot) and everything below
// it. A missing p is not an error.
func (c *Client) DeleteRecursive(ctx context.Context, p string) error {
	if err := c.deleteRecursive(ctx, p); err != nil {
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}

func (c *Client) deleteRecursive(ctx context.Context, p string) error {
	var err error
	for range maxDeleteAttempts {
		err = c.deleteTree(ctx, p)
		if !errors.Is(err, zk.ErrNotEmpty) {
			return err
		}
	}
	return err
}

// deleteTree deletes p's subtree bottom-up.
func (c *Client) deleteTree(ctx context.Context, p string) error {
	children, err := c.children(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, child := range children {
		if err := c.deleteTree(ctx, p+"/"+child); err != nil {
			return err
		}
	}
	err = c.delete(ctx, p, -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}
