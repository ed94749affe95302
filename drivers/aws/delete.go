package aws

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// deleteData is the driver-private part of a DeleteState.
type deleteData struct {
	InstanceID string `json:"instance_id,omitempty"`
	// HostID is the node's dedicated host, released after the instance is gone.
	HostID string `json:"host_id,omitempty"`
	// NodeID finds the volumes the instance leaves behind (by their node tag).
	NodeID       string    `json:"node_id,omitempty"`
	TerminatedAt time.Time `json:"terminated_at,omitzero"`
	VolumesSince time.Time `json:"volumes_since,omitzero"`
}

// AdvanceDelete advances a delete state machine by one step:
//
//   - "start" terminates the instance through the batched TerminateInstances calls (an
//     instance EC2 does not know counts as deleted);
//   - "deleting instance" waits in the shared listing until the instance is terminated
//     (or absent after the grace period), terminating it again if it is still alive
//     after the grace period;
//   - "deleting volumes" deletes volumes tagged with the node id that the instance left
//     behind (those without DeleteOnTermination);
//   - "releasing host" releases the node's dedicated host, if it has one, waiting
//     while EC2 still sees the instance on it;
//   - "complete".
//
// An empty ExternalID completes at once; one with a host and no instance (a launch
// that failed between allocating the host and running the instance) only releases
// the host.
func (d *Driver) AdvanceDelete(ctx context.Context, st drivers.DeleteState) (drivers.DeleteState, error) {
	if st.Complete {
		return st, nil
	}
	data, err := decodeData[deleteData](st.Data)
	if err != nil {
		return st, err
	}
	log := d.log.With("node_id", st.NodeID, "external_id", st.ExternalID, "step", st.Step)
	switch st.Step {
	case "", StepStart:
		return d.deleteStart(ctx, log, st, data)
	case StepDeletingInstance:
		return d.deleteWait(ctx, log, st, data)
	case StepDeletingVolumes:
		return d.deleteVolumes(ctx, log, st, data)
	case StepReleasingHost:
		return d.deleteHost(ctx, log, st, data)
	case StepComplete:
		st.Complete = true
		return st, nil
	}
	return st, drivers.Permanent("advancing delete of %s: unknown step %q", st.ExternalID, st.Step)
}

func (d *Driver) deleteStart(ctx context.Context, log *slog.Logger, st drivers.DeleteState, data deleteData) (drivers.DeleteState, error) {
	ext, err := parseExternalIDs(st.ExternalID)
	if err != nil {
		return st, err
	}
	id := ext.Instance
	data.HostID = ext.Host
	if id == "" {
		if data.HostID != "" {
			st.Step, st.Wait = StepReleasingHost, 0
			st.Data = encodeData(data)
			return st, nil
		}
		st.Step, st.Complete, st.Wait = StepComplete, true, 0
		return st, nil
	}
	data.InstanceID = id
	if data.NodeID == "" {
		data.NodeID = st.NodeID
	}
	err = d.terminator.terminate(ctx, id)
	switch {
	case drivers.KindOf(err) == drivers.KindNotFound:
		log.Info("instance already gone")
		st.Step, st.Wait = StepDeletingVolumes, 0
	case err != nil:
		return st, err
	default:
		data.TerminatedAt = d.now()
		st.Step, st.Wait = StepDeletingInstance, d.opts.pollInterval
	}
	st.Data = encodeData(data)
	return st, nil
}

