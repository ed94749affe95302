package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// adminLockTimeout is how long delete and hold wait for a node lock, as upstream's
// CLI does.
var adminLockTimeout = 5 * time.Second

// deleteNowTimeout bounds delete --now's wait for the launcher to remove the node;
// upstream's synchronous deleter gives up after the same time.
const deleteNowTimeout = 10 * time.Minute

// stateMalformed is shown in the State column for a record that cannot be
// decoded.
const stateMalformed = "malformed"

// Node table columns: the default ones, then the ones --detail adds.
var (
	nodeColumns = []string{"ID", "Provider", "Label", "Server ID", "Public IPv4", "IPv6",
		"State", "Age", "Locked"}
	nodeDetailColumns = []string{"Pool", "Hostname", "Private IPv4", "AZ", "Username", "Port",
		"Launcher", "Allocated To", "Hold Job", "Comment", "User Data", "Driver Data"}
)

// nodeEntry is one node as read for a table: the record, or nil when it could not
// be decoded, and whether the node has lock contenders.
type nodeEntry struct {
	id     string
	node   *zookeeper.Node
	locked bool
}

// nodeHeaders returns the node table columns.
func nodeHeaders(detail bool) []string {
	h := append([]string(nil), nodeColumns...)
	if detail {
		h = append(h, nodeDetailColumns...)
	}
	return h
}

// nodeRow renders one node table row at now.
func nodeRow(e nodeEntry, detail bool, now time.Time) []string {
	locked := "unlocked"
	if e.locked {
		locked = "locked"
	}
	n := e.node
	if n == nil {
		row := []string{e.id, "", "", "", "", "", stateMalformed, "", locked}
		if detail {
			row = append(row, make([]string, len(nodeDetailColumns))...)
		}
		return row
	}
	row := []string{
		n.ID,
		n.Provider,
		listCell(n.Type),
		rawCell(n.ExternalID),
		strCell(n.PublicIPv4),
		strCell(n.PublicIPv6),
		string(n.State),
		ageSince(n.StateTime, now),
		locked,
	}
	if detail {
		row = append(row,
			n.Pool,
			strCell(n.Hostname),
			strCell(n.PrivateIPv4),
			strCell(n.AZ),
			strCell(n.Username),
			portCell(n.ConnectionPort),
			n.Launcher,
			strCell(n.AllocatedTo),
			strCell(n.HoldJob),
			strCell(n.Comment),
			rawCell(n.UserData),
			rawCell(n.DriverData),
		)
	}
	return row
}

// nodeTable renders entries as the node table.
func nodeTable(entries []nodeEntry, detail bool, now time.Time) *table {
	t := newTable(nodeHeaders(detail)...)
	for _, e := range entries {
		t.add(nodeRow(e, detail, now)...)
	}
	return t
}

// readNode reads node id for a table. A node that does not exist yields
// (nil, nil); a record that cannot be decoded is returned as a malformed entry
// after a warning on standard error.
func (s *session) readNode(ctx context.Context, id string) (*nodeEntry, error) {
	n, err := s.zk.GetNode(ctx, id)
	var derr *zookeeper.DecodeError
	switch {
	case errors.Is(err, zookeeper.ErrNotFound):
		return nil, nil
	case errors.As(err, &derr):
		fmt.Fprintf(s.stderr, "warning: node %s: %v\n", id, derr)
		n = nil
	case err != nil:
		return nil, err
	}
	locked, err := s.zk.IsLocked(ctx, zookeeper.NodeLockPath(id))
	if err != nil {
		return nil, err
	}
	return &nodeEntry{id: id, node: n, locked: locked}, nil
}

// readNodes reads every node, sorted by id. Nodes deleted while they are read
// are left out.
func (s *session) readNodes(ctx context.Context) ([]nodeEntry, error) {
	ids, err := s.zk.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]nodeEntry, 0, len(ids))
	for _, id := range ids {
		e, err := s.readNode(ctx, id)
		if err != nil {
			return nil, err
		}
		if e != nil {
			out = append(out, *e)
		}
	}
	return out, nil
}

