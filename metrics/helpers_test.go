package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeRecorder remembers what it is told.
type fakeRecorder struct {
	mu  sync.Mutex
	log []string
}

func (f *fakeRecorder) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fakeRecorder) Launch(provider, az, requestor, result string, d time.Duration) {
	f.add("launch %s %s %s %s %s", provider, az, requestor, result, d)
}

func (f *fakeRecorder) Leaked(provider, resourceType string) {
	f.add("leaked %s %s", provider, resourceType)
}

func (f *fakeRecorder) Activity(activityType string, attempt int32, failed bool) {
	f.add("activity %s %d %t", activityType, attempt, failed)
}

func (f *fakeRecorder) events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// scraper scrapes a Prometheus handler over HTTP.
type scraper struct{ url string }

func newScraper(t *testing.T, p *Prometheus) scraper {
	t.Helper()
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return scraper{url: srv.URL}
}

// samples returns the scraped samples of the metrics whose names start with prefix,
// as "name{labels} value" lines, sorted.
func (s scraper) samples(t *testing.T, prefix string) []string {
	t.Helper()
	resp, err := http.Get(s.url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}
