package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// stdinName is how problems in manifests read from standard input are located.
const stdinName = "<stdin>"

// fileFlags are the -f/-R flags shared by apply, delete, diff and validate.
type fileFlags struct {
	files     []string
	recursive bool
}

func (f *fileFlags) register(cmd *cobra.Command, verb string) {
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil,
		"manifest file, directory of *.yaml/*.yml/*.json files, or - for standard input, to "+verb+" (repeatable)")
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "R", false, "read directories given with -f recursively")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
}

// source is one manifest input.
type source struct {
	name string
	data []byte
}

// manifest is one decoded object and where it came from.
type manifest struct {
	obj    v1alpha1.Object
	source string
}

// ref is "tenant/acme", the kubectl-style name of a resource.
func ref(kind v1alpha1.Kind, name string) string {
	return strings.ToLower(string(kind)) + "/" + name
}

func objRef(obj v1alpha1.Object) string { return ref(obj.GetKind(), obj.GetMeta().Name) }

// loadManifests reads and decodes every input. It returns the objects, or
// every problem found (one line each) and no objects at all.
func (a *app) loadManifests(f fileFlags) ([]manifest, []string) {
	if len(f.files) == 0 {
		return nil, []string{"no manifests given: use -f FILE, -f DIR or -f -"}
	}
	sources, problems := readSources(f.files, f.recursive, a.env.Stdin)
	var out []manifest
	for _, src := range sources {
		objs, err := v1alpha1.Decode(src.data, src.name)
		if err != nil {
			problems = append(problems, decodeProblems(err)...)
			continue
		}
		for _, o := range objs {
			out = append(out, manifest{obj: o, source: src.name})
		}
	}
	problems = append(problems, duplicates(out)...)
	if len(problems) == 0 && len(out) == 0 {
		problems = append(problems, "no resources found in "+strings.Join(f.files, ", "))
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return out, nil
}

// decodeProblems splits a decode error into one line per problem.
func decodeProblems(err error) []string {
	var des v1alpha1.DecodeErrors
	if errors.As(err, &des) && len(des) > 0 {
		lines := make([]string, 0, len(des))
		for _, de := range des {
			lines = append(lines, de.Error())
		}
		return lines
	}
	return []string{err.Error()}
}

// duplicates reports resources defined more than once across all inputs.
func duplicates(ms []manifest) []string {
	seen := map[string]string{}
	var problems []string
	for _, m := range ms {
		r := objRef(m.obj)
		if first, ok := seen[r]; ok {
			problems = append(problems, fmt.Sprintf("%s: %s is defined more than once (first in %s)", m.source, r, first))
			continue
		}
		seen[r] = m.source
	}
	return problems
}

// readSources reads the -f arguments in order: files as given, directories
// as their manifest files in lexical order, "-" as standard input (once).
func readSources(args []string, recursive bool, stdin io.Reader) ([]source, []string) {
	var out []source
	var problems []string
	stdinRead := false
	for _, arg := range args {
		if arg == "-" {
			if stdinRead {
				continue
			}
			stdinRead = true
			data, err := io.ReadAll(stdin)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", stdinName, err))
				continue
			}
			out = append(out, source{name: stdinName, data: data})
			continue
		}
		srcs, err := readPath(arg, recursive)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out = append(out, srcs...)
	}
	return out, problems
}

func readPath(path string, recursive bool) ([]source, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return []source{{name: path, data: data}}, nil
	}
	files, err := manifestFiles(path, recursive)
	if err != nil {
		return nil, err
	}
	out := make([]source, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, source{name: f, data: data})
	}
	return out, nil
}

// manifestFiles lists the *.yaml, *.yml and *.json files of dir in lexical
// order; with recursive, those of its subdirectories too, depth first.
func manifestFiles(dir string, recursive bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if !recursive {
				continue
			}
			sub, err := manifestFiles(p, true)
			if err != nil {
				return nil, err
			}
			files = append(files, sub...)
			continue
		}
		if isManifestFile(p) {
			files = append(files, p)
		}
	}
	return files, nil
}

func isManifestFile(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// kindRank is a kind's place in dependency order (unknown kinds last).
func kindRank(k v1alpha1.Kind) int {
	if i := slices.Index(v1alpha1.Kinds, k); i >= 0 {
		return i
	}
	return len(v1alpha1.Kinds)
}

// dependencyOrder sorts manifests so that a Tenant comes before what belongs
// to it; the input order is kept within a kind.
func dependencyOrder(ms []manifest) []manifest {
	out := slices.Clone(ms)
	sort.SliceStable(out, func(i, j int) bool { return kindRank(out[i].obj.GetKind()) < kindRank(out[j].obj.GetKind()) })
	return out
}

// deletionOrder is dependencyOrder reversed by kind: what belongs to a tenant
// goes before the tenant.
func deletionOrder(ms []manifest) []manifest {
	out := slices.Clone(ms)
	sort.SliceStable(out, func(i, j int) bool { return kindRank(out[i].obj.GetKind()) > kindRank(out[j].obj.GetKind()) })
	return out
}

// printProblems writes one problem per line to stderr.
func (a *app) printProblems(problems []string) {
	for _, p := range problems {
		fmt.Fprintln(a.env.Stderr, p)
	}
}
