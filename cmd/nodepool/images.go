package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// cmdLabelList prints the labels that the registered pools of every launcher
// sharing the ZooKeeper support, as upstream's label list does.
func cmdLabelList(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	if _, err := exactArgs(fs, args); err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	pools, err := s.zk.ListPools(ctx)
	if err != nil {
		return err
	}
	var labels []string
	for _, p := range pools {
		labels = append(labels, p.SupportedLabels...)
	}
	slices.Sort(labels)
	labels = slices.Compact(labels)
	t := newTable("Label")
	out := make([]map[string]string, 0, len(labels))
	for _, l := range labels {
		t.add(l)
		out = append(out, map[string]string{"label": l})
	}
	return s.output(t, out)
}

// imageColumns are the image-list columns.
var imageColumns = []string{"Build ID", "Upload ID", "Provider", "Image", "Provider Image Name",
	"Provider Image ID", "State", "Age"}

// imageUpload is one image upload record, with upstream's image-list keys; age
// is the unix state_time, as upstream's JSON has it.
type imageUpload struct {
	BuildID      string          `json:"id"`
	UploadID     string          `json:"upload_id"`
	Provider     string          `json:"provider"`
	Image        string          `json:"image"`
	ExternalName *string         `json:"external_name"`
	ExternalID   json.RawMessage `json:"external_id"`
	State        *string         `json:"state"`
	Age          *int64          `json:"age"`
}

// uploadRecord is what image-list reads of an upload znode.
type uploadRecord struct {
	ExternalName *string         `json:"external_name"`
	ExternalID   json.RawMessage `json:"external_id"`
	State        *string         `json:"state"`
	StateTime    *float64        `json:"state_time"`
}

// cmdImageList prints the image uploads. This launcher boots cloud images and
// builds none, so the list is empty unless an upstream builder shares the
// ZooKeeper; its uploads are listed then.
func cmdImageList(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	if _, err := exactArgs(fs, args); err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	uploads, err := s.imageUploads(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	t := newTable(imageColumns...)
	for _, u := range uploads {
		age := ""
		if u.Age != nil {
			age = ageSince(float64(*u.Age), now)
		}
		t.add(u.BuildID, u.UploadID, u.Provider, u.Image, strCell(u.ExternalName), rawCell(u.ExternalID),
			strCell(u.State), age)
	}
	return s.output(t, uploads)
}

// imageUploads reads every upload record
// (/nodepool/images/<image>/builds/<build>/providers/<provider>/images/<upload>).
func (s *session) imageUploads(ctx context.Context) ([]imageUpload, error) {
	out := []imageUpload{}
	images, err := s.children(ctx, imagesPath)
	if err != nil {
		return nil, err
	}
	for _, image := range images {
		builds, err := s.children(ctx, imagesPath+"/"+image+"/builds")
		if err != nil {
			return nil, err
		}
		for _, build := range builds {
			if build == "lock" {
				continue
			}
			bp := fmt.Sprintf("%s/%s/builds/%s/providers", imagesPath, image, build)
			providers, err := s.children(ctx, bp)
			if err != nil {
				return nil, err
			}
			for _, provider := range providers {
				ids, err := s.children(ctx, bp+"/"+provider+"/images")
				if err != nil {
					return nil, err
				}
				for _, id := range ids {
					if id == "lock" {
						continue
					}
					u, err := s.readUpload(ctx, bp+"/"+provider+"/images/"+id)
					if err != nil {
						return nil, err
					}
					if u == nil {
						continue
					}
					u.BuildID, u.UploadID, u.Provider, u.Image = build, id, provider, image
					out = append(out, *u)
				}
			}
		}
	}
	return out, nil
}

// readUpload reads one upload record; a vanished one is nil, one that does not
// decode is listed with its ids only, after a warning.
func (s *session) readUpload(ctx context.Context, p string) (*imageUpload, error) {
	data, _, err := s.zk.Get(ctx, p)
	if errors.Is(err, zookeeper.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec uploadRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		fmt.Fprintf(s.stderr, "warning: image upload %s: %v\n", p, err)
		return &imageUpload{}, nil
	}
	u := &imageUpload{ExternalName: rec.ExternalName, ExternalID: rawOrNull(rec.ExternalID), State: rec.State}
	if rec.StateTime != nil {
		age := int64(*rec.StateTime)
		u.Age = &age
	}
	return u, nil
}
