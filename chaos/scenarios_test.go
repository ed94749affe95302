package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// scenario is one fault and the burst it is injected into.
type scenario struct {
	name string
	// what describes the fault for the report.
	what string
	// only restricts the scenario to one mode ("short" or "long"); empty runs it in
	// both.
	only string
	// declines is set where the fault may make a launch fail for good (capacity
	// errors, terminated workflows); elsewhere a declined request is noted in the
	// report as unexpected.
	declines bool
	spec     clusterSpec
	// sets replaces the burst's requests.
	sets func(c *cluster) [][]string
	// before runs before the burst is submitted, during while it is served (it waits
	// for its own moment), after once every request of the burst ended.
	before func(ctx context.Context, c *cluster, log *faultLog) error
	during func(ctx context.Context, c *cluster, b *burst, log *faultLog) error
	after  func(ctx context.Context, c *cluster, log *faultLog) error
}

func (s scenario) in(m mode) bool { return s.only == "" || s.only == m.name }

var scenarios = []scenario{
	{
		name: "baseline",
		what: "no fault: the burst's figures for comparison",
	},
	{
		name:   "worker-kill",
		what:   "kill -9 of one of the two worker processes mid-burst; started again 2 s later",
		during: killAndRestart("worker-1", 2*time.Second),
	},
	{
		name: "poller-kill",
		what: "kill -9 of the poller mid-burst; a second wave of requests (a quarter of the burst) is " +
			"submitted while it is down; started again 5 s later",
		during: pollerKill,
	},
	{
		name:   "zookeeper-restart",
		what:   "ZooKeeper stopped (SIGTERM) and started again on the same port and data mid-burst",
		during: restart("zookeeper"),
	},
	{
		name:   "temporal-restart",
		what:   "the Temporal server stopped (SIGTERM) and started again on the same database file mid-burst",
		during: restart("temporal-dev"),
	},
	{
		name: "temporal-kill",
		what: "the Temporal server killed with kill -9 mid-burst and started again on the same database file",
		only: "long", during: killAndRestart("temporal-dev", time.Second),
	},
	{
		name:     "sim-cloud-errors",
		declines: true,
		what: "sim cloud for the whole burst: 20 % of calls throttled, 10 % of creates without capacity, " +
			"10 % internal errors on every call kind, 5 % of creates and deletes answered with a lost reply, " +
			"every call 0.3 s slow",
		only: "short",
		before: simFaults(sim.Faults{
			RateLimitRate: 0.2, CapacityErrorRate: 0.1, LostReplyRate: 0.05, APILatency: 0.3,
			ErrorRate: sim.FaultRates{Create: 0.1, Delete: 0.1, List: 0.1, Describe: 0.1},
		}),
		after: simFaults(sim.Faults{}),
	},
	{
		name: "sim-throttling", what: "sim cloud for the whole burst: 30 % of calls throttled", only: "long",
		before: simFaults(sim.Faults{RateLimitRate: 0.3}), after: simFaults(sim.Faults{}),
	},
	{
		name: "sim-capacity", what: "sim cloud for the whole burst: 20 % of creates answered without capacity", only: "long",
		declines: true,
		before:   simFaults(sim.Faults{CapacityErrorRate: 0.2}), after: simFaults(sim.Faults{}),
	},
	{
		name: "sim-internal-errors",
		what: "sim cloud for the whole burst: 20 % internal errors on every call kind, 10 % of creates and " +
			"deletes take effect but answer with an internal error (lost reply)",
		only: "long",
		before: simFaults(sim.Faults{
			LostReplyRate: 0.1, ErrorRate: sim.FaultRates{Create: 0.2, Delete: 0.2, List: 0.2, Describe: 0.2},
		}),
		after: simFaults(sim.Faults{}),
	},
	{
		name: "sim-slow-calls", what: "sim cloud for the whole burst: every call takes 2 s", only: "long",
		before: simFaults(sim.Faults{APILatency: 2}), after: simFaults(sim.Faults{}),
	},
	{
		name:     "ec2-cloud-errors",
		declines: true,
		what: "EC2 endpoint for the whole burst: 10 % of calls throttled, 5 % internal errors, 5 % of " +
			"RunInstances without capacity, RunInstances answered 0.5 s late and DescribeInstances 0.25 s late",
		only: "short", spec: clusterSpec{aws: true},
		before: ec2Faults(ec2sim.Faults{
			Errors: ec2sim.ErrorRates{Throttle: 0.1, Internal: 0.05, Capacity: 0.05},
			Delays: map[string]float64{"RunInstances": 0.5, "DescribeInstances": 0.25},
		}),
		after: ec2Faults(ec2sim.Faults{}),
	},
	{
		name: "ec2-throttling", what: "EC2 endpoint for the whole burst: 20 % of calls throttled",
		only: "long", spec: clusterSpec{aws: true},
		before: ec2Faults(ec2sim.Faults{Errors: ec2sim.ErrorRates{Throttle: 0.2}}), after: ec2Faults(ec2sim.Faults{}),
	},
	{
		name: "ec2-capacity", what: "EC2 endpoint for the whole burst: 20 % of RunInstances without capacity",
		declines: true,
		only:     "long", spec: clusterSpec{aws: true},
		before: ec2Faults(ec2sim.Faults{Errors: ec2sim.ErrorRates{Capacity: 0.2}}), after: ec2Faults(ec2sim.Faults{}),
	},
	{
		name: "ec2-internal-errors", what: "EC2 endpoint for the whole burst: 10 % of calls answered with InternalError",
		only: "long", spec: clusterSpec{aws: true},
		before: ec2Faults(ec2sim.Faults{Errors: ec2sim.ErrorRates{Internal: 0.1}}), after: ec2Faults(ec2sim.Faults{}),
	},
	{
		name: "ec2-slow-calls",
		what: "EC2 endpoint for the whole burst: RunInstances, DescribeInstances and TerminateInstances " +
			"answered 2 s late (after taking effect)",
		only: "long", spec: clusterSpec{aws: true},
		before: ec2Faults(ec2sim.Faults{Delays: map[string]float64{
			"RunInstances": 2, "DescribeInstances": 2, "TerminateInstances": 2,
		}}),
		after: ec2Faults(ec2sim.Faults{}),
	},
	{
		name:     "workflow-terminate-reset",
		declines: true,
		what: "mid-burst, request workflows of requests being launched are terminated, and others reset " +
			"to their first workflow task, through the Temporal client",
		during: terminateAndReset,
	},
	{
		name: "large-request",
		what: "one request for 300 nodes (pool max-servers 300)",
		only: "long", spec: clusterSpec{maxServers: 300, bootSteps: []float64{0.5}},
		sets: func(c *cluster) [][]string {
			set := make([]string, 300)
			for i := range set {
				set[i] = c.labels[0]
			}
			return [][]string{set}
		},
	},
}

