// Command claude-route is the proxy, its demo, and the operator's CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usageText = `claude-route — a tiered multi-tenant proxy in front of the Anthropic Messages API

Usage:
  claude-route serve                      run proxy, admin API, dashboard and metrics on LISTEN_ADDR
  claude-route demo [--dir DIR]           serve with an embedded store, a built-in fake upstream and one issued key
                                          (--dir keeps its account and product folders in DIR)
  claude-route key issue --tier T [--account NAME] [--note TEXT] [--from-first-use] [--budget-day-usd X] [--budget-week-usd Y] [--strict]
  claude-route key list [--tier T] [--status active|revoked|expired] [--account NAME] [--search TEXT] [--limit N] [--json]
  claude-route key show KEY|ID [--json]
  claude-route key revoke KEY|ID
` + keyOpsUsage + accountUsage + usageCmdUsage + `  claude-route pool [--tier T] [--json]   slots, bound keys, blacklist and refresh state per account
  claude-route recover ACCOUNT            take an account off the blacklist
  claude-route blacklist ACCOUNT [--reason TEXT]
  claude-route alerts [--json]            the last 50 alerts, newest first
  claude-route alerts test                send a test alert to ALERT_WEBHOOK_URL
  claude-route sync                       full account-folder and ledger sync now
  claude-route status [--json]            store health, accounts, next refreshes, last sync
  claude-route healthcheck                exit 0 when the local server's /health is 200 (for Docker)
  claude-route version                    module version and VCS revision of this binary

Operator commands talk to the running server's admin API at CLAUDE_ROUTE_URL
(default http://127.0.0.1:8080) with ADMIN_TOKEN. Configuration: README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own env and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	// `help`, -h and --help anywhere (claude-route key move -h) list the
	// commands and their flags.
	for i, a := range args {
		if a == "-h" || a == "--help" || a == "-help" || (a == "help" && i <= 1) {
			fmt.Fprint(stdout, usageText)
			return 0
		}
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, getenv, stderr, nil)
	case "demo":
		err = cmdDemo(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(ctx, getenv)
	case "version", "--version":
		err = cmdVersion(stdout)
	case "key", "pool", "recover", "blacklist", "sync", "status":
		var handled bool
		if handled, err = cmdKeyOps(ctx, args, getenv, stdout, stderr); !handled {
			err = cmdOperator(ctx, args, getenv, stdout, stderr)
		}
	case "account":
		err = cmdAccount(ctx, args, getenv, os.Stdin, stdout)
	case "usage":
		err = cmdUsage(ctx, args, getenv, stdout)
	case "alerts":
		err = cmdAlerts(ctx, args, getenv, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	default:
		fmt.Fprintf(stderr, "claude-route: unknown command %q\n\n%s", args[0], usageText)
		return 2
	}
	if err == nil {
		return 0
	}
	var ce *configError
	var ue *usageError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "claude-route: bad configuration: %v\n", ce)
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "claude-route: %v\n", ue)
		return 2
	default:
		fmt.Fprintf(stderr, "claude-route: %v\n", err)
		return 1
	}
}

// usageError is a command line that makes no sense.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
