package ec2sim

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

type rc struct{ io.ReadCloser }
type fixClient struct{ c *http.Client }

func (f fixClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = rc{req.Body}
	}
	return f.c.Do(req)
}

func TestReproLarge(t *testing.T) {
	for i := 0; i < 200; i++ {
		srv := New(Options{})
		hs := httptest.NewServer(srv)
		cfg := awssdk.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
			Retryer: func() awssdk.Retryer { return awssdk.NopRetryer{} }, HTTPClient: &http.Client{}}
		c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = awssdk.String(hs.URL) })
		in := runInput("")
		in.ClientToken = nil
		in.MaxCount = awssdk.Int32(50)
		_, err := c.RunInstances(context.Background(), in)
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		hs.Close()
	}
}
