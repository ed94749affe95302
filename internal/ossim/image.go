package ossim

import (
	"fmt"
	"maps"
	"slices"
)

const imageV2 = imagePrefix + "/v2"

var imageRoutes = []route{
	{pattern: "GET " + imagePrefix, op: "Versions", svc: svcImage, public: true, h: (*Server).imageVersions},
	{pattern: "GET " + imagePrefix + "/{$}", op: "Versions", svc: svcImage, public: true, h: (*Server).imageVersions},
	{pattern: "GET " + imageV2, op: "Versions", svc: svcImage, public: true, h: (*Server).imageVersions},
	{pattern: "GET " + imageV2 + "/{$}", op: "Versions", svc: svcImage, public: true, h: (*Server).imageVersions},
	{pattern: "GET " + imageV2 + "/images", op: "ListImages", svc: svcImage, h: (*Server).listImages},
	{pattern: "GET " + imageV2 + "/images/{id}", op: "GetImage", svc: svcImage, h: (*Server).getImage},
}

func (s *Server) imageVersions(c *call) (*result, *apiError) {
	return ok(map[string]any{"versions": []any{versionDoc("v2.9", "CURRENT", c.base+imageV2+"/", nil)}})
}

// imageBody renders an image as Glance does, custom properties as attributes.
func (s *Server) imageBody(im Image) map[string]any {
	body := map[string]any{}
	for k, v := range im.Properties {
		body[k] = v
	}
	maps.Copy(body, map[string]any{
		"id": im.ID, "name": im.Name, "status": "active", "visibility": "public", "protected": false,
		"os_hidden": false, "container_format": "bare", "disk_format": "qcow2", "min_disk": 0, "min_ram": 0,
		"size": 1 << 30, "virtual_size": nil, "checksum": hashID("checksum:" + im.ID)[:8], "owner": projectID("admin"),
		"tags": []string{}, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
		"file": "/v2/images/" + im.ID + "/file", "self": "/v2/images/" + im.ID, "schema": "/v2/schemas/image",
	})
	return body
}

func (s *Server) listImages(c *call) (*result, *apiError) {
	var list []Image
	for _, im := range s.images {
		if filterValue(c, "name", im.Name) && filterValue(c, "id", im.ID) && filterValue(c, "status", "active") &&
			filterValue(c, "visibility", "public") {
			list = append(list, im)
		}
	}
	if m := c.query("marker"); m != "" && !slices.ContainsFunc(list, func(im Image) bool { return im.ID == m }) {
		return nil, badRequest(fmt.Sprintf("Image with identifier %s not found", m))
	}
	pg, e := paginate(c, list, func(im Image) string { return im.ID })
	if e != nil {
		return nil, e
	}
	items := []any{}
	for _, im := range pg.items {
		items = append(items, s.imageBody(im))
	}
	body := map[string]any{"images": items, "schema": "/v2/schemas/images", "first": "/v2/images"}
	if pg.more && len(pg.items) > 0 {
		q := c.r.URL.Query()
		q.Set("marker", pg.items[len(pg.items)-1].ID)
		body["next"] = "/v2/images?" + q.Encode()
	}
	return ok(body)
}

func (s *Server) getImage(c *call) (*result, *apiError) {
	id := c.r.PathValue("id")
	im, found := s.findImage(id)
	if !found {
		return nil, notFound("NotFound", fmt.Sprintf("No image found with ID %s", id))
	}
	return ok(s.imageBody(im))
}
