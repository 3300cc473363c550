package archtest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/parley/parley/"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// list runs go list on the module's packages (tests excluded).
func list(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var ticked = regexp.MustCompile("`([^`]+)`")

// rules reads the layer table of docs/architecture.md: package → the
// project packages it may import (patterns; "x/*" is every package under x/),
// and the client packages named after the table.
func rules(t *testing.T) (allowed map[string][]string, clients []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(root(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allowed = map[string][]string{}
	sc := bufio.NewScanner(f)
	inClients := false
	for sc.Scan() {
		line := sc.Text()
		cells := strings.Split(line, "|")
		if len(cells) == 6 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			name := ticked.FindStringSubmatch(cells[1])[1]
			var may []string
			for _, m := range ticked.FindAllStringSubmatch(cells[4], -1) {
				may = append(may, m[1])
			}
			allowed[name] = may
			continue
		}
		if strings.HasPrefix(line, "The client packages") {
			inClients = true
		}
		if inClients {
			for _, m := range ticked.FindAllStringSubmatch(line, -1) {
				clients = append(clients, m[1])
			}
			if strings.HasSuffix(line, ".") {
				inClients = false
			}
		}
	}
	if len(allowed) == 0 || len(clients) == 0 {
		t.Fatal("docs/architecture.md: no layer table or no list of client packages")
	}
	return allowed, clients
}

func matches(pattern, pkg string) bool {
	if p, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(pkg, p+"/")
	}
	return pattern == pkg
}

func anyMatch(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, pkg) })
}

// Every package is in the table and imports only what its row allows.
func TestImportsFollowTheTable(t *testing.T) {
	allowed, _ := rules(t)
	for name, p := range list(t) {
		may, ok := allowed[name]
		if !ok {
			t.Errorf("%s is not in docs/architecture.md's table: add a row (layer, what it is, what it may import)", name)
			continue
		}
		for _, imp := range p.Imports {
			own, ok := strings.CutPrefix(imp, module)
			if ok && !anyMatch(may, own) {
				t.Errorf("%s imports %s, which docs/architecture.md does not allow", name, own)
			}
		}
	}
}

// A client links no server code: no project server package, no pgx, no
// argon2, and SQLite only through the device's history (client/im).
func TestClientsLinkNoServerCode(t *testing.T) {
	_, clients := rules(t)
	pkgs := list(t)
	servers := []string{"login", "supernode", "relay", "client/promote", "internal/cluster", "web"}
	banned := []string{"github.com/jackc/pgx", "golang.org/x/crypto/argon2"}
	n := 0
	for name, p := range pkgs {
		if !anyMatch(clients, name) {
			continue
		}
		n++
		for _, d := range p.Deps {
			own, isOwn := strings.CutPrefix(d, module)
			switch {
			case isOwn && slices.Contains(servers, own):
				t.Errorf("client package %s links server package %s", name, own)
			case slices.ContainsFunc(banned, func(b string) bool { return strings.HasPrefix(d, b) }):
				t.Errorf("client package %s links %s", name, d)
			case strings.HasPrefix(d, "modernc.org/sqlite") && name != "client/im" && !slices.Contains(p.Deps, module+"client/im"):
				t.Errorf("client package %s links SQLite other than through client/im", name)
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d client packages found; the list in docs/architecture.md is wrong", n)
	}
}

// The check itself: a server package listed among the clients is caught.
func TestClientRuleCatchesServers(t *testing.T) {
	p := list(t)["client/promote"]
	if !slices.Contains(p.Deps, module+"relay") {
		t.Fatal("client/promote does not link relay: the test's fixture is gone")
	}
}
