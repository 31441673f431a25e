package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFuzzSeeds: every fuzz target in the module starts from seeds, and no
// testdata/fuzz directory outlives its target (go test would silently skip
// the regression inputs in it).
func TestFuzzSeeds(t *testing.T) {
	targets, problems, err := fuzzSeedProblems(root)
	if err != nil {
		t.Fatal(err)
	}
	if targets == 0 {
		t.Fatal("found no fuzz targets; the walk is broken")
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// fuzzSeedProblems walks the Go packages under root. A fuzz target must
// call Add on its *testing.F, or have files in testdata/fuzz/<Target> of
// its package; every directory in a package's testdata/fuzz must name one
// of the package's targets. It returns how many targets it saw and one
// line per problem, with paths relative to root.
func fuzzSeedProblems(root string) (int, []string, error) {
	targets := 0
	var problems []string
	err := filepath.WalkDir(root, func(dir string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if dir != root && (name == "testdata" || name == "vendor" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir // not Go packages
		}
		found, err := fuzzTargets(dir)
		if err != nil {
			return err
		}
		targets += len(found)
		rel := func(p string) string {
			r, _ := filepath.Rel(root, p)
			return filepath.ToSlash(r)
		}
		for _, target := range found {
			if target.seeded || hasFiles(filepath.Join(dir, "testdata", "fuzz", target.name)) {
				continue
			}
			problems = append(problems, fmt.Sprintf("%s: %s has no f.Add seed and no testdata/fuzz/%s", rel(target.file), target.name, target.name))
		}
		corpus := filepath.Join(dir, "testdata", "fuzz")
		entries, err := os.ReadDir(corpus)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, e := range entries {
			if !e.IsDir() || !slices.ContainsFunc(found, func(t fuzzTarget) bool { return t.name == e.Name() }) {
				problems = append(problems, fmt.Sprintf("%s: no fuzz target %s in %s", rel(filepath.Join(corpus, e.Name())), e.Name(), rel(dir)))
			}
		}
		return nil
	})
	return targets, problems, err
}

type fuzzTarget struct {
	name, file string
	seeded     bool // calls Add on its *testing.F
}

// fuzzTargets returns the fuzz targets declared in dir's _test.go files.
func fuzzTargets(dir string) ([]fuzzTarget, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	var out []fuzzTarget
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("fuzz targets: %w", err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") || fn.Body == nil {
				continue
			}
			param, ok := testingF(fn.Type)
			if !ok {
				continue
			}
			out = append(out, fuzzTarget{name: fn.Name.Name, file: file, seeded: callsAdd(fn.Body, param)})
		}
	}
	return out, nil
}

// testingF returns the parameter name of a func(x *testing.F).
func testingF(ft *ast.FuncType) (string, bool) {
	if ft.Params == nil || len(ft.Params.List) != 1 || len(ft.Params.List[0].Names) > 1 {
		return "", false
	}
	p := ft.Params.List[0]
	star, ok := p.Type.(*ast.StarExpr)
	if !ok {
		return "", false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "F" {
		return "", false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "testing" {
		return "", false
	}
	if len(p.Names) == 0 {
		return "", true // unnamed: it cannot call Add
	}
	return p.Names[0].Name, true
}

// callsAdd reports whether body calls param.Add anywhere.
func callsAdd(body *ast.BlockStmt, param string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return !found
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Add" {
			if x, ok := sel.X.(*ast.Ident); ok && param != "" && param != "_" && x.Name == param {
				found = true
			}
		}
		return !found
	})
	return found
}

// hasFiles reports whether dir holds at least one regular file.
func hasFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Type().IsRegular() })
}