// midBurst waits until the cloud has created half a pool's worth of instances (at least
// two): launches are under way, some requests are fulfilled and others wait.
func midBurst(ctx context.Context, c *cluster) error {
	c.waitCreated(ctx, max(2, int64(c.maxServers/2)))
	if ctx.Err() != nil {
		return fmt.Errorf("the burst did not get under way: %w", ctx.Err())
	}
	return nil
}

// killAndRestart kills a component with SIGKILL mid-burst and starts it again after
// pause.
func killAndRestart(name string, pause time.Duration) func(context.Context, *cluster, *burst, *faultLog) error {
	return func(ctx context.Context, c *cluster, _ *burst, log *faultLog) error {
		if err := midBurst(ctx, c); err != nil {
			return err
		}
		p := c.st.Proc(name)
		pid := p.Pid()
		p.Kill()
		log.add("killed %s (pid %d) with SIGKILL", name, pid)
		time.Sleep(pause)
		if err := p.Start(ctx); err != nil {
			return fmt.Errorf("starting %s again: %w", name, err)
		}
		log.add("%s running again (pid %d)", name, p.Pid())
		return nil
	}
}

// restart stops a component gracefully mid-burst and starts it again at once.
func restart(name string) func(context.Context, *cluster, *burst, *faultLog) error {
	return func(ctx context.Context, c *cluster, _ *burst, log *faultLog) error {
		if err := midBurst(ctx, c); err != nil {
			return err
		}
		p := c.st.Proc(name)
		log.add("stopping %s (pid %d, SIGTERM)", name, p.Pid())
		if err := p.Restart(ctx); err != nil {
			return fmt.Errorf("restarting %s: %w", name, err)
		}
		log.add("%s running again (pid %d)", name, p.Pid())
		return nil
	}
}

