package zookeeper

import (
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

func TestDecodeNodeResources(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		want      map[string]float64
		corrected []string
	}{
		{"absent", `{}`, nil, nil},
		{"null", `{"resources": null}`, nil, nil},
		{"empty", `{"resources": {}}`, map[string]float64{}, nil},
		{"ordinary", `{"resources": {"cores": 4, "ram": 8192, "instances": 1}}`,
			map[string]float64{"cores": 4, "ram": 8192, "instances": 1}, nil},
		{"fraction kept", `{"resources": {"volume-gb": 0.5}}`, map[string]float64{"volume-gb": 0.5}, nil},
		{"negative zero", `{"resources": {"cores": -0}}`, map[string]float64{"cores": 0}, nil},
		{"at the maximum", `{"resources": {"ram": 1099511627776}}`, map[string]float64{"ram": MaxResource}, nil},
		{"above the maximum", `{"resources": {"ram": 1099511627777}}`, map[string]float64{"ram": MaxResource},
			[]string{"resources.ram: 1099511627777 is above 1099511627776, read as 1099511627776"}},
		{"beyond int64", `{"resources": {"cores": 1e19}}`, map[string]float64{"cores": MaxResource},
			[]string{"resources.cores: 1e19 is above 1099511627776, read as 1099511627776"}},
		{"beyond float64", `{"resources": {"cores": 1e400}}`, map[string]float64{"cores": MaxResource},
			[]string{"resources.cores: 1e400 is above 1099511627776, read as 1099511627776"}},
		{"negative", `{"resources": {"instances": -1, "cores": -1e400}}`, map[string]float64{"instances": 0, "cores": 0},
			[]string{"resources.cores: -1e400 is negative, read as 0", "resources.instances: -1 is negative, read as 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := DecodeNode("0000000001", []byte(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "resources", n.Resources, tc.want)
			assertEqual(t, "corrected", n.Corrected, tc.corrected)
			// What is written back decodes without further corrections.
			out, err := n.Encode()
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeNode("0000000001", out)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "resources after a round trip", again.Resources, tc.want)
			assertEqual(t, "corrected after a round trip", again.Corrected, []string(nil))
		})
	}
}

func TestNodeResourceCounts(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]float64
		want map[string]int64
	}{
		{"none", nil, nil},
		{"whole amounts", map[string]float64{"cores": 2, "ram": 4096}, map[string]int64{"cores": 2, "ram": 4096}},
		{"fractions truncate", map[string]float64{"volume-gb": 2.9}, map[string]int64{"volume-gb": 2}},
		{"not a number", map[string]float64{"cores": math.NaN()}, map[string]int64{"cores": 0}},
		{"infinite", map[string]float64{"cores": math.Inf(1), "ram": math.Inf(-1)}, map[string]int64{"cores": 0, "ram": 0}},
		{"negative", map[string]float64{"instances": -3}, map[string]int64{"instances": 0}},
		{"too large", map[string]float64{"ram": 1e19}, map[string]int64{"ram": MaxResource}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{Resources: tc.in}
			assertEqual(t, "counts", n.ResourceCounts(), tc.want)
		})
	}
}

func TestGetNodeLogsCorrectionsOnce(t *testing.T) {
	ctx := testCtx(t)
	var logs testenv.SyncBuffer
	c := newTestZK(t).connect(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	id, err := c.CreateNode(ctx, &Node{State: NodeUsed, Resources: map[string]float64{"cores": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.set(ctx, NodePath(id), []byte(`{"state": "used", "resources": {"cores": 1e19}}`), -1); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		n, err := c.GetNode(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "counts", n.ResourceCounts(), map[string]int64{"cores": MaxResource})
	}
	out := logs.String()
	if got := strings.Count(out, "node record has unusable values"); got != 1 {
		t.Fatalf("logged %d times, want once:\n%s", got, out)
	}
	if !strings.Contains(out, "resources.cores: 1e19 is above") || !strings.Contains(out, "node_id="+id) {
		t.Errorf("log lacks the node and the value:\n%s", out)
	}
}
