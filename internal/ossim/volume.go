package ossim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// volume is a Cinder volume; the simulator creates them for block device mappings.
type volume struct {
	id, name, status, az, projectID, volumeType string
	size                                        int
	bootable                                    bool
	metadata, imageMeta                         map[string]string
	serverID, device                            string
	created, attachedAt                         time.Time
}

var volumeRoutes = []route{
	{pattern: "GET /volume", op: "Versions", svc: svcVolume, public: true, h: (*Server).volumeVersions},
	{pattern: "GET /volume/{$}", op: "Versions", svc: svcVolume, public: true, h: (*Server).volumeVersions},
	{pattern: "GET " + volumePrefix, op: "Versions", svc: svcVolume, public: true, h: (*Server).volumeVersion},
	{pattern: "GET " + volumePrefix + "/{$}", op: "Versions", svc: svcVolume, public: true, h: (*Server).volumeVersion},
	{pattern: "GET " + volumePrefix + "/{project}/volumes", op: "ListVolumes", svc: svcVolume, h: (*Server).listVolumes},
	{pattern: "GET " + volumePrefix + "/{project}/volumes/detail", op: "ListVolumes", svc: svcVolume, h: (*Server).listVolumes},
	{pattern: "GET " + volumePrefix + "/{project}/volumes/{id}", op: "GetVolume", svc: svcVolume, h: (*Server).getVolume},
	{pattern: "DELETE " + volumePrefix + "/{project}/volumes/{id}", op: "DeleteVolume", svc: svcVolume, h: (*Server).deleteVolume},
}

func (s *Server) volumeVersions(c *call) (*result, *apiError) {
	return &result{status: http.StatusMultipleChoices, body: map[string]any{"versions": []any{
		versionDoc("v3.0", "CURRENT", c.base+volumePrefix+"/", map[string]any{"version": "3.71", "min_version": "3.0"}),
	}}}, nil
}

func (s *Server) volumeVersion(c *call) (*result, *apiError) {
	return ok(map[string]any{"version": versionDoc("v3.0", "CURRENT", c.base+volumePrefix+"/", map[string]any{"version": "3.71", "min_version": "3.0"})})
}

func (s *Server) volumeBody(c *call, v *volume) map[string]any {
	attachments := []map[string]any{}
	if v.serverID != "" {
		attachments = append(attachments, map[string]any{
			"id": v.id, "attachment_id": hashID("attachment:" + v.id + v.serverID), "volume_id": v.id,
			"server_id": v.serverID, "device": v.device, "host_name": nil,
			"attached_at": v.attachedAt.UTC().Format(cinderTime),
		})
	}
	bootable := "false"
	if v.bootable {
		bootable = "true"
	}
	self := c.base + volumePrefix + "/" + v.projectID + "/volumes/" + v.id
	body := map[string]any{
		"id": v.id, "name": v.name, "status": v.status, "size": v.size, "availability_zone": v.az,
		"created_at": v.created.UTC().Format(cinderTime), "updated_at": v.created.UTC().Format(cinderTime),
		"attachments": attachments, "description": nil, "volume_type": v.volumeType, "snapshot_id": nil,
		"source_volid": nil, "metadata": v.metadata, "user_id": hashID("user:" + v.projectID), "bootable": bootable,
		"encrypted": false, "replication_status": nil, "consistencygroup_id": nil, "multiattach": false,
		"os-vol-tenant-attr:tenant_id": v.projectID, "links": []map[string]string{{"rel": "self", "href": self}},
	}
	if v.imageMeta != nil {
		body["volume_image_metadata"] = v.imageMeta
	}
	return body
}

// metadataFilter parses Cinder's metadata filter, a Python dict literal such as
// {'k':'v'}.
func metadataFilter(raw string) (map[string]string, *apiError) {
	if raw == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(strings.ReplaceAll(raw, "'", `"`)), &m); err != nil {
		return nil, badRequest(fmt.Sprintf("Invalid filter metadata: %s", raw))
	}
	return m, nil
}

func (s *Server) listVolumes(c *call) (*result, *apiError) {
	meta, e := metadataFilter(c.query("metadata"))
	if e != nil {
		return nil, e
	}
	var list []*volume
	for _, id := range slices.Backward(s.volOrder) {
		v := s.volumes[id]
		match := filterValue(c, "name", v.name) && filterValue(c, "status", v.status)
		for k, want := range meta {
			match = match && v.metadata[k] == want
		}
		if match {
			list = append(list, v)
		}
	}
	pg, e := paginate(c, list, func(v *volume) string { return v.id })
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, v := range pg.items {
		if strings.HasSuffix(c.r.URL.Path, "/detail") {
			items = append(items, s.volumeBody(c, v))
		} else {
			items = append(items, map[string]any{"id": v.id, "name": v.name})
		}
	}
	return ok(pageBody(c, "volumes", items, pg, func(v *volume) string { return v.id }))
}

func (s *Server) lookupVolume(c *call) (*volume, *apiError) {
	id := c.r.PathValue("id")
	v := s.volumes[id]
	if v == nil {
		return nil, notFound("NotFound", fmt.Sprintf("Volume %s could not be found.", id))
	}
	return v, nil
}

func (s *Server) getVolume(c *call) (*result, *apiError) {
	v, e := s.lookupVolume(c)
	if e != nil {
		return nil, e
	}
	return ok(map[string]any{"volume": s.volumeBody(c, v)})
}

// deleteVolume deletes an available volume (202); attached ones are refused as Cinder
// refuses them.
func (s *Server) deleteVolume(c *call) (*result, *apiError) {
	v, e := s.lookupVolume(c)
	if e != nil {
		return nil, e
	}
	if v.status == "in-use" {
		return nil, badRequest("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.")
	}
	s.removeVolume(v.id)
	return &result{status: http.StatusAccepted}, nil
}

func (s *Server) removeVolume(id string) {
	delete(s.volumes, id)
	s.volOrder = slices.DeleteFunc(s.volOrder, func(v string) bool { return v == id })
}
