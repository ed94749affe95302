package main

import (
	"bufio"
	"context"
	"encoding/json"
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

// nodeJSON is a node as --json prints it: upstream's node-list keys, every one
// of them whatever --detail says, nulls included.
type nodeJSON struct {
	ID             string          `json:"id"`
	Provider       *string         `json:"provider"`
	Label          []string        `json:"label"`
	ServerID       json.RawMessage `json:"server_id"`
	PublicIPv4     *string         `json:"public_ipv4"`
	IPv6           *string         `json:"ipv6"`
	State          string          `json:"state"`
	Age            *string         `json:"age"`
	Locked         string          `json:"locked"`
	Pool           *string         `json:"pool"`
	Hostname       *string         `json:"hostname"`
	PrivateIPv4    *string         `json:"private_ipv4"`
	AZ             *string         `json:"AZ"`
	Username       *string         `json:"username"`
	ConnectionPort any             `json:"connection_port"`
	Launcher       *string         `json:"launcher"`
	AllocatedTo    *string         `json:"allocated_to"`
	HoldJob        *string         `json:"hold_job"`
	Comment        *string         `json:"comment"`
	UserData       json.RawMessage `json:"user_data"`
	DriverData     json.RawMessage `json:"driver_data"`
}

// nodeObject renders one node for --json at now. A port that is not an integer
// (credentials) is "redacted" here too.
func nodeObject(e nodeEntry, now time.Time) nodeJSON {
	locked := "unlocked"
	if e.locked {
		locked = "locked"
	}
	n := e.node
	if n == nil {
		return nodeJSON{ID: e.id, Label: []string{}, State: stateMalformed, Locked: locked}
	}
	var port any
	if p := portCell(n.ConnectionPort); p == "redacted" {
		port = p
	} else if p != "" {
		port = json.RawMessage(p)
	}
	return nodeJSON{
		ID:             n.ID,
		Provider:       optional(n.Provider),
		Label:          append([]string{}, n.Type...),
		ServerID:       rawOrNull(n.ExternalID),
		PublicIPv4:     n.PublicIPv4,
		IPv6:           n.PublicIPv6,
		State:          string(n.State),
		Age:            optional(ageSince(n.StateTime, now)),
		Locked:         locked,
		Pool:           optional(n.Pool),
		Hostname:       n.Hostname,
		PrivateIPv4:    n.PrivateIPv4,
		AZ:             n.AZ,
		Username:       n.Username,
		ConnectionPort: port,
		Launcher:       optional(n.Launcher),
		AllocatedTo:    n.AllocatedTo,
		HoldJob:        n.HoldJob,
		Comment:        n.Comment,
		UserData:       rawOrNull(n.UserData),
		DriverData:     rawOrNull(n.DriverData),
	}
}

// nodeObjects renders entries for --json.
func nodeObjects(entries []nodeEntry, now time.Time) []nodeJSON {
	out := make([]nodeJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, nodeObject(e, now))
	}
	return out
}

