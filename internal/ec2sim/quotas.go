package ec2sim

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// serviceQuotasTarget is the X-Amz-Target prefix of the Service Quotas JSON API.
const serviceQuotasTarget = "ServiceQuotasV20190624."

type jsonQuota struct {
	ServiceCode string  `json:"ServiceCode"`
	ServiceName string  `json:"ServiceName"`
	QuotaArn    string  `json:"QuotaArn"`
	QuotaCode   string  `json:"QuotaCode"`
	QuotaName   string  `json:"QuotaName"`
	Value       float64 `json:"Value"`
	Unit        string  `json:"Unit"`
	Adjustable  bool    `json:"Adjustable"`
	GlobalQuota bool    `json:"GlobalQuota"`
}

type listServiceQuotasInput struct {
	ServiceCode string `json:"ServiceCode"`
	NextToken   string `json:"NextToken"`
	MaxResults  int    `json:"MaxResults"`
}

type listServiceQuotasOutput struct {
	Quotas    []jsonQuota `json:"Quotas"`
	NextToken string      `json:"NextToken,omitempty"`
}

// serveJSON answers an awsJson1_1 call identified by its X-Amz-Target header.
func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request, target string) {
	op, ok := strings.CutPrefix(target, serviceQuotasTarget)
	body, err := readAll(w, r)
	s.mu.Lock()
	s.seq++
	reqID := requestID(s.seq)
	if ok {
		s.calls[op]++
	}
	var (
		out  any
		aerr *apiError
	)
	switch {
	case err != nil:
		aerr = newError("SerializationException", "reading request: %v", err)
	case !ok || op != "ListServiceQuotas":
		aerr = newError("UnknownOperationException", "unknown operation %s", target)
	default:
		if aerr = s.injected(op, ""); aerr == nil {
			out, aerr = s.listServiceQuotas(body)
		}
	}
	if aerr != nil {
		if aerr.Code == "RequestLimitExceeded" {
			aerr.Code = "TooManyRequestsException"
		}
		s.errs[aerr.Code]++
	}
	s.mu.Unlock()
	s.log.Debug("service quotas call", "target", target, "request_id", reqID, "error", errCode(aerr))
	w.Header().Set("X-Amzn-RequestId", reqID)
	if aerr != nil {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", aerr.Code)
		writeJSON(w, StatusFor(aerr.Code), map[string]string{"__type": aerr.Code, "message": aerr.Message})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// listServiceQuotas reports the configured vCPU limits as EC2 quotas. Callers hold s.mu.
func (s *Server) listServiceQuotas(body []byte) (any, *apiError) {
	var in listServiceQuotasInput
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, newError("SerializationException", "decoding request: %v", err)
		}
	}
	if in.ServiceCode == "" {
		return nil, newError("ValidationException", "1 validation error detected: ServiceCode must not be null")
	}
	if in.MaxResults < 0 || in.MaxResults > 100 {
		return nil, newError("ValidationException", "MaxResults must be between 1 and 100")
	}
	offset := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(in.NextToken, "page-"))
		if err != nil || n < 0 {
			return nil, newError("InvalidPaginationTokenException", "invalid token %s", in.NextToken)
		}
		offset = n
	}
	var quotas []jsonQuota
	if in.ServiceCode == "ec2" {
		for _, code := range slices.Sorted(maps.Keys(s.limits)) {
			quotas = append(quotas, jsonQuota{
				ServiceCode: "ec2", ServiceName: "Amazon Elastic Compute Cloud (Amazon EC2)",
				QuotaArn:  "arn:aws:servicequotas:" + s.opts.Region + ":" + s.opts.OwnerID + ":ec2/" + code,
				QuotaCode: code, QuotaName: quotaName(code), Value: float64(s.limits[code]), Unit: "None", Adjustable: true,
			})
		}
	}
	page, next := paginate(quotas, in.MaxResults, offset)
	return listServiceQuotasOutput{Quotas: append([]jsonQuota{}, page...), NextToken: next}, nil
}
