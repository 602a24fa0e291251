package server

import (
	"net/http"
	"testing"
)

// /metrics names accounts and shows their utilization: on the public
// listener it takes the admin token, unless the operator opened it
// (METRICS_PUBLIC) or moved it to the admin listener (ADMIN_LISTEN_ADDR).
func TestMetricsNeedTheAdminToken(t *testing.T) {
	cases := []struct {
		name      string
		cfg       func(*Config)
		token     string
		wantPub   int
		wantAdmin int // 0: no admin listener
	}{
		{"no token", nil, "", http.StatusUnauthorized, 0},
		{"wrong token", nil, "not-the-admin-token", http.StatusUnauthorized, 0},
		{"admin token", nil, adminToken, http.StatusOK, 0},
		{"METRICS_PUBLIC", func(c *Config) { c.MetricsPublic = true }, "", http.StatusOK, 0},
		{"ADMIN_LISTEN_ADDR", func(c *Config) { c.SeparateAdmin = true }, "", http.StatusNotFound, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []envOpt
			if tc.cfg != nil {
				opts = append(opts, withServerConfig(tc.cfg))
			}
			e := newEnv(t, opts...)
			pub := e.start()
			if got := metricsStatus(t, pub, tc.token); got != tc.wantPub {
				t.Errorf("public /metrics: %d, want %d", got, tc.wantPub)
			}
			if tc.wantAdmin != 0 {
				if got := metricsStatus(t, e.adminURLs[0], tc.token); got != tc.wantAdmin {
					t.Errorf("admin listener /metrics: %d, want %d", got, tc.wantAdmin)
				}
			}
		})
	}
}

func metricsStatus(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
