package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	cases := []struct {
		name     string
		settings []debug.BuildSetting
		want     []string
	}{
		{"clean checkout", []debug.BuildSetting{{Key: "vcs.revision", Value: "a0a7222abc"}, {Key: "vcs.time", Value: "2026-12-07T01:00:00Z"}, {Key: "vcs.modified", Value: "false"}},
			[]string{"claude-route v1.2.3\n", "revision: a0a7222abc\n", "committed: 2026-12-07T01:00:00Z\n", "go: go1.26.8\n"}},
		{"modified tree", []debug.BuildSetting{{Key: "vcs.revision", Value: "a0a7222abc"}, {Key: "vcs.modified", Value: "true"}},
			[]string{"revision: a0a7222abc (modified)\n"}},
		{"no VCS", nil, []string{"revision: unknown"}},
		{"no VCS, linked revision", nil, []string{"revision: 0123abc\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/claude-route/claude-route", Version: "v1.2.3"}, Settings: tc.settings}
			linked := ""
			if strings.Contains(tc.name, "linked") {
				linked = "0123abc"
			}
			got := versionText(bi, true, linked)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
		})
	}
}

// `claude-route version` prints this binary's own build information.
func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, envOf(nil), &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !regexp.MustCompile(`^claude-route \S+\nrevision: .+\n(committed: .+\n)?go: go1\.`).MatchString(out.String()) {
		t.Fatalf("version printed %q", out.String())
	}
}
