package webapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/internal/prettytable"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// readParallelism bounds the ZooKeeper reads in flight while listing.
const readParallelism = 8

// stateMalformed is the state shown for a record that cannot be decoded.
const stateMalformed = "malformed"

// column is one column of a listing: its key in JSON objects and its header in text
// tables, as upstream's status module names them.
type column struct{ key, header string }

// cell is one value of a listing, in both renderings.
type cell struct {
	json json.RawMessage
	text string
}

// listing is the answer of a list endpoint.
type listing struct {
	columns []column
	rows    [][]cell
}

// Columns of every list endpoint, in upstream's order.
var (
	nodeColumns = []column{
		{"id", "ID"}, {"provider", "Provider"}, {"label", "Label"}, {"server_id", "Server ID"},
		{"public_ipv4", "Public IPv4"}, {"ipv6", "IPv6"}, {"state", "State"}, {"age", "Age"},
		{"locked", "Locked"}, {"pool", "Pool"}, {"hostname", "Hostname"}, {"private_ipv4", "Private IPv4"},
		{"AZ", "AZ"}, {"username", "Username"}, {"connection_port", "Port"}, {"launcher", "Launcher"},
		{"allocated_to", "Allocated To"}, {"hold_job", "Hold Job"}, {"comment", "Comment"},
		{"user_data", "User Data"}, {"driver_data", "Driver Data"},
	}
	requestColumns = []column{
		{"id", "Request ID"}, {"relative_priority", "Priority"}, {"state", "State"},
		{"requestor", "Requestor"}, {"node_types", "Node Types"}, {"nodes", "Nodes"},
		{"declined_by", "Declined By"}, {"event_id", "Event ID"},
	}
	labelColumns      = []column{{"label", "Label"}}
	imageColumns      = []column{{"id", "Build ID"}, {"upload_id", "Upload ID"}, {"provider", "Provider"}, {"image", "Image"}, {"external_name", "Provider Image Name"}, {"external_id", "Provider Image ID"}, {"state", "State"}, {"age", "Age"}}
	dibImageColumns   = []column{{"id", "ID"}, {"image", "Image"}, {"builder", "Builder"}, {"formats", "Formats"}, {"state", "State"}, {"age", "Age"}}
	imageStatusColumn = []column{{"image", "Image"}, {"paused", "Paused"}, {"build_request", "Build Request"}, {"build_request_age", "Build Request Age"}}
)

var nullJSON = json.RawMessage("null")

func strValue(s string) cell {
	return cell{json: mustJSON(s), text: s}
}

// optString is a nullable string: null and "" when unset.
func optString(s *string) cell {
	if s == nil {
		return cell{json: nullJSON}
	}
	return strValue(*s)
}

// nonEmpty is a string field that upstream leaves None when unset.
func nonEmpty(s string) cell {
	if s == "" {
		return cell{json: nullJSON}
	}
	return strValue(s)
}

// list is a list of strings, comma-joined in text.
func list(items []string) cell {
	if items == nil {
		items = []string{}
	}
	return cell{json: mustJSON(items), text: strings.Join(items, ",")}
}

func intValue(n int) cell {
	return cell{json: mustJSON(n), text: strconv.Itoa(n)}
}

// raw is arbitrary stored JSON: itself in JSON (null when absent), in text a string
// as is and anything else as compact JSON.
func raw(r json.RawMessage) cell {
	trimmed := bytes.TrimSpace(r)
	if len(trimmed) == 0 || bytes.Equal(trimmed, nullJSON) {
		return cell{json: nullJSON}
	}
	var b bytes.Buffer
	if err := json.Compact(&b, trimmed); err != nil {
		return strValue(string(trimmed))
	}
	var s string
	if err := json.Unmarshal(trimmed, &s); err == nil {
		return cell{json: b.Bytes(), text: s}
	}
	return cell{json: b.Bytes(), text: b.String()}
}

// port is a connection port: an integer as stored, anything else (Kubernetes
// credentials, say) "redacted", as upstream shows it.
func port(r json.RawMessage) cell {
	trimmed := bytes.TrimSpace(r)
	var n json.Number
	if err := json.Unmarshal(trimmed, &n); err == nil {
		if _, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return cell{json: trimmed, text: n.String()}
		}
	}
	var s string
	if err := json.Unmarshal(trimmed, &s); err == nil {
		if _, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return cell{json: trimmed, text: s}
		}
	}
	return strValue("redacted")
}

