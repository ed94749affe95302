package zookeeper

import (
	"context"
	"errors"
)

// ModifyRequest is a read-modify-write of request id with a version check. It
// starts from cur when that is not nil (a record just read; it is modified in
// place), else it reads the request. change edits the record and returns false
// to write nothing, or an error to stop; the error is returned as it is. When
// someone else wrote the request in between, ModifyRequest reads it again and
// applies change to the fresh record, until a write succeeds or ctx ends.
//
// It returns the record as written (or as read, when change wrote nothing) and
// whether it wrote. A request that does not exist, or is deleted meanwhile,
// yields an error wrapping ErrNotFound.
func (c *Client) ModifyRequest(ctx context.Context, id string, cur *NodeRequest,
	change func(*NodeRequest) (bool, error)) (*NodeRequest, bool, error) {
	return modify(ctx, cur, func(ctx context.Context) (*NodeRequest, error) {
		return c.GetRequest(ctx, id)
	}, change, c.UpdateRequest)
}

// ModifyNode is ModifyRequest for node id: a read-modify-write with a version
// check that re-reads and re-applies change when someone else wrote the node in
// between. A node that does not exist, or is deleted meanwhile, yields an error
// wrapping ErrNotFound.
func (c *Client) ModifyNode(ctx context.Context, id string, cur *Node,
	change func(*Node) (bool, error)) (*Node, bool, error) {
	return modify(ctx, cur, func(ctx context.Context) (*Node, error) {
		return c.GetNode(ctx, id)
	}, change, c.UpdateNode)
}

// modify is the loop behind ModifyRequest and ModifyNode.
func modify[T any](ctx context.Context, cur *T,
	read func(context.Context) (*T, error),
	change func(*T) (bool, error),
	write func(context.Context, *T) error) (*T, bool, error) {
	for {
		if cur == nil {
			var err error
			if cur, err = read(ctx); err != nil {
				return nil, false, err
			}
		}
		ok, err := change(cur)
		if err != nil {
			return cur, false, err
		}
		if !ok {
			return cur, false, nil
		}
		err = write(ctx, cur)
		if errors.Is(err, ErrBadVersion) {
			cur = nil
			continue
		}
		if err != nil {
			return nil, false, err
		}
		return cur, true, nil
	}
}
