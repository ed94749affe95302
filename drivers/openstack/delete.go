package openstack

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Steps of the delete state machine.
const (
	stepDelete        = ""
	stepDeleteWait    = "wait"
	stepDeleteVolumes = "volumes"
)

// deleteData is the driver's part of a delete state.
type deleteData struct {
	// Volumes are the volumes attached to the server when it was deleted: boot
	// volumes Nova should delete with it, deleted afterwards if they remain.
	Volumes []string `json:"volumes,omitempty"`
	// RequestedAt is when the server delete was sent (driver clock): the server is
	// gone once a listing started after it lacks the server.
	RequestedAt time.Time `json:"requested_at"`
}

// AdvanceDelete runs one step of the delete state machine: delete the server's
// floating IPs, delete the server, wait until it is gone, then delete the volumes it
// had that remain (boot volumes).
func (d *Driver) AdvanceDelete(ctx context.Context, st drivers.DeleteState) (drivers.DeleteState, error) {
	if st.Complete {
		return st, nil
	}
	if st.ExternalID == "" {
		st.Complete = true
		return st, nil
	}
	var data deleteData
	if len(st.Data) > 0 {
		if err := json.Unmarshal(st.Data, &data); err != nil {
			return st, drivers.Permanent("decoding delete state of %s: %v", st.ExternalID, err)
		}
	}
	switch st.Step {
	case stepDelete:
		s, err := d.getServer(ctx, st.ExternalID)
		if isNotFound(err) {
			st.Complete = true
			return st, nil
		}
		if err != nil {
			return st, err
		}
		if err := d.deleteServerFloatingIPs(ctx, s.ID); err != nil {
			return st, err
		}
		data = deleteData{RequestedAt: d.now()}
		for _, v := range s.Volumes {
			data.Volumes = append(data.Volumes, v.ID)
		}
		if err := d.deleteServerCall(ctx, s.ID); err != nil && !isNotFound(err) {
			return st, err
		}
		st.Data, _ = json.Marshal(data)
		st.Step, st.Wait = stepDeleteWait, d.opts.pollInterval
		return st, nil
	case stepDeleteWait:
		ls, err := d.lister.get(ctx, data.RequestedAt)
		if err != nil {
			return st, err
		}
		if _, ok := ls.byID[st.ExternalID]; ok {
			st.Wait = d.opts.pollInterval
			return st, nil
		}
		st.Step, st.Wait = stepDeleteVolumes, 0
		return st, nil
	case stepDeleteVolumes:
		for _, id := range data.Volumes {
			if err := d.deleteVolume(ctx, id); err != nil {
				return st, err
			}
		}
		st.Complete, st.Wait = true, 0
		return st, nil
	}
	return st, drivers.Permanent("unknown delete step %q", st.Step)
}

// deleteServerCall asks Nova to delete a server.
func (d *Driver) deleteServerCall(ctx context.Context, id string) error {
	if err := servers.Delete(ctx, d.compute, id).ExtractErr(); err != nil {
		return classify(opDelete, "deleting server "+id, err)
	}
	return nil
}

// deleteServerFloatingIPs deletes the floating IPs bound to the server's ports.
func (d *Driver) deleteServerFloatingIPs(ctx context.Context, serverID string) error {
	portList, err := d.serverPorts(ctx, serverID)
	if err != nil {
		return err
	}
	for _, p := range portList {
		fips, err := d.floatingIPs(ctx, floatingips.ListOpts{PortID: p.ID})
		if err != nil {
			return err
		}
		for _, f := range fips {
			if err := d.deleteFloatingIP(ctx, f.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *Driver) deleteFloatingIP(ctx context.Context, id string) error {
	if err := floatingips.Delete(ctx, d.network, id).ExtractErr(); err != nil && !isNotFound(classify(opDelete, "", err)) {
		return classify(opDelete, "deleting floating ip "+id, err)
	}
	return nil
}

// deleteVolume deletes a volume that still exists; one still attached or being
// detached is a transient error.
func (d *Driver) deleteVolume(ctx context.Context, id string) error {
	if err := volumes.Delete(ctx, d.volume, id, volumes.DeleteOpts{}).ExtractErr(); err != nil {
		err = classify(opDelete, "deleting volume "+id, err)
		if isNotFound(err) {
			return nil
		}
		if drivers.KindOf(err) == drivers.KindPermanent {
			// Cinder answers 400 for a volume still attached or detaching.
			return &drivers.TransientError{Err: err}
		}
		return err
	}
	return nil
}
