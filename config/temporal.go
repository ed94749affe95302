package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
)

// Environment variables that override the temporal section. All but
// EnvTemporalTaskQueue are the Temporal SDK's standard names.
const (
	EnvTemporalAddress    = "TEMPORAL_ADDRESS"
	EnvTemporalNamespace  = "TEMPORAL_NAMESPACE"
	EnvTemporalTaskQueue  = "TEMPORAL_TASK_QUEUE"
	EnvTemporalTLS        = "TEMPORAL_TLS"
	EnvTemporalTLSCert    = "TEMPORAL_TLS_CLIENT_CERT_PATH"
	EnvTemporalTLSKey     = "TEMPORAL_TLS_CLIENT_KEY_PATH"
	EnvTemporalTLSCA      = "TEMPORAL_TLS_SERVER_CA_CERT_PATH"
	EnvTemporalServerName = "TEMPORAL_TLS_SERVER_NAME"
	EnvTemporalAPIKey     = "TEMPORAL_API_KEY"
)

// WithEnv returns t with every setting whose environment variable is set to a
// non-empty value replaced by that value. TEMPORAL_TLS accepts the values of
// strconv.ParseBool; an unparsable value leaves Enabled unchanged and is reported
// by Validate. The API key is only ever read here.
func (t Temporal) WithEnv(getenv func(string) string) Temporal {
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&t.Address, EnvTemporalAddress)
	set(&t.Namespace, EnvTemporalNamespace)
	set(&t.TaskQueue, EnvTemporalTaskQueue)
	set(&t.TLS.Cert, EnvTemporalTLSCert)
	set(&t.TLS.Key, EnvTemporalTLSKey)
	set(&t.TLS.CA, EnvTemporalTLSCA)
	set(&t.TLS.ServerName, EnvTemporalServerName)
	set(&t.APIKey, EnvTemporalAPIKey)
	if v := getenv(EnvTemporalTLS); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			t.TLS.Enabled = b
		} else {
			t.badTLSEnv = v
		}
	}
	return t
}

// UseTLS reports whether the connection uses TLS: when enabled explicitly, when any
// certificate file or server name is set, or when an API key is used (API keys are
// only sent over TLS).
func (t Temporal) UseTLS() bool {
	return t.TLS.Enabled || t.TLS.Cert != "" || t.TLS.Key != "" || t.TLS.CA != "" ||
		t.TLS.ServerName != "" || t.APIKey != ""
}

// ClientTLS returns the TLS settings of a connection to the Temporal frontend: the
// client certificate and CA files, read now, and the server name to verify.
func (t Temporal) ClientTLS() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: t.TLS.ServerName, MinVersion: tls.VersionTLS12}
	if t.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.TLS.Cert, t.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("loading Temporal client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.TLS.CA != "" {
		pem, err := os.ReadFile(t.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("reading Temporal CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate found in Temporal CA file %s", t.TLS.CA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
