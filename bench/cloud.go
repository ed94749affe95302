package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
)

// simCallKinds are the simcloud counters that count API calls.
var simCallKinds = []string{sim.CallCreate, sim.CallDescribe, sim.CallDelete, sim.CallList, sim.CallLimits}

// errNoCloudAPI is cloudCalls' answer for the static driver, which calls no cloud.
var errNoCloudAPI = errors.New("the static driver calls no cloud API")

// cloudCalls returns the cloud's API call counts by operation: the simcloud's /stats
// call counters, or the /_stats calls by operation of ec2sim or ossim.
func cloudCalls(ctx context.Context, driver, baseURL string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch driver {
	case driverSim:
		var st map[string]int64
		if err := getJSON(ctx, baseURL+sim.PathStats, &st); err != nil {
			return nil, err
		}
		out := map[string]int64{}
		for _, k := range simCallKinds {
			out[k] = st[k]
		}
		return out, nil
	case driverStatic:
		return nil, errNoCloudAPI
	case driverAWS, driverOpenStack:
		var st struct {
			Calls map[string]int64 `json:"calls"`
		}
		if err := getJSON(ctx, baseURL+"/_stats", &st); err != nil {
			return nil, err
		}
		if st.Calls == nil {
			st.Calls = map[string]int64{}
		}
		return st.Calls, nil
	}
	return nil, fmt.Errorf("unknown driver %q", driver)
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: status %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", url, err)
	}
	return nil
}