func mustJSON(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // strings, string lists and integers always encode
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// formatAge renders an elapsed time as upstream does, DD:HH:MM:SS with whole seconds;
// days grow past two digits when needed. A clock ahead of ours renders as zero.
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	total := int64(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d:%02d", total/86400, total/3600%24, total/60%60, total%60)
}

// age renders the age of a unix timestamp at now; an unset timestamp renders empty.
func age(unix float64, now time.Time) cell {
	if unix <= 0 {
		return strValue("")
	}
	return strValue(formatAge(now.Sub(zookeeper.TimeOf(unix))))
}

// nodeEntry is a node as read: its record (nil when it does not decode) and whether
// its lock has contenders.
type nodeEntry struct {
	id     string
	node   *zookeeper.Node
	locked bool
}

func nodeRow(e nodeEntry, now time.Time) []cell {
	locked := "unlocked"
	if e.locked {
		locked = "locked"
	}
	n := e.node
	if n == nil {
		row := make([]cell, len(nodeColumns))
		for i := range row {
			row[i] = cell{json: nullJSON}
		}
		row[0], row[6], row[8] = strValue(e.id), strValue(stateMalformed), strValue(locked)
		return row
	}
	return []cell{
		strValue(n.ID),
		nonEmpty(n.Provider),
		list(n.Type),
		raw(n.ExternalID),
		optString(n.PublicIPv4),
		optString(n.PublicIPv6),
		strValue(string(n.State)),
		age(n.StateTime, now),
		strValue(locked),
		nonEmpty(n.Pool),
		optString(n.Hostname),
		optString(n.PrivateIPv4),
		optString(n.AZ),
		optString(n.Username),
		port(n.ConnectionPort),
		nonEmpty(n.Launcher),
		optString(n.AllocatedTo),
		optString(n.HoldJob),
		optString(n.Comment),
		raw(n.UserData),
		raw(n.DriverData),
	}
}

// readNode reads node id and its lock state; a node that does not exist yields nil.
func readNode(ctx context.Context, zk *zookeeper.Client, id string) (*nodeEntry, error) {
	n, err := zk.GetNode(ctx, id)
	var derr *zookeeper.DecodeError
	switch {
	case errors.Is(err, zookeeper.ErrNotFound):
		return nil, nil
	case errors.As(err, &derr):
		n = nil
	case err != nil:
		return nil, err
	}
	locked, err := zk.IsLocked(ctx, zookeeper.NodeLockPath(id))
	if errors.Is(err, zookeeper.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &nodeEntry{id: id, node: n, locked: locked}, nil
}

// nodeList lists every node, or only node nodeID when it is set, sorted by id.
func nodeList(ctx context.Context, zk *zookeeper.Client, nodeID string, now time.Time) (*listing, error) {
	var ids []string
	if nodeID != "" {
		if !plainName(nodeID) {
			return &listing{columns: nodeColumns}, nil // no znode can have that name
		}
		ids = []string{nodeID}
	} else {
		var err error
		if ids, err = zk.ListNodes(ctx); err != nil {
			return nil, err
		}
	}
	entries := make([]*nodeEntry, len(ids))
	err := readEach(ctx, ids, func(ctx context.Context, i int, id string) error {
		e, err := readNode(ctx, zk, id)
		entries[i] = e
		return err
	})
	if err != nil {
		return nil, err
	}
	l := &listing{columns: nodeColumns}
	for _, e := range entries {
		if e != nil {
			l.rows = append(l.rows, nodeRow(*e, now))
		}
	}
	return l, nil
}

// plainName reports whether s can name a child znode: not "." or "..", without '/'
// or control characters.
func plainName(s string) bool {
	if s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r == '/' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// requestList lists every node request in id order (priority, then submission).
func requestList(ctx context.Context, zk *zookeeper.Client) (*listing, error) {
	ids, err := zk.ListRequests(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([][]cell, len(ids))
	err = readEach(ctx, ids, func(ctx context.Context, i int, id string) error {
		r, err := zk.GetRequest(ctx, id)
		var derr *zookeeper.DecodeError
		switch {
		case errors.Is(err, zookeeper.ErrNotFound):
			return nil
		case errors.As(err, &derr):
			row := make([]cell, len(requestColumns))
			for j := range row {
				row[j] = cell{json: nullJSON}
			}
			row[0], row[2] = strValue(id), strValue(stateMalformed)
			rows[i] = row
			return nil
		case err != nil:
			return err
		}
		rows[i] = []cell{
			strValue(r.ID),
			intValue(r.RelativePriority),
			strValue(string(r.State)),
			optString(r.Requestor),
			list(r.NodeTypes),
			list(r.Nodes),
			list(r.DeclinedBy),
			optString(r.EventID),
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &listing{columns: requestColumns, rows: slices.DeleteFunc(rows, func(r []cell) bool { return r == nil })}, nil
}

// labelList lists the union of the labels every registered pool supports, sorted.
func labelList(ctx context.Context, zk *zookeeper.Client) (*listing, error) {
	pools, err := zk.ListPools(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var labels []string
	for _, p := range pools {
		for _, l := range p.SupportedLabels {
			if !seen[l] {
				seen[l] = true
				labels = append(labels, l)
			}
		}
	}
	slices.Sort(labels)
	l := &listing{columns: labelColumns}
	for _, label := range labels {
		l.rows = append(l.rows, []cell{strValue(label)})
	}
	return l, nil
}

// readEach calls read for every id with at most readParallelism calls in flight.
func readEach(ctx context.Context, ids []string, read func(ctx context.Context, i int, id string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readParallelism)
	for i, id := range ids {
		g.Go(func() error { return read(gctx, i, id) })
	}
	return g.Wait()
}

// renderJSON renders the listing as a JSON list of objects whose keys are the column
// keys in column order, written as Python's json.dumps writes them (see pyJSON).
func (l *listing) renderJSON() []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, row := range l.rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for j, c := range l.columns {
			if j > 0 {
				b.WriteByte(',')
			}
			b.Write(mustJSON(c.key))
			b.WriteByte(':')
			b.Write(row[j].json)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	if out, err := pyJSON(b.Bytes()); err == nil {
		return out
	}
	return b.Bytes()
}

// renderText renders the listing as a text table of the columns whose keys are in
// fields (every column when fields is empty), in column order. Like upstream's, the
// table ends without a newline.
func (l *listing) renderText(fields []string) []byte {
	var keep []int
	for i, c := range l.columns {
		if len(fields) == 0 || slices.Contains(fields, c.key) {
			keep = append(keep, i)
		}
	}
	headers := make([]string, len(keep))
	for i, k := range keep {
		headers[i] = l.columns[k].header
	}
	rows := make([][]string, len(l.rows))
	for r, row := range l.rows {
		rows[r] = make([]string, len(keep))
		for i, k := range keep {
			rows[r][i] = row[k].text
		}
	}
	var b strings.Builder
	_ = prettytable.Write(&b, headers, rows)
	return []byte(strings.TrimSuffix(b.String(), "\n"))
}
