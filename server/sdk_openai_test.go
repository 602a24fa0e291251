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

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// TestOfficialOpenAISDK drives /v1/chat/completions with the official
// openai npm package (installed by scripts/setup-test-deps).
func TestOfficialOpenAISDK(t *testing.T) {
	dir, _ := filepath.Abs("../e2e/sdk")
	_, nodeErr := exec.LookPath("node")
	_, sdkErr := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json"))
	testenv.Require(t, nodeErr == nil && sdkErr == nil, "node and e2e/sdk/node_modules/openai (scripts/setup-test-deps)")
	e := newEnv(t)
	// A slow upstream: 60 ms between events, so chunks that arrive spread
	// out prove the proxy converts as the stream goes.
	e.fake.Close()
	e.fake = fakeupstream.Start(fakeupstream.Options{ChunkDelay: 60 * time.Millisecond})
	t.Cleanup(e.fake.Close)
	e.apiAccount("trial", "t1")
	url := e.start()
	key, quotaKey := e.issue("trial"), e.issue("trial")

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "openai.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PROXY_URL="+url, "CLIENT_KEY="+key, "QUOTA_KEY="+quotaKey, "QUOTA_LIMIT=42")
	outb, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	type failure struct {
		Status                   int
		Cls, Type, Code, Message string
		RetryAfter               *string `json:"retry_after"`
	}
	var out struct {
		Plain struct {
			Object, Text, Finish string
			Usage                struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
				TotalTokens      int `json:"total_tokens"`
			}
		}
		Stream struct {
			Text   string
			Times  []int
			Finish string
			Usage  *struct {
				TotalTokens int `json:"total_tokens"`
			}
		}
		Tools struct {
			Finish string
			Calls  []struct {
				ID       string
				Function struct{ Name, Arguments string }
			}
			Answer string
		}
		Image  struct{ Text string }
		Badkey failure
		Quota  failure
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("output %q: %v", outb, err)
	}
	if out.Plain.Object != "chat.completion" || out.Plain.Text != "Hello from the fake upstream. You said: Hello from openai" ||
		out.Plain.Finish != "stop" || out.Plain.Usage.TotalTokens != out.Plain.Usage.PromptTokens+out.Plain.Usage.CompletionTokens {
		t.Errorf("plain: %+v", out.Plain)
	}
	ts := out.Stream.Times
	if out.Stream.Text != "Hello from the fake upstream. You said: Stream please" || out.Stream.Finish != "stop" ||
		out.Stream.Usage == nil || out.Stream.Usage.TotalTokens == 0 {
		t.Errorf("stream: %+v", out.Stream)
	}
	// The upstream takes ≥ 8 × 60 ms; the first chunk must come long before the last.
	if len(ts) < 5 || ts[len(ts)-1]-ts[0] < 300 {
		t.Errorf("chunks did not arrive as the upstream produced them: %v ms", ts)
	}
	if out.Tools.Finish != "tool_calls" || len(out.Tools.Calls) != 1 || out.Tools.Calls[0].Function.Name != "weather" ||
		out.Tools.Calls[0].Function.Arguments != `{"city":"Paris"}` || out.Tools.Answer != "Hello from the fake upstream. Tool said: Sunny, 18 degrees" {
		t.Errorf("tools: %+v", out.Tools)
	}
	if out.Image.Text != "Hello from the fake upstream. You said: What is this?" {
		t.Errorf("image: %+v", out.Image)
	}
	var sawImage bool
	for _, r := range e.fake.Requests() {
		if strings.Contains(string(r.Body), `"source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo`) {
			sawImage = true
		}
	}
	if !sawImage {
		t.Error("the upstream never received the image block")
	}
	if out.Badkey.Status != 401 || out.Badkey.Cls != "AuthenticationError" || out.Badkey.Code != "invalid_api_key" || !strings.Contains(out.Badkey.Message, "Invalid API key format") {
		t.Errorf("bad key: %+v", out.Badkey)
	}
	if out.Quota.Status != 429 || out.Quota.Cls != "RateLimitError" || out.Quota.Code != "rate_limit_exceeded" ||
		!strings.Contains(out.Quota.Message, "Rate limit exceeded for sonnet") || out.Quota.RetryAfter == nil {
		t.Errorf("quota: %+v", out.Quota)
	}
}
