package tensorboard

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestHParamsYAMLSubset: what PyYAML's yaml.dump writes for Lightning's
// hparams, and what the reader refuses.
func TestHParamsYAMLSubset(t *testing.T) {
	cases := []struct {
		name, in string
		want     map[string]any
	}{
		{"empty", "", map[string]any{}},
		{"empty mapping", "{}\n", map[string]any{}},
		{"scalars", "i: 3\nneg: -7\nf: 0.25\nexp: 1.0e-05\nb: true\nno: false\nyes_word: yes\nn: null\ntilde: ~\nempty:\ns: resnet18\nq: '0.1'\ndq: \"x\"\npath: /data/a b/c.csv\nhex: 0x1f\nsci: 1e5\n",
			map[string]any{"i": int64(3), "neg": int64(-7), "f": 0.25, "exp": 1e-05, "b": true, "no": false, "yes_word": true, "n": nil,
				"tilde": nil, "empty": nil, "s": "resnet18", "q": "0.1", "dq": "x", "path": "/data/a b/c.csv", "hex": int64(31), "sci": "1e5"}},
		{"special floats", "a: .inf\nb: -.inf\nc: .nan\nd: !!float 3\n", map[string]any{"a": "Infinity", "b": "-Infinity", "c": "NaN", "d": 3.0}},
		{"nested", "model:\n  name: vit\n  depth: 12\n  head:\n    dropout: 0.1\nlr: 0.001\n",
			map[string]any{"model": map[string]any{"name": "vit", "depth": int64(12), "head": map[string]any{"dropout": 0.1}}, "lr": 0.001}},
		{"lists as PyYAML writes them", "gpus:\n- 0\n- 1\nnested:\n  items:\n  - a\n  - b\nafter: 1\n",
			map[string]any{"gpus": []any{int64(0), int64(1)}, "nested": map[string]any{"items": []any{"a", "b"}}, "after": int64(1)}},
		{"list of mappings", "layers:\n- size: 64\n  act: relu\n- size: 32\n  act: tanh\n",
			map[string]any{"layers": []any{map[string]any{"size": int64(64), "act": "relu"}, map[string]any{"size": int64(32), "act": "tanh"}}}},
		{"nested list", "m:\n- - 1\n  - 2\n- - 3\n", map[string]any{"m": []any{[]any{int64(1), int64(2)}, []any{int64(3)}}}},
		{"python tags", "betas: !!python/tuple\n- 0.9\n- 0.999\nloss_fn: !!python/name:__main__.arcface_loss ''\nmod: !!python/module:torch.nn ''\nargs: !!python/object:argparse.Namespace\n  lr: 0.1\n  name: x\n",
			map[string]any{"betas": []any{0.9, 0.999}, "loss_fn": "__main__.arcface_loss", "mod": "torch.nn", "args": map[string]any{"lr": 0.1, "name": "x"}}},
		{"quoted over lines", "desc: 'a long string that PyYAML wraps\n  onto the next line, with it''s quote'\nd2: \"first\\tline\\\n  \\ second\"\nu: \"caf\\u00e9 \\x41\"\n",
			map[string]any{"desc": "a long string that PyYAML wraps onto the next line, with it's quote", "d2": "first\tline second", "u": "café A"}},
		{"quoted with blank line", "s: 'one\n\n  two'\n", map[string]any{"s": "one\ntwo"}},
		{"plain over lines", "s: a long plain\n  scalar continued\nt: 1\n", map[string]any{"s": "a long plain scalar continued", "t": int64(1)}},
		{"block scalars", "lit: |\n  line 1\n  line 2\nstrip: |-\n  x\nfold: >\n  a\n  b\n\n  c\nnext: 1\n",
			map[string]any{"lit": "line 1\nline 2\n", "strip": "x", "fold": "a b\nc\n", "next": int64(1)}},
		{"flow", "a: []\nb: {}\nc: [1, 'two', {d: 3}]  # comment\ne: {x: [1], y: null}\n",
			map[string]any{"a": []any{}, "b": map[string]any{}, "c": []any{int64(1), "two", map[string]any{"d": int64(3)}}, "e": map[string]any{"x": []any{int64(1)}, "y": nil}}},
		{"anchors", "base: &b\n  lr: 0.1\ncopy: *b\nl: &l [1, 2]\nm: [*l]\n",
			map[string]any{"base": map[string]any{"lr": 0.1}, "copy": map[string]any{"lr": 0.1}, "l": []any{int64(1), int64(2)}, "m": []any{[]any{int64(1), int64(2)}}}},
		{"markers and comments", "# saved by Lightning\n---\na: 1 # trailing\n'quoted key': 2\n\"dq: key\": 3\nurl: http://x:80/y\n...\nignored: after the end\n",
			map[string]any{"a": int64(1), "quoted key": int64(2), "dq: key": int64(3), "url": "http://x:80/y"}},
		{"crlf", "a: 1\r\nb: two\r\n", map[string]any{"a": int64(1), "b": "two"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseHParamsYAML([]byte(c.in))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("\n got %#v\nwant %#v", got, c.want)
			}
		})
	}
	bad := []struct{ name, in, msg string }{
		{"tab indentation", "a:\n\tb: 1\n", "line 2: a tab"},
		{"duplicate key", "a: 1\na: 2\n", "line 2: duplicate key"},
		{"bad indentation", "a:\n    b: 1\n  c: 2\n", "line 3"},
		{"second document", "a: 1\n---\nb: 2\n", "a second document"},
		{"complex key", "? a\n: 1\n", "complex keys"},
		{"unknown alias", "a: *nope\n", "unknown alias"},
		{"unterminated quote", "a: 'open\n", "unterminated"},
		{"not a mapping", "- 1\n- 2\n", "not a mapping"},
		{"multi-line flow", "a: [1,\n  2]\n", "line 1"},
		{"not utf-8", "a: \xff\n", "UTF-8"},
		{"text after quote", "a: 'x' y\n", "text after"},
	}
	for _, c := range bad {
		t.Run("bad/"+c.name, func(t *testing.T) {
			_, err := parseHParamsYAML([]byte(c.in))
			if err == nil || !errors.Is(err, errYAML) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %v, want one saying %q", err, c.msg)
			}
		})
	}
}
