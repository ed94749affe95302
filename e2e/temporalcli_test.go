package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// TemporalCLIBinEnv names the Temporal CLI binary for TestDocumentedTemporalCommands,
// overriding $NODEPOOL_BIN_DIR/temporal and the repository's bin/temporal.
const TemporalCLIBinEnv = "TEMPORAL_CLI_BIN"

// temporalCLI returns the Temporal CLI to run. Outside CI a missing binary skips the
// test; in CI (CI=true) `make test` builds it, so a missing one fails.
func temporalCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(TemporalCLIBinEnv); p != "" {
		return p
	}
	candidates := []string{filepath.Join(binDir, "temporal")}
	if root, err := filepath.Abs(".."); err == nil {
		candidates = append(candidates, filepath.Join(root, "bin", "temporal"))
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := "the Temporal CLI is not built (looked for " + strings.Join(candidates, ", ") +
		"); build it with `make temporal-cli` (scripts/build-temporal-cli.sh), or set " + TemporalCLIBinEnv
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// docCommand is a `temporal workflow ...` command from a shell block of the docs.
type docCommand struct {
	where   string // file:line
	comment string // the comment lines just above it
	text    string // the command, continuation lines joined
	sub     string // the workflow subcommand: list, query, cancel, ...
}

var docCommandRE = regexp.MustCompile(`^(?:bin/)?temporal\s+workflow\s+(\S+)`)

// documentedCommands returns every `temporal workflow` command of the shell blocks of
// README.md and docs/*.md.
func documentedCommands(t *testing.T) []docCommand {
	t.Helper()
	files := []string{"../README.md"}
	more, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	files = append(files, more...)
	var cmds []docCommand
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		inBlock := false
		var comment []string
		var cur *docCommand
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "```") {
				inBlock = !inBlock && (trimmed == "```sh" || trimmed == "```bash" || trimmed == "```shell" || trimmed == "```console")
				comment, cur = nil, nil
				continue
			}
			if !inBlock {
				continue
			}
			if cur != nil {
				cur.text += " " + strings.TrimSuffix(trimmed, "\\")
				if !strings.HasSuffix(trimmed, "\\") {
					cmds = append(cmds, *cur)
					cur = nil
				}
				continue
			}
			if strings.HasPrefix(trimmed, "#") {
				comment = append(comment, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
				continue
			}
			m := docCommandRE.FindStringSubmatch(trimmed)
			if m == nil {
				comment = nil
				continue
			}
			rel, _ := filepath.Rel("..", f)
			c := docCommand{where: rel + ":" + strconv.Itoa(n), comment: strings.Join(comment, " "),
				text: strings.TrimSuffix(trimmed, "\\"), sub: m[1]}
			comment = nil
			if strings.HasSuffix(trimmed, "\\") {
				cur = &c
				continue
			}
			cmds = append(cmds, c)
		}
		require.NoError(t, sc.Err())
	}
	return cmds
}

var (
	docBinRE        = regexp.MustCompile(`^(?:bin/)?temporal\s`)
	docWorkflowIDRE = regexp.MustCompile(`(--workflow-id|-w)(\s+|=)(\S+)`)
	docRequestIDRE  = regexp.MustCompile(`/request/(\d+-\d+)`)
	docInputRE      = regexp.MustCompile(`--input\s+'([^']*)'`)
)

// cliRunner runs documented commands against the test's deployment: the binary is
// the built CLI, the task queue in workflow ids is the cluster's, and the example
// request id is a real one. Nothing else of the documented text changes; the
// address comes from TEMPORAL_ADDRESS, as an operator would set it.
type cliRunner struct {
	t         *testing.T
	bin       string
	taskQueue string
	env       []string
}

