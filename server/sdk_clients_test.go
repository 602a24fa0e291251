package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// sdkDir is e2e/sdk with the npm packages the test needs installed there
// (scripts/setup-test-deps); under CI a missing one fails the test.
func sdkDir(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir, _ := filepath.Abs("../e2e/sdk")
	_, nodeErr := exec.LookPath("node")
	ok := nodeErr == nil
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			ok = false
		}
	}
	testenv.Require(t, ok, "node and e2e/sdk/node_modules/{"+strings.Join(pkgs, ",")+"} (scripts/setup-test-deps)")
	return dir
}

func runNode(t *testing.T, dir string, env []string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("node %v: %v", args, err)
	}
	return out
}

// TestResponsesClients drives /v1/responses with the official openai SDK
// (plain, streamed, a tool round trip, a refusal) and the Vercel AI SDK's
// default OpenAI provider, and /v1/chat/completions with LangChain's
// withStructuredOutput.
func TestResponsesClients(t *testing.T) {
	dir := sdkDir(t, "openai", "ai", "@ai-sdk/openai", "@langchain/openai")
	e := newEnv(t)
	// 60 ms between upstream events: deltas that arrive spread out prove
	// the stream is converted as it goes.
	e.fake.Close()
	e.fake = fakeupstream.Start(fakeupstream.Options{ChunkDelay: 60 * time.Millisecond})
	t.Cleanup(e.fake.Close)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	outb := runNode(t, dir, []string{"PROXY_URL=" + url, "CLIENT_KEY=" + key}, "responses.mjs")

	type usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	var out struct {
		Plain struct {
			Object, Status, Text, Error string
			Usage                       usage
		}
		Stream struct {
			Types []string
			Text  string
			Times []int
			Usage *usage
			Error string
		}
		Tools struct {
			Calls []struct {
				Name, Arguments string
				CallID          string `json:"call_id"`
			}
			Answer, Error string
		}
		Refused struct {
			Status              int
			Cls, Param, Message string
		}
		Vercel struct {
			Text, Finish, Streamed, Error string
			Usage                         struct{ InputTokens, OutputTokens int }
		}
		Langchain struct {
			Person *struct {
				Name string
				Age  int
			}
			Error string
		}
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("output %q: %v", outb, err)
	}
	if out.Plain.Object != "response" || out.Plain.Status != "completed" || out.Plain.Text != "Hello from the fake upstream. You said: Hello from responses" ||
		out.Plain.Usage.TotalTokens != out.Plain.Usage.InputTokens+out.Plain.Usage.OutputTokens || out.Plain.Usage.OutputTokens == 0 {
		t.Errorf("plain: %+v", out.Plain)
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added response.output_text.delta " +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	ts := out.Stream.Times
	if strings.Join(out.Stream.Types, " ") != want || out.Stream.Text != "Hello from the fake upstream. You said: Stream please" ||
		out.Stream.Usage == nil || out.Stream.Usage.TotalTokens == 0 {
		t.Errorf("stream: %+v", out.Stream)
	}
	// At least four gaps of 60 ms between the first delta and the last.
	if len(ts) < 5 || ts[len(ts)-1]-ts[0] < 200 {
		t.Errorf("deltas did not arrive as the upstream produced them: %v ms", ts)
	}
	if len(out.Tools.Calls) != 1 || out.Tools.Calls[0].Name != "weather" || out.Tools.Calls[0].Arguments != `{"city":"Paris"}` ||
		out.Tools.Calls[0].CallID == "" || out.Tools.Answer != "Hello from the fake upstream. Tool said: Sunny, 18 degrees" {
		t.Errorf("tools: %+v", out.Tools)
	}
	if out.Refused.Status != 400 || out.Refused.Cls != "BadRequestError" || out.Refused.Param != "previous_response_id" || !strings.Contains(out.Refused.Message, "stateless") {
		t.Errorf("refused: %+v", out.Refused)
	}
	if out.Vercel.Text != "Hello from the fake upstream. You said: Hello from vercel" || out.Vercel.Finish != "stop" || out.Vercel.Usage.OutputTokens == 0 ||
		out.Vercel.Streamed != "Hello from the fake upstream. You said: Vercel stream" {
		t.Errorf("vercel: %+v", out.Vercel)
	}
	// Sonnet 4.5 has structured outputs: the fake answers the schema's
	// instance (strings are the prompt, integers 1).
	if p := out.Langchain.Person; p == nil || p.Name != "Ann is 30" || p.Age != 1 {
		t.Errorf("langchain: %+v", out.Langchain)
	}
	var sawFormat bool
	for _, r := range e.fake.Requests() {
		if strings.Contains(string(r.Body), `"output_format":{"type":"json_schema"`) && strings.Contains(r.Header.Get("Anthropic-Beta"), "structured-outputs-") {
			sawFormat = true
		}
	}
	if !sawFormat {
		t.Error("the upstream never received LangChain's schema as output_format with its beta")
	}
}

// TestCodexCLI runs `codex exec` against the proxy with a provider of
// wire_api "responses". The fake calls Codex's first tool (exec_command)
// with the prompt as its command, Codex runs it and sends the output back,
// and the fake's answer quotes it: a tool round trip through /v1/responses.
func TestCodexCLI(t *testing.T) {
	dir := sdkDir(t, "@openai/codex")
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	home, work := t.TempDir(), t.TempDir()
	cfg := `model = "claude-sonnet-4-5-20250929"
model_provider = "claude-route"

[model_providers.claude-route]
name = "claude-route"
base_url = "` + url + `/v1"
env_key = "CLAUDE_ROUTE_KEY"
wire_api = "responses"
`
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "node_modules", ".bin", "codex"), "exec", "--skip-git-repo-check", "echo codex-round-trip")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "CODEX_HOME="+home, "HOME="+home, "CLAUDE_ROUTE_KEY="+key)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("codex exec: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr.String())
	}
	if !strings.HasPrefix(string(stdout), "Hello from the fake upstream. Tool said: ") {
		t.Errorf("answer %q\nstderr:\n%s", stdout, stderr.String())
	}
	if strings.Contains(stderr.String(), "without active item") || !strings.Contains(stderr.String(), "codex-round-trip") {
		t.Errorf("codex did not run the call cleanly:\n%s", stderr.String())
	}
	// The upstream saw the call's result come back, as a tool_result.
	var round bool
	for _, r := range e.fake.Requests() {
		b := string(r.Body)
		if r.Path == "/v1/messages" && strings.Contains(b, `"type":"tool_result"`) && strings.Contains(b, "codex-round-trip") {
			round = true
		}
	}
	if !round {
		t.Error("no request carried the command's output back to the upstream")
	}
}