// printNode prints the table row of node id, as upstream does after delete and
// hold.
func (s *session) printNode(ctx context.Context, id string) error {
	e, err := s.readNode(ctx, id)
	if err != nil {
		return err
	}
	var entries []nodeEntry
	if e != nil {
		entries = append(entries, *e)
	}
	nodeTable(entries, false, time.Now()).write(s.stdout)
	return nil
}

// cmdList prints the node table.
func cmdList(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	detail := fs.Bool("detail", false, "show more columns")
	if _, err := exactArgs(fs, args); err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	entries, err := s.readNodes(ctx)
	if err != nil {
		return err
	}
	nodeTable(entries, *detail, time.Now()).write(s.stdout)
	return nil
}

// errNodeNotFound is reported as upstream words it.
type errNodeNotFound struct{ id string }

func (e errNodeNotFound) Error() string { return fmt.Sprintf("Node id %s not found", e.id) }

// lockedNodeUpdate locks node id with the admin timeout, re-reads it, applies
// change, stores it and unlocks.
func (s *session) lockedNodeUpdate(ctx context.Context, id string, change func(*zookeeper.Node)) error {
	if _, err := s.zk.GetNode(ctx, id); err != nil {
		if errors.Is(err, zookeeper.ErrNotFound) {
			return errNodeNotFound{id}
		}
		return err
	}
	lock := s.zk.NewLock(zookeeper.NodeLockPath(id), "")
	if err := lock.Acquire(ctx, adminLockTimeout); err != nil {
		switch {
		case errors.Is(err, zookeeper.ErrNotFound):
			return errNodeNotFound{id}
		case errors.Is(err, zookeeper.ErrLockTimeout):
			return fmt.Errorf("locking node %s: still locked by another holder after %s", id, adminLockTimeout)
		}
		return fmt.Errorf("locking node %s: %w", id, err)
	}
	defer func() {
		rctx, cancel := cleanupContext(ctx)
		defer cancel()
		if err := lock.Release(rctx); err != nil {
			fmt.Fprintf(s.stderr, "warning: %v\n", err)
		}
	}()
	// Read again under the lock: the node may have changed while we waited.
	_, _, err := s.zk.ModifyNode(ctx, id, nil, func(n *zookeeper.Node) (bool, error) {
		change(n)
		return true, nil
	})
	if errors.Is(err, zookeeper.ErrNotFound) {
		return errNodeNotFound{id}
	}
	return err
}

// cmdHold sets a node to "hold".
func cmdHold(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	reason := fs.String("reason", "", "why the node is held (stored as its comment)")
	pos, err := exactArgs(fs, args, "ID")
	if err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	id := pos[0]
	err = s.lockedNodeUpdate(ctx, id, func(n *zookeeper.Node) {
		n.State = zookeeper.NodeHold
		n.StateTime = unixNow()
		if *reason != "" {
			n.Comment = reason
		}
	})
	if err != nil {
		return err
	}
	return s.printNode(ctx, id)
}

// cmdDelete sets a node to "deleting"; the launcher then deletes it. With --now it
// waits until the node is gone.
func cmdDelete(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	now := fs.Bool("now", false, "wait until the launcher has deleted the node")
	pos, err := exactArgs(fs, args, "ID")
	if err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	id := pos[0]
	err = s.lockedNodeUpdate(ctx, id, func(n *zookeeper.Node) {
		n.State = zookeeper.NodeDeleting
		n.StateTime = unixNow()
	})
	if err != nil {
		return err
	}
	if err := s.printNode(ctx, id); err != nil {
		return err
	}
	if !*now {
		return nil
	}
	fmt.Fprintf(s.stderr, "waiting up to %s for the launcher to delete node %s\n", deleteNowTimeout, id)
	wctx, cancel := context.WithTimeout(ctx, deleteNowTimeout)
	defer cancel()
	if err := s.zk.WaitDeleted(wctx, zookeeper.NodePath(id)); err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			return fmt.Errorf("node %s still exists after %s", id, deleteNowTimeout)
		}
		return fmt.Errorf("waiting for node %s to be deleted: %w", id, err)
	}
	fmt.Fprintf(s.stdout, "Node %s deleted\n", id)
	return nil
}

