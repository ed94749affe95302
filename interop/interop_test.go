package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// sharedRequests is how many one-node requests for the label both launchers serve are
// submitted at once.
const sharedRequests = 6

// routeCase is a request and where it must end.
type routeCase struct {
	name   string
	labels []string
	// state is the final state; provider, for a fulfilled request, the provider of
	// every node ("" means either launcher's).
	state    zookeeper.RequestState
	provider string
	// declinedBy names pools, as "provider/pool", that must be in declined_by.
	declinedBy []string
}

// submitted is a request of a case as written and as it ended.
type submitted struct {
	c     routeCase
	id    string
	final *zookeeper.NodeRequest
	nodes *zuul.NodeSet
}

// TestSideBySideWithUpstream runs our launcher and upstream Nodepool's beside each other
// on one TLS ZooKeeper and acts as Zuul towards both.
func TestSideBySideWithUpstream(t *testing.T) {
	requireUpstreamDeps(t)
	began := time.Now()
	d := newDeployment(t)
	t.Logf("deployment up in %s", time.Since(began).Round(time.Millisecond))
	pools := map[string]string{}
	allPools := []string{ourProvider + "/main", ourProvider + "/first", ourProvider + "/both",
		upstreamProvider + "/main", upstreamProvider + "/first"}
	for _, p := range allPools {
		provider, pool, _ := strings.Cut(p, "/")
		pools[p] = d.poolID(provider, pool)
	}
	watch := d.watchAllocations()

	z, err := zuul.New(d.zk, zuul.Options{SystemID: "zuul-interop", Tenant: "tenant-one", Pipeline: "check",
		Job: "tox", Project: "example/project"})
	require.NoError(t, err)

	cases := []routeCase{
		{name: "label only upstream serves", labels: []string{labelUpstreamOnly},
			state: zookeeper.StateFulfilled, provider: upstreamProvider},
		{name: "label only ours serves", labels: []string{labelOursOnly},
			state: zookeeper.StateFulfilled, provider: ourProvider},
		{name: "upstream's preferred pool declines, ours serves", labels: []string{labelPreferUp, labelPreferUp},
			state: zookeeper.StateFulfilled, provider: ourProvider, declinedBy: []string{upstreamProvider + "/first"}},
		{name: "our preferred pool declines, upstream serves", labels: []string{labelPreferOurs, labelPreferOurs},
			state: zookeeper.StateFulfilled, provider: upstreamProvider, declinedBy: []string{ourProvider + "/first"}},
		{name: "label nobody serves fails once every pool declined", labels: []string{labelNobody},
			state: zookeeper.StateFailed, declinedBy: allPools},
		{name: "labels no single pool serves fail once every pool declined", labels: []string{labelOursOnly, labelUpstreamOnly},
			state: zookeeper.StateFailed, declinedBy: allPools},
	}
	for i := range sharedRequests {
		cases = append(cases, routeCase{name: fmt.Sprintf("label both serve #%d", i+1), labels: []string{labelShared},
			state: zookeeper.StateFulfilled})
	}

	// Submit every request at once, then wait for each.
	reqs := make([]*submitted, len(cases))
	for i, c := range cases {
		r, err := z.Submit(d.ctx(10*time.Second), zuul.PriorityNormal, c.labels...)
		require.NoError(t, err, c.name)
		reqs[i] = &submitted{c: c, id: r.ID}
	}
	var wg sync.WaitGroup
	for _, s := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := z.Wait(d.ctx(2*time.Minute), s.id)
			if err == nil {
				s.final = r
			} else {
				t.Errorf("%s: request %s: %v", s.c.name, s.id, err)
			}
		}()
	}
	wg.Wait()
	require.False(t, t.Failed(), "requests did not end")
	t.Logf("requests ended %s after the start", time.Since(began).Round(time.Millisecond))

	// 1. Routing, declines, and no node in two requests.
	owner := map[string]string{} // node id -> request id
	served := map[string]int{}   // provider -> fulfilled requests
	sharedBy := map[string]int{} // provider -> fulfilled requests for the shared label
	for _, s := range reqs {
		t.Run("route/"+s.c.name, func(t *testing.T) {
			r := s.final
			require.Equal(t, s.c.state, r.State, "request %s ended %s, declined by %v", s.id, r.State, r.DeclinedBy)
			for _, p := range s.c.declinedBy {
				assert.Contains(t, r.DeclinedBy, pools[p], "request %s: pool %s (%s) not in declined_by", s.id, p, pools[p])
			}
			if r.State != zookeeper.StateFulfilled {
				assert.Empty(t, r.Nodes, "a failed request holds no nodes")
				return
			}
			require.Len(t, r.Nodes, len(s.c.labels), "one node per requested label")
			var provider string
			for i, id := range r.Nodes {
				if prev, ok := owner[id]; ok {
					t.Errorf("node %s is in request %s and in request %s", id, prev, s.id)
				}
				owner[id] = s.id
				n, err := d.zk.GetNode(d.ctx(10*time.Second), id)
				require.NoError(t, err)
				assert.Equal(t, zookeeper.NodeReady, n.State, "node %s", id)
				require.NotNil(t, n.AllocatedTo, "node %s", id)
				assert.Equal(t, s.id, *n.AllocatedTo, "node %s", id)
				assert.Equal(t, zookeeper.Labels{s.c.labels[i]}, n.Type, "node %s is in node_types order", id)
				if i == 0 {
					provider = n.Provider
				}
				assert.Equal(t, provider, n.Provider, "all nodes of request %s come from one launcher", s.id)
			}
			if s.c.provider != "" {
				assert.Equal(t, s.c.provider, provider, "request %s served by the wrong launcher", s.id)
			}
			served[provider]++
			if s.c.labels[0] == labelShared {
				sharedBy[provider]++
			}
		})
	}
	t.Logf("fulfilled requests by provider: %v; of the %d for %s: %v", served, sharedRequests, labelShared, sharedBy)
	t.Run("route/both launchers serve the shared label", func(t *testing.T) {
		// Our pool for it holds sharedPoolSize nodes, and no node is returned before
		// every request ended: upstream must have served the rest.
		assert.LessOrEqual(t, sharedBy[ourProvider], sharedPoolSize, "our pool's max-servers holds")
		assert.Equal(t, sharedRequests, sharedBy[ourProvider]+sharedBy[upstreamProvider])
		assert.GreaterOrEqual(t, sharedBy[upstreamProvider], sharedRequests-sharedPoolSize)
	})

	// Zuul takes the nodes and uses them.
	for _, s := range reqs {
		if s.final.State != zookeeper.StateFulfilled {
			continue
		}
		ns, err := z.Accept(d.ctx(time.Minute), s.final)
		require.NoError(t, err, "accepting %s", s.id)
		require.NoError(t, ns.Use(d.ctx(time.Minute)), "using the nodes of %s", s.id)
		s.nodes = ns
	}

	t.Run("records", func(t *testing.T) { d.compareRecords(t, owner) })
	// 2. Each CLI reads the other launcher's records.
	nodeProvider := map[string]string{}
	externalID := map[string]string{} // node id -> its instance's id
	for id := range owner {
		n, err := d.zk.GetNode(d.ctx(10*time.Second), id)
		require.NoError(t, err)
		nodeProvider[id] = n.Provider
		var ext string
		require.NoError(t, json.Unmarshal(n.ExternalID, &ext), "node %s: external_id %s", id, n.ExternalID)
		externalID[id] = ext
	}
	listed := map[bool][]map[string]string{}    // upstream CLI? -> list --detail rows
	requested := map[bool][]map[string]string{} // upstream CLI? -> request-list rows
	for _, cli := range []struct {
		name     string
		upstream bool
	}{{"upstream", true}, {"ours", false}} {
		t.Run("cli/"+cli.name+"/list", func(t *testing.T) {
			rows := table(t, d.cli(t, cli.upstream, "list", "--detail"))
			listed[cli.upstream] = rows
			for id, provider := range nodeProvider {
				row := rowWith(rows, "ID", id)
				if !assert.NotNil(t, row, "node %s (%s) missing from:\n%v", id, provider, rows) {
					continue
				}
				assert.Equal(t, provider, row["Provider"], "node %s", id)
				assert.Equal(t, owner[id], row["Allocated To"], "node %s", id)
				assert.Equal(t, "in-use", row["State"], "node %s", id)
				assert.Equal(t, "locked", row["Locked"], "node %s is locked by Zuul", id)
			}
		})
		t.Run("cli/"+cli.name+"/request-list", func(t *testing.T) {
			rows := table(t, d.cli(t, cli.upstream, "request-list"))
			requested[cli.upstream] = rows
			for _, s := range reqs {
				if s.final.State != zookeeper.StateFailed {
					continue
				}
				row := rowWith(rows, "Request ID", s.id)
				if !assert.NotNil(t, row, "request %s missing from:\n%v", s.id, rows) {
					continue
				}
				assert.Equal(t, "failed", row["State"], "request %s", s.id)
				for _, p := range allPools {
					assert.Contains(t, row["Declined By"], pools[p], "request %s: declined by %s", s.id, p)
				}
			}
		})
		t.Run("cli/"+cli.name+"/label-list", func(t *testing.T) {
			out := ""
			if cli.upstream {
				out = d.upstreamWeb(t, "/label-list")
			} else {
				out = d.cli(t, false, "label-list")
			}
			var labels []string
			for _, row := range table(t, out) {
				labels = append(labels, row["Label"])
			}
			slices.Sort(labels)
			assert.Equal(t, []string{labelOursOnly, labelPreferOurs, labelPreferUp, labelShared, labelUpstreamOnly}, labels)
		})
	}
	t.Run("cli/both show the same records", func(t *testing.T) {
		// Cell for cell, but for the age (the CLIs ran at different times) and the
		// user data, which upstream prints as a Python dict and ours as JSON.
		assert.Equal(t, sameView(t, listed[true], "ID"), sameView(t, listed[false], "ID"), "list --detail: upstream's, then ours")
		assert.Equal(t, sameView(t, requested[true], "Request ID"), sameView(t, requested[false], "Request ID"), "request-list: upstream's, then ours")
	})

	// 3. Zuul returns the nodes; the launcher that made each deletes it.
	var returned []string
	for _, s := range reqs {
		if s.nodes == nil {
			continue
		}
		_, err := s.nodes.Return(d.ctx(time.Minute))
		require.NoError(t, err, "returning the nodes of %s", s.id)
		returned = append(returned, s.nodes.IDs()...)
	}
	for _, s := range reqs {
		if s.final.State == zookeeper.StateFailed {
			require.NoError(t, z.Cancel(d.ctx(10*time.Second), s.id))
		}
	}
	require.NoError(t, z.WaitGone(d.ctx(2*time.Minute), returned...), "returned nodes are deleted")
	t.Logf("returned nodes deleted %s after the start", time.Since(began).Round(time.Millisecond))

	t.Run("nothing left", func(t *testing.T) {
		ctx := d.ctx(time.Minute)
		nodes, err := d.zk.ListNodes(ctx)
		require.NoError(t, err)
		assert.Empty(t, nodes, "node records left")
		requests, err := d.zk.ListRequests(ctx)
		require.NoError(t, err)
		assert.Empty(t, requests, "requests left")
		cloud, err := sim.NewClient(d.simURL)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			inst, err := cloud.Instances(ctx)
			return err == nil && len(inst) == 0
		}, 30*time.Second, 200*time.Millisecond, "instances left on the simulated cloud")

		// Our nodes' instances were deleted on our cloud, which only our launcher
		// reaches; upstream's by upstream's launcher, which logs each deletion.
		ours := 0
		for _, provider := range nodeProvider {
			if provider == ourProvider {
				ours++
			}
		}
		stats, err := cloud.Stats(ctx)
		require.NoError(t, err)
		assert.EqualValues(t, ours, stats["instances.nodes_created"], "instances made for our nodes: %v", stats)
		assert.Equal(t, stats["instances.created"], stats["instances.deleted"], "every instance deleted: %v", stats)
		upLog, err := os.ReadFile(d.stack.LogFile("upstream-launcher"))
		require.NoError(t, err)
		for id, provider := range nodeProvider {
			if provider == upstreamProvider {
				assert.Contains(t, string(upLog), fmt.Sprintf("instance %s from %s", externalID[id], upstreamProvider),
					"upstream's launcher deleted the instance of its node %s", id)
			}
		}
		require.NoError(t, d.stack.CheckAlive(), "our launcher and the cloud still run")
		require.True(t, d.upstream.Running(), "upstream's launcher still runs:\n%s", d.upstream.Tail(20))
	})

	watch.halt()
	assert.Empty(t, watch.check(), "no node is ever allocated twice")
	assert.GreaterOrEqual(t, watch.seen(), len(owner), "the watch saw every node")
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
}

// sameView returns table rows by their key column, without the Age column and with
// the User Data column decoded (upstream prints a Python dict, ours JSON).
func sameView(t *testing.T, rows []map[string]string, key string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, row := range rows {
		view := map[string]any{}
		for col, v := range row {
			switch col {
			case "Age":
			case "User Data":
				var data any
				if v != "" {
					require.NoError(t, json.Unmarshal([]byte(strings.ReplaceAll(v, "'", `"`)), &data), "user data %q", v)
				}
				view[col] = data
			default:
				view[col] = v
			}
		}
		out[row[key]] = view
	}
	return out
}
