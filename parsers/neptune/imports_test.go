package neptune

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules keeps each third-party library inside one package of
// this tree (house style): modernc.org/sqlite only in internal/sqlitedb,
// google.golang.org/protobuf only in internal/scalepb.
func TestImportRules(t *testing.T) {
	allowed := map[string]string{
		"modernc.org/sqlite":          "internal/sqlitedb",
		"google.golang.org/protobuf/": "internal/scalepb",
	}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for lib, pkg := range allowed {
				if strings.HasPrefix(path, lib) && filepath.Dir(p) != pkg {
					t.Errorf("%s imports %s; only %s may", p, path, pkg)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
