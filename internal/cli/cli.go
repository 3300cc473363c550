// Package cli is the command-line machinery of cmd/parley that knows nothing
// of Parley: flags before and after the arguments, help that shows --flags
// (two dashes, as the docs write them), "did you mean" for a mistyped
// command, subcommand or flag, usage errors as one line with exit code 2,
// and the version a build was stamped with.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// UsageError is a mistake in the command line (exit code 2).
type UsageError struct{ Msg string }

func (u UsageError) Error() string { return u.Msg }

// Usagef makes a UsageError.
func Usagef(format string, a ...any) error { return UsageError{fmt.Sprintf(format, a...)} }

// ExitCode is the exit status for err: 0 for nil and flag.ErrHelp (help was
// asked for and printed), 2 for a UsageError, 1 for any other failure.
func ExitCode(err error) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(UsageError)):
		return 2
	}
	return 1
}

// Unknown is the usage error for a name that is none of known: `unknown
// WHAT "NAME": did you mean "X"?`, or `unknown WHAT "NAME" (HINT)` when no
// known name is near.
func Unknown(what, name string, known []string, hint string) error {
	if s := Suggest(name, known); s != "" {
		return Usagef("unknown %s %q: did you mean %q?", what, name, s)
	}
	return Usagef("unknown %s %q (%s)", what, name, hint)
}

// Suggest returns the name of candidates nearest to typo: the one at the
// smallest edit distance (a swap of two neighbours counts one) when that is
// at most a third of typo's length (at least 1), else the only candidate
// typo starts, else "".
func Suggest(typo string, candidates []string) string {
	best, bestD := "", max(1, len(typo)/3)+1
	var prefixed []string
	for _, c := range candidates {
		if d := distance(typo, c); d < bestD {
			best, bestD = c, d
		}
		if len(typo) >= 2 && strings.HasPrefix(c, typo) {
			prefixed = append(prefixed, c)
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

// distance is the optimal string alignment distance between a and b.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Args describes a command's positional arguments for [Parse].
type Args struct {
	// Usage names them in the usage line: "USER", "[USER]", "USER...".
	Usage    string
	Min, Max int
	// Global names the flags of fs that are global ones, which the help
	// lists apart, after the command's own.
	Global []string
	// Help receives the help when -h or --help is given.
	Help io.Writer
}

// Parse parses fs's flags from args, allowing them before and after the
// positional arguments, which it returns after checking their number. With
// -h or --help it writes the help ([PrintHelp]) to a.Help and returns
// flag.ErrHelp. Every other failure is a one-line UsageError that names the
// command (fs.Name()) and, for a mistyped flag, the nearest flag.
func Parse(fs *flag.FlagSet, args []string, a Args) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				PrintHelp(a.Help, fs, a.Usage, a.Global)
				return nil, err
			}
			return nil, flagError(fs, err)
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	switch {
	case len(pos) > a.Max && a.Max == 0:
		return nil, Usagef("%s: takes no arguments (got %q)", fs.Name(), pos[0])
	case len(pos) < a.Min || len(pos) > a.Max:
		return nil, Usagef("%s: expected %s (parley help %s)", fs.Name(), a.Usage, fs.Name())
	}
	return pos, nil
}

var oneDash = regexp.MustCompile(`(^| )-([a-z])`)

// flagError turns the flag package's error into one line with --flags.
func flagError(fs *flag.FlagSet, err error) error {
	prefix := ""
	if fs.Name() != "" {
		prefix = fs.Name() + ": "
	}
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return UsageError{prefix + oneDash.ReplaceAllString(err.Error(), "$1--$2")}
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if s := Suggest(name, names); s != "" {
		return Usagef("%sunknown flag --%s: did you mean --%s?", prefix, name, s)
	}
	return Usagef("%sunknown flag --%s (%s lists the flags)", prefix, name, strings.TrimSpace("parley help "+fs.Name()))
}

// PrintHelp writes `usage: parley NAME [flags] ARGS`, then fs's flags with
// two dashes, the command's own under "Flags:" and those named in global
// under "Global flags:".
func PrintHelp(w io.Writer, fs *flag.FlagSet, argsUsage string, global []string) {
	fmt.Fprintf(w, "usage: parley %s [flags]", fs.Name())
	if argsUsage != "" {
		fmt.Fprint(w, " "+argsUsage)
	}
	fmt.Fprintln(w)
	for _, section := range []struct {
		title  string
		global bool
	}{{"Flags:", false}, {"Global flags:", true}} {
		first := true
		fs.VisitAll(func(f *flag.Flag) {
			if slices.Contains(global, f.Name) != section.global {
				return
			}
			if first {
				fmt.Fprintf(w, "\n%s\n", section.title)
				first = false
			}
			kind, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if kind != "" {
				line += " " + kind
			}
			if !slices.Contains([]string{"", "0", "0s", "false", "[]"}, f.DefValue) {
				usage += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(w, "%s\n      %s\n", line, usage)
		})
	}
}

// WantsJSON reports whether args ask for JSON output: --json or -json,
// or --json=BOOL, the last one winning.
func WantsJSON(args []string) bool {
	want := false
	for _, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "json" {
			continue
		}
		want = true
		if hasVal {
			want, _ = strconv.ParseBool(val)
		}
	}
	return want
}

// ParseFirst parses the flags in args up to the first argument that is not
// one (the global flags before a command) and returns the rest. Its errors
// are Parse's; with -h or --help it returns flag.ErrHelp.
func ParseFirst(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, flagError(fs, err)
	}
	return fs.Args(), nil
}

// CIDRs is a repeatable flag of CIDR prefixes (masked: 10.1.2.3/8 is
// 10.0.0.0/8).
type CIDRs []netip.Prefix

func (c *CIDRs) String() string { return fmt.Sprint(*c) }

// Set adds one prefix.
func (c *CIDRs) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("not a CIDR: %q", s)
	}
	*c = append(*c, p.Masked())
	return nil
}
