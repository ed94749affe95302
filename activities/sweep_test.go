package activities

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

type sweepFixture struct {
	zk    *zookeeper.Client
	cloud *sim.Cloud
	acts  *Activities
	env   *testsuite.TestActivityEnvironment
	logs  *testenv.SyncBuffer
	// addr and chroot locate the fixture's ZooKeeper tree.
	addr, chroot string
}

func newSweepFixture(t *testing.T) *sweepFixture {
	t.Helper()
	addr, chroot := testenv.ZooKeeperChroot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	zkc, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(zkc.Close)
	cfg := sim.Config{
		Seed: 1, BootSteps: []float64{},
		Flavors: []sim.Flavor{{Name: "small", Cores: 2, RAM: 2048}},
		Pools:   []sim.PoolConfig{{Name: "main", Labels: []sim.LabelConfig{{Name: "small", Flavor: "small"}}}},
	}
	cloud, err := sim.NewCloud(cfg)
	require.NoError(t, err)
	drv, err := sim.New("sim", cfg, sim.WithCloud(cloud))
	require.NoError(t, err)
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	acts := New(zkc, map[string]drivers.Driver{"sim": drv}, Settings{TaskQueue: "tq"}, nil, logger)
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &sweepFixture{zk: zkc, cloud: cloud, acts: acts, env: env, logs: logs, addr: addr, chroot: chroot}
}

// rawNode writes a node znode with the given data, whatever it holds, through a
// connection of its own.
func (f *sweepFixture) rawNode(t *testing.T, id string, data []byte) {
	t.Helper()
	conn, _, err := zk.Connect([]string{f.addr}, 10*time.Second, zk.WithLogger(sweepZKLogger{}))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Create(f.chroot+zookeeper.NodePath(id), data, 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
}

type sweepZKLogger struct{}

func (sweepZKLogger) Printf(string, ...any) {}

// instance creates a cloud instance with the given metadata and returns its id.
func (f *sweepFixture) instance(t *testing.T, name string, meta map[string]string) string {
	t.Helper()
	info, err := f.cloud.CreateInstance(context.Background(), sim.CreateInstanceInput{
		Name: name, Flavor: sim.Flavor{Name: "small", Cores: 2, RAM: 2048}, Image: sim.DefaultImage.Name, Metadata: meta,
	})
	require.NoError(t, err)
	return info.ID
}

// node creates a node record of provider sim and returns its id.
func (f *sweepFixture) node(t *testing.T, state zookeeper.NodeState, externalID json.RawMessage) string {
	t.Helper()
	id, err := f.zk.CreateNode(context.Background(), &zookeeper.Node{
		State: state, Provider: "sim", Pool: "main", Type: zookeeper.Labels{"small"}, ExternalID: externalID,
	})
	require.NoError(t, err)
	return id
}

func (f *sweepFixture) pass(t *testing.T, suspects ...string) SweepLeaksResult {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.SweepLeaks, SweepLeaksInput{Provider: "sim", Suspects: suspects})
	require.NoError(t, err)
	var res SweepLeaksResult
	require.NoError(t, v.Get(&res))
	return res
}

// live reports whether the cloud still has the instance and is not deleting it.
func (f *sweepFixture) live(id string) bool {
	for _, in := range f.cloud.Instances() {
		if in.ID == id {
			return in.Status != sim.StatusDeleting
		}
	}
	return false
}

func sweepMeta(nodeID string) map[string]string {
	return map[string]string{drivers.MetaProviderName: "sim", drivers.MetaPoolName: "main", drivers.MetaNodeID: nodeID}
}

