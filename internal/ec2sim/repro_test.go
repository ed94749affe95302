package ec2sim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReproLarge(t *testing.T) {
	for i := 0; i < 50; i++ {
		srv := New(Options{})
		hs := httptest.NewServer(srv)
		form := url.Values{"Action": {"RunInstances"}, "ImageId": {ImageDebian12}, "InstanceType": {"t3.micro"}, "MinCount": {"1"}, "MaxCount": {"50"}}
		resp, err := http.PostForm(hs.URL, form)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err, "iteration %d after %d bytes", i, len(b))
		resp.Body.Close()
		hs.Close()
	}
}
