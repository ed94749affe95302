package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// updateNode reads a node, lets change modify it, and writes it with a version check,
// starting over when someone else wrote in between. change returns false to write
// nothing.
func (a *Activities) updateNode(ctx context.Context, id string, change func(*zookeeper.Node) bool) error {
	_, _, err := a.zk.ModifyNode(ctx, id, nil, func(n *zookeeper.Node) (bool, error) { return change(n), nil })
	if isNotFound(err) {
		return nodeGone(id)
	}
	if err != nil {
		return fmt.Errorf("updating node %s: %w", id, err)
	}
	return nil
}

// storeExternalID records the instance of a node's launch on the node. An instance the
// node recorded before is never forgotten: it gets a node record of its own in state
// "failed", so the deletion workflow makes sure it is gone (it usually is: a failed
// attempt's instance is deleted before the next attempt starts).
func (a *Activities) storeExternalID(ctx context.Context, nodeID, externalID string) error {
	var superseded *zookeeper.Node
	// Compare as the node record reads them: an id stored as a JSON object (AWS's
	// {"instance": …, "region": …}) reads back as its instance id.
	want := (&zookeeper.Node{ExternalID: externalIDJSON(externalID)}).ExternalIDString()
	err := a.updateNode(ctx, nodeID, func(n *zookeeper.Node) bool {
		superseded = nil
		if old := n.ExternalIDString(); old != "" && old != want {
			prev := *n
			superseded = &prev
		}
		n.ExternalID = externalIDJSON(externalID)
		return true
	})
	if err != nil || superseded == nil {
		return err
	}
	label := ""
	if len(superseded.Type) > 0 {
		label = superseded.Type[0]
	}
	old := superseded.ExternalIDString()
	_, rerr := a.HoldInstance(ctx, HoldInstanceInput{
		Provider: superseded.Provider, Pool: superseded.Pool, PoolID: superseded.Launcher, Label: label,
		ExternalID: old, State: InstanceFailed,
		Comment: fmt.Sprintf("earlier instance of node %s, superseded by %s", nodeID, externalID),
	})
	if rerr != nil {
		a.logger.Warn("recording a superseded instance", "node_id", nodeID, "external_id", old, "error", rerr)
	}
	return nil
}

// NodeReady stores the launched instance on the node and marks it ready. The node stays
// locked until the request is fulfilled.
func (a *Activities) NodeReady(ctx context.Context, in NodeReadyInput) error {
	if err := a.lockNode(ctx, in.NodeID, in.Owner); err != nil {
		return err
	}
	err := a.updateNode(ctx, in.NodeID, func(n *zookeeper.Node) bool {
		applyInstance(n, in.Instance, in.Need)
		n.State = zookeeper.NodeReady
		n.StateTime = a.unixNow()
		return true
	})
	if err != nil {
		return err
	}
	a.logger.Info("node ready", "node_id", in.NodeID, "external_id", in.Instance.ExternalID)
	return nil
}

func applyInstance(n *zookeeper.Node, inst drivers.Instance, need drivers.Resources) {
	n.ExternalID = externalIDJSON(inst.ExternalID)
	n.InterfaceIP = inst.InterfaceIP
	n.PublicIPv4 = optStr(inst.PublicIPv4)
	n.PrivateIPv4 = optStr(inst.PrivateIPv4)
	n.PublicIPv6 = optStr(inst.PublicIPv6)
	n.Cloud = optStr(inst.Cloud)
	n.Region = optStr(inst.Region)
	n.AZ = optStr(inst.AZ)
	n.HostID = optStr(inst.HostID)
	ctype := inst.ConnectionType
	if ctype == "" {
		ctype = "ssh"
	}
	port := inst.ConnectionPort
	if port == 0 {
		port = 22
		if ctype == "winrm" {
			port = 5986
		}
	}
	n.ConnectionType = strPtr(ctype)
	n.ConnectionPort = json.RawMessage(fmt.Sprint(port))
	n.SSHPort = port
	n.Username = optStr(inst.Username)
	python := inst.PythonPath
	if python == "" {
		python = "auto"
	}
	n.PythonPath = strPtr(python)
	n.ShellType = optStr(inst.ShellType)
	n.HostKeys = append([]string{}, inst.HostKeys...)
	if inst.ImageName != "" {
		n.ImageID = inst.ImageName
	}
	res := need
	if len(inst.Quota) > 0 {
		res = inst.Quota
	}
	n.Resources = toFloat(res)
	if len(inst.DriverData) > 0 {
		n.DriverData = inst.DriverData
	}
}