func TestFuzzSeedProblems(t *testing.T) {
	const seeded = "package a\nimport \"testing\"\nfunc FuzzX(f *testing.F) {\n\tf.Add([]byte(\"x\"))\n\tf.Fuzz(func(t *testing.T, b []byte) {})\n}\n"
	const bare = "package a\nimport \"testing\"\nfunc FuzzX(f *testing.F) {\n\tf.Fuzz(func(t *testing.T, b []byte) {})\n}\n"
	const seedFile = "go test fuzz v1\n[]byte(\"x\")\n"
	for _, tc := range []struct {
		name  string
		files map[string]string // path: contents; a path ending in / is an empty directory
		want  []string
	}{
		{"f.Add seed", map[string]string{"a/x_test.go": seeded}, nil},
		{"testdata seed", map[string]string{"a/x_test.go": bare, "a/testdata/fuzz/FuzzX/regress_1": seedFile}, nil},
		{"both", map[string]string{"a/x_test.go": seeded, "a/testdata/fuzz/FuzzX/c5a9": seedFile}, nil},
		{"no seed", map[string]string{"a/x_test.go": bare},
			[]string{"a/x_test.go: FuzzX has no f.Add seed and no testdata/fuzz/FuzzX"}},
		{"empty testdata directory", map[string]string{"a/x_test.go": bare, "a/testdata/fuzz/FuzzX/": ""},
			[]string{"a/x_test.go: FuzzX has no f.Add seed and no testdata/fuzz/FuzzX"}},
		{"Add on something else", map[string]string{"a/x_test.go": "package a\nimport \"testing\"\ntype h struct{}\nfunc (h) Add(b []byte) {}\nfunc FuzzX(f *testing.F) {\n\tvar g h\n\tg.Add(nil)\n\tf.Fuzz(func(t *testing.T, b []byte) {})\n}\n"},
			[]string{"a/x_test.go: FuzzX has no f.Add seed and no testdata/fuzz/FuzzX"}},
		{"Add in a helper does not count", map[string]string{"a/x_test.go": "package a\nimport \"testing\"\nfunc seed(f *testing.F) { f.Add(1) }\nfunc FuzzX(f *testing.F) {\n\tseed(f)\n\tf.Fuzz(func(t *testing.T, n int) {})\n}\n"},
			[]string{"a/x_test.go: FuzzX has no f.Add seed and no testdata/fuzz/FuzzX"}},
		{"stale directory", map[string]string{"a/x_test.go": seeded, "a/testdata/fuzz/FuzzGone/regress_1": seedFile},
			[]string{"a/testdata/fuzz/FuzzGone: no fuzz target FuzzGone in a"}},
		{"stale without any target", map[string]string{"b/b.go": "package b\n", "b/testdata/fuzz/FuzzOld/1": seedFile},
			[]string{"b/testdata/fuzz/FuzzOld: no fuzz target FuzzOld in b"}},
		{"directory of another package's target", map[string]string{"a/x_test.go": seeded, "b/b.go": "package b\n", "b/testdata/fuzz/FuzzX/1": seedFile},
			[]string{"b/testdata/fuzz/FuzzX: no fuzz target FuzzX in b"}},
		{"stray file in testdata/fuzz", map[string]string{"a/x_test.go": seeded, "a/testdata/fuzz/README": "x"},
			[]string{"a/testdata/fuzz/README: no fuzz target README in a"}},
		{"not targets: methods, other signatures, non-test files, testdata", map[string]string{
			"a/x_test.go":          "package a\nimport \"testing\"\ntype s struct{}\nfunc (s) FuzzM(f *testing.F) {}\nfunc FuzzT(t *testing.T) {}\nfunc Fuzzy() {}\n",
			"a/x.go":               "package a\nimport \"testing\"\nfunc FuzzInCode(f *testing.F) {}\n",
			"a/testdata/y_test.go": bare,
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for path, body := range tc.files {
				p := filepath.Join(dir, filepath.FromSlash(path))
				if strings.HasSuffix(path, "/") {
					if err := os.MkdirAll(p, 0o755); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, got, err := fuzzSeedProblems(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}