// pollerKill kills the poller mid-burst, submits a second wave while it is down, and
// starts it again.
func pollerKill(ctx context.Context, c *cluster, b *burst, log *faultLog) error {
	if err := midBurst(ctx, c); err != nil {
		return err
	}
	p := c.st.Proc("poller")
	pid := p.Pid()
	p.Kill()
	log.add("killed the poller (pid %d) with SIGKILL", pid)
	wave := c.requestSets(max(1, c.m.burst/4))
	if err := b.submit(wave); err != nil {
		return err
	}
	log.add("submitted %d more requests while the poller is down", len(wave))
	time.Sleep(5 * time.Second)
	if err := p.Start(ctx); err != nil {
		return fmt.Errorf("starting the poller again: %w", err)
	}
	log.add("poller running again (pid %d)", p.Pid())
	return nil
}

// simFaults sets the sim cloud's faults.
func simFaults(f sim.Faults) func(context.Context, *cluster, *faultLog) error {
	return func(ctx context.Context, c *cluster, log *faultLog) error {
		if err := c.setSimFaults(ctx, f); err != nil {
			return err
		}
		if f == (sim.Faults{}) {
			log.add("sim cloud faults off")
		} else {
			log.add("sim cloud faults on: %+v", f)
		}
		return nil
	}
}

// ec2Faults sets the EC2 endpoint's faults.
func ec2Faults(f ec2sim.Faults) func(context.Context, *cluster, *faultLog) error {
	return func(ctx context.Context, c *cluster, log *faultLog) error {
		if err := c.setEC2Faults(ctx, f); err != nil {
			return err
		}
		if f.Errors == (ec2sim.ErrorRates{}) && len(f.Delays) == 0 {
			log.add("EC2 endpoint faults off")
		} else {
			log.add("EC2 endpoint faults on: errors %+v, delays (s) %v", f.Errors, f.Delays)
		}
		return nil
	}
}

// terminateAndReset terminates some running request workflows and resets others to
// their first workflow task, picking requests the launcher is working on.
func terminateAndReset(ctx context.Context, c *cluster, b *burst, log *faultLog) error {
	if err := midBurst(ctx, c); err != nil {
		return err
	}
	each := 2
	if c.m.name == "long" {
		each = 5
	}
	var terminated, reset int
	deadline := time.Now().Add(time.Minute)
	done := map[string]bool{}
	for terminated+reset < 2*each && time.Now().Before(deadline) && ctx.Err() == nil {
		for _, r := range b.all() {
			if terminated+reset >= 2*each {
				break
			}
			if done[r.id] {
				continue
			}
			req, err := c.zk.GetRequest(ctx, r.id)
			if err != nil || (req.State != zookeeper.StatePending && req.State != zookeeper.StateRequested) {
				continue
			}
			wid := names.RequestWorkflowID(taskQueue, r.id)
			desc, err := c.temporal.DescribeWorkflowExecution(ctx, wid, "")
			if err != nil || desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				continue
			}
			done[r.id] = true
			if terminated < each {
				if err := c.temporal.TerminateWorkflow(ctx, wid, "", "chaos: terminated mid-launch"); err != nil {
					return fmt.Errorf("terminating %s: %w", wid, err)
				}
				terminated++
				log.add("terminated workflow %s (request %s, %s)", wid, r.id, req.State)
				continue
			}
			if err := resetToFirstTask(ctx, c, wid); err != nil {
				if errors.Is(err, errNoCompletedTask) {
					// Its first workflow task is still running (planning under load):
					// there is no point to reset to yet. Look at it again later.
					done[r.id] = false
					continue
				}
				return err
			}
			reset++
			log.add("reset workflow %s (request %s, %s) to its first workflow task", wid, r.id, req.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if terminated+reset == 0 {
		return errors.New("found no running request workflow to terminate or reset")
	}
	return nil
}

// errNoCompletedTask is resetToFirstTask's error for a workflow whose first workflow
// task has not completed yet.
var errNoCompletedTask = errors.New("no completed workflow task")

// resetToFirstTask resets a workflow to the end of its first workflow task.
func resetToFirstTask(ctx context.Context, c *cluster, wid string) error {
	iter := c.temporal.GetWorkflowHistory(ctx, wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var first int64
	for iter.HasNext() && first == 0 {
		ev, err := iter.Next()
		if err != nil {
			return fmt.Errorf("reading the history of %s: %w", wid, err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			first = ev.GetEventId()
		}
	}
	if first == 0 {
		return fmt.Errorf("%s: %w", wid, errNoCompletedTask)
	}
	_, err := c.temporal.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 "default",
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: wid},
		Reason:                    "chaos: reset mid-launch",
		WorkflowTaskFinishEventId: first,
		RequestId:                 uuid.NewString(),
	})
	if err != nil {
		return fmt.Errorf("resetting %s: %w", wid, err)
	}
	return nil
}