func newCLIRunner(t *testing.T, bin, address, taskQueue string) *cliRunner {
	env := []string{"HOME=" + t.TempDir(), "TEMPORAL_ADDRESS=" + address}
	for _, kv := range os.Environ() {
		// Only the test's own Temporal settings; no profile or config file of the
		// machine's user.
		if strings.HasPrefix(kv, "TEMPORAL_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return &cliRunner{t: t, bin: bin, taskQueue: taskQueue, env: env}
}

// rewrite returns the shell text that runs c against the test's deployment, for the
// request requestID.
func (r *cliRunner) rewrite(c docCommand, requestID string) string {
	text := docBinRE.ReplaceAllString(c.text, shellQuote(r.bin)+" ")
	return docWorkflowIDRE.ReplaceAllStringFunc(text, func(m string) string {
		sm := docWorkflowIDRE.FindStringSubmatch(m)
		id := sm[3]
		if _, rest, ok := strings.Cut(id, "/"); ok {
			id = r.taskQueue + "/" + rest
		}
		id = docRequestIDRE.ReplaceAllString(id, "/request/"+requestID)
		return sm[1] + sm[2] + id
	})
}

// run runs c for requestID through the shell, as a reader would paste it, and
// returns its output; a failure fails the test.
func (r *cliRunner) run(c docCommand, requestID string) string {
	r.t.Helper()
	out, err := r.try(c, requestID)
	require.NoError(r.t, err, "%s: %s\n%s", c.where, c.text, out)
	return out
}

func (r *cliRunner) try(c docCommand, requestID string) (string, error) {
	text := r.rewrite(c, requestID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", text)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	logged := string(out)
	if lines := strings.SplitAfter(logged, "\n"); len(lines) > 40 {
		logged = strings.Join(lines[:40], "") + "...\n"
	}
	r.t.Logf("%s: $ %s\n%s", c.where, text, logged)
	return string(out), err
}

// until runs c until cond holds for its output (each run must succeed).
func (r *cliRunner) until(c docCommand, requestID string, timeout time.Duration, cond func(string) bool) string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := r.run(c, requestID)
		if cond(out) {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %s: within %s the output did not show what the docs say (%q):\n%s", c.where, c.text, timeout, c.comment, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// queryJSON decodes the first JSON object of a query's output into v.
func queryJSON(out string, v any) error {
	i := strings.Index(out, "{")
	if i < 0 {
		return errors.New("no JSON object in the output")
	}
	return json.NewDecoder(strings.NewReader(out[i:])).Decode(v)
}

// TestDocumentedTemporalCommands runs every `temporal workflow` command of the README
// and docs/ through the Temporal CLI against a launcher, and checks that each does
// what the text above it says.
func TestDocumentedTemporalCommands(t *testing.T) {
	bin := temporalCLI(t)
	cmds := documentedCommands(t)
	bySub := map[string][]docCommand{}
	for _, c := range cmds {
		bySub[c.sub] = append(bySub[c.sub], c)
	}
	for _, sub := range []string{"list", "query", "cancel", "signal", "describe", "show"} {
		require.NotEmpty(t, bySub[sub], "the docs show no `temporal workflow %s` command", sub)
	}
	for sub := range bySub {
		switch sub {
		case "list", "query", "cancel", "signal", "describe", "show":
		default:
			t.Fatalf("`temporal workflow %s` is documented (%s) but this test does not run it; add it here", sub, bySub[sub][0].where)
		}
	}

	// Every boot outlasts the launch timeout, so each attempt fails with an instance
	// that exists: launches stay in progress for a few seconds, then are declined.
	cl := simCloud(5, "ubuntu-jammy")
	cl.BootSteps = "[30]"
	cl.LaunchTimeout = 10
	cl.LaunchRetries = 2
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}, MaxHoldAge: 3600})
	c.startLauncher("all")
	r := newCLIRunner(t, bin, testenv.Temporal(t), c.taskQueue)
	ctx := c.ctx(3 * time.Minute)

	// A launch that an operator holds, inspects and finds declined.
	id := c.submit("200", "ubuntu-jammy")
	wid := names.RequestWorkflowID(c.taskQueue, id)
	c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StatePending))

	var holdComments []string
	for _, cmd := range bySub["signal"] {
		require.Contains(t, cmd.text, "--name "+workflows.SignalHoldFailed, "%s: only the hold-failed signal is for operators", cmd.where)
		r.run(cmd, id)
		if m := docInputRE.FindStringSubmatch(cmd.text); m != nil {
			var h workflows.HoldFailed
			require.NoError(t, json.Unmarshal([]byte(m[1]), &h), "%s: --input", cmd.where)
			holdComments = append(holdComments, h.Comment)
		}
	}

	for _, cmd := range bySub["query"] {
		require.Contains(t, cmd.text, "--type "+workflows.QueryStatus, cmd.where)
		switch {
		case strings.Contains(cmd.text, "/request/"):
			// "where each node of a launch is: label, node id, attempt, state-machine
			// step, instance"
			var st workflows.RequestStatus
			r.until(cmd, id, 30*time.Second, func(out string) bool {
				st = workflows.RequestStatus{}
				require.NoError(t, queryJSON(out, &st), "%s: the status query prints JSON", cmd.where)
				return len(st.Nodes) == 1 && st.Nodes[0].Step != "" && st.Nodes[0].ExternalID != ""
			})
			require.Equal(t, id, st.RequestID)
			n := st.Nodes[0]
			require.Equal(t, "ubuntu-jammy", n.Label)
			require.NotEmpty(t, n.NodeID)
			require.Positive(t, n.Attempt)
			require.Equal(t, "sim", st.Provider)
			require.Equal(t, len(bySub["signal"]) > 0, st.HoldFailed, "the hold-failed signal shows in the status")
		case strings.Contains(cmd.text, "/ledger/"):
			// "how full a pool is and who waits"
			var st workflows.LedgerStatus
			r.until(cmd, id, 30*time.Second, func(out string) bool {
				st = workflows.LedgerStatus{}
				require.NoError(t, queryJSON(out, &st), "%s: the ledger query prints JSON", cmd.where)
				return st.Provider != ""
			})
			require.Equal(t, "sim", st.Provider)
			require.Equal(t, "main", st.Pool)
			require.EqualValues(t, 5, st.Limits["instances"], "the pool's max-servers")
			require.NotNil(t, st.Used, "what the pool uses")
			require.Len(t, st.Waiting, st.WaitingCount, "who waits")
		default:
			t.Fatalf("%s: a status query of an unknown workflow: %s", cmd.where, cmd.text)
		}
	}

	// Every attempt fails; with the hold-failed signal the failed instances are kept
	// as held nodes, and the request is declined.
	req := c.waitRequest(id, 90*time.Second, stateIs(zookeeper.StateFailed))
	requireDeclinedByOurPool(t, req)
	var res workflows.RequestResult
	require.NoError(t, c.temporal.GetWorkflow(ctx, wid, "").Get(ctx, &res))
	require.Equal(t, workflows.OutcomeDeclined, res.Outcome)
	if len(holdComments) > 0 {
		require.NotEmpty(t, res.HeldNodes, "held nodes after the hold-failed signal")
		for _, nid := range res.HeldNodes {
			n := c.node(nid)
			require.Equal(t, zookeeper.NodeHold, n.State)
			require.Contains(t, holdComments, *n.Comment)
		}
	}

	// The documented searches find the declined launch (visibility lags a little).
	for _, cmd := range bySub["list"] {
		r.until(cmd, id, 30*time.Second, func(out string) bool { return strings.Contains(out, wid) })
	}
	for _, cmd := range bySub["describe"] {
		out := r.run(cmd, id)
		// "a launch's status, search attributes and result"
		require.Contains(t, out, wid, cmd.where)
		require.Contains(t, out, workflows.RequestWorkflowType, cmd.where)
		require.Regexp(t, `(?i)status\s+completed`, out, cmd.where)
		require.Contains(t, out, "NodepoolState", cmd.where)
		require.Contains(t, out, `"outcome":"declined"`, cmd.where)
	}
	for _, cmd := range bySub["show"] {
		out := r.run(cmd, id)
		require.Contains(t, out, "WorkflowExecutionStarted", cmd.where)
		require.Contains(t, out, "WorkflowExecutionSignaled", cmd.where)
		require.Contains(t, out, "WorkflowExecutionCompleted", cmd.where)
	}
	require.NoError(t, c.zk.DeleteRequest(ctx, id))

	// A launch that an operator cancels: its instances are deleted and the request
	// declined (failed: no other launcher serves it).
	for _, cmd := range bySub["cancel"] {
		before := cloudStats(t, cl)["instances"]
		id := c.submit("200", "ubuntu-jammy")
		wid := names.RequestWorkflowID(c.taskQueue, id)
		c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StatePending))
		deadline := time.Now().Add(30 * time.Second)
		for cloudStats(t, cl)["instances"] == before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		r.run(cmd, id)
		req := c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFailed))
		requireDeclinedByOurPool(t, req)
		var canceled *temporal.CanceledError
		require.ErrorAs(t, c.temporal.GetWorkflow(ctx, wid, "").Get(ctx, nil), &canceled, "the workflow ends cancelled")
		desc, err := c.temporal.DescribeWorkflowExecution(ctx, wid, "")
		require.NoError(t, err)
		require.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_CANCELED, desc.WorkflowExecutionInfo.Status)
		deadline = time.Now().Add(30 * time.Second)
		for cloudStats(t, cl)["instances"] != before && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		require.Equal(t, before, cloudStats(t, cl)["instances"], "the cancelled launch's instance is deleted")
		require.NoError(t, c.zk.DeleteRequest(ctx, id))
	}
}