// RemoveNode deletes a node znode (and its lock) that the owner holds or that nobody
// holds. A node locked by someone else is left alone.
func (a *Activities) RemoveNode(ctx context.Context, in NodeRefInput) error {
	return a.removeNode(ctx, in.NodeID, in.Owner, "")
}

// removeNode removes node id under owner's lock. When the holding contender is known,
// the node and its lock go in one transaction; when that cannot apply (the lock
// changed, others queue for it), or the contender is not known, the lock is asserted
// again and the node deleted.
func (a *Activities) removeNode(ctx context.Context, id, owner, contender string) error {
	if contender != "" {
		removed, err := a.zk.RemoveHeldNode(ctx, id, contender)
		if err != nil {
			a.logger.Debug("removing node with its lock", "node_id", id, "error", err)
		}
		if removed {
			a.logger.Info("deleted node", "node_id", id)
			return nil
		}
	}
	in := NodeRefInput{NodeID: id, Owner: owner}
	held, err := a.zk.EnsureLock(ctx, zookeeper.NodeLockPath(in.NodeID), in.Owner)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("locking node %s: %w", in.NodeID, err)
	}
	if !held {
		return lockLost("node " + in.NodeID)
	}
	if err := a.zk.DeleteNode(ctx, in.NodeID); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting node %s: %w", in.NodeID, err)
	}
	a.logger.Info("deleted node", "node_id", in.NodeID)
	return nil
}

// HoldInstance records a failed launch's instance as its own node in state "hold", so it
// can be inspected and is deleted by the normal hold expiry.
func (a *Activities) HoldInstance(ctx context.Context, in HoldInstanceInput) (HoldInstanceResult, error) {
	now := a.unixNow()
	state := zookeeper.NodeHold
	if in.State == InstanceFailed {
		state = zookeeper.NodeFailed
	}
	node := &zookeeper.Node{
		State:          state,
		StateTime:      now,
		CreatedTime:    now,
		Type:           zookeeper.Labels{in.Label},
		Provider:       in.Provider,
		Pool:           in.Pool,
		Launcher:       in.PoolID,
		ExternalID:     externalIDJSON(in.ExternalID),
		Comment:        strPtr(in.Comment),
		HoldExpiration: in.HoldExpiration,
		TenantName:     optStr(in.TenantName),
		Requestor:      optStr(in.Requestor),
		HostKeys:       []string{},
	}
	id, err := a.zk.CreateNode(ctx, node)
	if err != nil {
		return HoldInstanceResult{}, fmt.Errorf("creating held node: %w", err)
	}
	a.logger.Info("recorded instance of a failed launch", "node_id", id, "state", state, "external_id", in.ExternalID)
	return HoldInstanceResult{NodeID: id}, nil
}

// NodeInstance returns the external id recorded on a node.
func (a *Activities) NodeInstance(ctx context.Context, in NodeRefInput) (NodeInstanceResult, error) {
	n, err := a.zk.GetNode(ctx, in.NodeID)
	if isNotFound(err) {
		return NodeInstanceResult{}, nil
	}
	if err != nil {
		return NodeInstanceResult{}, fmt.Errorf("reading node %s: %w", in.NodeID, err)
	}
	return NodeInstanceResult{ExternalID: n.ExternalIDString()}, nil
}

// ReleaseNode releases our lock on a node, leaving the node for the deletion workflow.
func (a *Activities) ReleaseNode(ctx context.Context, in NodeRefInput) error {
	if err := a.zk.ReleaseOwned(ctx, zookeeper.NodeLockPath(in.NodeID), in.Owner); err != nil && !isNotFound(err) {
		return fmt.Errorf("unlocking node %s: %w", in.NodeID, err)
	}
	return nil
}

// FinishDelete removes a deleted node's znode (under the deletion's lock) and then
// tells the pool's ledger that the node's capacity is free. The release is best
// effort: a ledger that is not running or does not answer gets nothing, and its
// reconciliation frees nodes whose znode is gone. Running both here, in one local
// activity, costs the deletion workflow one history event instead of a marker, a
// signal's two events and a workflow task. Releases of many deletions at once share
// signals (see releaseBatcher).
func (a *Activities) FinishDelete(ctx context.Context, in FinishDeleteInput) error {
	if err := a.removeNode(ctx, in.NodeID, in.Owner, in.Contender); err != nil {
		return err
	}
	if a.temporal == nil || in.Ledger == "" || in.Signal == "" {
		return nil
	}
	err := a.releases.release(ctx, a.temporal, in.Ledger, in.Signal, in.NodeID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		a.logger.Info("no ledger to release capacity to", "ledger", in.Ledger, "node_id", in.NodeID)
	case err != nil:
		a.logger.Warn("releasing capacity", "ledger", in.Ledger, "node_id", in.NodeID, "error", err)
	}
	return nil
}