func (d *Driver) deleteWait(ctx context.Context, log *slog.Logger, st drivers.DeleteState, data deleteData) (drivers.DeleteState, error) {
	lst, err := d.lister.get(ctx)
	if err != nil {
		return st, err
	}
	in, ok := lst.byID[data.InstanceID]
	sinceTerminate := d.now().Sub(data.TerminatedAt)
	if !ok {
		if sinceTerminate < d.opts.grace {
			st.Wait = d.waitHint()
			return st, nil
		}
		in, err = d.describeInstance(ctx, data.InstanceID)
		if drivers.KindOf(err) == drivers.KindNotFound {
			return d.toVolumes(st, data), nil
		}
		if err != nil {
			return st, err
		}
	}
	if data.NodeID == "" {
		data.NodeID = tagMap(in.Tags)[drivers.MetaNodeID]
	}
	switch lifecycleOf(d.log, in) {
	case lifeGone:
		return d.toVolumes(st, data), nil
	case lifeTerminating:
	default:
		if sinceTerminate >= d.opts.grace {
			// The termination did not take (or the instance was started again):
			// terminate it once more.
			log.Warn("instance still alive after termination, terminating again", "state", stateName(in))
			if err := d.terminator.terminate(ctx, data.InstanceID); err != nil && drivers.KindOf(err) != drivers.KindNotFound {
				return st, err
			}
			data.TerminatedAt = d.now()
		}
	}
	st.Data = encodeData(data)
	st.Wait = d.waitHint()
	return st, nil
}

func (d *Driver) toVolumes(st drivers.DeleteState, data deleteData) drivers.DeleteState {
	st.Step, st.Wait = StepDeletingVolumes, 0
	st.Data = encodeData(data)
	return st
}

// afterVolumes is the state after the volumes step: releasing the host, if any, else
// complete.
func (d *Driver) afterVolumes(st drivers.DeleteState, data deleteData) drivers.DeleteState {
	st.Data = encodeData(data)
	if data.HostID != "" {
		st.Step, st.Wait = StepReleasingHost, 0
		return st
	}
	st.Step, st.Complete, st.Wait = StepComplete, true, 0
	return st
}

func (d *Driver) deleteVolumes(ctx context.Context, log *slog.Logger, st drivers.DeleteState, data deleteData) (drivers.DeleteState, error) {
	if data.NodeID == "" {
		return d.afterVolumes(st, data), nil
	}
	vols, err := d.describeVolumes(ctx, []ec2types.Filter{
		{Name: awssdk.String("tag:" + drivers.MetaNodeID), Values: []string{data.NodeID}},
		{Name: awssdk.String("tag:" + drivers.MetaProviderName), Values: []string{d.provider}},
	})
	if err != nil {
		return st, classify(opRead, "listing volumes of node "+data.NodeID, err)
	}
	pending := 0
	for _, v := range vols {
		vid := awssdk.ToString(v.VolumeId)
		switch v.State {
		case ec2types.VolumeStateAvailable, ec2types.VolumeStateError:
			_, err := d.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: v.VolumeId})
			err = classify(opDelete, "deleting volume "+vid, err)
			switch {
			case err == nil:
				log.Info("deleted volume left by instance", "volume_id", vid)
			case drivers.KindOf(err) == drivers.KindNotFound:
			case drivers.KindOf(err) == drivers.KindTransient:
				pending++
			default:
				return st, err
			}
		case ec2types.VolumeStateInUse, ec2types.VolumeStateCreating:
			// Only wait for volumes still detaching from our instance; a volume of
			// another instance with the same node tag is not ours to delete.
			if attachedTo(v, data.InstanceID) || len(v.Attachments) == 0 {
				pending++
			}
		}
	}
	if pending > 0 {
		if data.VolumesSince.IsZero() {
			data.VolumesSince = d.now()
		}
		if d.now().Sub(data.VolumesSince) < d.opts.grace {
			st.Data = encodeData(data)
			st.Wait = d.opts.pollInterval
			return st, nil
		}
		log.Warn("volumes still attached after the grace period; leaving them to leak cleanup", "count", pending)
	}
	return d.afterVolumes(st, data), nil
}

func attachedTo(v ec2types.Volume, instanceID string) bool {
	for _, a := range v.Attachments {
		if awssdk.ToString(a.InstanceId) == instanceID {
			return true
		}
	}
	return false
}

