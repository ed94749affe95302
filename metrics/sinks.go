package metrics

import "net/http"

// Sinks are a launcher's metric destinations: statsd when STATSD_HOST or STATSD_PORT
// is set, Prometheus when the web app serves /metrics. Either may be nil.
type Sinks struct {
	Statsd     *Statsd
	Prometheus *Prometheus
}

// Enabled reports whether any sink is configured.
func (s Sinks) Enabled() bool { return s.Statsd != nil || s.Prometheus != nil }

// Recorder returns a Recorder feeding every configured sink (Nop for none).
func (s Sinks) Recorder() Recorder {
	var recs []Recorder
	if s.Statsd != nil {
		recs = append(recs, s.Statsd)
	}
	if s.Prometheus != nil {
		recs = append(recs, s.Prometheus)
	}
	return Multi(recs...)
}

// Handler serves the Prometheus metrics, or is nil without Prometheus.
func (s Sinks) Handler() http.Handler {
	if s.Prometheus == nil {
		return nil
	}
	return s.Prometheus.Handler()
}

// Close releases the statsd socket.
func (s Sinks) Close() {
	if s.Statsd != nil {
		_ = s.Statsd.Close()
	}
}