// cmdInfo prints what ZooKeeper holds for a provider: its image uploads and its
// nodes.
func cmdInfo(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	pos, err := exactArgs(fs, args, "PROVIDER")
	if err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	provider := pos[0]
	if _, ok := s.cfg.Provider(provider); !ok {
		fmt.Fprintf(s.stderr, "warning: provider %s is not in %s\n", provider, s.cfgPath)
	}
	fmt.Fprintf(s.stdout, "ZooKeeper data for provider %s\n\n", provider)

	uploads, err := s.providerUploads(ctx, provider)
	if err != nil {
		return err
	}
	fmt.Fprintln(s.stdout, "Image data:")
	images := newTable("Image Name", "Build ID", "Upload IDs")
	for _, u := range uploads {
		images.add(u.image, u.build, listCell(u.uploads))
	}
	images.write(s.stdout)

	entries, err := s.readNodes(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(s.stdout, "\nNodes:")
	nodes := newTable("ID", "Server ID")
	for _, e := range entries {
		if e.node != nil && e.node.Provider == provider {
			nodes.add(e.id, rawCell(e.node.ExternalID))
		}
	}
	nodes.write(s.stdout)
	return nil
}

// imagesPath is the root of the image builder's records.
const imagesPath = "/nodepool/images"

// buildUploads lists the upload ids of one image build for a provider.
type buildUploads struct {
	image, build string
	uploads      []string
}

// providerUploads lists the image uploads the builder recorded for provider, by
// image and build (/nodepool/images/<image>/builds/<build>/providers/<provider>/
// images/<upload>). The launcher boots cloud images only, so this is normally
// empty; records of an upstream builder sharing the ZooKeeper are shown.
func (s *session) providerUploads(ctx context.Context, provider string) ([]buildUploads, error) {
	var out []buildUploads
	images, err := s.children(ctx, imagesPath)
	if err != nil {
		return nil, err
	}
	for _, image := range images {
		builds, err := s.children(ctx, imagesPath+"/"+image+"/builds")
		if err != nil {
			return nil, err
		}
		for _, build := range builds {
			if build == "lock" {
				continue
			}
			p := fmt.Sprintf("%s/%s/builds/%s/providers/%s/images", imagesPath, image, build, provider)
			uploads, err := s.children(ctx, p)
			if err != nil {
				return nil, err
			}
			var ids []string
			for _, u := range uploads {
				if u != "lock" {
					ids = append(ids, u)
				}
			}
			if len(ids) > 0 {
				out = append(out, buildUploads{image: image, build: build, uploads: ids})
			}
		}
	}
	return out, nil
}

// children lists the children of p (relative to the chroot), sorted; a missing p
// has none.
func (s *session) children(ctx context.Context, p string) ([]string, error) {
	ch, err := s.zk.Children(ctx, p)
	if errors.Is(err, zookeeper.ErrNotFound) {
		return nil, nil
	}
	return ch, err
}

// cleanupTimeout bounds work that must still happen after ctx ended: releasing
// a node lock.
const cleanupTimeout = 30 * time.Second

// cleanupContext returns a context for cleanup that outlives ctx's cancellation.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// unixNow returns the current time as a Nodepool timestamp (state_time).
func unixNow() float64 {
	return zookeeper.Timestamp(time.Now())
}

// joinIDs renders ids for messages.
func joinIDs(ids []string) string {
	return strings.Join(ids, ", ")
}
