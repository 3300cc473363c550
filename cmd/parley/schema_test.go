package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The JSON Schemas of docs/schema: every JSON line the binary prints in these
// tests is checked against the event schema (startWith's cleanup calls
// checkEvents), so that the schema stays the whole truth of --json.

// compileSchema compiles docs/schema/name, asserting formats (date-time).
func compileSchema(name string) (*jsonschema.Schema, error) {
	path, err := filepath.Abs(filepath.Join("..", "..", "docs", "schema", name))
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, doc); err != nil {
		return nil, err
	}
	return c.Compile(path)
}

var (
	eventSchema   = sync.OnceValues(func() (*jsonschema.Schema, error) { return compileSchema("events.schema.json") })
	commandSchema = sync.OnceValues(func() (*jsonschema.Schema, error) { return compileSchema("commands.schema.json") })
)

// checkEvents fails the test for every line of out — what `parley args`
// printed on stdout — that looks like JSON (starts with "{") but is not JSON,
// or does not match docs/schema/events.schema.json. An unterminated last
// line (a process killed while writing) is not checked; nor is stdout that
// carries audio (--record -).
func checkEvents(t testing.TB, args []string, out string) {
	t.Helper()
	if i := slices.Index(args, "--record"); slices.Contains(args, "--record=-") || i >= 0 && i+1 < len(args) && args[i+1] == "-" {
		return
	}
	lines := strings.Split(out, "\n")
	checkSchema(t, "parley "+strings.Join(args, " "), lines[:len(lines)-1], eventSchema)
}

// checkSchema checks that the JSON lines among lines match the schema.
func checkSchema(t testing.TB, what string, lines []string, schema func() (*jsonschema.Schema, error)) {
	t.Helper()
	sch, err := schema()
	if err != nil {
		t.Fatalf("compiling the schema: %v", err)
	}
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
		if err == nil {
			err = sch.Validate(v)
		}
		if err != nil {
			t.Errorf("%s: stdout line %d does not match %s: %v\n%s", what, i+1, sch.Location, err, line)
		}
	}
}
