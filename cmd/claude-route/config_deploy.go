package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// deployConfig is the part of the environment that concerns how the
// service is deployed: TLS, who may read /metrics, and where the embedded
// store keeps its data.
type deployConfig struct {
	// TLSCertFile and TLSKeyFile (TLS_CERT_FILE, TLS_KEY_FILE) serve
	// HTTPS with HTTP/2 on LISTEN_ADDR; both or neither.
	TLSCertFile string
	TLSKeyFile  string
	// MetricsPublic (METRICS_PUBLIC=true) serves /metrics without the
	// admin token.
	MetricsPublic bool
	// StoreFile (STORE_FILE) is where the embedded store is kept; empty
	// with REDIS_URL set.
	StoreFile string
}

// defaultStoreFile is STORE_FILE when REDIS_URL is empty.
const defaultStoreFile = "./data/store.snapshot"

// loadDeploy reads the deployment variables; redisURL is REDIS_URL, read
// before.
func loadDeploy(getenv func(string) string, redisURL string) (deployConfig, error) {
	d := deployConfig{
		TLSCertFile: env(getenv, "TLS_CERT_FILE", ""),
		TLSKeyFile:  env(getenv, "TLS_KEY_FILE", ""),
	}
	switch {
	case d.TLSCertFile == "" && d.TLSKeyFile == "":
	case d.TLSCertFile == "":
		return d, &configError{"TLS_CERT_FILE", errors.New("TLS_KEY_FILE is set: set both, or neither for plain HTTP")}
	case d.TLSKeyFile == "":
		return d, &configError{"TLS_KEY_FILE", errors.New("TLS_CERT_FILE is set: set both, or neither for plain HTTP")}
	default:
		// A pair that does not load stops the start; a renewal that does
		// not load later keeps the pair that did (tlsreload).
		if _, err := tls.LoadX509KeyPair(d.TLSCertFile, d.TLSKeyFile); err != nil {
			return d, &configError{"TLS_CERT_FILE", fmt.Errorf("with TLS_KEY_FILE: %w", err)}
		}
	}
	if v := env(getenv, "METRICS_PUBLIC", "false"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return d, &configError{"METRICS_PUBLIC", fmt.Errorf("want true or false, got %q", v)}
		}
		d.MetricsPublic = b
	}
	if err := checkWebhook(env(getenv, "ALERT_WEBHOOK_URL", "")); err != nil {
		return d, &configError{"ALERT_WEBHOOK_URL", err}
	}
	d.StoreFile = env(getenv, "STORE_FILE", "")
	if redisURL != "" {
		if d.StoreFile != "" {
			return d, &configError{"STORE_FILE", errors.New("applies to the embedded store only: unset it, or REDIS_URL")}
		}
	} else if d.StoreFile == "" {
		d.StoreFile = defaultStoreFile
	}
	return d, nil
}

// checkWebhook refuses at start a webhook that could never take an alert,
// instead of losing the first alert to it. The URL is a secret (Slack's
// and Discord's carry their token), so the error never shows it.
func checkWebhook(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL (not shown: it is a secret)")
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("want an https:// URL, got scheme %q", u.Scheme)
	case u.Host == "":
		return errors.New("the URL has no host")
	case u.User != nil:
		return errors.New("the URL carries a user or password: put the webhook's token where its service says (the path)")
	}
	return nil
}
