package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is what a build says of itself.
type Version struct {
	// Version is the module's version: "(devel)" for a build from a
	// checkout, vX.Y.Z for `go install …@vX.Y.Z`.
	Version string
	// Revision is the VCS revision: the one stamped at link time (the
	// Makefile: `git describe --always --dirty`), else the one the go
	// command recorded (vcs.revision, "-dirty" when modified; not with
	// -buildvcs=false), else "unknown".
	Revision string
	// Go is the Go release, and Platform GOOS/GOARCH.
	Go, Platform string
}

// ReadVersion returns this binary's version, stamped being the revision
// given at link time ("" when none was).
func ReadVersion(stamped string) Version {
	v := Version{Version: "(devel)", Revision: stamped, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		rev, dirty := "", ""
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value[:min(12, len(s.Value))]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
		if v.Revision == "" && rev != "" {
			v.Revision = rev + dirty
		}
	}
	if v.Revision == "" {
		v.Revision = "unknown"
	}
	return v
}

// String is the line `parley version` prints:
// "parley (devel), revision f063251-dirty, go1.25.1 linux/amd64".
func (v Version) String() string {
	return fmt.Sprintf("parley %s, revision %s, %s %s", v.Version, v.Revision, v.Go, v.Platform)
}
