package zookeeper

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// A mirror reads a record when it appears and when it changes, never while it stays
// the same; deleted records leave it, and a malformed record is left out until it is
// mended.
func TestMirrorReadsOnlyChanges(t *testing.T) {
	ctx := testCtx(t)
	z := newTestZK(t)
	c := z.connect(t)

	var reqIDs []string
	for range 5 {
		id, err := c.SubmitRequest(ctx, &NodeRequest{State: StateRequested, NodeTypes: []string{"small"}}, "100", false)
		if err != nil {
			t.Fatal(err)
		}
		reqIDs = append(reqIDs, id)
	}
	nodeID, err := c.CreateNode(ctx, &Node{State: NodeReady, Provider: "sim", Pool: "main", Type: Labels{"small"}})
	if err != nil {
		t.Fatal(err)
	}
	badID, err := c.createMakePath(ctx, RequestsPath+"/100-", []byte("{not json"), 2 /* sequential */)
	if err != nil {
		t.Fatal(err)
	}
	badID = badID[len(RequestsPath)+1:]

	reqs := c.MirrorRequests(ctx)
	nodes := c.MirrorNodes(ctx)
	waitUntil(t, "the mirrors are complete", func() bool {
		r, rok := complete(reqs)
		n, nok := complete(nodes)
		return rok && nok && len(r) == 5 && len(n) == 1
	})
	if got := reqs.Reads(); got != 6 {
		t.Fatalf("request reads %d, want one per request (6, the malformed one included)", got)
	}

	tests := []struct {
		name string
		// change acts on ZooKeeper; reads is how many request reads it costs.
		change func(t *testing.T)
		reads  int64
		check  func(recs map[string]*NodeRequest) bool
	}{
		{"nothing changes", func(*testing.T) { time.Sleep(300 * time.Millisecond) }, 0,
			func(recs map[string]*NodeRequest) bool { return len(recs) == 5 }},
		{"one request changes", func(t *testing.T) {
			r, err := c.GetRequest(ctx, reqIDs[0])
			if err != nil {
				t.Fatal(err)
			}
			r.State = StatePending
			if err := c.UpdateRequest(ctx, r); err != nil {
				t.Fatal(err)
			}
		}, 1, func(recs map[string]*NodeRequest) bool { return recs[reqIDs[0]].State == StatePending }},
		{"one request is deleted", func(t *testing.T) {
			if err := c.DeleteRequest(ctx, reqIDs[1]); err != nil {
				t.Fatal(err)
			}
		}, 0, func(recs map[string]*NodeRequest) bool { _, ok := recs[reqIDs[1]]; return !ok && len(recs) == 4 }},
		{"the malformed request is mended", func(t *testing.T) {
			data, err := (&NodeRequest{State: StateRequested, NodeTypes: []string{"large"}}).Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.set(ctx, RequestPath(badID), data, -1); err != nil {
				t.Fatal(err)
			}
		}, 1, func(recs map[string]*NodeRequest) bool {
			r := recs[badID]
			return r != nil && r.NodeTypes[0] == "large"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := reqs.Reads()
			tc.change(t)
			waitUntil(t, "the mirror follows", func() bool {
				recs, ok := complete(reqs)
				return ok && tc.check(recs)
			})
			time.Sleep(100 * time.Millisecond)
			if got := reqs.Reads() - before; got != tc.reads {
				t.Fatalf("%d request reads, want %d", got, tc.reads)
			}
		})
	}

	n, err := c.GetNode(ctx, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	n.State = NodeUsed
	if err := c.UpdateNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the node mirror follows", func() bool {
		recs, _, _ := nodes.Records()
		return recs[nodeID] != nil && recs[nodeID].State == NodeUsed
	})
	if err := c.DeleteNode(ctx, nodeID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the deleted node leaves the mirror", func() bool {
		recs, _, _ := nodes.Records()
		return len(recs) == 0
	})
	// Appearance, the change to used, and (unless the deletion came first) the
	// "deleted" state Nodepool writes before it deletes a node.
	if got := nodes.Reads(); got < 2 || got > 3 {
		t.Fatalf("node reads %d, want 2 or 3", got)
	}
}

// complete returns src's records and whether it has listed its tree and read every
// listed record.
func complete[T any](src RecordSource[T]) (map[string]T, bool) {
	recs, unread, listed := src.Records()
	return recs, listed && len(unread) == 0
}

// fixedSource is a RecordSource with given contents.
type fixedSource struct {
	recs   map[string]*Node
	unread []string
	listed bool
}

func (f fixedSource) Records() (map[string]*Node, []string, bool) {
	return maps.Clone(f.recs), f.unread, f.listed
}

// ReadThrough reads only what the source has not read: a node that has just appeared
// costs one read, not a read of the whole tree.
func TestReadThrough(t *testing.T) {
	ctx := testCtx(t)
	c := newTestZK(t).connect(t)
	kept := &Node{ID: "0000000001", State: NodeReady}
	fresh, err := c.CreateNode(ctx, &Node{State: NodeBuilding, Provider: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.createMakePath(ctx, NodePath("0000099999"), []byte("{not json"), 0)
	if err != nil {
		t.Fatal(err)
	}
	bad = bad[len(NodesPath)+1:]
	tests := []struct {
		name      string
		src       fixedSource
		wantOK    bool
		wantIDs   []string
		wantReads uint64
	}{
		{"not listed yet", fixedSource{}, false, nil, 0},
		{"complete", fixedSource{recs: map[string]*Node{kept.ID: kept}, listed: true}, true, []string{kept.ID}, 0},
		{"one just appeared", fixedSource{recs: map[string]*Node{kept.ID: kept}, unread: []string{fresh}, listed: true},
			true, []string{kept.ID, fresh}, 1},
		{"gone and undecodable ones are left out", fixedSource{recs: map[string]*Node{kept.ID: kept},
			unread: []string{"0000077777", bad}, listed: true}, true, []string{kept.ID}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := c.Requests()
			recs, ok, err := ReadThrough(ctx, RecordSource[*Node](tc.src), c.GetNode)
			if err != nil {
				t.Fatal(err)
			}
			reads := c.Requests() - before
			ids := slices.Sorted(maps.Keys(recs))
			if want := slices.Sorted(slices.Values(tc.wantIDs)); ok != tc.wantOK || !slices.Equal(ids, want) || reads != tc.wantReads {
				t.Fatalf("got %v %v after %d requests, want %v %v after %d", ok, ids, reads, tc.wantOK, tc.wantIDs, tc.wantReads)
			}
		})
	}
}
