package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestSuggest(t *testing.T) {
	commands := []string{"call", "chat", "contacts", "echo", "help", "history", "listen", "login", "lookup", "status"}
	for _, tt := range []struct{ typo, want string }{
		{"cal", "call"},
		{"lokup", "lookup"},
		{"lsiten", "listen"}, // a swap counts one
		{"hlep", "help"},
		{"cont", "contacts"}, // the only one it starts
		{"histroy", "history"},
		{"frobnicate", ""},
		{"x", ""},
		{"lo", ""}, // login and lookup both start with it, none is near
	} {
		if got := Suggest(tt.typo, commands); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.typo, got, tt.want)
		}
	}
}

// newFS is a command's flag set: two own flags and a global one.
func newFS() (*flag.FlagSet, *bool, *string) {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	j := fs.Bool("json", false, "print JSON")
	play := fs.String("play", "", "WAV `FILE` to play")
	fs.String("home", "/h", "home directory")
	return fs, j, play
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		pos     []string
		errText string
		code    int
	}{
		{[]string{"bob", "--json", "-play", "x.wav"}, []string{"bob"}, "", 0},
		{[]string{"--json", "bob"}, []string{"bob"}, "", 0},
		{[]string{}, nil, "call: expected USER (parley help call)", 2},
		{[]string{"bob", "carol"}, nil, "call: expected USER (parley help call)", 2},
		{[]string{"--plya", "x", "bob"}, nil, "call: unknown flag --plya: did you mean --play?", 2},
		{[]string{"bob", "--frobnicate"}, nil, "call: unknown flag --frobnicate (parley help call lists the flags)", 2},
		{[]string{"bob", "--play"}, nil, "call: flag needs an argument: --play", 2},
		{[]string{"bob", "--json=maybe"}, nil, `call: invalid boolean value "maybe" for --json: parse error`, 2},
	} {
		fs, _, _ := newFS()
		pos, err := Parse(fs, tt.args, Args{Usage: "USER", Min: 1, Max: 1, Help: io.Discard})
		if tt.errText == "" {
			if err != nil || !slices.Equal(pos, tt.pos) {
				t.Errorf("Parse(%q) = %q, %v; want %q", tt.args, pos, err, tt.pos)
			}
			continue
		}
		if err == nil || err.Error() != tt.errText || ExitCode(err) != tt.code {
			t.Errorf("Parse(%q): error %v (exit %d), want %q (exit %d)", tt.args, err, ExitCode(err), tt.errText, tt.code)
		}
	}
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	if _, err := Parse(fs, []string{"bob"}, Args{}); err == nil || err.Error() != `listen: takes no arguments (got "bob")` {
		t.Errorf("listen bob: %v", err)
	}
}

func TestHelp(t *testing.T) {
	fs, _, _ := newFS()
	var b bytes.Buffer
	_, err := Parse(fs, []string{"bob", "--help"}, Args{Usage: "USER", Min: 1, Max: 1, Global: []string{"home"}, Help: &b})
	if !errors.Is(err, flag.ErrHelp) || ExitCode(err) != 0 {
		t.Fatalf("--help: %v (exit %d), want flag.ErrHelp (exit 0)", err, ExitCode(err))
	}
	want := `usage: parley call [flags] USER

Flags:
  --json
      print JSON
  --play FILE
      WAV FILE to play

Global flags:
  --home string
      home directory (default /h)
`
	if b.String() != want {
		t.Errorf("help:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestParseFirst(t *testing.T) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.String("home", "", "")
	rest, err := ParseFirst(fs, []string{"--home", "/x", "call", "--json"})
	if err != nil || !slices.Equal(rest, []string{"call", "--json"}) {
		t.Errorf("ParseFirst: %q, %v", rest, err)
	}
	if _, err := ParseFirst(fs, []string{"--hmoe", "/x", "call"}); err == nil || err.Error() != "unknown flag --hmoe: did you mean --home?" {
		t.Errorf("ParseFirst --hmoe: %v", err)
	}
	if _, err := ParseFirst(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("ParseFirst -h: %v", err)
	}
}

func TestUnknown(t *testing.T) {
	known := []string{"add", "accept", "decline", "list"}
	for _, tt := range []struct{ name, want string }{
		{"lsit", `unknown subcommand "lsit": did you mean "list"?`},
		{"frob", `unknown subcommand "frob" (add, accept, decline or list)`},
	} {
		err := Unknown("subcommand", tt.name, known, "add, accept, decline or list")
		if err.Error() != tt.want || ExitCode(err) != 2 {
			t.Errorf("Unknown(%q) = %v (exit %d), want %q (exit 2)", tt.name, err, ExitCode(err), tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0}, {flag.ErrHelp, 0}, {fmt.Errorf("x: %w", UsageError{"bad"}), 2}, {errors.New("failed"), 1},
	} {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestWantsJSON(t *testing.T) {
	for _, tt := range []struct {
		args string
		want bool
	}{
		{"call bob --json", true}, {"-json call bob", true}, {"call bob --json=false", false},
		{"call bob --json=false --json", true}, {"call json", false}, {"chat bob --jsonish", false},
	} {
		if got := WantsJSON(strings.Fields(tt.args)); got != tt.want {
			t.Errorf("WantsJSON(%s) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestCIDRs(t *testing.T) {
	var c CIDRs
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&c, "allow", "")
	if err := fs.Parse([]string{"--allow", "10.1.2.3/8", "--allow", "fd00::1/64"}); err != nil {
		t.Fatal(err)
	}
	if c.String() != "[10.0.0.0/8 fd00::/64]" {
		t.Errorf("CIDRs = %s", c.String())
	}
	if err := fs.Parse([]string{"--allow", "10.0.0.1"}); err == nil {
		t.Error("a bare address was taken for a CIDR")
	}
}

func TestReadVersion(t *testing.T) {
	v := ReadVersion("abc1234-dirty")
	if v.Revision != "abc1234-dirty" || v.Version == "" || !strings.HasPrefix(v.Go, "go") || !strings.Contains(v.Platform, "/") {
		t.Errorf("ReadVersion: %+v", v)
	}
	if s := v.String(); !strings.HasPrefix(s, "parley "+v.Version+", revision abc1234-dirty, go") {
		t.Errorf("String() = %q", s)
	}
	// A test binary records no VCS revision: unknown.
	if v := ReadVersion(""); v.Revision != "unknown" {
		t.Errorf("unstamped: revision %q, want unknown", v.Revision)
	}
}
