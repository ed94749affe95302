package zookeeper

import (
	"context"
	"fmt"
	"sort"

	"github.com/go-zookeeper/zk"
)

// Children lists the child names of p (relative to the chroot), sorted. A missing p
// yields ErrNotFound.
func (c *Client) Children(ctx context.Context, p string) ([]string, error) {
	ch, err := do(c, ctx, func() ([]string, error) {
		names, _, err := c.conn.Children(c.abs(p))
		return names, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", p, mapErr(err))
	}
	sort.Strings(ch)
	return ch, nil
}

// GetW reads the data of p (relative to the chroot) and sets a one-shot data watch on
// it. A missing p yields ErrNotFound and no watch. The watch fires on a change or
// deletion of p, and with zk.EventNotWatching when the session is lost.
func (c *Client) GetW(ctx context.Context, p string) ([]byte, <-chan zk.Event, error) {
	type result struct {
		data  []byte
		watch <-chan zk.Event
	}
	r, err := do(c, ctx, func() (result, error) {
		data, _, watch, err := c.conn.GetW(c.abs(p))
		return result{data, watch}, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", p, mapErr(err))
	}
	return r.data, r.watch, nil
}

// Get reads the data and stat of p (relative to the chroot). A missing p yields
// ErrNotFound. Records have typed readers (GetRequest, GetNode); Get is for
// znodes without one and for looking at a record's bytes as stored.
func (c *Client) Get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	data, stat, err := c.get(ctx, p)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", p, mapErr(err))
	}
	return data, stat, nil
}

// Create creates p (relative to the chroot) with data, open to everyone, and
// returns the created path relative to the chroot (sequential znodes get their
// suffix). flags are go-zookeeper's (zk.FlagEphemeral, zk.FlagSequence). The
// parent must exist (see EnsurePath); an existing p yields an error wrapping
// zk.ErrNodeExists.
func (c *Client) Create(ctx context.Context, p string, data []byte, flags int32) (string, error) {
	created, err := c.create(ctx, p, data, flags)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", p, mapErr(err))
	}
	return created, nil
}

// ExistsW reports whether p (relative to the chroot) exists and sets a one-shot
// watch on it: it fires when p is created, changed or deleted, and with
// zk.EventNotWatching when the session is lost.
func (c *Client) ExistsW(ctx context.Context, p string) (bool, <-chan zk.Event, error) {
	type result struct {
		ok    bool
		watch <-chan zk.Event
	}
	r, err := do(c, ctx, func() (result, error) {
		ok, _, watch, err := c.conn.ExistsW(c.abs(p))
		return result{ok, watch}, err
	})
	if err != nil {
		return false, nil, fmt.Errorf("checking %s: %w", p, mapErr(err))
	}
	return r.ok, r.watch, nil
}
