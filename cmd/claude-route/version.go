package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// revision is the VCS revision given at link time (-ldflags "-X
// main.revision=…"), for builds without VCS data: the Docker build, whose
// context leaves .git out, passes its REVISION build argument.
var revision string // written by the linker only

// versionText is what `claude-route version` prints: the module version
// (a tag for `go install …@v1.2.3`, "(devel)" for a build from a clone),
// the VCS revision and time the binary was built from, whether the tree
// had uncommitted changes, and the Go toolchain.
func versionText(bi *debug.BuildInfo, ok bool, linked string) string {
	if !ok {
		return "claude-route: no build information (built without module support)\n"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		rev = linked
	}
	if rev == "" {
		rev = "unknown (built outside a VCS checkout, or with -buildvcs=false)"
	} else if settings["vcs.modified"] == "true" {
		rev += " (modified)"
	}
	out := fmt.Sprintf("claude-route %s\nrevision: %s\n", bi.Main.Version, rev)
	if t := settings["vcs.time"]; t != "" {
		out += "committed: " + t + "\n"
	}
	return out + "go: " + bi.GoVersion + "\n"
}

func cmdVersion(stdout io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	_, err := io.WriteString(stdout, versionText(bi, ok, revision))
	return err
}
