package export

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const parquetModule = "github.com/parquet-go/"

// TestParquetImportRule keeps parquet-go inside parsers/neptune (house
// style: one library, one package tree) and out of the exported API of
// this package and of neptunetest.
func TestParquetImportRule(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "testdata", "vendor", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			// Another package mid-edit: not this test's business.
			t.Logf("skipped %s: %v", rel, err)
			return nil
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, parquetModule) && !strings.HasPrefix(filepath.ToSlash(rel), "parsers/neptune/") {
				t.Errorf("%s imports %s; only parsers/neptune/... may", rel, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{".", filepath.Join("..", "neptunetest")} {
		checkExportedAPI(t, dir)
	}
}

// checkExportedAPI fails on an exported function, method or struct field
// of the package in dir whose type mentions a parquet-go type.
func checkExportedAPI(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		pq := map[string]bool{}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, parquetModule) {
				n := path[strings.LastIndex(path, "/")+1:]
				if imp.Name != nil {
					n = imp.Name.Name
				}
				pq[n] = true
			}
		}
		mentions := func(n ast.Node) bool {
			found := false
			ast.Inspect(n, func(n ast.Node) bool {
				if s, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := s.X.(*ast.Ident); ok && pq[id.Name] {
						found = true
					}
				}
				return !found
			})
			return found
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && mentions(d.Type) {
					t.Errorf("%s: exported %s mentions a parquet type", name, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok || !ts.Name.IsExported() {
						continue
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						if mentions(ts.Type) {
							t.Errorf("%s: exported type %s mentions a parquet type", name, ts.Name.Name)
						}
						continue
					}
					for _, fl := range st.Fields.List {
						for _, fn := range fl.Names {
							if fn.IsExported() && mentions(fl.Type) {
								t.Errorf("%s: %s.%s mentions a parquet type", name, ts.Name.Name, fn.Name)
							}
						}
					}
				}
			}
		}
	}
}
