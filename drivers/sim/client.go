package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client is the HTTP client of a simcloud server ([NewHandler]). It implements [API]
// and is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

var _ API = (*Client)(nil)

// NewClient returns a client of the simcloud server at baseURL (for example
// "http://127.0.0.1:8123"). It honours [WithHTTPClient].
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing simcloud url %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("parsing simcloud url %q: not an http or https url", baseURL)
	}
	o := buildOptions(opts)
	return &Client{base: strings.TrimSuffix(u.String(), "/"), hc: o.httpClient}, nil
}

// CreateInstance implements [API].
func (c *Client) CreateInstance(ctx context.Context, in CreateInstanceInput) (InstanceInfo, error) {
	var out InstanceInfo
	err := c.do(ctx, http.MethodPost, pathInstances, in, &out)
	return out, err
}

// DescribeInstance implements [API].
func (c *Client) DescribeInstance(ctx context.Context, id string) (InstanceInfo, error) {
	var out InstanceInfo
	err := c.do(ctx, http.MethodGet, pathInstances+"/"+url.PathEscape(id), nil, &out)
	return out, err
}

// DeleteInstance implements [API].
func (c *Client) DeleteInstance(ctx context.Context, in DeleteInstanceInput) (InstanceInfo, error) {
	path := pathInstances + "/" + url.PathEscape(in.ID)
	if in.NodeID != "" {
		path += "?" + url.Values{"node_id": {in.NodeID}}.Encode()
	}
	var out InstanceInfo
	err := c.do(ctx, http.MethodDelete, path, nil, &out)
	return out, err
}

// ListInstances implements [API].
func (c *Client) ListInstances(ctx context.Context) ([]InstanceInfo, error) {
	var out []InstanceInfo
	err := c.do(ctx, http.MethodGet, pathInstances, nil, &out)
	return out, err
}

// Limits implements [API].
func (c *Client) Limits(ctx context.Context) (CloudLimits, error) {
	var out CloudLimits
	err := c.do(ctx, http.MethodGet, pathLimits, nil, &out)
	return out, err
}

// Stats returns the server's counters (see [Cloud.Stats]).
func (c *Client) Stats(ctx context.Context) (map[string]int64, error) {
	var out map[string]int64
	err := c.do(ctx, http.MethodGet, PathStats, nil, &out)
	return out, err
}

// Instances returns every instance on the server (see [Cloud.Instances]).
func (c *Client) Instances(ctx context.Context) ([]InstanceInfo, error) {
	var out []InstanceInfo
	err := c.do(ctx, http.MethodGet, PathInstances, nil, &out)
	return out, err
}

// InjectError makes the server's next call of the kind fail with code (see
// [Cloud.InjectError]).
func (c *Client) InjectError(ctx context.Context, call string, code ErrorCode) error {
	return c.do(ctx, http.MethodPost, PathInject, Injection{Call: call, Code: code}, nil)
}

// do performs one request. Error replies become *APIError; anything else that goes
// wrong is returned as is (the driver treats it as transient).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("building %s %s request: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("calling simcloud %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return fmt.Errorf("reading simcloud %s %s reply: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae APIError
		if json.Unmarshal(data, &ae) == nil && ae.Code != "" {
			return &ae
		}
		return fmt.Errorf("calling simcloud %s %s: status %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding simcloud %s %s reply: %w", method, path, err)
	}
	return nil
}

// maxReplyBytes bounds a reply; a listing of a few hundred thousand instances fits.
const maxReplyBytes = 1 << 30