// describeVolumes lists every volume matching filters, following pagination.
func (d *Driver) describeVolumes(ctx context.Context, filters []ec2types.Filter) ([]ec2types.Volume, error) {
	var out []ec2types.Volume
	p := ec2.NewDescribeVolumesPaginator(d.ec2, &ec2.DescribeVolumesInput{Filters: filters, MaxResults: awssdk.Int32(500)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Volumes...)
	}
	return out, nil
}

// termRequest asks the batcher to terminate one instance.
type termRequest struct {
	id  string
	res chan error
}

// terminator collects terminations for a short window and sends them in batches of up
// to MaxTerminateBatch ids per TerminateInstances call, so that many deletes cost few
// calls of the mutating API budget.
type terminator struct {
	d    *Driver
	reqs chan termRequest
}

func newTerminator(d *Driver) *terminator {
	return &terminator{d: d, reqs: make(chan termRequest, MaxTerminateBatch)}
}

// terminate terminates one instance through the next batch and returns its outcome
// (a not-found error when EC2 does not know the instance).
func (t *terminator) terminate(ctx context.Context, id string) error {
	req := termRequest{id: id, res: make(chan error, 1)}
	if t.d.bg.Err() != nil {
		return drivers.Transient("queueing termination of %s: driver closed", id)
	}
	select {
	case t.reqs <- req:
	case <-ctx.Done():
		return classify(opDelete, "queueing termination of "+id, ctx.Err())
	case <-t.d.bg.Done():
		return drivers.Transient("queueing termination of %s: driver closed", id)
	}
	select {
	case err := <-req.res:
		return err
	case <-ctx.Done():
		return classify(opDelete, "waiting for termination of "+id, ctx.Err())
	case <-t.d.bg.Done():
		return drivers.Transient("waiting for termination of %s: driver closed", id)
	}
}

// run batches requests until ctx ends.
func (t *terminator) run(ctx context.Context) {
	for {
		var batch []termRequest
		select {
		case r := <-t.reqs:
			batch = append(batch, r)
		case <-ctx.Done():
			return
		}
		ids := map[string]bool{batch[0].id: true}
		timer := time.NewTimer(t.d.opts.batchWindow)
	collect:
		for len(ids) < MaxTerminateBatch {
			select {
			case r := <-t.reqs:
				batch = append(batch, r)
				ids[r.id] = true
			case <-timer.C:
				break collect
			case <-ctx.Done():
				timer.Stop()
				for _, r := range batch {
					r.res <- drivers.Transient("terminating %s: driver closed", r.id)
				}
				return
			}
		}
		timer.Stop()
		t.flush(ctx, batch)
	}
}

func (t *terminator) flush(ctx context.Context, batch []termRequest) {
	var ids []string
	seen := map[string]bool{}
	for _, r := range batch {
		if !seen[r.id] {
			seen[r.id] = true
			ids = append(ids, r.id)
		}
	}
	results := t.call(ctx, ids)
	for _, r := range batch {
		r.res <- results[r.id]
	}
}

// call terminates ids in one call. When EC2 rejects the batch because of one id (not
// found or malformed), it retries the ids one by one so that each gets its own answer.
func (t *terminator) call(ctx context.Context, ids []string) map[string]error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := t.d.ec2.TerminateInstances(cctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	what := "terminating instance " + ids[0]
	if len(ids) > 1 {
		what = fmt.Sprintf("terminating %d instances", len(ids))
	}
	err = classify(opDelete, what, err)
	out := make(map[string]error, len(ids))
	if err == nil {
		t.d.log.Info("terminated instances", "count", len(ids))
	}
	k := drivers.KindOf(err)
	if len(ids) > 1 && (k == drivers.KindNotFound || k == drivers.KindPermanent) {
		for _, id := range ids {
			out[id] = t.call(ctx, []string{id})[id]
		}
		return out
	}
	for _, id := range ids {
		out[id] = err
	}
	return out
}