func TestSweepLeaksDeletesOnTheSecondPassOnly(t *testing.T) {
	f := newSweepFixture(t)
	ctx := context.Background()
	quoted := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }

	// A node being built: its record exists, its instance has no external id stored yet.
	building := f.node(t, zookeeper.NodeBuilding, nil)
	buildingInst := f.instance(t, "np"+building, sweepMeta(building))
	// A node in another state than ready is no leak either.
	deleting := f.node(t, zookeeper.NodeDeleting, nil)
	deletingInst := f.instance(t, "np"+deleting, sweepMeta(deleting))
	// A held instance of a failed attempt: its metadata names a node that is gone,
	// but a held node record names it by external id, as an object like AWS's.
	heldInst := f.instance(t, "np-held", sweepMeta("0000009990"))
	f.node(t, zookeeper.NodeHold, json.RawMessage(`{"instance": "`+heldInst+`"}`))
	// A node whose record cannot be decoded still protects its instance.
	f.rawNode(t, "0000009980", []byte("{not json"))
	malformedInst := f.instance(t, "np0000009980", sweepMeta("0000009980"))
	// Not ours to judge: another provider's instance, and a resource without a node id.
	otherInst := f.instance(t, "np-other", map[string]string{drivers.MetaProviderName: "other", drivers.MetaNodeID: "0000009970"})
	imageLike := f.instance(t, "image", map[string]string{drivers.MetaProviderName: "sim"})
	// The leak: an instance whose node record is gone.
	leaked := f.instance(t, "np0000009960", sweepMeta("0000009960"))
	// It looks leaked now, but a record naming it appears before the next pass.
	late := f.instance(t, "np-late", sweepMeta("0000009950"))

	// Suspects handed over by a previous pass are deleted only if this pass finds
	// them leaked too: a live instance never is.
	first := f.pass(t, "instance/"+buildingInst, "instance/"+deletingInst, "instance/"+heldInst)
	require.Empty(t, first.Deleted)
	require.Equal(t, 7, first.Resources, "the other provider's instance is not counted")
	require.Equal(t, 2, first.Leaked)
	require.ElementsMatch(t, []string{"instance/" + leaked, "instance/" + late}, first.Suspects)
	require.IsIncreasing(t, first.Suspects)
	for _, id := range []string{buildingInst, deletingInst, heldInst, malformedInst, otherInst, imageLike, leaked, late} {
		require.True(t, f.live(id), "nothing is deleted on the first pass (%s)", id)
	}

	f.node(t, zookeeper.NodeHold, quoted(late))
	second := f.pass(t, first.Suspects...)
	require.Equal(t, []string{"instance/" + leaked}, second.Deleted)
	require.Empty(t, second.Suspects)
	require.Equal(t, 1, second.Leaked)
	require.False(t, f.live(leaked), "the leaked instance is deleted on the second pass")
	for _, id := range []string{buildingInst, deletingInst, heldInst, malformedInst, otherInst, imageLike, late} {
		require.True(t, f.live(id), "%s is never deleted", id)
	}
	require.Contains(t, f.logs.String(), "deleting leaked resource")
	require.Contains(t, f.logs.String(), "id="+leaked)
	require.Contains(t, f.logs.String(), "type=instance")

	// Once the building node's record is gone, its instance is a leak like any other.
	require.NoError(t, f.zk.DeleteNode(ctx, building))
	third := f.pass(t, second.Suspects...)
	require.Empty(t, third.Deleted)
	require.Equal(t, []string{"instance/" + buildingInst}, third.Suspects)
	fourth := f.pass(t, third.Suspects...)
	require.Equal(t, []string{"instance/" + buildingInst}, fourth.Deleted)
	require.False(t, f.live(buildingInst))
}

func TestSweepLeaksUnknownProviderIsNotRetried(t *testing.T) {
	f := newSweepFixture(t)
	_, err := f.env.ExecuteActivity(f.acts.SweepLeaks, SweepLeaksInput{Provider: "gone"})
	require.Error(t, err)
	require.Contains(t, err.Error(), ErrTypeInvalidConfig)
}

func TestSweepExternalIDs(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
	}{
		{``, nil},
		{`null`, nil},
		{`""`, nil},
		{`"i-0abc"`, []string{"i-0abc"}},
		{`{"instance": "i-0abc"}`, []string{"i-0abc", `{"instance":"i-0abc"}`}},
		{`{"instance": "i-1", "host": "h-2"}`, []string{"h-2", "i-1", `{"host":"h-2","instance":"i-1"}`}},
		{`42`, []string{"42"}},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, sweepExternalIDs(json.RawMessage(tc.raw)), tc.raw)
	}
}
