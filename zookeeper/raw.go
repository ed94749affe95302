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
	ch, err := do(ctx, func() ([]string, error) {
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
	r, err := do(ctx, func() (result, error) {
		data, _, watch, err := c.conn.GetW(c.abs(p))
		return result{data, watch}, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", p, mapErr(err))
	}
	return r.data, r.watch, nil
}
