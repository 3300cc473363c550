// Command parley is Parley's one binary: servers (up, login-server, supernode,
// relay) and the headless client (register, login, passwd, listen, call, echo,
// chat, contacts...). It only parses flags and environment, wires the library
// packages together and handles signals; the logic lives in the libraries:
// internal/cluster runs the servers, client and its packages (echo,
// callscript, console, oneshot) the client side, audio --play and --record.

package main

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
	"github.com/parley/parley/internal/cli"
)

// usage is `parley help`; help holds the subcommands' help (helpText).
var (
	//go:embed usage.txt
	usage string
	//go:embed help
	help embed.FS
)

// helpText is `parley help NAME` for a command with subcommands: help/NAME.txt.
func helpText(name string) string {
	b, _ := help.ReadFile("help/" + name + ".txt")
	return string(b)
}

// revision is the VCS revision this binary was built from, stamped at link
// time: go build -ldflags "-X main.revision=…" (the Makefile does).
var revision string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}

// env is what every command gets: the streams and the global settings.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	home           string
	loginURL       string
	user           string
	logLevel       string
	logFormat      cli.LogFormat // servers' --log-format
	supernode      string
	noPortMapping  bool      // --no-port-mapping: never ask the router for a port
	jsonErr        io.Writer // where --json's error document goes (nil: stdout)
}

// sessionConfig fills in what the global flags say about going online.
func (e *env) sessionConfig(cfg client.SessionConfig) client.SessionConfig {
	cfg.Prefer = e.supernode
	cfg.NoPortMapping = e.noPortMapping
	return cfg
}

func (e *env) logger(defaultLevel slog.Level) *slog.Logger {
	return e.logFormat.Logger(e.stderr, e.logLevel, defaultLevel)
}

// globalFlags registers the global flags command fs takes (all of them
// before the command and for clients) and returns their names.
func (e *env) globalFlags(fs *flag.FlagSet) []string {
	switch fs.Name() {
	case "version":
		return nil
	case "up", "login-server", "relay", "supernode":
		fs.StringVar(&e.logLevel, "log-level", e.logLevel, "debug, info, warn or error (default info)")
		fs.Var(&e.logFormat, "log-format", "`FORMAT` of the logs on stderr: text (key=value lines) or json (one object a line) (default text)")
		if fs.Name() != "supernode" {
			return []string{"log-level", "log-format"}
		}
		fs.StringVar(&e.loginURL, "login", e.loginURL, "login server URL (env PARLEY_LOGIN)")
		return []string{"log-level", "log-format", "login"}
	}
	fs.StringVar(&e.home, "home", e.home, "home directory (env PARLEY_HOME)")
	fs.StringVar(&e.loginURL, "login", e.loginURL, "login server URL (env PARLEY_LOGIN)")
	fs.StringVar(&e.user, "user", e.user, "user to log in as when the home has none (env PARLEY_USER)")
	fs.StringVar(&e.logLevel, "log-level", e.logLevel, "debug, info, warn or error (default warn)")
	fs.StringVar(&e.supernode, "supernode", e.supernode, "supernode URL to attach to first (env PARLEY_SUPERNODE)")
	fs.BoolVar(&e.noPortMapping, "no-port-mapping", e.noPortMapping, "never ask the router to map a port (UPnP IGD, NAT-PMP)")
	return []string{"home", "login", "user", "log-level", "supernode", "no-port-mapping"}
}

// run runs the command of args and reports its failure: one line on
// stderr and, with --json, an error document on stdout.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr,
		home: os.Getenv("PARLEY_HOME"), loginURL: os.Getenv("PARLEY_LOGIN"), user: os.Getenv("PARLEY_USER"),
		supernode: os.Getenv("PARLEY_SUPERNODE")}
	if e.home == "" {
		if dir, err := os.UserHomeDir(); err == nil {
			e.home = filepath.Join(dir, ".parley")
		}
	}
	err := e.dispatch(ctx, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		line := "parley: " + console.UserMessage(err)
		fmt.Fprintln(stderr, line)
		if cli.WantsJSON(args) {
			(&console.Printer{W: cmp.Or(e.jsonErr, stdout), JSON: true}).Error(line, cli.ExitCode(err))
		}
	}
	return err
}

func (e *env) dispatch(ctx context.Context, args []string) error {
	gfs := flag.NewFlagSet("", flag.ContinueOnError)
	e.globalFlags(gfs)
	jsonOut := gfs.Bool("json", false, "") // before the command: the command's --json
	// The servers' --log-format, before the command too.
	gfs.Var(&e.logFormat, "log-format", "")
	args, err := cli.ParseFirst(gfs, args)
	if *jsonOut && len(args) > 0 && args[0] != "help" {
		args = append(args, "--json")
	}
	if errors.Is(err, flag.ErrHelp) || err == nil && len(args) == 1 && args[0] == "help" {
		fmt.Fprint(e.stdout, usage)
		return flag.ErrHelp
	} else if err != nil {
		return err
	} else if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" { // help COMMAND [SUBCOMMAND] is COMMAND [SUBCOMMAND] --help
		cmd, rest = rest[0], append(rest[1:], "--help")
	}
	commands := map[string]func(context.Context, *env, []string) error{
		"up":           cmdUp,
		"login-server": cmdLoginServer,
		"supernode":    cmdSupernode,
		"relay":        cmdRelay,
		"register":     cmdRegister,
		"login":        cmdLogin,
		"passwd":       cmdPasswd,
		"listen":       cmdListen,
		"call":         cmdCall,
		"echo":         cmdEcho,
		"lookup":       cmdLookup,
		"netcheck":     cmdNetcheck,
		"contacts":     cmdContacts,
		"status":       cmdStatus,
		"search":       cmdSearch,
		"devices":      cmdDevices,
		"chat":         cmdChat,
		"send":         cmdSend,
		"history":      cmdHistory,
		"group":        cmdGroup,
		"version":      cmdVersion,
		"load":         cmdLoad,
	}
	f, ok := commands[cmd]
	if !ok {
		return cli.Unknown("command", cmd, append(slices.Sorted(maps.Keys(commands)), "help"), "parley help lists the commands")
	}
	return f(ctx, e, rest)
}

// parseFlags parses a command's flags and the global flags it takes,
// allowing them before and after its positional arguments, and checks the
// number of positional arguments; --help prints its help on stdout.
func parseFlags(fs *flag.FlagSet, e *env, args []string, minArgs, maxArgs int, argsUsage string) ([]string, error) {
	global := e.globalFlags(fs)
	return cli.Parse(fs, args, cli.Args{Usage: argsUsage, Min: minArgs, Max: maxArgs, Global: global, Help: e.stdout})
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }
func (u usageError) Unwrap() error { return cli.UsageError{Msg: u.msg} }

// cmdVersion is `parley version`: the module version and VCS revision.
func cmdVersion(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print {"event":"result","cmd":"version","version","revision","go","platform"}`)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	v := cli.ReadVersion(revision)
	e.printer(*jsonOut).Result("version", v.String(),
		"version", v.Version, "revision", v.Revision, "go", v.Go, "platform", v.Platform)
	return nil
}
