package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const examplePath = "../config.example.yaml"

// exampleEnv is what the example needs: it reads RUNS_DIR with a default,
// and the key comes from the environment.
var exampleEnv = map[string]string{"PLUTO_API_KEY": "mlpi_example", "RUNS_DIR": "/data/runs"}

// TestExampleLoads loads config.example.yaml and checks that it is valid,
// draws no warning, and documents the real defaults.
func TestExampleLoads(t *testing.T) {
	c, err := LoadWithEnv(examplePath, envOf(exampleEnv))
	if err != nil {
		t.Fatalf("config.example.yaml does not load:\n%v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("config.example.yaml draws warnings: %q", c.Warnings)
	}
	if len(c.Sources) != 1 {
		t.Fatalf("%d sources", len(c.Sources))
	}
	if got := c.Sources[0].Paths[0]; got != "/data/runs/*/metrics.jsonl" {
		t.Errorf("paths[0] = %q: ${RUNS_DIR} not expanded", got)
	}

	// Everything but the sources, the derived values and what the example
	// sets on purpose must equal Default(): the file shows the defaults.
	want := Default()
	want.Server.URLApp, want.Server.URLAPI, want.Server.URLIngest, want.Server.URLPy = DefaultURLApp, DefaultURLAPI, DefaultURLIngest, DefaultURLPy
	want.Server.APIKey, want.Server.apiKeySource = c.Server.APIKey, c.Server.apiKeySource
	want.Project = DefaultProject
	want.StateDir = filepath.Join(c.Dir, ".mlop-agent")
	got := *c
	got.Sources, got.File, got.Dir, got.Warnings, got.name, got.lines, got.origins = nil, "", "", nil, "", nil, nil
	if len(got.Uploads.Roots) == 0 {
		got.Uploads.Roots = nil
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("example settings differ from Default():\n got %+v\nwant %+v", &got, want)
	}

	s := c.Sources[0]
	wantSrc := DefaultSource()
	wantSrc.Name, wantSrc.Format, wantSrc.Paths, wantSrc.Project = "train", "jsonl", s.Paths, DefaultProject
	wantSrc.Run.Name, wantSrc.Run.Tags = "{{.Short}}", []string{"agent"}
	norm := func(s Source) Source {
		if len(s.Exclude) == 0 {
			s.Exclude = nil
		}
		if len(s.Params) == 0 {
			s.Params = nil
		}
		if len(s.Run.Config) == 0 {
			s.Run.Config = nil
		}
		if len(s.Run.ConfigFiles) == 0 {
			s.Run.ConfigFiles = nil
		}
		return s
	}
	if !reflect.DeepEqual(norm(s), wantSrc) {
		t.Errorf("example source differs from DefaultSource():\n got %+v\nwant %+v", norm(s), wantSrc)
	}
}

// TestExampleCommentedSources checks that the commented-out sources at the
// end of the example are valid once uncommented.
func TestExampleCommentedSources(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	on := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "  # - name:") {
			on = true
		}
		if on && strings.HasPrefix(line, "  # ") {
			block = append(block, "  "+strings.TrimPrefix(line, "  # "))
		}
	}
	if len(block) < 4 {
		t.Fatalf("no commented-out sources found in the example")
	}
	c := mustParse(t, "sources:\n"+strings.Join(block, "\n")+"\n", nil)
	if got := len(c.Sources); got != 3 {
		t.Errorf("%d commented sources, want 3", got)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
}

// schemaPaths lists every key of the schema in declaration order; list
// items are written "[]" and maps are leaves.
func schemaPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		p := joinPath(prefix, name)
		out = append(out, p)
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(textUnmarshalerType):
			out = append(out, schemaPaths(ft, p)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, schemaPaths(ft.Elem(), p+"[]")...)
		}
	}
	return out
}

