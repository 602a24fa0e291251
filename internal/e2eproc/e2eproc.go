// Package e2eproc starts and kills the real processes of the end-to-end
// suites (e2e/failover, e2e/chaos): redis-server, Sentinel and
// `claude-route serve` built from this repository, on loopback ports. Each
// process belongs to the test that started it and is SIGKILLed when the
// test ends, if it is still running.
package e2eproc

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

// Ports hands out loopback ports: FAILOVER_PORT_BASE, BASE+1, … when set
// (a shared machine gives each user a range), else free ones from the OS.
type Ports struct {
	t    testing.TB
	next int
}

// NewPorts reads FAILOVER_PORT_BASE.
func NewPorts(t testing.TB) *Ports {
	p := &Ports{t: t}
	if b := os.Getenv("FAILOVER_PORT_BASE"); b != "" {
		n, err := strconv.Atoi(b)
		if err != nil {
			t.Fatalf("FAILOVER_PORT_BASE: %v", err)
		}
		p.next = n
	}
	return p
}

// Get returns the next port.
func (p *Ports) Get() int {
	if p.next > 0 {
		p.next++
		return p.next - 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Addr is port on loopback.
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// RequireRedis skips the test (fails it in CI) without redis-server and
// redis-cli.
func RequireRedis(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	testenv.Require(t, err == nil, "redis-server")
	_, err = exec.LookPath("redis-cli")
	testenv.Require(t, err == nil, "redis-cli")
}

// Proc is a redis process the test started.
type Proc struct {
	Port int
	Cmd  *exec.Cmd
	Log  string
}

// StartRedis runs redis-server with args on port and waits until it answers.
func StartRedis(t testing.TB, dir string, port int, args ...string) *Proc {
	t.Helper()
	logf := filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log")
	full := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--logfile", logf}, args...)
	return StartProc(t, port, logf, "redis-server", full...)
}

// StartProc runs a Redis-speaking program and waits until port answers PING.
func StartProc(t testing.TB, port int, logf, name string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := &Proc{Port: port, Cmd: cmd, Log: logf}
	t.Cleanup(p.Kill)
	c := redis.NewClient(&redis.Options{Addr: Addr(port)})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf)
			t.Fatalf("%s on %d did not come up:\n%s", name, port, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// Kill SIGKILLs the process, as a crashed host would lose it.
func (p *Proc) Kill() { kill(p.Cmd) }

func kill(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

// RepoRoot is the repository's folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BuildBinary builds cmd/claude-route into the test's temp folder.
func BuildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "claude-route")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/claude-route")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Serve is one `claude-route serve` process.
type Serve struct {
	URL string
	Cmd *exec.Cmd
	Log *os.File
}

// StartServe runs `bin serve` on port with env added to the test's own
// and waits until /health answers 200. Its log is shown if the test fails.
func StartServe(t testing.TB, bin string, port int, env []string) *Serve {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), append(env, "LISTEN_ADDR="+Addr(port))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Serve{URL: "http://" + Addr(port), Cmd: cmd, Log: logf}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("serve on %d:\n%s", port, b)
		}
		logf.Close()
	})
	if _, ok := WaitFor(30*time.Second, func() bool {
		resp, err := http.Get(s.URL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); !ok {
		t.Fatalf("serve on %d did not come up", port)
	}
	return s
}

// Kill SIGKILLs the process.
func (s *Serve) Kill() { kill(s.Cmd) }

// WaitFor polls cond every 20 ms up to limit; it returns when cond held.
func WaitFor(limit time.Duration, cond func() bool) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return time.Now(), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}
