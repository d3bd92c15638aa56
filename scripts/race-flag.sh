#!/bin/sh
# Prints -race when the race detector can be used here (it needs cgo and a
# C compiler), nothing otherwise, so `make test` works on a machine that has
# only Go installed.
cc=$(go env CC 2>/dev/null)
[ -n "$cc" ] || cc=gcc
if command -v "$cc" >/dev/null 2>&1; then
	echo -race
else
	echo "note: no C compiler ($cc); running tests without -race" >&2
fi
