package mlop

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	modulePath    = "github.com/mlop-ai/mlop-agent"
	retryablePath = "github.com/hashicorp/go-retryablehttp"
)

// imports returns the import paths of the non-test Go files in dir.
func imports(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			got[p] = true
		}
	}
	return got
}

// sink and sink/mlop may import event (and sink/mlop the sink package
// itself), nothing else from the module.
func TestModuleImports(t *testing.T) {
	allowed := map[string]map[string]bool{
		"..": {modulePath + "/event": true},
		".":  {modulePath + "/event": true, modulePath + "/sink": true},
	}
	for dir, ok := range allowed {
		for p := range imports(t, dir) {
			if (p == modulePath || strings.HasPrefix(p, modulePath+"/")) && !ok[p] {
				t.Errorf("%s imports %s", dir, p)
			}
		}
	}
}

// go-retryablehttp is used by sink/mlop and nowhere else in the module.
func TestRetryableHTTPOnlyHere(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	here, _ := filepath.Abs(".")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "vendor", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.Dir(path) == here {
			return nil
		}
		af, perr := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if perr != nil {
			return nil // someone else's file mid-edit; not this test's business
		}
		for _, imp := range af.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == retryablePath {
				t.Errorf("%s imports %s; only sink/mlop may", path, retryablePath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// No exported signature or exported struct field of this package mentions a
// go-retryablehttp type.
func TestNoThirdPartyTypesInAPI(t *testing.T) {
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		local := "retryablehttp"
		for _, imp := range af.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == retryablePath && imp.Name != nil {
				local = imp.Name.Name
			}
		}
		mentions := func(n ast.Node) bool {
			found := false
			ast.Inspect(n, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == local {
						found = true
					}
				}
				return !found
			})
			return found
		}
		for _, decl := range af.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && (d.Recv == nil || exportedRecv(d.Recv)) && mentions(d.Type) {
					t.Errorf("%s: exported func %s mentions %s", fset.Position(d.Pos()), d.Name.Name, local)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if st, ok := s.Type.(*ast.StructType); ok {
							for _, field := range st.Fields.List {
								for _, fn := range field.Names {
									if fn.IsExported() && mentions(field.Type) {
										t.Errorf("%s: field %s.%s mentions %s", fset.Position(field.Pos()), s.Name.Name, fn.Name, local)
									}
								}
							}
						} else if mentions(s.Type) {
							t.Errorf("%s: type %s mentions %s", fset.Position(s.Pos()), s.Name.Name, local)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && (s.Type != nil && mentions(s.Type) || anyMentions(s.Values, mentions)) {
								t.Errorf("%s: %s mentions %s", fset.Position(n.Pos()), n.Name, local)
							}
						}
					}
				}
			}
		}
	}
}

func exportedRecv(recv *ast.FieldList) bool {
	if len(recv.List) == 0 {
		return false
	}
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}

func anyMentions(exprs []ast.Expr, mentions func(ast.Node) bool) bool {
	for _, e := range exprs {
		if mentions(e) {
			return true
		}
	}
	return false
}