// printNodes prints entries as the node table, or as JSON with --json.
func (s *session) printNodeEntries(entries []nodeEntry, detail bool) error {
	now := time.Now()
	return s.output(nodeTable(entries, detail, now), nodeObjects(entries, now))
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
	return s.printNodeEntries(entries, false)
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
	return s.printNodeEntries(entries, *detail)
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

// cmdHold sets a node to "hold", with a comment and an expiry when given.
func cmdHold(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	var reason string
	var expiry int
	fs.StringVar(&reason, "reason", "", "why the node is held (stored as its comment)")
	fs.StringVar(&reason, "comment", "", "the same as --reason")
	fs.IntVar(&expiry, "hold-expiration", 0, "delete the node this many seconds after the hold (0: only max-hold-age applies)")
	fs.IntVar(&expiry, "expiry", 0, "the same as --hold-expiration")
	pos, err := exactArgs(fs, args, "ID")
	if err != nil {
		return err
	}
	if expiry < 0 {
		return usagef("--hold-expiration must not be negative, got %d", expiry)
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	id := pos[0]
	err = s.lockedNodeUpdate(ctx, id, func(n *zookeeper.Node) {
		n.State = zookeeper.NodeHold
		n.StateTime = unixNow()
		if reason != "" {
			n.Comment = &reason
		}
		if expiry > 0 {
			n.HoldExpiration = expiry
		}
	})
	if err != nil {
		return err
	}
	return s.printNode(ctx, id)
}

// cmdDelete sets a node to "deleting"; the launcher then deletes it. With --now it
// waits until the node is gone, reporting its progress.
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
	if *now {
		n, err := s.zk.GetNode(ctx, id)
		switch {
		case errors.Is(err, zookeeper.ErrNotFound):
			return errNodeNotFound{id}
		case err == nil:
			if _, ok := s.cfg.Provider(n.Provider); !ok {
				// Only a launcher that has the provider can delete the instance.
				fmt.Fprintf(s.stderr, "Provider %s for node %s not defined on this launcher\n", n.Provider, id)
				return errReported
			}
		}
	}
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
	s.progress("waiting up to %s for the launcher to delete node %s", deleteNowTimeout, id)
	if err := s.waitNodeGone(ctx, id, deleteNowTimeout); err != nil {
		return err
	}
	if !s.g.json {
		fmt.Fprintf(s.stdout, "Node %s deleted\n", id)
	}
	return nil
}

// waitNodeGone waits until node id is gone, reporting its state on standard
// error when it changes and every progressEvery.
func (s *session) waitNodeGone(ctx context.Context, id string, timeout time.Duration) error {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last, lastReport := "", start
	for {
		pctx, pcancel := context.WithTimeout(wctx, progressPoll)
		err := s.zk.WaitDeleted(pctx, zookeeper.NodePath(id))
		pcancel()
		if err == nil {
			s.progress("node %s deleted after %s", id, roundDuration(time.Since(start)))
			return nil
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("interrupted while waiting for node %s to be deleted", id)
		case wctx.Err() != nil:
			return fmt.Errorf("node %s still exists after %s", id, timeout)
		case pctx.Err() == nil:
			return fmt.Errorf("waiting for node %s to be deleted: %w", id, err)
		}
		state := "unreadable"
		if n, err := s.zk.GetNode(wctx, id); err == nil {
			state = string(n.State)
		} else if errors.Is(err, zookeeper.ErrNotFound) {
			continue
		}
		if locked, err := s.zk.IsLocked(wctx, zookeeper.NodeLockPath(id)); err == nil && locked {
			state += ", locked"
		}
		if state != last || time.Since(lastReport) >= progressEvery {
			s.progress("node %s is %s (%s)", id, state, roundDuration(time.Since(start)))
			last, lastReport = state, time.Now()
		}
	}
}

// infoJSON is info's --json output.
type infoJSON struct {
	Provider  string          `json:"provider"`
	ImageData []infoImageJSON `json:"image_data"`
	Nodes     []infoNodeJSON  `json:"nodes"`
}

type infoImageJSON struct {
	Image     string   `json:"image"`
	BuildID   string   `json:"build_id"`
	UploadIDs []string `json:"upload_ids"`
}

type infoNodeJSON struct {
	ID       string          `json:"id"`
	ServerID json.RawMessage `json:"server_id"`
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
		fmt.Fprintf(s.stderr, "warning: provider %s is not in %s\n", provider, s.g.cfgPath)
	}
	uploads, err := s.providerUploads(ctx, provider)
	if err != nil {
		return err
	}
	entries, err := s.providerNodes(ctx, provider)
	if err != nil {
		return err
	}
	if s.g.json {
		out := infoJSON{Provider: provider, ImageData: []infoImageJSON{}, Nodes: []infoNodeJSON{}}
		for _, u := range uploads {
			out.ImageData = append(out.ImageData, infoImageJSON{Image: u.image, BuildID: u.build, UploadIDs: u.uploads})
		}
		for _, e := range entries {
			out.Nodes = append(out.Nodes, infoNodeJSON{ID: e.id, ServerID: rawOrNull(e.node.ExternalID)})
		}
		return s.printJSON(out)
	}

	fmt.Fprintf(s.stdout, "ZooKeeper data for provider %s\n\n", provider)
	fmt.Fprintln(s.stdout, "Image data:")
	images := newTable("Image Name", "Build ID", "Upload IDs")
	for _, u := range uploads {
		images.add(u.image, u.build, listCell(u.uploads))
	}
	images.write(s.stdout)

	fmt.Fprintln(s.stdout, "\nNodes:")
	nodes := newTable("ID", "Server ID")
	for _, e := range entries {
		nodes.add(e.id, rawCell(e.node.ExternalID))
	}
	nodes.write(s.stdout)
	return nil
}

