// Command parley is Parley's one binary: servers (up, login-server, supernode,
// relay) and the headless client (register, login, passwd, listen, call, echo,
// chat, contacts...). It only parses flags and environment, wires the library
// packages together and handles signals; the logic lives in the libraries:
// internal/cluster runs the servers, client and its packages (echo,
// callscript, console, oneshot) the client side, audio --play and --record.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
)

const usage = `usage: parley [global flags] COMMAND [flags] [args]

Servers:
  up                 a whole local network on 127.0.0.1: login server + web page,
                     supernode, and the echo user
  login-server       the central login server
  supernode          a supernode (presence, call signalling, STUN and a relay)
  relay              a standalone TURN relay

Client:
  register USER      create an account (and log in)
  login USER         log in; the credential is kept in --home
  passwd             change the password (new one from PARLEY_NEW_PASSWORD or a prompt)
  listen             go online; with --answer, answer calls
  call USER          call USER
  echo [USER]        a sound-test user that plays back what it hears (default: echo)
  lookup USER...     where users are online, and the overlay hops each lookup took
  contacts SUB       contacts: add USER, accept USER, decline USER, list [--json]
  status [STATUS]    show or set your status: online, away, busy or invisible
  search TEXT        user names starting with TEXT
  chat USER [MSG]    send USER a message; without MSG, a conversation (one message per line)
  history USER       the conversation with USER, from this home's history

Global flags (before or after the command):
  --home DIR         the user's key, credential and state (env PARLEY_HOME, default ~/.parley)
  --login URL        the login server (env PARLEY_LOGIN)
  --user NAME        the user to log in as when the home has none yet (env PARLEY_USER)
  --log-level LEVEL  debug, info, warn or error (default warn for clients, info for servers)
  --supernode URL    the supernode to attach to first, ws://host:port/v1/ws (env PARLEY_SUPERNODE;
                     default: the nearest of up to 5 from the login server's list and the host cache)

The password is read from PARLEY_PASSWORD or a prompt, never from a flag.
Run 'parley COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "parley: "+console.UserMessage(err))
		}
		os.Exit(exitCode(err))
	}
}

// env is what every command gets: the streams and the global settings.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	home           string
	loginURL       string
	user           string
	logLevel       string
	supernode      string
}

// sessionConfig fills in what the global flags say about going online.
func (e *env) sessionConfig(cfg client.SessionConfig) client.SessionConfig {
	cfg.Prefer = e.supernode
	return cfg
}

func (e *env) logger(defaultLevel slog.Level) *slog.Logger {
	lvl := defaultLevel
	if e.logLevel != "" {
		lvl.UnmarshalText([]byte(e.logLevel))
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: lvl}))
}

// globalFlags registers the flags every command accepts.
func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.home, "home", e.home, "home directory (env PARLEY_HOME)")
	fs.StringVar(&e.loginURL, "login", e.loginURL, "login server URL (env PARLEY_LOGIN)")
	fs.StringVar(&e.user, "user", e.user, "user to log in as when the home has none (env PARLEY_USER)")
	fs.StringVar(&e.logLevel, "log-level", e.logLevel, "debug, info, warn or error")
	fs.StringVar(&e.supernode, "supernode", e.supernode, "supernode URL to attach to first (env PARLEY_SUPERNODE)")
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr,
		home: os.Getenv("PARLEY_HOME"), loginURL: os.Getenv("PARLEY_LOGIN"), user: os.Getenv("PARLEY_USER"),
		supernode: os.Getenv("PARLEY_SUPERNODE")}
	if e.home == "" {
		if dir, err := os.UserHomeDir(); err == nil {
			e.home = filepath.Join(dir, ".parley")
		}
	}
	gfs := flag.NewFlagSet("parley", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	e.globalFlags(gfs)
	if err := gfs.Parse(args); err != nil {
		fmt.Fprint(stderr, usage)
		return usageError{err.Error()}
	}
	args = gfs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
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
		"contacts":     cmdContacts,
		"status":       cmdStatus,
		"search":       cmdSearch,
		"chat":         cmdChat,
		"history":      cmdHistory,
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	f, ok := commands[cmd]
	if !ok {
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	return f(ctx, e, rest)
}

// parseFlags parses a command's flags, allowing them before and after its
// positional arguments, and checks the number of positional arguments.
func parseFlags(fs *flag.FlagSet, e *env, args []string, minArgs, maxArgs int, argsUsage string) ([]string, error) {
	e.globalFlags(fs)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: parley %s [flags] %s\n", fs.Name(), argsUsage)
		fs.PrintDefaults()
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		fs.Usage()
		return nil, usageError{fmt.Sprintf("%s: expected %s", fs.Name(), strings.TrimSpace(argsUsage))}
	}
	return pos, nil
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}
