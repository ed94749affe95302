package aws

import (
	"io"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// httpDoer is the HTTP client interface of the SDK's configuration.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// sdkHTTPClient is the SDK's default HTTP client with one repair. smithy-go wraps
// request bodies in a reader whose WriteTo answers io.EOF once the SDK closed it, and
// the SDK closes it as soon as the response arrives. net/http's write loop copies the
// body a second time after sending it (to check its length), and when the response
// was faster than that copy, the io.EOF makes net/http close the connection while the
// response is still being read: "use of closed network connection" on a call that
// succeeded (aws-sdk-go-v2 issue 2737). Hiding WriteTo makes net/http use Read, which
// answers a plain end of stream after Close.
type sdkHTTPClient struct {
	next httpDoer
}

// wrapHTTPClient repairs next, or the SDK's default client when next is nil.
func wrapHTTPClient(next httpDoer) sdkHTTPClient {
	if next == nil {
		next = awshttp.NewBuildableClient()
	}
	return sdkHTTPClient{next: next}
}

// readOnlyBody hides every method of a body but Read and Close.
type readOnlyBody struct{ io.ReadCloser }

// Do sends req with its body wrapped in readOnlyBody.
func (c sdkHTTPClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = readOnlyBody{req.Body}
	}
	return c.next.Do(req)
}