// providerNodes reads the nodes of provider (records that decode only).
func (s *session) providerNodes(ctx context.Context, provider string) ([]nodeEntry, error) {
	entries, err := s.readNodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []nodeEntry
	for _, e := range entries {
		if e.node != nil && e.node.Provider == provider {
			out = append(out, e)
		}
	}
	return out, nil
}

// cmdErase deletes what ZooKeeper holds for a provider that is no longer in the
// configuration: its image upload records and its node records. It asks first
// unless --force is given.
func cmdErase(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	force := fs.Bool("force", false, "do not ask for confirmation")
	pos, err := exactArgs(fs, args, "PROVIDER")
	if err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	provider := pos[0]
	if _, ok := s.cfg.Provider(provider); ok {
		fmt.Fprintf(s.stderr, "provider %s is in %s: the launcher still manages its nodes; remove it from the configuration first\n",
			provider, s.g.cfgPath)
		return errReported
	}
	uploads, err := s.providerUploads(ctx, provider)
	if err != nil {
		return err
	}
	entries, err := s.providerNodes(ctx, provider)
	if err != nil {
		return err
	}
	builds := uploadBuilds(uploads)
	if !*force {
		fmt.Fprintf(s.stdout, "Provider %s has %d node record(s) and uploads of %d image build(s) in ZooKeeper.\n",
			provider, len(entries), len(builds))
		fmt.Fprintln(s.stdout, "\nWARNING! This action is not reversible!")
		fmt.Fprintf(s.stdout, "Erase ZooKeeper data for provider %s? [N/y] ", provider)
		answer, _ := bufio.NewReader(s.stdin).ReadString('\n')
		if !strings.EqualFold(strings.TrimSpace(answer), "y") {
			fmt.Fprintln(s.stdout, "\nAborting. No data erased.")
			return nil
		}
	}
	fmt.Fprintf(s.stdout, "Erasing build data for %s...\n", provider)
	for _, b := range builds {
		if err := s.zk.DeleteRecursive(ctx, b); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.stdout, "Erasing node data for %s...\n", provider)
	p := s.newCounter("erased", "node records", len(entries))
	for _, e := range entries {
		if err := s.zk.DeleteNode(ctx, e.id); err != nil {
			return err
		}
		p.add(1)
	}
	p.done()
	return nil
}

// uploadBuilds lists the provider subtrees of the builds uploads belong to
// (/nodepool/images/<image>/builds/<build>/providers/<provider>), one per build.
func uploadBuilds(uploads []buildUploads) []string {
	var out []string
	for _, u := range uploads {
		out = append(out, fmt.Sprintf("%s/%s/builds/%s/providers/%s", imagesPath, u.image, u.build, u.provider))
	}
	return out
}

// imagesPath is the root of the image builder's records.
const imagesPath = "/nodepool/images"

// buildUploads lists the upload ids of one image build for a provider.
type buildUploads struct {
	image, build, provider string
	uploads                []string
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
				out = append(out, buildUploads{image: image, build: build, provider: provider, uploads: ids})
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

// optional returns a pointer to s, or nil for an empty s (null in JSON).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// rawOrNull returns raw, or nil (null in JSON) when it is empty.
func rawOrNull(raw json.RawMessage) json.RawMessage {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return nil
	}
	return raw
}

// joinIDs renders ids for messages.
func joinIDs(ids []string) string {
	return strings.Join(ids, ", ")
}
