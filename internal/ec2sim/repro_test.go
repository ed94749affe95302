package ec2sim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"sync"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

type traceConn struct {
	net.Conn
	mu    sync.Mutex
	stack []byte
}

func (c *traceConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	fmt.Printf("write %d bytes: n=%d err=%v\n%s\n", len(p), n, err, p[:min(len(p), 400)])
	return n, err
}

func (c *traceConn) Close() error {
	c.mu.Lock()
	c.stack = debug.Stack()
	c.mu.Unlock()
	return c.Conn.Close()
}

func TestReproLarge(t *testing.T) {
	var conns []*traceConn
	var mu sync.Mutex
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &traceConn{Conn: c}
		mu.Lock()
		conns = append(conns, tc)
		mu.Unlock()
		return tc, nil
	}}
	for i := 0; i < 50; i++ {
		srv := New(Options{})
		hs := httptest.NewServer(srv)
		cfg := awssdk.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
			Retryer: func() awssdk.Retryer { return awssdk.NopRetryer{} }, HTTPClient: &http.Client{Transport: tr}}
		c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = awssdk.String(hs.URL) })
		in := runInput("")
		in.ClientToken = nil
		in.MaxCount = awssdk.Int32(50)
		_, err := c.RunInstances(context.Background(), in)
		if err != nil {
			mu.Lock()
			for _, tc := range conns[len(conns)-1:] {
				tc.mu.Lock()

				tc.mu.Unlock()
			}
			mu.Unlock()
			t.Fatalf("iteration %d: %v", i, err)
		}
		hs.Close()
	}
}
