package server

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
)

// TestOfficialSDK drives the proxy with the official @anthropic-ai/sdk
// (installed by scripts/setup-test-deps), streaming and not.
func TestOfficialSDK(t *testing.T) {
	dir, _ := filepath.Abs("../e2e/sdk")
	_, nodeErr := exec.LookPath("node")
	_, sdkErr := os.Stat(filepath.Join(dir, "node_modules", "@anthropic-ai", "sdk", "package.json"))
	testenv.Require(t, nodeErr == nil && sdkErr == nil, "node and e2e/sdk/node_modules (scripts/setup-test-deps)")
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PROXY_URL="+url, "CLIENT_KEY="+key)
	outb, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	var out struct {
		Plain struct {
			Type, Text string
			Usage      struct{ InputTokens, OutputTokens int } `json:"usage"`
		}
		Stream struct {
			Text       string
			Events     int
			StopReason string `json:"stop_reason"`
			Usage      struct {
				InputTokens  int `json:"input_tokens"`
				OutputTokens int `json:"output_tokens"`
			}
		}
		Count struct {
			InputTokens int `json:"input_tokens"`
		} `json:"count"`
		Models []string
		Badkey struct {
			Status             int
			Cls, Type, Message string
		}
		Opus struct {
			Status             int
			Cls, Type, Message string
		}
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("output %q: %v", outb, err)
	}
	if out.Plain.Type != "message" || !strings.Contains(out.Plain.Text, "fake upstream") {
		t.Errorf("plain: %+v", out.Plain)
	}
	if out.Stream.Text != out.Plain.Text || out.Stream.Events < 5 || out.Stream.StopReason != "end_turn" || out.Stream.Usage.OutputTokens == 0 {
		t.Errorf("stream: %+v (plain text %q)", out.Stream, out.Plain.Text)
	}
	if out.Count.InputTokens == 0 {
		t.Errorf("count_tokens: %+v", out.Count)
	}
	if len(out.Models) == 0 {
		t.Errorf("models: %v", out.Models)
	}
	for _, m := range out.Models {
		if !strings.Contains(m, "sonnet") {
			t.Errorf("trial lists %s", m)
		}
	}
	if out.Badkey.Status != 401 || out.Badkey.Cls != "AuthenticationError" || !strings.Contains(out.Badkey.Message, "Invalid API key format") {
		t.Errorf("bad key: %+v", out.Badkey)
	}
	if out.Opus.Status != 403 || out.Opus.Cls != "PermissionDeniedError" || out.Opus.Type != "permission_error" {
		t.Errorf("opus on trial: %+v", out.Opus)
	}
}
