package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func ec2Stats(t *testing.T, url string) (calls map[string]int64, instances map[string]int64) {
	t.Helper()
	resp, err := http.Get(url + "/_stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct {
		Calls     map[string]int64 `json:"calls"`
		Instances map[string]int64 `json:"instances"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Calls, st.Instances
}

func TestAWSDriverThroughThePipeline(t *testing.T) {
	ec2 := startEC2(t, "--boot-time", "1s", "--terminate-time", "500ms")
	provider := fmt.Sprintf(`  - name: aws
    driver: aws
    region-name: us-east-1
    endpoint: %s
    launch-timeout: 60
    cloud-images:
      - name: jammy
        image-filters:
          - name: name
            values: ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"]
        username: ubuntu
    pools:
      - name: main
        max-servers: 4
        host-key-checking: false
        labels:
          - name: aws-small
            cloud-image: jammy
            instance-type: t3.small
            key-name: zuul
            tags:
              team: ci
`, ec2)
	c := newCluster(t, clusterSpec{ExtraLabels: []string{"aws-small"}, ExtraProviders: provider})
	c.startLauncher("all")

	id := c.submit("100", "aws-small", "aws-small")
	req := c.waitRequest(id, 90*time.Second, stateIs(zookeeper.StateFulfilled, zookeeper.StateFailed))
	require.Equal(t, zookeeper.StateFulfilled, req.State, "declined by %v", req.DeclinedBy)
	for _, nid := range req.Nodes {
		n := c.node(nid)
		require.Equal(t, "AWS", *n.Cloud)
		require.Equal(t, "us-east-1", *n.Region)
		require.Equal(t, "ubuntu", *n.Username)
		require.NotEmpty(t, n.InterfaceIP)
		var ext map[string]string
		require.NoError(t, json.Unmarshal(n.ExternalID, &ext), "external_id is upstream's object form")
		require.Contains(t, ext["instance"], "i-")
		require.Contains(t, n.Resources, "L-1216C47A", "the vCPU quota code is part of resources")
	}
	held := c.accept(req)
	c.giveBack(held)
	c.waitNoNodes(60 * time.Second)

	deadline := time.Now().Add(30 * time.Second)
	for {
		calls, inst := ec2Stats(t, ec2)
		if inst["running"]+inst["pending"]+inst["shutting-down"] == 0 {
			require.EqualValues(t, 2, calls["RunInstances"], "one RunInstances per node")
			require.GreaterOrEqual(t, calls["TerminateInstances"], int64(1))
			break
		}
		require.True(t, time.Now().Before(deadline), "instances left: %v", inst)
		time.Sleep(200 * time.Millisecond)
	}
}
