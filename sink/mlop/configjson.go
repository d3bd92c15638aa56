package mlop

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
)

// configJSON encodes a run config as the JSON object string the server wants
// in "config" (mlop-api.md §2.6). Keys are sorted (encoding/json sorts map
// keys), HTML characters are not escaped.
//
// JSON has no NaN or Infinity and encoding/json refuses them, while a config
// from a training script may well hold one (a Neptune float attribute, a
// loss at the time of the fork). Such floats are written as the strings
// "NaN", "Infinity" and "-Infinity", the same spelling the ingest accepts for
// metric values; anywhere in the tree (maps, slices, arrays, pointers,
// interfaces). Struct fields are left to encoding/json and fail if they hold a
// non-finite float. Values encoding/json cannot encode at all (channels,
// functions, non-finite floats inside structs) make configJSON fail.
func configJSON(config map[string]any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(finiteJSON(reflect.ValueOf(config))); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// finiteJSON returns a value that encodes like v but with every non-finite
// float replaced by its string spelling. Containers are copied only when
// they (transitively) hold floats; other values are returned as they are.
func finiteJSON(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.CanInterface() {
		if _, ok := v.Interface().(json.Marshaler); ok {
			return v.Interface()
		}
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return v.Interface()
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return finiteJSON(v.Elem())
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		if v.Type().Key().Kind() != reflect.String || !mayHoldFloat(v.Type().Elem()) {
			return v.Interface()
		}
		m := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			m[it.Key().String()] = finiteJSON(it.Value())
		}
		return m
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		if !mayHoldFloat(v.Type().Elem()) {
			return v.Interface()
		}
		s := make([]any, v.Len())
		for i := range s {
			s[i] = finiteJSON(v.Index(i))
		}
		return s
	}
	return v.Interface()
}

// mayHoldFloat reports whether a value of type t can contain a float outside
// a struct: a float, an interface, or a container of those.
func mayHoldFloat(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return mayHoldFloat(t.Elem())
	}
	return false
}
