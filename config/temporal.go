package config

import "strconv"

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
