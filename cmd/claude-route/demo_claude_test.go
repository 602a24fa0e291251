package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
)

// TestDemoClaudeCode runs the current Claude Code CLI (e2e/sdk, installed
// by scripts/setup-test-deps) with the line the demo prints, in print mode:
// the demo's own key must be allowed the model Claude Code asks for, and
// the fake must take what Claude Code sends (mid-conversation system
// messages with their beta).
func TestDemoClaudeCode(t *testing.T) {
	sdk, _ := filepath.Abs("../../e2e/sdk/node_modules/.bin")
	_, err := os.Stat(filepath.Join(sdk, "claude"))
	testenv.Require(t, err == nil, "e2e/sdk/node_modules/.bin/claude (scripts/setup-test-deps)")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testenv.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo"}, envOf(map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}), out, io.Discard)
	}()
	var line string
	for deadline := time.Now().Add(20 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "ANTHROPIC_BASE_URL=") {
				line = l
			}
		}
	}
	if line == "" {
		t.Fatalf("demo printed no Claude Code line: %q", out.String())
	}
	// The line as printed, in print mode, from a clean home.
	cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
	defer ccancel()
	home := t.TempDir()
	cmd := exec.CommandContext(cctx, "bash", "-c", line+` -p "Hello from Claude Code"`)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "PATH="+sdk+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+home)
	res, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(res)) != "Hello from the fake upstream. You said: Hello from Claude Code" {
		t.Fatalf("%s -p: %v\n%s", line, err, res)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop")
	}
}
