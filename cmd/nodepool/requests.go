package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// requestColumns are the request table columns; Priority is the relative
// priority, as upstream shows it (the priority prefix is part of the id).
var requestColumns = []string{"Request ID", "Priority", "State", "Requestor", "Node Types",
	"Nodes", "Declined By", "Event ID"}

// requestEntry is one request as read for the table: the record, or nil when it
// could not be decoded.
type requestEntry struct {
	id  string
	req *zookeeper.NodeRequest
}

// requestRow renders one request table row.
func requestRow(e requestEntry) []string {
	r := e.req
	if r == nil {
		return []string{e.id, "", stateMalformed, "", "", "", "", ""}
	}
	return []string{
		r.ID,
		strconv.Itoa(r.RelativePriority),
		string(r.State),
		strCell(r.Requestor),
		listCell(r.NodeTypes),
		listCell(r.Nodes),
		listCell(r.DeclinedBy),
		strCell(r.EventID),
	}
}

// requestTable renders entries as the request table.
func requestTable(entries []requestEntry) *table {
	t := newTable(requestColumns...)
	for _, e := range entries {
		t.add(requestRow(e)...)
	}
	return t
}

// requestJSON is a request as --json prints it, with upstream's request-list
// keys.
type requestJSON struct {
	ID               string   `json:"id"`
	RelativePriority *int     `json:"relative_priority"`
	State            string   `json:"state"`
	Requestor        *string  `json:"requestor"`
	NodeTypes        []string `json:"node_types"`
	Nodes            []string `json:"nodes"`
	DeclinedBy       []string `json:"declined_by"`
	EventID          *string  `json:"event_id"`
}

// requestObjects renders entries for --json.
func requestObjects(entries []requestEntry) []requestJSON {
	out := make([]requestJSON, 0, len(entries))
	for _, e := range entries {
		r := e.req
		if r == nil {
			out = append(out, requestJSON{ID: e.id, State: stateMalformed, NodeTypes: []string{}, Nodes: []string{}, DeclinedBy: []string{}})
			continue
		}
		prio := r.RelativePriority
		out = append(out, requestJSON{
			ID:               r.ID,
			RelativePriority: &prio,
			State:            string(r.State),
			Requestor:        r.Requestor,
			NodeTypes:        append([]string{}, r.NodeTypes...),
			Nodes:            append([]string{}, r.Nodes...),
			DeclinedBy:       append([]string{}, r.DeclinedBy...),
			EventID:          r.EventID,
		})
	}
	return out
}

// readRequests reads every request in id order (priority, then submission).
// Requests deleted while they are read are left out; undecodable ones are
// returned as malformed entries after a warning.
func (s *session) readRequests(ctx context.Context) ([]requestEntry, error) {
	ids, err := s.zk.ListRequests(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]requestEntry, 0, len(ids))
	for _, id := range ids {
		r, err := s.zk.GetRequest(ctx, id)
		var derr *zookeeper.DecodeError
		switch {
		case errors.Is(err, zookeeper.ErrNotFound):
			continue
		case errors.As(err, &derr):
			fmt.Fprintf(s.stderr, "warning: request %s: %v\n", id, derr)
			r = nil
		case err != nil:
			return nil, err
		}
		out = append(out, requestEntry{id: id, req: r})
	}
	return out, nil
}

// cmdRequestList prints the request table.
func cmdRequestList(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	if _, err := exactArgs(fs, args); err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	entries, err := s.readRequests(ctx)
	if err != nil {
		return err
	}
	return s.output(requestTable(entries), requestObjects(entries))
}