// nodePaths lists the keys of a YAML tree in document order, in the same
// notation as schemaPaths.
func nodePaths(n *yaml.Node, prefix string) []string {
	var out []string
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			out = append(out, nodePaths(c, prefix)...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(prefix, n.Content[i].Value)
			out = append(out, p)
			out = append(out, nodePaths(n.Content[i+1], p)...)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			out = append(out, nodePaths(c, prefix+"[]")...)
		}
	}
	return out
}

// TestExampleDocumentsEveryKey fails when a key is added to the schema
// without being documented in config.example.yaml, or documented out of
// order.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	schema := schemaPaths(reflect.TypeFor[Config](), "")
	inExample := nodePaths(&doc, "")
	for _, p := range schema {
		if !slices.Contains(inExample, p) {
			t.Errorf("config.example.yaml does not document %s", p)
		}
	}
	// Same order: the example's keys, restricted to schema keys and
	// deduplicated, follow the declaration order.
	var order []string
	for _, p := range inExample {
		if slices.Contains(schema, p) && !slices.Contains(order, p) {
			order = append(order, p)
		}
	}
	if !slices.Equal(order, schema) {
		t.Errorf("config.example.yaml key order differs from the schema:\n got %q\nwant %q", order, schema)
	}
	if len(schema) < 60 {
		t.Errorf("schema walk found only %d keys", len(schema))
	}
}

// TestSchemaTypes keeps the schema to the types the decoder supports and
// every field tagged.
func TestSchemaTypes(t *testing.T) {
	supported := map[reflect.Type]bool{
		reflect.TypeFor[string]():            true,
		reflect.TypeFor[bool]():              true,
		reflect.TypeFor[int]():               true,
		reflect.TypeFor[int64]():             true,
		reflect.TypeFor[Duration]():          true,
		reflect.TypeFor[ByteSize]():          true,
		reflect.TypeFor[Secret]():            true,
		reflect.TypeFor[[]string]():          true,
		reflect.TypeFor[[]Source]():          true,
		reflect.TypeFor[map[string]string](): true,
		reflect.TypeFor[map[string]any]():    true,
	}
	var check func(t2 reflect.Type)
	check = func(t2 reflect.Type) {
		for i := 0; i < t2.NumField(); i++ {
			f := t2.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			if tag == "" {
				t.Errorf("%s.%s has no yaml tag", t2.Name(), f.Name)
			}
			if tag == "-" {
				continue
			}
			switch {
			case f.Type == reflect.TypeFor[[]Source]():
				check(reflect.TypeFor[Source]())
			case f.Type.Kind() == reflect.Struct:
				check(f.Type)
			case !supported[f.Type]:
				t.Errorf("%s.%s has type %s, which the decoder does not handle", t2.Name(), f.Name, f.Type)
			}
		}
	}
	check(reflect.TypeFor[Config]())
}

// TestImports keeps the package on the standard library and yaml.v3 only.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatal("no Go files", err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && p != "gopkg.in/yaml.v3" {
				t.Errorf("%s imports %s: config may use only the standard library and gopkg.in/yaml.v3", f, p)
			}
		}
	}
}

// TestNoYAMLInExportedAPI keeps yaml.v3 types out of exported signatures
// and exported fields.
func TestNoYAMLInExportedAPI(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	mentionsYAML := func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "yaml" {
					found = true
				}
			}
			return !found
		})
		return found
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range af.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && mentionsYAML(d.Type) {
					t.Errorf("%s: exported %s has a yaml type in its signature", fset.Position(d.Pos()), d.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok || !ts.Name.IsExported() {
						continue
					}
					if st, ok := ts.Type.(*ast.StructType); ok {
						for _, field := range st.Fields.List {
							exported := len(field.Names) == 0 || field.Names[0].IsExported()
							if exported && mentionsYAML(field.Type) {
								t.Errorf("%s: exported field of %s has a yaml type", fset.Position(field.Pos()), ts.Name.Name)
							}
						}
					} else if mentionsYAML(ts.Type) {
						t.Errorf("%s: exported type %s is a yaml type", fset.Position(ts.Pos()), ts.Name.Name)
					}
				}
			}
		}
	}
}
